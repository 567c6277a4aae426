"""fader.image: photos of every kind decoded upright, the training crop, pixel conversions, PNGs and
tiles."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fader import image
from fader.image import (
    GUTTER,
    PhotoError,
    crop_box,
    decode_square,
    encode_png,
    load_photo,
    load_square,
    save_png,
    tile,
    to_float,
    to_uint8,
    to_uint8_image,
)
from tests.conftest import asymmetric, cell, encode

# --- photos of every kind ------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_exif_orientation_is_applied(orientation: int) -> None:
    upright = asymmetric()
    stored = {
        1: lambda im: im,
        3: lambda im: im.transpose(Image.Transpose.ROTATE_180),
        6: lambda im: im.transpose(Image.Transpose.ROTATE_90),
        8: lambda im: im.transpose(Image.Transpose.ROTATE_270),
    }[orientation](Image.fromarray(upright))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(stored, "PNG", exif=exif)
    assert np.array_equal(load_photo(data), upright)
    # the --no-align path (the training crop) turns it upright too
    assert np.array_equal(
        decode_square(data, 8), decode_square(encode(Image.fromarray(upright)), 8)
    )


def test_every_mode_becomes_rgb() -> None:
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque red, bottom half transparent
    photo = load_photo(encode(Image.fromarray(rgba, "RGBA")))
    assert photo.shape == (4, 5, 3) and photo.dtype == np.uint8
    assert (photo[:2] == (200, 0, 0)).all() and (photo[2:] == 255).all()  # transparent → white
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5)
    assert (load_photo(encode(Image.fromarray(gray, "L")))[..., 1] == gray).all()
    sixteen = Image.fromarray(gray.astype(np.uint16) * 257)
    assert np.array_equal(load_photo(encode(sixteen))[..., 0], gray)
    cmyk = Image.new("CMYK", (5, 4), (0, 255, 255, 0))  # pure red in CMYK
    assert (load_photo(encode(cmyk, "JPEG", quality=100))[..., 0] > 240).all()
    palette = Image.fromarray(gray, "L").convert("P")
    assert load_photo(encode(palette)).shape == (4, 5, 3)


def test_unreadable_and_oversized_photos_are_refused() -> None:
    with pytest.raises(PhotoError, match="notes.txt is not a readable image"):
        load_photo(b"not an image", "notes.txt")
    with pytest.raises(PhotoError, match=r"big.png is 30x20 = 0 megapixels; at most 0"):
        load_photo(encode(Image.fromarray(asymmetric())), "big.png", max_pixels=599)
    assert load_photo(encode(Image.fromarray(asymmetric())), max_pixels=600).shape[:2] == (20, 30)


def test_both_decoders_refuse_more_than_max_pixels_before_decoding() -> None:
    bomb = encode(Image.new("L", (9000, 8000)))  # 72 megapixels in 70 KB
    with pytest.raises(PhotoError, match="the image is 9000x8000 = 72 megapixels; at most 64"):
        decode_square(bomb, 8)
    with pytest.raises(PhotoError, match="bomb.png is 9000x8000 = 72 megapixels; at most 64"):
        load_square(bomb, 8, "bomb.png")
    with pytest.raises(PhotoError, match="bomb.png is 9000x8000"):
        load_photo(bomb, "bomb.png")
    assert image.MAX_PIXELS == 64_000_000 < 9000 * 8000


# --- the training crop ---------------------------------------------------------------------------


def test_crop_box_keeps_official_rows_and_proportions() -> None:
    assert crop_box(178, 218) == (0, 20, 178, 198)
    assert crop_box(89, 109) == (0, 10, 89, 99)
    assert crop_box(300, 200) == (50, 0, 250, 200)


def test_decode_square_shapes() -> None:
    raw = encode(Image.new("RGB", (178, 218), (10, 20, 30)), "JPEG")
    for size in (32, 64, 128, 256):
        assert decode_square(raw, size).shape == (size, size, 3)


def test_load_square_is_decode_square_writable_with_named_errors() -> None:
    data = encode(Image.fromarray(asymmetric(178, 218)))
    square = load_square(data, 32)
    assert np.array_equal(square, decode_square(data, 32)) and square.flags.writeable
    with pytest.raises(PhotoError, match="notes.txt is not a readable image"):
        load_square(b"not an image", 32, "notes.txt")


# --- pixel conversions ---------------------------------------------------------------------------


def test_to_float_and_to_uint8_are_inverses() -> None:
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3)
    x = to_float(pixels)
    assert x.shape == (1, 3, 16, 16) and x.dtype == torch.float32
    assert x.min() == -1.0 and x.max() == 1.0
    assert torch.equal(to_uint8(x).permute(0, 2, 3, 1), torch.from_numpy(pixels))
    with pytest.raises(TypeError, match="float tensor"):
        to_uint8(torch.from_numpy(pixels))


def test_to_float_gives_the_true_division_of_every_byte_value() -> None:
    """The lookup table holds v / 127.5 - 1 as the CPU divides it (CUDA's division by a
    Python scalar is a multiply by the reciprocal, 1 ulp off for 111 of the 256 values)."""
    pixels = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16, 1).repeat(2, 1, 1, 3)
    divided = pixels.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)  # the former to_float
    x = to_float(pixels)
    assert torch.equal(x, divided) and x.stride() == divided.stride()  # channels last, as before
    assert torch.equal(to_float(pixels.numpy()), divided)
    reciprocal = pixels.permute(0, 3, 1, 2).float().mul_(1 / 127.5).sub_(1.0)
    assert not torch.equal(reciprocal, divided)  # what the table guards against


@pytest.mark.gpu
def test_to_float_on_a_gpu_equals_the_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    pixels = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16, 1).repeat(2, 1, 1, 3)
    assert torch.equal(to_float(pixels.cuda()).cpu(), to_float(pixels))


def test_to_uint8_image_inverts_to_float() -> None:
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3)
    back = to_uint8_image(to_float(pixels))
    assert back.shape == (1, 16, 16, 3) and back.dtype == np.uint8
    assert (back == pixels).all()
    values = torch.tensor([-2.0, -1.0, 1.0, 3.0]).view(1, 2, 2).repeat(3, 1, 1)
    single = to_uint8_image(values)
    assert single.shape == (2, 2, 3)
    assert single[..., 0].tolist() == [[0, 0], [255, 255]]  # clamped


# --- tiles and PNGs ------------------------------------------------------------------------------


def test_tile_lays_cells_out_with_white_gutters() -> None:
    cells = np.arange(2 * 3, dtype=np.uint8).reshape(2, 3, 1, 1, 1) * np.ones((4, 4, 3), np.uint8)
    grid = tile(cells, gutter=2)
    assert grid.shape == (2 * 4 + 2, 3 * 4 + 2 * 2, 3)
    for r in range(2):
        for c in range(3):
            assert (cell(grid, r, c, 4, 2) == cells[r, c]).all()
    assert (
        (grid[4:6] == 255).all() and (grid[:, 4:6] == 255).all() and (grid[:, 10:12] == 255).all()
    )
    assert tile(cells).shape == (2 * 4 + GUTTER, 3 * 4 + 2 * GUTTER, 3)


def test_save_png_is_lossless(tmp_path: Path) -> None:
    array = np.random.default_rng(0).integers(0, 256, (10, 14, 3), dtype=np.uint8)
    save_png(tmp_path / "sub" / "a.png", array)
    with Image.open(tmp_path / "sub" / "a.png") as picture:
        assert picture.format == "PNG"
        assert (np.asarray(picture) == array).all()
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.png"]  # no temporary left
    with pytest.raises(ValueError, match="uint8"):
        save_png(tmp_path / "b.png", array.astype(np.float32))


def test_encode_png_is_lossless_at_any_compression() -> None:
    array = np.random.default_rng(1).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    default = encode_png(array)
    assert default == encode(Image.fromarray(array, "RGB"))  # Pillow's defaults: what was written
    for data in (default, encode_png(array, compress_level=1)):
        with Image.open(io.BytesIO(data)) as picture:
            assert (np.asarray(picture) == array).all()
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        encode_png(array[..., :2])
