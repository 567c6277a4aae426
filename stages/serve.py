"""`fader serve`: the faders in a web page, on this machine.

fader serve                                   # models/fader.pt, models/classifier.pt, data/prepared
fader serve --model m.pt --port 8000 --host 0.0.0.0
"""

import logging
from pathlib import Path

import typer

from stages import _common, _photo

DEFAULT_EXAMPLES = Path("data/prepared")
log = logging.getLogger(__name__)


def main(
    model: Path = typer.Option(Path("models/fader.pt"), help="Fader checkpoint."),
    classifier: Path | None = typer.Option(
        None,
        help="Classifier that gives each photo's starting values (default: "
        f"{_photo.DEFAULT_CLASSIFIER} when that file exists).",
    ),
    no_classifier: bool = typer.Option(False, "--no-classifier", help="Start every slider at 0."),
    examples: Path | None = typer.Option(
        None,
        help="Prepared dataset whose test images are offered as examples (default: "
        f"{DEFAULT_EXAMPLES} when it exists).",
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (127.0.0.1: this machine)."),
    port: int = typer.Option(7860, min=1, max=65535, help="Port to listen on."),
) -> None:
    """Start the web app: upload a photo, move one slider per attribute."""
    try:
        import uvicorn

        from fader import serve
    except ImportError as error:
        raise typer.BadParameter(
            f"the web app needs the serve extra ({error.name} is missing): "
            "pip install -e '.[serve]'"
        ) from None
    from fader import edit
    from fader.data.prepared import PreparedDataset
    from fader.model import checkpoint

    _common.setup()
    classifier = _photo.classifier_path(classifier, no_classifier)
    judge = None if classifier is None else checkpoint.load_network(classifier, "classifier")
    autoencoder, attributes = checkpoint.load_network(model, "fader")
    if examples is None and DEFAULT_EXAMPLES.is_dir():
        examples = DEFAULT_EXAMPLES
    test = None if examples is None else PreparedDataset(examples, "test", attributes=attributes)
    if test is not None and test.img_size != autoencoder.cfg.img_size:
        raise typer.BadParameter(
            f"{examples} is prepared at {test.img_size} px, the model works at "
            f"{autoencoder.cfg.img_size} px"
        )
    app = serve.create_app(edit.Editor(autoencoder, attributes, judge), test)
    log.info("serving %s on http://%s:%d", model, host, port)
    uvicorn.run(app, host=host, port=port, log_level="warning")
