"""Editing any photo with a trained Fader network: slide attributes to chosen values (Sec. 4).

A photo is first framed like the training data: aligned like CelebA's `img_align_celeba`
(`fader.data.align`: face, landmarks, similarity warp), or taken as it is when it already is
(`align=False`); then the training pipeline's own crop and resize apply (centred square, Lanczos
to the model's size). An `Editor` encodes it once (`encode`) and decodes it for any attribute
values (`decode`): every attribute set by the user takes the given value (values outside
[0, 1] extrapolate, as in the paper) and every other attribute keeps the photo's own value. A
slider that moves only decodes.

The paper decodes with an image's *true* attributes for those it leaves alone. A new photo has
no labels, so they are inferred by the evaluation classifier (`fader train-classifier`) when
one is given: logit > 0 (sigmoid > 0.5) → 1, else 0. Without a classifier they are 0 and a
warning names them; set them explicitly (or pass a classifier) when that matters, since e.g.
Male = 0 on a man's photo decodes a woman.

The result is at the model's size, or, with `paste_back`, the whole photo at its own resolution
with the edit's change warped back onto the face (`fader.data.align.paste_back`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from fader.data import align, formats
from fader.image import (
    GUTTER,
    load_photo,
    load_square,
    square_resize,
    tile,
    to_float,
    to_uint8_image,
)
from fader.model.networks import AttributeClassifier, AutoEncoder

log = logging.getLogger(__name__)

#: A loaded classifier and the attributes it predicts, in the order of its outputs: the pair
#: `checkpoint.load_network(path, "classifier")` returns.
ClassifierAndAttributes = tuple[AttributeClassifier, Sequence[str]]


def parse_value(name: str, text: str) -> float:
    """An attribute's value `text` as a finite number (outside [0, 1] extrapolates, Sec. 4)."""
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"{name}={text!r} is not a finite number")
    return number


def parse_settings(pairs: Sequence[str]) -> dict[str, float]:
    """`["Smiling=0.8", "Male=-0.5"]` → `{"Smiling": 0.8, "Male": -0.5}` (NAME=FLOAT each)."""
    settings: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        malformed = f"malformed setting {pair!r}: expected NAME=FLOAT, e.g. Smiling=0.8"
        if not sep or not name:
            raise ValueError(malformed)
        try:
            number = parse_value(name, value)
        except ValueError:
            raise ValueError(malformed) from None
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


@dataclass(frozen=True)
class Photo:
    """A photo ready for the model: the decoded photo, its alignment, the model-size crop."""

    pixels: np.ndarray  # (S, S, 3) uint8: what the model sees
    original: np.ndarray | None = None  # (H, W, 3) uint8 RGB, upright; None without alignment
    alignment: align.Alignment | None = None


def prepare_photo(
    data: bytes,
    img_size: int,
    aligned: bool = False,
    face: int | None = None,
    source: str = "photo",
) -> Photo:
    """A photo's bytes → what the model sees, aligned first unless `aligned` says it already is.

    Raises `fader.image.PhotoError` (a ValueError) for an unreadable or oversized file, or a
    photo without a face.
    """
    if aligned:
        return Photo(load_square(data, img_size, source))
    original = load_photo(data, source)
    alignment = align.align(original, face, source)
    pixels = square_resize(Image.fromarray(alignment.aligned), img_size)
    return Photo(np.array(pixels), original, alignment)


def check_classifier(
    autoencoder: AutoEncoder, attributes: Sequence[str], classifier: ClassifierAndAttributes
) -> None:
    """Refuse a classifier that cannot judge the model's attributes at the model's size."""
    net, judged_attributes = classifier
    missing = [name for name in attributes if name not in judged_attributes]
    if missing:
        raise ValueError(
            f"the classifier predicts {list(judged_attributes)} but the model edits "
            f"{list(attributes)} (missing {missing}): use the classifier trained "
            "on the model's data"
        )
    if net.cfg.img_size != autoencoder.cfg.img_size:
        raise ValueError(
            f"the classifier works at {net.cfg.img_size} px but the model at "
            f"{autoencoder.cfg.img_size} px: use the classifier trained on the "
            "model's data"
        )


@dataclass(frozen=True)
class Encoded:
    """One photo encoded: x (1, 3, S, S), E(x), and its own attribute values (1, n)."""

    x: torch.Tensor
    features: list[torch.Tensor]
    own: torch.Tensor


