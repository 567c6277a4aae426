"""Images in and out: decoding photos, the centred-square crop, pixel conversions, PNG and tiles.

Everything that turns bytes into pixels or pixels into bytes is here, for every caller:
preprocessing (`decode_square`, Section 5's crop and resize), the prepared dataset and the
metrics (`to_float`, `to_uint8`: Section 5 normalises images to [-1, 1]), alignment and editing
(`load_photo`: any photo a user brings), and the grids, edits and web app (`tile`, `save_png`,
`encode_png`).

Two decoders, on purpose: `decode_square` makes the training data, so its bytes are fixed (the
prepared dataset is hashed by DVC); `load_photo` keeps a whole photo, in any mode Pillow reads.
Both apply the EXIF orientation and refuse more than `MAX_PIXELS` pixels before decoding.
"""

from __future__ import annotations

import contextlib
import io as _io
import os
from collections.abc import Iterator

import numpy as np
import torch
from PIL import Image, ImageOps

from fader import io

#: An image may have at most this many pixels; it is checked before decoding (a 169-megapixel
#: image needs ~0.5 GB as RGB, per worker). Pillow's own decompression-bomb limit is ~179 M.
MAX_PIXELS = 64_000_000

#: White pixels between the cells of a tiled image (`tile`).
GUTTER = 2
_WHITE = 255

#: EXIF orientation → the transpose that makes the image upright (Pillow's exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

#: What decoding a bad file raises: truncated or unknown data, a bomb past Pillow's limit.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class PhotoError(ValueError):
    """A photo cannot be read, is too large, or (`fader.data.align`) shows no face."""


def check_pixels(width: int, height: int, source: str, max_pixels: int = MAX_PIXELS) -> None:
    """Refuse an image of more than `max_pixels` pixels (`PhotoError` naming `source`)."""
    if width * height > max_pixels:
        raise PhotoError(
            f"{source} is {width}x{height} = {width * height / 1e6:.0f} megapixels; "
            f"at most {max_pixels / 1e6:.0f} are accepted: shrink it first"
        )


@contextlib.contextmanager
def _readable(source: str) -> Iterator[None]:
    """Turn a decoding error into a `PhotoError` naming `source`."""
    try:
        yield
    except PhotoError:
        raise
    except DECODE_ERRORS as error:
        raise PhotoError(f"{source} is not a readable image: {error}") from None


