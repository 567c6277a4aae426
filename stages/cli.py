"""The `fader` console script: one sub-command per pipeline stage, plus `align`, `edit` and
`serve`.

The stage modules import the library (and torch) inside their commands, so `fader --help`
answers at once.
"""

import typer

from stages import (
    align,
    download,
    edit,
    evaluate,
    inception,
    preprocess,
    render,
    serve,
    train_classifier,
    train_fader,
)

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
app.command("download")(download.main)
app.command("preprocess")(preprocess.main)
app.command("train-classifier")(train_classifier.main)
app.command("train")(train_fader.main)
app.command("inception")(inception.main)
app.command("evaluate")(evaluate.main)
app.command("render")(render.main)
app.command("align")(align.main)
app.command("edit")(edit.main)
app.command("serve")(serve.main)

if __name__ == "__main__":
    app()
