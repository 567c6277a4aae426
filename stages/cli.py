"""The `fader` console script: one sub-command per pipeline stage, plus `align`, `edit` and
`serve`.

The stage modules import the library (and torch) inside their commands, so `fader --help`
answers at once. A command that fails prints its error in one line and exits 1; `--debug`
(anywhere on the command line) or FADER_DEBUG=1 shows the traceback instead.
"""

import os
import sys

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


def main(argv: list[str] | None = None) -> None:
    """Run `fader`: errors as one line (exit 1), tracebacks only with --debug or FADER_DEBUG=1."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("FADER_DEBUG", "") not in ("", "0")
    args = [arg for arg in args if arg != "--debug"]
    try:
        app(args, prog_name="fader")
    except Exception as error:  # the one place that turns errors into messages
        if debug:
            raise
        print(f"fader: error: {error}", file=sys.stderr)
        print("(run again with --debug for the traceback)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
