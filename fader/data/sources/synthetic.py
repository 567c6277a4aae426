"""Synthetic face-like portraits in CelebA's own on-disk format: the pipeline's offline dataset.

Section 5 of the paper trains on CelebA (aligned 178x218 portraits, 40 binary attributes). This
module, which has no counterpart in the official code, draws a procedural stand-in with the same
layout, so every later stage runs unchanged on it (`fader.data.formats` reads both):

- `img_align_celeba/000001.jpg` ...: RGB JPEG, 178x218, quality 90;
- `list_attr_celeba.txt`: all 40 attributes, 1 / -1;
- `list_eval_partition.txt`: 80% train, then 10% valid, then 10% test, in file order.

The faces are aligned like CelebA's: the eyes sit near the same rows, and the face fills most of
the centred square that the pipeline crops (rows 20..198), so every cue survives the resize to
64 px (glasses frames are drawn 4-5 px thick at 178 px).

Attributes that are drawn (probabilities as sampled; CelebA's in brackets, rare ones raised so a
model can learn them from ~12k images), each a localised change:

==================== ===================================================== ==============
attribute            what changes                                          frequency
==================== ===================================================== ==============
Male                 short hair (ears show), thicker straighter brows,     42% [42%]
                     square jaw, wider neck; facial hair only for males
Smiling              mouth corners curve up, mouth widens, cheek lines,    48% [48%]
                     raised cheeks, narrowed eyes (a Duchenne smile)
Mouth_Slightly_Open  dark opening between the lips, upper teeth            48% [48%]: 70%
                                                                           if Smiling, 27%
                                                                           if not
Eyeglasses           frames around both eyes, bridge, temples; 20% of      15% [6.5%]: 22%
                     them tinted (sunglasses)                              of men, 10% of
                                                                           women
Blond_Hair           hair (and brows) yellow-blond                         15% [15%]: 4%
                                                                           of men, 23% of
                                                                           women
Black_Hair           hair black                                            29% [24%]
Brown_Hair           hair brown                                            27% [21%]
Gray_Hair            hair grey                                             6% [4%]
                     (otherwise auburn: none of the four hair colours)
Bangs                a fringe over the forehead, down to the brows         17% [15%]
Wearing_Hat          a cap, brimmed hat or beanie over the hair            8% [5%]
Pale_Skin            a very light, pinkish skin tone                       8% [4%]: 4% of
                                                                           men, 11% of
                                                                           women
5_o_Clock_Shadow     a dark tint of the skin over jaw, chin, upper lip     8% [11%]
Goatee               a patch of beard around the chin                      5% [6%]
No_Beard             -1 for a goatee or a full beard (jaw, chin,           89.5% [83%]
                     sideburns)
Mustache             a band of hair above the upper lip                    9% [4%]
Wearing_Lipstick     red lips (women only)                                 43.5% [47%]
==================== ===================================================== ==============

The other 24 attributes are always -1. Hair colours are exclusive (auburn hair, 23%, has none of
the four). Facial hair is for men only: none (55%), stubble (20%), goatee (12%) or full beard
(13%), with a mustache on half of the beards and 12% of the rest.

A face's identity is carried by nuisance factors drawn independently of the attributes: skin tone,
face size, shape (ellipse aspect, jaw) and position (small jitter), hair style and the shade of
its colour, eye shape, size, spacing, gaze and iris colour, brows, nose, lips, background colour
and gradient, clothes, lighting (a brightness gradient across the face) and pixel noise.

Randomness: the attribute table is drawn first from `SeedSequence([seed, 0])`; image `i`
(1-based, as in its file name) then draws its identity from its own `SeedSequence([seed, i])`,
so the bytes do not depend on the number of workers, and the first `k` images of a larger set
equal a set of `k` images.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from fader import io, parallel
from fader.data import formats

log = logging.getLogger(__name__)

Colour = tuple[int, int, int]

WIDTH, HEIGHT = formats.CELEBA_SIZE  # 178 x 218, like CelebA's aligned images
JPEG_QUALITY = 90
MIN_IMAGES = 10  # one valid and one test image at 80/10/10
_CHUNK = 64  # images per worker task

#: The attributes the generator draws (all others are always -1).
DRAWN_ATTRIBUTES: tuple[str, ...] = (
    "Male",
    "Smiling",
    "Mouth_Slightly_Open",
    "Eyeglasses",
    "Blond_Hair",
    "Black_Hair",
    "Brown_Hair",
    "Gray_Hair",
    "Bangs",
    "Wearing_Hat",
    "Pale_Skin",
    "5_o_Clock_Shadow",
    "Goatee",
    "No_Beard",
    "Mustache",
    "Wearing_Lipstick",
)

HAIR_COLOURS = ("blond", "black", "brown", "gray", "auburn")
BEARDS = ("none", "stubble", "goatee", "full")

# Dark and light end of each hair colour; a face's `hair_shade` picks a point between them.
_HAIR_RANGE: dict[str, tuple[Colour, Colour]] = {
    "blond": ((196, 156, 92), (245, 222, 160)),
    "black": ((16, 14, 14), (50, 40, 34)),
    "brown": ((72, 46, 28), (128, 88, 52)),
    "gray": ((128, 128, 128), (214, 214, 210)),
    "auburn": ((112, 44, 24), (170, 84, 44)),
}
_SKIN_RANGE: tuple[Colour, Colour] = ((82, 54, 40), (232, 192, 162))
_PALE_SKIN: Colour = (244, 224, 216)
_IRIS_COLOURS: tuple[Colour, ...] = (
    (92, 56, 30),
    (48, 32, 24),
    (70, 118, 168),
    (76, 118, 70),
    (134, 102, 52),
    (116, 128, 138),
)
_FRAME_COLOURS: tuple[Colour, ...] = (
    (15, 15, 15),
    (60, 36, 22),
    (110, 20, 30),
    (25, 30, 70),
    (170, 140, 60),
)
_LIPSTICK_COLOURS: tuple[Colour, ...] = ((200, 24, 48), (176, 30, 70), (215, 50, 60))
_MOUTH_DARK: Colour = (58, 16, 22)
_TEETH: Colour = (236, 230, 214)
_SCLERA: Colour = (238, 236, 230)

# Column and row coordinates; images are handled as (H, W * 3) rows of RGB triples, so that
# per-pixel gains need no broadcasting over the channel axis (which numpy does slowly).
_XS3 = np.repeat(np.arange(WIDTH, dtype=np.float32), 3)
_YS = np.arange(HEIGHT, dtype=np.float32)
# Scratch arrays reused by every image of a process: fresh large arrays page-fault on each image
# and then cost more than the arithmetic done in them.
_SCRATCH = {name: np.empty((HEIGHT, WIDTH * 3), np.float32) for name in ("gain", "work", "noise")}


@dataclass(frozen=True)
class Face:
    """Everything that decides one portrait: its attributes, then its identity (nuisance).

    `render(face)` is a pure function of these fields, so `dataclasses.replace(face, ...)` on an
    attribute field shows that attribute alone on the same person. Lengths are in pixels of the
    178x218 canvas.
    """

    # Attributes
    male: bool
    smiling: bool
    mouth_open: bool  # Mouth_Slightly_Open
    eyeglasses: bool
    hair_colour: str  # one of HAIR_COLOURS
    bangs: bool
    hat: bool  # Wearing_Hat
    pale_skin: bool
    beard: str  # one of BEARDS
    mustache: bool
    lipstick: bool  # Wearing_Lipstick
    # Identity: placement and shape
    center_x: float
    eye_y: float
    face_half_width: float
    face_aspect: float  # half height / half width
    face_drop: float  # face centre below the eyes, as a fraction of the half height
    jaw_width: float  # men's square jaw, as a fraction of the half width
    # skin, eyes, brows, nose, mouth
    skin_tone: float  # 0 dark .. 1 light
    skin_tint: Colour  # added to each channel, -10 .. 10
    eye_spacing: float  # half the distance between the eye centres
    eye_width: float  # half width
    eye_height: float  # half height
    iris_colour: Colour
    gaze: float  # horizontal iris offset
    brow_height: float  # above the eye centre
    brow_arch: float
    nose_length: float  # nose tip below the eyes, fraction of the eyes-to-chin distance
    nose_width: float
    mouth_width: float  # half width
    lip_thickness: float
    smile_depth: float  # how far the corners rise when smiling
    lipstick_colour: Colour
    # hair, hat, glasses
    hair_shade: float  # 0 dark .. 1 light, within the hair colour
    hair_volume: float
    hair_length: float  # women: 0 jaw length .. 1 below the shoulders
    hairline: float  # hairline height above the eyes; well above the brows, unlike bangs
    hair_part: float  # +-(0.3 .. 1): which side the hair sweeps to, and how far
    updo: bool  # women: hair up in a bun instead of down
    hat_style: int  # 0 cap, 1 brimmed hat, 2 beanie
    hat_colour: Colour
    glasses_colour: Colour
    glasses_round: bool
    sunglasses: bool
    # scene
    background_top: Colour
    background_bottom: Colour
    background_angle: float  # radians
    clothes_colour: Colour
    light_angle: float  # radians
    light_strength: float  # gain change per face half width
    brightness: float
    noise_sigma: float
    noise_seed: int


@dataclass(frozen=True)
class Layout:
    """Positions derived from a face (pixels), shared by the drawing functions."""

    cx: float
    eye_y: float
    fy: float  # face ellipse centre
    fw: float  # half width
    fh: float  # half height
    chin: float
    jaw: float  # half width of the lower face
    nose_y: float
    mouth_y: float


def generate(
    out_dir: Path, n_images: int, seed: int, workers: int = 2, progress: bool = True
) -> None:
    """Write `n_images` synthetic portraits in CelebA's layout to `out_dir`, atomically.

    Args:
        out_dir: the folder to create (replaced if it exists, only once everything is written).
        n_images: at least 10, so the 80/10/10 split leaves no part empty.
        seed: non-negative; the same seed gives byte-identical files whatever `workers` is.
        workers: processes that render images.
        progress: show a tqdm bar.
    """
    if n_images < MIN_IMAGES:
        raise ValueError(f"n_images must be at least {MIN_IMAGES} (80/10/10 split), got {n_images}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    start = time.perf_counter()
    labels = sample_attributes(n_images, seed)
    drawn = labels[list(DRAWN_ATTRIBUTES)].to_numpy() > 0
    with io.atomic_dir(out_dir) as tmp:
        image_dir = tmp / formats.IMAGE_DIR
        image_dir.mkdir()
        tasks = [
            (image_dir, seed, first, drawn[first : first + _CHUNK])
            for first in range(0, n_images, _CHUNK)
        ]
        for _ in parallel.imap_with_progress(
            _render_chunk, tasks, workers, n_images, "synthetic", progress
        ):
            pass  # each worker writes its own files
        formats.write_attributes(tmp / formats.ATTR_FILE, labels)
        formats.write_partition(tmp / formats.PARTITION_FILE, partition(labels.index))
    frequencies = ", ".join(f"{name} {(labels[name] > 0).mean():.0%}" for name in DRAWN_ATTRIBUTES)
    log.info(
        "wrote %d synthetic faces to %s in %.1f s (%s)",
        n_images,
        out_dir,
        time.perf_counter() - start,
        frequencies,
    )


def partition(filenames: pd.Index) -> pd.Series:
    """CelebA-style partition in file order: the first 80% train, then 10% valid, 10% test."""
    n = len(filenames)
    n_held = n // 10
    parts = ["train"] * (n - 2 * n_held) + ["valid"] * n_held + ["test"] * n_held
    return pd.Series(parts, index=filenames, name="split")


def sample_attributes(n_images: int, seed: int) -> pd.DataFrame:
    """The attribute table (40 CelebA columns, int8 1 / -1, index `000001.jpg`...).

    Frequencies and correlations are listed in the module docstring. One row of uniforms is
    drawn per image, so the first rows do not depend on `n_images`.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    u = rng.random((n_images, 11))
    male = u[:, 0] < 0.42
    smiling = u[:, 1] < 0.48
    mouth_open = u[:, 2] < np.where(smiling, 0.70, 0.27)
    eyeglasses = u[:, 3] < np.where(male, 0.22, 0.10)
    # hair colour: cumulative probabilities over HAIR_COLOURS (blond, black, brown, gray, auburn)
    hair_cdf = np.where(
        male[:, None], np.cumsum([0.04, 0.32, 0.26, 0.10]), np.cumsum([0.23, 0.27, 0.27, 0.03])
    )
    hair = (u[:, 4, None] >= hair_cdf).sum(axis=1)  # index into HAIR_COLOURS
    bangs = u[:, 5] < np.where(male, 0.10, 0.22)
    hat = u[:, 6] < 0.08
    pale = u[:, 7] < np.where(male, 0.04, 0.11)
    # men's facial hair: none 55%, stubble 20%, goatee 12%, full beard 13%
    beard = np.where(male, (u[:, 8, None] >= np.cumsum([0.55, 0.20, 0.12])).sum(axis=1), 0)
    mustache = male & (u[:, 9] < np.where(beard >= 2, 0.5, 0.12))
    lipstick = ~male & (u[:, 10] < 0.75)

    names = [f"{i:06d}.jpg" for i in range(1, n_images + 1)]
    table = pd.DataFrame(-1, index=names, columns=list(formats.CELEBA_ATTRIBUTES), dtype=np.int8)
    drawn = {
        "Male": male,
        "Smiling": smiling,
        "Mouth_Slightly_Open": mouth_open,
        "Eyeglasses": eyeglasses,
        "Blond_Hair": hair == 0,
        "Black_Hair": hair == 1,
        "Brown_Hair": hair == 2,
        "Gray_Hair": hair == 3,
        "Bangs": bangs,
        "Wearing_Hat": hat,
        "Pale_Skin": pale,
        "5_o_Clock_Shadow": beard == 1,
        "Goatee": beard == 2,
        "No_Beard": beard <= 1,
        "Mustache": mustache,
        "Wearing_Lipstick": lipstick,
    }
    assert set(drawn) == set(DRAWN_ATTRIBUTES)
    for name, values in drawn.items():
        table[name] = np.where(values, 1, -1).astype(np.int8)
    return table


