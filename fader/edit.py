"""Editing any photo with a trained Fader network: slide attributes to chosen values (Sec. 4).

The photo goes through the training pipeline's own crop and resize (`fader.data.preprocess
.decode_square`: centred square, Lanczos to the model's size), so any size or aspect works; the
result is at the model's size. It is encoded once and decoded with an attribute vector α in
which every attribute set by the user takes the given value (values outside [0, 1]
extrapolate, as in the paper) and every other attribute keeps the photo's own value.

The paper decodes with an image's *true* attributes for those it leaves alone. A new photo has
no labels, so they are inferred by the evaluation classifier (`fader train-classifier`) when
one is given: logit > 0 (sigmoid > 0.5) → 1, else 0. Without a classifier they are 0 and a
warning names them; set them explicitly (or pass a classifier) when that matters, since e.g.
Male = 0 on a man's photo decodes a woman.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from fader.data import celeba
from fader.data.prepared import to_float
from fader.data.preprocess import decode_square
from fader.model.networks import AttributeClassifier, AutoEncoder
from fader.report import grids

log = logging.getLogger(__name__)

#: A loaded classifier and the attributes it predicts, as `checkpoint.load_network` returns.
Classifier = tuple[AttributeClassifier, Sequence[str]]


def parse_settings(pairs: Sequence[str]) -> dict[str, float]:
    """`["Smiling=0.8", "Male=-0.5"]` → `{"Smiling": 0.8, "Male": -0.5}` (NAME=FLOAT each)."""
    settings: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not sep or not name or not math.isfinite(number):
            raise ValueError(f"malformed setting {pair!r}: expected NAME=FLOAT, e.g. Smiling=0.8")
        if name in settings:
            raise ValueError(f"attribute {name!r} is set more than once")
        settings[name] = number
    return settings


def parse_alphas(text: str) -> list[float]:
    """`"0,0.25,0.5"` → `[0.0, 0.25, 0.5]` (comma-separated finite numbers, at least one)."""
    try:
        alphas = [float(part) for part in text.split(",")]
    except ValueError:
        alphas = []
    if not alphas or not all(math.isfinite(a) for a in alphas):
        raise ValueError(
            f"malformed alphas {text!r}: expected numbers separated by commas, "
            "e.g. 0,0.25,0.5,0.75,1"
        )
    return alphas


def read_image(data: bytes, img_size: int, source: str = "image") -> np.ndarray:
    """Decode, crop and resize like the training data: (img_size, img_size, 3) uint8.

    A file that is not a readable image raises ValueError naming `source`.
    """
    try:
        return np.array(decode_square(data, img_size))  # a writable copy, for torch
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ValueError(f"{source} is not a readable image: {error}") from None


def check_classifier(
    autoencoder: AutoEncoder, attributes: Sequence[str], classifier: Classifier
) -> None:
    """Refuse a classifier that cannot judge the model's attributes at the model's size."""
    net, judged = classifier
    missing = [name for name in attributes if name not in judged]
    if missing:
        raise ValueError(
            f"the classifier predicts {list(judged)} but the model edits "
            f"{list(attributes)} (missing {missing}): use the classifier trained "
            "on the model's data"
        )
    if net.cfg.img_size != autoencoder.cfg.img_size:
        raise ValueError(
            f"the classifier works at {net.cfg.img_size} px but the model at "
            f"{autoencoder.cfg.img_size} px: use the classifier trained on the "
            "model's data"
        )


def _check_names(names: Sequence[str], attributes: Sequence[str]) -> None:
    if names:
        celeba.check_attributes(list(names), valid=list(attributes))


@torch.no_grad()
def base_attributes(
    autoencoder: AutoEncoder,
    attributes: Sequence[str],
    x: torch.Tensor,
    classifier: Classifier | None = None,
    unspecified: Sequence[str] = (),
) -> torch.Tensor:
    """The photo's own attribute values (B, n): the classifier's 0/1 verdicts, else 0.

    `unspecified` are the names the caller leaves alone; without a classifier they are the ones
    a warning lists.
    """
    if classifier is None:
        if unspecified:
            log.warning(
                "no classifier: the unset attribute(s) %s are decoded as 0; pass a "
                "classifier or set them",
                ", ".join(unspecified),
            )
        return torch.zeros(x.shape[0], len(attributes), device=x.device)
    check_classifier(autoencoder, attributes, classifier)
    net, judged = classifier
    was_training = net.training
    net.eval()
    try:
        logits = net(x.to(next(net.parameters()).device)).to(x.device)  # (B, len(judged))
    finally:
        net.train(was_training)
    columns = [list(judged).index(name) for name in attributes]
    return (logits[:, columns] > 0).float()  # sigmoid > 0.5


def _encode_photo(
    autoencoder: AutoEncoder,
    attributes: Sequence[str],
    image_bytes: bytes,
    settings: Mapping[str, float],
    classifier: Classifier | None,
    source: str,
    varied: Sequence[str] = (),
) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """The photo x (1, 3, S, S), E(x) and α with the settings applied (`varied`: set later)."""
    if len(attributes) != autoencoder.cfg.n_attr:
        raise ValueError(
            f"got {len(attributes)} attribute names for a model of {autoencoder.cfg.n_attr}"
        )
    _check_names(list(settings), attributes)
    if classifier is not None:
        check_classifier(autoencoder, attributes, classifier)
    pixels = read_image(image_bytes, autoencoder.cfg.img_size, source)
    device = next(autoencoder.parameters()).device
    x = to_float(pixels[None]).to(device)  # (1, S, S, 3) uint8 → (1, 3, S, S) in [-1, 1]
    unspecified = [name for name in attributes if name not in settings and name not in varied]
    alpha = base_attributes(autoencoder, attributes, x, classifier, unspecified)
    for name, value in settings.items():
        alpha[:, list(attributes).index(name)] = float(value)
    return x, autoencoder.encode(x), alpha


def edit_image(
    autoencoder: AutoEncoder,
    attributes: Sequence[str],
    image_bytes: bytes,
    settings: Mapping[str, float],
    classifier: Classifier | None = None,
    source: str = "image",
) -> np.ndarray:
    """The photo decoded with `settings` (NAME → α): (S, S, 3) uint8 at the model's size S.

    `autoencoder` runs in eval mode (BatchNorm running statistics); `attributes` are its
    attribute names; unset attributes follow the module docstring. `source` names the
    image in error messages.
    """
    with grids.evaluating(autoencoder):
        _, feats, alpha = _encode_photo(
            autoencoder, attributes, image_bytes, settings, classifier, source
        )
        return grids.to_uint8_image(autoencoder.decode(feats, alpha)[0])


def edit_strip(
    autoencoder: AutoEncoder,
    attributes: Sequence[str],
    image_bytes: bytes,
    attribute: str,
    alphas: Sequence[float],
    settings: Mapping[str, float] | None = None,
    classifier: Classifier | None = None,
    source: str = "image",
    gutter: int = grids.GUTTER,
) -> np.ndarray:
    """One row: the cropped, resized original, then the photo with `attribute` = each α.

    Other attributes follow `settings` and the module docstring. Returns uint8
    (S, (1+K)*S + K*gutter, 3), laid out like `fader.report.grids` (white gutters between cells).
    """
    settings = dict(settings or {})
    _check_names([attribute], attributes)
    if attribute in settings:
        raise ValueError(
            f"{attribute} is both the strip's attribute and set to "
            f"{settings[attribute]:g}: leave it out of the settings"
        )
    if not alphas:
        raise ValueError("edit_strip needs at least one alpha")
    index = list(attributes).index(attribute)
    with grids.evaluating(autoencoder):
        x, feats, alpha = _encode_photo(
            autoencoder, attributes, image_bytes, settings, classifier, source, varied=[attribute]
        )
        columns = [x]
        for value in alphas:
            alpha[:, index] = float(value)
            columns.append(autoencoder.decode(feats, alpha))
    cells = grids.to_uint8_image(torch.stack(columns, dim=1))  # (1, 1+K, S, S, 3)
    return grids.tile(cells, gutter)
