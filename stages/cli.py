"""The `fader` console script: one sub-command per pipeline stage."""

import typer

from stages import download, preprocess

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
app.command("download")(download.main)
app.command("preprocess")(preprocess.main)

if __name__ == "__main__":
    app()