def sample_face(attributes: Mapping[str, bool], rng: np.random.Generator) -> Face:
    """A face with the given CelebA attributes (names in DRAWN_ATTRIBUTES) and a random identity.

    Missing names are off, except No_Beard, which is on. Every identity field is drawn whatever
    the attributes are, in a fixed order, so the same RNG gives the same person with or without,
    say, glasses.
    """
    a = {name: bool(attributes.get(name, name == "No_Beard")) for name in DRAWN_ATTRIBUTES}
    hair_flags = [a["Blond_Hair"], a["Black_Hair"], a["Brown_Hair"], a["Gray_Hair"]]
    hair_colour = HAIR_COLOURS[hair_flags.index(True)] if any(hair_flags) else "auburn"
    if a["Goatee"]:
        beard = "goatee"
    elif not a["No_Beard"]:
        beard = "full"
    elif a["5_o_Clock_Shadow"]:
        beard = "stubble"
    else:
        beard = "none"

    def uniform(low: float, high: float) -> float:
        return float(rng.uniform(low, high))

    def colour(low: int = 0, high: int = 256) -> Colour:
        r, g, b = rng.integers(low, high, size=3)
        return int(r), int(g), int(b)

    def pick(options: tuple[Colour, ...]) -> Colour:
        return options[int(rng.integers(len(options)))]

    face_half_width = uniform(49, 59)
    eye_width = uniform(8, 11.5)
    return Face(
        male=a["Male"],
        smiling=a["Smiling"],
        mouth_open=a["Mouth_Slightly_Open"],
        eyeglasses=a["Eyeglasses"],
        hair_colour=hair_colour,
        bangs=a["Bangs"],
        hat=a["Wearing_Hat"],
        pale_skin=a["Pale_Skin"],
        beard=beard,
        mustache=a["Mustache"],
        lipstick=a["Wearing_Lipstick"],
        center_x=WIDTH / 2 + float(np.clip(rng.normal(0, 2), -4, 4)),
        eye_y=104 + float(np.clip(rng.normal(0, 2), -4, 4)),
        face_half_width=face_half_width,
        face_aspect=uniform(1.22, 1.4),
        face_drop=uniform(0.05, 0.14),
        jaw_width=uniform(0.78, 0.92),
        skin_tone=uniform(0.0, 1.0),
        skin_tint=colour(-10, 11),
        eye_spacing=max(face_half_width * uniform(0.38, 0.46), eye_width + 9),
        eye_width=eye_width,
        eye_height=uniform(3.5, 6.5),
        iris_colour=pick(_IRIS_COLOURS),
        gaze=uniform(-1.5, 1.5),
        brow_height=uniform(12, 17),
        brow_arch=uniform(2, 6),
        nose_length=uniform(0.32, 0.4),
        nose_width=uniform(7, 11),
        mouth_width=uniform(14, 19),
        lip_thickness=uniform(2.5, 4.5),
        smile_depth=uniform(10, 14),
        lipstick_colour=pick(_LIPSTICK_COLOURS),
        hair_shade=uniform(0, 1),
        hair_volume=uniform(4, 14),
        hair_length=uniform(0, 1),
        hairline=uniform(33, 45),
        hair_part=float(rng.choice((-1, 1))) * uniform(0.3, 1),
        updo=bool(rng.random() < 0.15),
        hat_style=int(rng.integers(3)),
        hat_colour=colour(20, 230),
        glasses_colour=pick(_FRAME_COLOURS),
        glasses_round=bool(rng.random() < 0.4),
        sunglasses=bool(rng.random() < 0.2),
        background_top=colour(40, 225),
        background_bottom=colour(40, 225),
        background_angle=uniform(0, 2 * math.pi),
        clothes_colour=colour(15, 225),
        light_angle=uniform(0, 2 * math.pi),
        light_strength=uniform(0.0, 0.2),
        brightness=uniform(0.88, 1.08),
        noise_sigma=uniform(2, 7),
        noise_seed=int(rng.integers(2**32)),
    )


