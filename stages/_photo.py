"""What the commands that work on users' photos (`align`, `edit`, `serve`) check the same way."""

from __future__ import annotations

from pathlib import Path

import typer

#: The classifier that gives a photo its own attribute values, when the pipeline made one.
DEFAULT_CLASSIFIER = Path("models/classifier.pt")


def check_output(out: Path, photo: Path, force: bool | None = None) -> None:
    """`out` must be a PNG and not the photo itself (`force`: the command's --force, if any)."""
    if out.suffix.lower() != ".png":
        raise typer.BadParameter(f"{out} must end in .png (lossless)", param_hint="--out")
    if out.resolve() == photo.resolve() and not force:
        hint = " (or --force)" if force is not None else ""
        raise typer.BadParameter(
            f"{out} is the photo itself: write elsewhere{hint}", param_hint="--out"
        )


def classifier_path(classifier: Path | None, no_classifier: bool) -> Path | None:
    """The classifier to use: the one given, else DEFAULT_CLASSIFIER when it exists, unless
    --no-classifier."""
    if classifier is not None and no_classifier:
        raise typer.BadParameter("give --classifier or --no-classifier, not both")
    if classifier is None and not no_classifier and DEFAULT_CLASSIFIER.is_file():
        return DEFAULT_CLASSIFIER
    return classifier
