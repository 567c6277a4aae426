"""The `fader` command: thin Typer commands over the `fader` library, composed in `cli.py`.

Most are DVC's stages (dvc.yaml runs them: `download`, `preprocess`, `train-classifier`,
`train`, `inception`, `evaluate`, `render`): each reads its params, then calls the library.
`align`, `edit` and `serve` are commands for users' photos that DVC never calls; they live here
because they are the same kind of code: options checked, then one library call. The library
(`fader/`) holds no command line and never imports this package (tests/test_layout.py).
"""