def render(face: Face) -> Image.Image:
    """Draw one portrait (RGB, 178x218): background, body, hair, face, then light and noise."""
    g = layout(face)
    image = Image.fromarray(_background(face))
    draw = ImageDraw.Draw(image, "RGBA")  # RGBA fills blend: the tinted lenses
    _draw_body(draw, face, g)
    _draw_back_hair(draw, face, g)
    _draw_face(draw, face, g)
    _draw_facial_hair(draw, face, g)
    _draw_nose(draw, face, g)
    _draw_mouth(draw, face, g)
    _draw_mustache(draw, face, g)
    _draw_eyes(draw, face, g)
    _draw_brows(draw, face, g)
    _draw_front_hair(draw, face, g)
    _draw_hat(draw, face, g)
    _draw_glasses(draw, face, g)
    return Image.fromarray(_light_and_noise(np.asarray(image), face, g))


def layout(face: Face) -> Layout:
    """Where a face's parts go: the eye and mouth rows locate the attributes' regions."""
    fw = face.face_half_width
    fh = fw * face.face_aspect
    fy = face.eye_y + face.face_drop * fh
    chin = fy + fh
    nose_y = face.eye_y + face.nose_length * (chin - face.eye_y)
    mouth_y = nose_y + 0.42 * (chin - nose_y)
    jaw = fw * face.jaw_width if face.male else fw * 0.7
    return Layout(face.center_x, face.eye_y, fy, fw, fh, chin, jaw, nose_y, mouth_y)


