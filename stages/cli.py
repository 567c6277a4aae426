"""The `fader` console script: one sub-command per pipeline stage."""

import typer

from stages import download, preprocess, train_classifier, train_fader

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
app.command("download")(download.main)
app.command("preprocess")(preprocess.main)
app.command("train-classifier")(train_classifier.main)
app.command("train")(train_fader.main)

if __name__ == "__main__":
    app()