class Editor:
    """A trained model (and optionally its judge), ready to edit photos: encode once, decode
    for each setting. The autoencoder runs in eval mode (BatchNorm running statistics)."""

    def __init__(
        self,
        autoencoder: AutoEncoder,
        attributes: Sequence[str],
        classifier: ClassifierAndAttributes | None = None,
    ) -> None:
        if len(attributes) != autoencoder.cfg.n_attr:
            raise ValueError(
                f"got {len(attributes)} attribute names for a model of {autoencoder.cfg.n_attr}"
            )
        if classifier is not None:
            check_classifier(autoencoder, attributes, classifier)
        self.autoencoder = autoencoder.eval()
        self.attributes = list(attributes)
        self.classifier = classifier
        self.img_size = autoencoder.cfg.img_size
        self.device = next(autoencoder.parameters()).device

    @torch.no_grad()
    def encode(self, pixels: np.ndarray) -> Encoded:
        """(S, S, 3) uint8 at the model's size → x, E(x) and the photo's own attribute values."""
        assert pixels.shape == (self.img_size, self.img_size, 3), pixels.shape
        x = to_float(np.array(pixels)[None]).to(self.device)  # (1, S, S, 3) → (1, 3, S, S)
        return Encoded(x, self.autoencoder.encode(x), self._own_attributes(x))

    def alpha(self, encoded: Encoded, settings: Mapping[str, float]) -> torch.Tensor:
        """(1, n): the photo's own values, with each attribute in `settings` set to its value."""
        if settings:
            formats.check_attributes(list(settings), valid=self.attributes)
        alpha = encoded.own.clone()
        for name, value in settings.items():
            alpha[:, self.attributes.index(name)] = float(value)
        return alpha

    @torch.no_grad()
    def decode(self, encoded: Encoded, settings: Mapping[str, float]) -> np.ndarray:
        """The photo decoded with `settings` (NAME → α): (S, S, 3) uint8."""
        return to_uint8_image(self._decode(encoded, self.alpha(encoded, settings))[0])

    @torch.no_grad()
    def change(self, encoded: Encoded, settings: Mapping[str, float]) -> np.ndarray:
        """What `settings` change in the decoding, in uint8 units: (S, S, 3) float32.

        D(E(x), α) − D(E(x), own values): zero where the edit changes nothing, so adding it to
        the photo (`align.paste_back`) keeps the photo's own detail there.
        """
        edited = self._decode(encoded, self.alpha(encoded, settings))
        plain = self._decode(encoded, encoded.own)
        return ((edited - plain)[0] * 127.5).permute(1, 2, 0).cpu().numpy()

    @torch.no_grad()
    def strip(
        self,
        encoded: Encoded,
        attribute: str,
        alphas: Sequence[float],
        settings: Mapping[str, float] | None = None,
        gutter: int = GUTTER,
    ) -> np.ndarray:
        """One row: the model's input, then the photo with `attribute` = each α.

        Other attributes follow `settings` and the photo's own values. Returns uint8
        (S, (1+K)*S + K*gutter, 3), laid out like the report's grids (`fader.image.tile`).
        """
        settings = dict(settings or {})
        formats.check_attributes([attribute], valid=self.attributes)
        if attribute in settings:
            raise ValueError(
                f"{attribute} is both the strip's attribute and set to "
                f"{settings[attribute]:g}: leave it out of the settings"
            )
        if not alphas:
            raise ValueError("a strip needs at least one alpha")
        index = self.attributes.index(attribute)
        alpha = self.alpha(encoded, settings)
        columns = [encoded.x]
        for value in alphas:
            alpha[:, index] = float(value)
            columns.append(self._decode(encoded, alpha))
        cells = to_uint8_image(torch.stack(columns, dim=1))  # (1, 1+K, S, S, 3)
        return tile(cells, gutter)

    def unset(self, settings: Mapping[str, float], varied: Sequence[str] = ()) -> list[str]:
        """The attributes that keep the photo's own value."""
        return [n for n in self.attributes if n not in settings and n not in varied]

    def _decode(self, encoded: Encoded, alpha: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.decode(encoded.features, alpha)

    def _own_attributes(self, x: torch.Tensor) -> torch.Tensor:
        """The photo's own values (1, n): the classifier's 0/1 verdicts, else 0 (module doc)."""
        if self.classifier is None:
            return torch.zeros(x.shape[0], len(self.attributes), device=x.device)
        net, judged_attributes = self.classifier
        was_training = net.training
        net.eval()
        try:
            logits = net(x.to(next(net.parameters()).device)).to(x.device)  # (B, n judged)
        finally:
            net.train(was_training)
        columns = [list(judged_attributes).index(name) for name in self.attributes]
        return (logits[:, columns] > 0).float()  # sigmoid > 0.5

    def warn_unset(self, settings: Mapping[str, float], varied: Sequence[str] = ()) -> None:
        """Without a classifier, say which attributes are decoded as 0."""
        unset = self.unset(settings, varied)
        if self.classifier is None and unset:
            log.warning(
                "no classifier: the unset attribute(s) %s are decoded as 0; pass a "
                "classifier or set them",
                ", ".join(unset),
            )


def edit_photo(
    editor: Editor,
    photo: Photo,
    settings: Mapping[str, float],
    strip: str | None = None,
    alphas: Sequence[float] = (),
    paste_back: bool = False,
) -> np.ndarray:
    """The edit a user asks for, as an (H, W, 3) uint8 image.

    The photo decoded with `settings` at the model's size; or, with `strip`, the model's input
    then that attribute at each of `alphas`; or, with `paste_back`, the whole photo at its own
    resolution with the change warped back onto its face (an aligned photo only).
    """
    editor.warn_unset(settings, [strip] if strip else [])
    encoded = editor.encode(photo.pixels)
    if strip is not None:
        if paste_back:
            raise ValueError("a strip cannot be pasted back: give one or the other")
        return editor.strip(encoded, strip, alphas, settings)
    if not paste_back:
        return editor.decode(encoded, settings)
    if photo.alignment is None or photo.original is None:
        raise ValueError(
            "paste-back needs the photo's alignment: it cannot be used with --no-align"
        )
    return align.paste_back(photo.original, photo.alignment, editor.change(encoded, settings))