# ---------------------------------------------------------------------------------------------
# Colours


def _rgb(channels: Iterable[float]) -> Colour:
    """Round and clamp three channel values into a colour."""
    r, g, b = (min(255, max(0, round(v))) for v in channels)
    return r, g, b


def _mix(a: Colour, b: Colour, t: float) -> Colour:
    return _rgb(x + (y - x) * t for x, y in zip(a, b))


def _scale(c: Colour, factor: float | tuple[float, float, float]) -> Colour:
    factors = factor if isinstance(factor, tuple) else (factor,) * 3
    return _rgb(x * f for x, f in zip(c, factors))


def _skin(face: Face) -> Colour:
    base = _PALE_SKIN if face.pale_skin else _mix(*_SKIN_RANGE, 0.05 + 0.85 * face.skin_tone)
    return _rgb(x + t for x, t in zip(base, face.skin_tint))


def _hair(face: Face) -> Colour:
    return _mix(*_HAIR_RANGE[face.hair_colour], face.hair_shade)


def _beard_colour(face: Face) -> Colour:
    """Facial hair: the hair colour, darkened so that even a blond beard shows on light skin."""
    return _mix(_hair(face), (25, 20, 18), 0.5)


def _alpha(c: Colour, alpha: int) -> tuple[int, int, int, int]:
    return (*c, alpha)


