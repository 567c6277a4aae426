"""fader: a reproducible implementation of Fader Networks (Lample et al., NIPS 2017).

The library, in layers; a module imports only from its own layer or the ones above it here:

- `io` (atomic writes), `runtime` (devices, seeds), `config` (strict configs), `parallel`,
  `image` (decoding photos, the centred crop, pixel conversions, PNG and tiles);
- `data`: the on-disk formats, the sources (`data.sources`), preprocessing, the prepared dataset;
- `model`: the networks of Section 4 and their checkpoints;
- `train` and `eval`: the training loops, and the metrics that judge a model;
- `report`: grids, curves and the HTML page;
- `edit`: a trained model applied to any photo.

The `fader` command (`stages/`) and CI's tools (`.ci/`) use the library; it never uses them.
"""

__version__ = "0.1.0"
