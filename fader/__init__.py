"""fader: a reproducible implementation of Fader Networks (Lample et al., NIPS 2017).

The library, in layers from the bottom up; a module imports only from its own layer or the ones
before it here (tests/test_layout.py reads this list and checks every import against it):

- `io`, `runtime`, `config`, `parallel`, `image`: atomic writes; devices and seeds; strict
  configs; worker processes; decoding photos, the centred crop, pixel conversions, PNG and tiles;
- `data`: the on-disk formats, the sources (`data.sources`), preprocessing, the prepared dataset;
- `model`: the networks of Section 4 and their checkpoints;
- `eval`: the metrics that judge a model;
- `train`: the training loops (model selection judges swaps with `eval.swaps`);
- `report`: grids, curves and the HTML page;
- `edit`: a trained model applied to any photo;
- `serve`: the faders in a web page, over `edit`.

The `fader` command (`stages/`) and CI's tools (`.ci/`) use the library; it never uses them.
"""

__version__ = "0.1.0"