# ---------------------------------------------------------------------------------------------
# Drawing, back to front


def _background(face: Face) -> np.ndarray:
    """A linear gradient between two colours, in a random direction: (H, W, 3) uint8."""
    cos, sin = math.cos(face.background_angle), math.sin(face.background_angle)
    # t = (cos x + sin y - lowest) / range runs from 0 to 1 between two opposite corners
    lowest = min(0.0, cos * (WIDTH - 1)) + min(0.0, sin * (HEIGHT - 1))
    span = abs(cos) * (WIDTH - 1) + abs(sin) * (HEIGHT - 1)
    top = np.tile(np.asarray(face.background_top, np.float32), WIDTH)  # (W * 3,)
    step = np.tile(np.asarray(face.background_bottom, np.float32), WIDTH) - top
    rows = ((sin * _YS - lowest) / span)[:, None]  # (H, 1)
    work = _SCRATCH["work"]
    np.multiply(rows + (cos / span) * _XS3, step, out=work)
    work += top
    return work.astype(np.uint8).reshape(HEIGHT, WIDTH, 3)


def _draw_body(draw: ImageDraw.ImageDraw, face: Face, g: Layout) -> None:
    """Shoulders in clothes, the neck, and the ears (behind the face and the hair)."""
    draw.ellipse(
        (g.cx - 2.3 * g.fw, g.chin + 4, g.cx + 2.3 * g.fw, g.chin + 130), fill=face.clothes_colour
    )
    neck = 0.5 * g.fw if face.male else 0.42 * g.fw
    skin = _skin(face)
    draw.rectangle((g.cx - neck, g.fy, g.cx + neck, g.chin + 20), fill=_scale(skin, 0.8))
    for side in (-1, 1):
        x = g.cx + side * (g.fw - 1)
        draw.ellipse((x - 8, g.eye_y - 7, x + 8, g.nose_y + 4), fill=_scale(skin, 0.92))
        draw.arc(
            (x - 5, g.eye_y - 3, x + 5, g.nose_y),
            200 if side > 0 else -20,
            380 if side > 0 else 160,
            fill=_scale(skin, 0.7),
            width=2,
        )


def _draw_back_hair(draw: ImageDraw.ImageDraw, face: Face, g: Layout) -> None:
    """The hair mass behind the head: short for men (ears show), long, bob or bun for women."""
    hair = _hair(face)
    volume = face.hair_volume
    head = (
        g.cx - g.fw - volume,
        g.fy - g.fh - 1.3 * volume,
        g.cx + g.fw + volume,
        g.fy + g.fh + volume,
    )
    if face.male:
        # a cap of hair down to the top of the ears; thinner than women's
        volume = 0.5 * volume
        head = (
            g.cx - g.fw - volume,
            g.fy - g.fh - 1.2 * volume,
            g.cx + g.fw + volume,
            g.fy + g.fh + volume,
        )
        _ellipse_part(draw, head, g.eye_y - 8, hair)
        return
    if face.updo:
        _ellipse_part(draw, head, g.eye_y - 12, hair)
        bun = 14 + 0.8 * volume
        top = g.fy - g.fh - 1.3 * volume
        draw.ellipse((g.cx - bun, top - 1.4 * bun, g.cx + bun, top + 0.4 * bun), fill=hair)
        return
    # long hair: the top of the grown head ellipse, then straight sides down to `bottom`
    _ellipse_part(draw, head, g.fy, hair)
    bottom = g.fy + g.fh * (0.55 + 0.9 * face.hair_length)
    draw.rounded_rectangle((head[0], g.fy - 1, head[2], bottom), radius=0.5 * volume + 6, fill=hair)


def _draw_face(draw: ImageDraw.ImageDraw, face: Face, g: Layout) -> None:
    """The face: an ellipse, with a square jaw for men."""
    skin = _skin(face)
    draw.ellipse((g.cx - g.fw, g.fy - g.fh, g.cx + g.fw, g.chin), fill=skin)
    if face.male:
        draw.rounded_rectangle(
            (g.cx - g.jaw, g.fy, g.cx + g.jaw, g.chin - 1), radius=0.5 * g.jaw, fill=skin
        )