def crop_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The centred square crop as a PIL box (left, top, right, bottom).

    For CelebA's 178x218 this is rows 20..198, as in the official code; other sizes keep the
    same proportions (89x109 -> rows 10..99). A landscape image loses columns instead.
    """
    side = min(width, height)
    left = (width - side) // 2
    top = (height - side) // 2
    return left, top, left + side, top + side


def decode_square(data: bytes, img_size: int, source: str = "the image") -> np.ndarray:
    """Decode one image, crop its centred square and resize it: (img_size, img_size, 3) uint8.

    JPEG decoding is asked for the smallest DCT scale that keeps the square at least `img_size`
    wide (`Image.draft`), then Lanczos resampling (antialiased) of the crop box, scaled to the
    decoded size in exact fractional coordinates, gives the final size. An EXIF orientation
    (a phone photo taken sideways) is applied first. Raises what Pillow raises for a bad file
    (one of `DECODE_ERRORS`), and `PhotoError` naming `source` past `MAX_PIXELS`.
    """
    with Image.open(_io.BytesIO(data)) as image:
        orientation = image.getexif().get(0x0112, 1)  # 0x0112: the Orientation tag
        width, height = image.size
        check_pixels(width, height, source)
        image.draft("RGB", (img_size, img_size))
        image = image.convert("RGB")
        if orientation in _UPRIGHT:
            image = image.transpose(_UPRIGHT[orientation])
            if orientation >= 5:  # a quarter turn: the sides swap
                width, height = height, width
        return square_resize(image, img_size, (width, height))


def square_resize(
    image: Image.Image, img_size: int, full_size: tuple[int, int] | None = None
) -> np.ndarray:
    """The centred square of `image` (`crop_box`) Lanczos-resized: (img_size, img_size, 3).

    `full_size` is the (width, height) the crop box is computed at, when `image` was decoded
    smaller (JPEG draft); the box is scaled to the decoded size in fractional coordinates.
    """
    width, height = full_size or image.size
    sx, sy = image.width / width, image.height / height
    left, top, right, bottom = crop_box(width, height)
    box = (left * sx, top * sy, right * sx, bottom * sy)
    return np.asarray(image.resize((img_size, img_size), Image.Resampling.LANCZOS, box=box))


def load_square(data: bytes, img_size: int, source: str = "image") -> np.ndarray:
    """`decode_square` for a user's file: a writable copy, and `PhotoError` naming `source`.

    For a photo already framed like CelebA's aligned images: the pixels the model would have
    been trained on.
    """
    with _readable(source):
        return np.array(decode_square(data, img_size, source))  # a writable copy, for torch


def load_photo(data: bytes, source: str = "photo", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode a photo to (H, W, 3) uint8 RGB, upright as its EXIF orientation says.

    Any mode Pillow reads works: grayscale, palette, RGBA (transparent pixels become white),
    CMYK, 16-bit. Raises `PhotoError` naming `source` for a file that is not an image or one
    with more than `max_pixels` pixels (checked before decoding).
    """
    with _readable(source), Image.open(_io.BytesIO(data)) as image:
        check_pixels(*image.size, source, max_pixels)
        image = ImageOps.exif_transpose(image)
        return np.asarray(_to_rgb(image))


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit: keep the top 8 bits
        pixels = np.asarray(image, dtype=np.float64)
        scale = 255.0 / 65535.0 if pixels.max() > 255 else 1.0
        image = Image.fromarray(np.clip(pixels * scale, 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


#: uint8 value v → v / 127.5 - 1 as float32, computed once on the CPU by true division.
_FLOAT_OF_BYTE = torch.arange(256, dtype=torch.uint8).float().div_(127.5).sub_(1.0)
_float_of_byte: dict[torch.device, torch.Tensor] = {torch.device("cpu"): _FLOAT_OF_BYTE}


def to_float(pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) → float32 (B, 3, H, W) in [-1, 1]: v / 127.5 - 1, looked up.

    The 256 values come from one table computed on the CPU and gathered on the pixels' device,
    so every device gives the CPU's values bit for bit: CUDA divides by a Python scalar as a
    multiply by its reciprocal, 1 ulp off the CPU's true division for 111 of the 256 values.
    The result's memory is channels last (a permuted view), as the division's was.
    """
    u = torch.as_tensor(pixels)
    table = _float_of_byte.get(u.device)
    if table is None:
        table = _float_of_byte[u.device] = _FLOAT_OF_BYTE.to(u.device)
    x = table.index_select(0, u.reshape(-1).int()).view(u.shape)  # (B, H, W, 3)
    return x.permute(0, 3, 1, 2)  # (B, H, W, 3) → (B, 3, H, W)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] → uint8 in [0, 255] (same layout): `round((x + 1) * 127.5)`, clamped.

    The inverse of `to_float` (v / 127.5 - 1), so uint8 → float → uint8 is exact; this is what a
    lossless PNG of `x` holds. `torch.round` rounds halves to even.
    """
    if not x.is_floating_point():
        raise TypeError(f"to_uint8 expects a float tensor in [-1, 1], got {x.dtype}")
    return ((x.float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


def to_uint8_image(x: torch.Tensor) -> np.ndarray:
    """[-1, 1] float (3, H, W) → (H, W, 3) uint8; also (B, 3, H, W) → (B, H, W, 3), and so on.

    `to_uint8`, channels last, as a NumPy array for Pillow.
    """
    assert x.ndim >= 3 and x.shape[-3] == 3, f"expected (..., 3, H, W), got {tuple(x.shape)}"
    return to_uint8(x.detach().cpu()).movedim(-3, -1).numpy()  # (..., 3, H, W) → (..., H, W, 3)


def tile(cells: np.ndarray, gutter: int = GUTTER) -> np.ndarray:
    """(R, C, S, S, 3) uint8 cells → one (R*S + (R-1)*g, C*S + (C-1)*g, 3) image.

    `gutter` white pixels separate neighbouring cells, with no outer border: cell (r, c) starts
    at pixel row `r*(S+gutter)` and column `c*(S+gutter)`.
    """
    assert cells.ndim == 5 and cells.shape[-1] == 3, tuple(cells.shape)
    rows, cols, height, width, _ = cells.shape
    step_y, step_x = height + gutter, width + gutter
    grid = np.full((rows * step_y - gutter, cols * step_x - gutter, 3), _WHITE, np.uint8)
    for r in range(rows):
        for c in range(cols):
            grid[r * step_y : r * step_y + height, c * step_x : c * step_x + width] = cells[r, c]
    return grid


def encode_png(array: np.ndarray, compress_level: int | None = None) -> bytes:
    """An (H, W, 3) uint8 array as lossless PNG bytes (`compress_level`: Pillow's, 0-9)."""
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {array.dtype} {array.shape}")
    options = {} if compress_level is None else {"compress_level": compress_level}
    buffer = _io.BytesIO()
    Image.fromarray(array, "RGB").save(buffer, format="PNG", **options)
    return buffer.getvalue()


def save_png(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 array as a lossless PNG, atomically."""
    io.write_bytes(path, encode_png(array))
