"""`fader edit`: slide the attributes of any photo with a trained model.

fader edit photo.jpg --set Smiling=0.8 --set Male=-0.5 -o out.png
fader edit photo.jpg --set Smiling=1 --paste-back -o whole_photo.png
fader edit photo.jpg --strip Smiling --alphas 0,0.5,1 -o strip.png
fader edit 000001.jpg --no-align --set Male=0 -o out.png    # already aligned like CelebA
"""

import logging
from pathlib import Path

import typer

from stages import _common, _photo

log = logging.getLogger(__name__)


def main(
    image: Path = typer.Argument(..., exists=True, dir_okay=False, help="Photo to edit."),
    model: Path = typer.Option(Path("models/fader.pt"), help="Fader checkpoint."),
    set_: list[str] = typer.Option(
        [], "--set", metavar="NAME=VALUE", help="Attribute value, repeatable (e.g. Smiling=0.8)."
    ),
    out: Path = typer.Option(..., "-o", "--out", help="PNG to write."),
    classifier: Path | None = typer.Option(
        None,
        help="Classifier that infers the unset attributes (default: "
        f"{_photo.DEFAULT_CLASSIFIER} when that file exists).",
    ),
    no_classifier: bool = typer.Option(
        False, "--no-classifier", help="Decode the unset attributes as 0 instead."
    ),
    strip: str | None = typer.Option(
        None, metavar="NAME", help="Write the original, then NAME at each α."
    ),
    alphas: str = typer.Option("0,0.25,0.5,0.75,1", help="Comma-separated α for --strip."),
    no_align: bool = typer.Option(
        False, "--no-align", help="The photo is already aligned like CelebA's img_align_celeba."
    ),
    face: int | None = typer.Option(
        None, min=0, help="Which face, by size (0: the largest, the default)."
    ),
    paste_back: bool = typer.Option(
        False, "--paste-back", help="Write the whole photo, edited, at its own resolution."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite the photo itself with -o."),
) -> None:
    """Edit one photo; unset attributes keep the classifier's verdict on it (see fader.edit)."""
    from fader import edit
    from fader.image import save_png
    from fader.model import checkpoint

    _common.setup()
    _photo.check_output(out, image, force)
    classifier = _photo.classifier_path(classifier, no_classifier)
    try:
        settings = edit.parse_settings(set_)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--set") from None
    try:
        values = edit.parse_alphas(alphas)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--alphas") from None
    judge = None if classifier is None else checkpoint.load_network(classifier, "classifier")
    autoencoder, attributes = checkpoint.load_network(model, "fader")
    photo = edit.prepare_photo(
        image.read_bytes(), autoencoder.cfg.img_size, aligned=no_align, face=face, source=str(image)
    )
    editor = edit.Editor(autoencoder, attributes, judge)
    result = edit.edit_photo(editor, photo, settings, strip, values, paste_back)
    save_png(out, result)
    log.info("wrote %s (%dx%d px)", out, result.shape[1], result.shape[0])