def _draw_facial_hair(draw: ImageDraw.ImageDraw, face: Face, g: Layout) -> None:
    """Stubble (a dark tint of the skin), a full beard or a goatee over the jaw.

    Stubble and beard cover the face below the eyes, then the cheeks are painted back, leaving
    sideburns along the face's edge and hair round the mouth and over the chin.
    """
    if face.beard == "none":
        return
    skin = _skin(face)
    if face.beard == "goatee":
        width = face.mouth_width + 3
        draw.ellipse(
            (g.cx - width, g.mouth_y + 1, g.cx + width, g.chin + 2), fill=_beard_colour(face)
        )
        return
    colour = _mix(skin, (30, 24, 22), 0.4) if face.beard == "stubble" else _beard_colour(face)
    top = g.eye_y + 4
    _ellipse_part(
        draw,
        (g.cx - g.fw - 1, g.fy - g.fh - 1, g.cx + g.fw + 1, g.chin + 2),
        top,
        colour,
        above=False,
    )
    if face.male:
        draw.rounded_rectangle(
            (g.cx - g.jaw - 1, max(top, g.fy), g.cx + g.jaw + 1, g.chin + 1),
            radius=0.5 * g.jaw,
            fill=colour,
        )
    cheek_bottom = g.nose_y + 0.55 * (g.mouth_y - g.nose_y)
    draw.ellipse(
        (g.cx - g.fw + 9, 2 * g.eye_y - cheek_bottom, g.cx + g.fw - 9, cheek_bottom), fill=skin
    )


def _draw_nose(draw: ImageDraw.ImageDraw, face: Face, g: Layout) -> None:
    """A shaded ridge and two nostrils."""
    shade = _scale(_skin(face), 0.78)
    w = face.nose_width
    draw.line((g.cx + 2, g.eye_y + 8, g.cx + 3, g.nose_y - 3), fill=shade, width=2)
    draw.arc((g.cx - w, g.nose_y - 6, g.cx + w, g.nose_y + 3), 20, 160, fill=shade, width=2)
    for side in (-1, 1):
        x = g.cx + side * 0.45 * w
        draw.ellipse((x - 2.5, g.nose_y - 2, x + 2.5, g.nose_y + 1), fill=_scale(shade, 0.6))


def _draw_mouth(draw: ImageDraw.ImageDraw, face: Face, g: Layout) -> None:
    """Lips around a mouth line that curves up when smiling; a dark opening with teeth if open."""
    width = face.mouth_width * (1.35 if face.smiling else 1.0)
    if face.mouth_open and not face.smiling:
        width *= 0.85
    rise = face.smile_depth if face.smiling else 0.0
    xs = np.linspace(-1.0, 1.0, 15)
    # the mouth line: corners `rise` pixels above the centre (a parabola)
    line = g.mouth_y + rise * (0.4 - xs**2)
    bulge = np.sqrt(1 - xs**2)  # lip thickness: full in the middle, zero at the corners
    opening = (7.0 if face.smiling else 9.0) if face.mouth_open else 0.0
    thick = face.lip_thickness * (1.2 if face.lipstick else 1.0)
    upper = line - (thick + 0.3 * opening) * bulge
    lower = line + (1.3 * thick + opening) * bulge
    px = g.cx + width * xs
    lips = face.lipstick_colour if face.lipstick else _scale(_skin(face), (0.8, 0.56, 0.58))
    _fill_between(draw, px, upper, lower, lips)
    if face.mouth_open:
        top = line - 0.3 * opening * bulge
        bottom = line + opening * bulge
        _fill_between(draw, px, top, bottom, _MOUTH_DARK)
        teeth = np.minimum(top + 0.45 * opening * bulge + 1, bottom)
        _fill_between(draw, px[2:-2], top[2:-2], teeth[2:-2], _TEETH)
    else:
        draw.line(
            list(zip(px, line)),
            fill=_scale(lips, 0.45),
            width=3 if face.smiling else 2,
            joint="curve",
        )
    if face.smiling:  # raised, lit cheeks and folds beside the raised corners
        fold = _scale(_skin(face), 0.72)
        cheek = _scale(_skin(face), (1.12, 1.0, 0.98))
        for side in (-1, 1):
            x = g.cx + side * (width + 8)
            draw.ellipse((x - 8, g.mouth_y - rise - 16, x + 8, g.mouth_y - rise - 4), fill=cheek)
            x = g.cx + side * (width + 4)
            y = g.mouth_y - rise
            draw.line(
                (x - side * 1, y - 8, x + side * 2, y + 1, x, y + 6),
                fill=fold,
                width=2,
                joint="curve",
            )


