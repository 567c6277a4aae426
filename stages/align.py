"""`fader align`: frame any photo's face like CelebA's img_align_celeba (178x218).

fader align photo.jpg -o aligned.png
"""

import logging
from pathlib import Path

import typer

from stages import _common, _photo

log = logging.getLogger(__name__)


def main(
    image: Path = typer.Argument(..., exists=True, dir_okay=False, help="Photo to align."),
    out: Path = typer.Option(..., "-o", "--out", help="PNG to write (178x218)."),
    face: int | None = typer.Option(
        None, min=0, help="Which face, by size (0: the largest, the default)."
    ),
) -> None:
    """Detect the face and its landmarks, then warp it onto CelebA's aligned template."""
    from fader.data import align
    from fader.image import load_photo, save_png

    _common.setup()
    _photo.check_output(out, image)
    photo = load_photo(image.read_bytes(), str(image))
    alignment = align.align(photo, face, str(image))
    save_png(out, alignment.aligned)
    log.info(
        "wrote %s (face at %s, confidence %.3f)", out, alignment.face.box, alignment.face.confidence
    )