def _draw_mustache(draw: ImageDraw.ImageDraw, face: Face, g: Layout) -> None:
    """A thick band of hair between the nose and the upper lip."""
    if not face.mustache:
        return
    width = face.mouth_width + 4
    top = g.nose_y + 3
    bottom = g.mouth_y - face.lip_thickness + 1
    draw.polygon(
        [
            (g.cx - width - 2, bottom + 4),
            (g.cx - 0.6 * width, top),
            (g.cx + 0.6 * width, top),
            (g.cx + width + 2, bottom + 4),
            (g.cx, bottom),
        ],
        fill=_beard_colour(face),
    )


def _draw_eyes(draw: ImageDraw.ImageDraw, face: Face, g: Layout) -> None:
    """Sclera, iris, pupil, a highlight, and a dark upper lid."""
    w, h = face.eye_width, face.eye_height * (0.55 if face.smiling else 1.0)
    r = min(1.1 * h + 1, 0.6 * w)
    lid = _scale(_hair(face), 0.5) if face.hair_colour != "blond" else (70, 50, 40)
    for side in (-1, 1):
        ex, ey = g.cx + side * face.eye_spacing, g.eye_y
        draw.ellipse((ex - w, ey - h, ex + w, ey + h), fill=_SCLERA)
        ix = ex + face.gaze
        draw.ellipse((ix - r, ey - r, ix + r, ey + r), fill=face.iris_colour)
        pupil = 0.45 * r
        draw.ellipse((ix - pupil, ey - pupil, ix + pupil, ey + pupil), fill=(12, 10, 10))
        glint = (ix + 0.3 * r, ey - 0.6 * r)  # a highlight, two pixels square
        draw.rectangle((*glint, glint[0] + 1, glint[1] + 1), fill=(250, 250, 250))
        draw.arc((ex - w - 1, ey - h - 1, ex + w + 1, ey + h + 1), 190, 350, fill=lid, width=2)


def _draw_brows(draw: ImageDraw.ImageDraw, face: Face, g: Layout) -> None:
    """Arched thin brows for women, straighter thicker ones for men."""
    colour = _scale(_hair(face), 0.7 if face.hair_colour != "blond" else 0.6)
    thickness = 6 if face.male else 3
    arch = 0.5 * face.brow_arch if face.male else face.brow_arch
    for side in (-1, 1):
        bx, by = g.cx + side * face.eye_spacing, g.eye_y - face.brow_height
        box = (bx - face.eye_width - 3, by - arch, bx + face.eye_width + 3, by + arch + 6)
        draw.arc(box, 195, 345, fill=colour, width=thickness)


def _draw_front_hair(draw: ImageDraw.ImageDraw, face: Face, g: Layout) -> None:
    """Hair over the top of the face: the hairline, the side sweep, and bangs."""
    hair = _hair(face)
    # one pixel larger than the face, so no skin shows round the polygon's edge
    face_box = (g.cx - g.fw - 1.5, g.fy - g.fh - 1.5, g.cx + g.fw + 1.5, g.chin + 1.5)
    hairline_y = g.eye_y - face.hairline
    _ellipse_part(draw, face_box, hairline_y, hair)
    # the sweep: a lower hairline on the side the hair is combed to (never as low as bangs)
    sx = g.cx + face.hair_part * 0.5 * g.fw
    sweep = 0.6 * g.fw
    depth = 4 + 4 * abs(face.hair_part)
    draw.ellipse((sx - sweep, hairline_y - 14, sx + sweep, hairline_y + depth), fill=hair)
    if face.bangs:
        # a fringe down to just above the brows, with a ragged edge of strands
        edge = g.eye_y - face.brow_height - 2
        _ellipse_part(draw, face_box, edge - 4, hair)
        half = g.fw * math.sqrt(max(0.0, 1 - ((edge - 4 - g.fy) / g.fh) ** 2))
        xs = np.linspace(g.cx - half, g.cx + half, 10)
        for left, right in zip(xs[:-1], xs[1:]):
            draw.polygon(
                [(left, edge - 5), (right, edge - 5), ((left + right) / 2, edge + 3)], fill=hair
            )


def _draw_hat(draw: ImageDraw.ImageDraw, face: Face, g: Layout) -> None:
    """A cap (peak to one side), a brimmed hat or a beanie over the top of the head."""
    if not face.hat:
        return
    colour = face.hat_colour
    band = _scale(colour, 0.7)
    base = g.fy - 0.55 * g.fh  # where the hat sits on the forehead
    crown_w = g.fw + 0.5 * face.hair_volume + 3
    crown = (g.cx - crown_w, g.fy - g.fh - face.hair_volume - 18, g.cx + crown_w, base + 30)
    _ellipse_part(draw, crown, base, colour)
    if face.hat_style == 0:  # cap: a peak sticking out over the forehead
        draw.chord((g.cx - crown_w - 4, base - 7, g.cx + crown_w + 4, base + 9), 0, 180, fill=band)
    elif face.hat_style == 1:  # brimmed hat: a wide flat brim and a band
        draw.rectangle((g.cx - crown_w, base - 12, g.cx + crown_w, base - 4), fill=band)
        draw.ellipse((g.cx - crown_w - 24, base - 7, g.cx + crown_w + 24, base + 4), fill=colour)
    else:  # beanie: a thick folded cuff
        draw.rounded_rectangle(
            (g.cx - crown_w, base - 14, g.cx + crown_w, base + 2), radius=6, fill=band
        )


def _draw_glasses(draw: ImageDraw.ImageDraw, face: Face, g: Layout) -> None:
    """Two frames around the eyes, a bridge and the temples; thick enough to survive 64 px."""
    if not face.eyeglasses:
        return
    frame = face.glasses_colour
    width = 4 if face.glasses_round else 5
    gw = min(face.eye_width + 7, face.eye_spacing - 3)
    gh = face.eye_height + 8
    lens = _alpha((20, 20, 24), 215) if face.sunglasses else _alpha((200, 220, 235), 40)
    ey = g.eye_y + 1
    for side in (-1, 1):
        ex = g.cx + side * face.eye_spacing
        box = (ex - gw, ey - gh, ex + gw, ey + gh)
        if face.glasses_round:
            draw.ellipse(box, fill=lens)
            draw.ellipse(box, outline=frame, width=width)
        else:
            draw.rounded_rectangle(box, radius=6, fill=lens)
            draw.rounded_rectangle(box, radius=6, outline=frame, width=width)
        outer = ex + side * gw
        draw.line((outer, ey - gh + 5, g.cx + side * (g.fw + 1), ey - gh + 3), fill=frame, width=4)
    inner = face.eye_spacing - gw
    draw.line(
        (g.cx - inner - 1, ey - 3, g.cx, ey - 5, g.cx + inner + 1, ey - 3),
        fill=frame,
        width=4,
        joint="curve",
    )


def _ellipse_part(
    draw: ImageDraw.ImageDraw,
    box: tuple[float, float, float, float],
    y: float,
    fill: Colour,
    above: bool = True,
) -> None:
    """Fill the part of the ellipse in `box` that lies above (or below) the row `y`."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    a, b = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    # the point (cx + a cos t, cy - b sin t) lies above y when sin t >= s
    low = math.asin(float(np.clip((cy - y) / b, -1.0, 1.0)))
    ends = (low, math.pi - low) if above else (math.pi - low, 2 * math.pi + low)
    t = np.linspace(*ends, 25)
    points = list(zip((cx + a * np.cos(t)).tolist(), (cy - b * np.sin(t)).tolist()))
    draw.polygon(points, fill=fill)


def _fill_between(
    draw: ImageDraw.ImageDraw, xs: np.ndarray, top: np.ndarray, bottom: np.ndarray, fill: Colour
) -> None:
    """Fill the polygon between two curves sampled at the same `xs`."""
    top_edge = list(zip(xs.tolist(), top.tolist()))
    bottom_edge = list(zip(xs[::-1].tolist(), bottom[::-1].tolist()))
    draw.polygon(top_edge + bottom_edge, fill=fill)


def _light_and_noise(pixels: np.ndarray, face: Face, g: Layout) -> np.ndarray:
    """A brightness gradient across the face (the light's direction), then uniform pixel noise.

    The gain is linear, `brightness * (1 + strength * distance along the light / half width)`;
    the noise is uniform with standard deviation `noise_sigma` (random bytes are some fifteen
    times cheaper to draw than normal floats, and the eye cannot tell the two apart here).
    """
    slope = face.brightness * face.light_strength / g.fw
    cos, sin = math.cos(face.light_angle), math.sin(face.light_angle)
    gain, work, noise = _SCRATCH["gain"], _SCRATCH["work"], _SCRATCH["noise"]
    rows = (face.brightness + slope * sin * (_YS - g.fy))[:, None]  # (H, 1)
    np.add(rows, slope * cos * (_XS3 - g.cx), out=gain)  # (H, W * 3)
    np.multiply(pixels.reshape(HEIGHT, WIDTH * 3), gain, out=work)
    uniform = np.random.default_rng(face.noise_seed).bytes(HEIGHT * WIDTH * 3)
    byte_sd = 255 / math.sqrt(12)
    np.multiply(
        np.frombuffer(uniform, np.uint8).reshape(HEIGHT, WIDTH * 3),
        np.float32(face.noise_sigma / byte_sd),
        out=noise,
    )
    work += noise
    work -= np.float32(127.5 * face.noise_sigma / byte_sd)
    np.clip(work, 0, 255, out=work)
    return work.astype(np.uint8).reshape(HEIGHT, WIDTH, 3)


def _render_chunk(task: tuple[Path, int, int, np.ndarray]) -> tuple[None, int]:
    """Render and save images `first + 1 ...` (1-based file numbers) from their attribute rows."""
    image_dir, seed, first, drawn = task
    for offset, row in enumerate(drawn):
        number = first + offset + 1
        rng = np.random.default_rng(np.random.SeedSequence([seed, number]))
        face = sample_face(dict(zip(DRAWN_ATTRIBUTES, row)), rng)
        render(face).save(image_dir / f"{number:06d}.jpg", format="JPEG", quality=JPEG_QUALITY)
    return None, len(drawn)
