"""Hostile and broken inputs, generated (Hypothesis): each gives a clear error that names the file,
key or value, or is handled as documented; never another exception, never a silent wrong result.

The number of generated cases per family is printed at the end of the run (`-s` shows it).
"""

from __future__ import annotations

import io
import math
from collections import Counter
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fader.config import ConfigError
from fader.data import formats
from fader.image import PhotoError, load_photo, load_square
from stages import _common
from tests.test_params import CONFIGS, PARAMS

CASES: Counter[str] = Counter()
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module", autouse=True)
def report() -> Any:
    yield
    print(
        "\ngenerated cases per family: " + ", ".join(f"{k} {v}" for k, v in sorted(CASES.items()))
    )


# --- CelebA's annotation files -------------------------------------------------------------------

NAMES = ["Male", "Smiling", "Young"]


def attribute_lines(rows: list[tuple[str, list[int]]]) -> list[str]:
    return [str(len(rows)), " ".join(NAMES)] + [
        f"{name} " + " ".join(f"{v:2d}" for v in values) for name, values in rows
    ]


valid_rows = st.lists(
    st.tuples(
        st.integers(1, 999_999).map(lambda i: f"{i:06d}.jpg"),
        st.lists(st.sampled_from([-1, 1]), min_size=3, max_size=3),
    ),
    min_size=1,
    max_size=8,
    unique_by=lambda row: row[0],
)

HARMLESS = ["crlf", "mixed_endings", "blank_lines_at_end", "bom", "extra_spaces"]
BREAKING = [
    "truncated_mid_row",
    "short_row",
    "long_row",
    "non_numeric",
    "zero",
    "duplicate_name",
    "wrong_count",
    "header_name_missing",
]


def mutate(lines: list[str], kind: str, draw: Any) -> bytes:
    rows = lines[2:]
    i = draw(st.integers(0, len(rows) - 1))
    if kind == "truncated_mid_row":
        text = "\n".join(lines[:2] + rows[: i + 1])
        return text[: len(text) - draw(st.integers(2, 5))].encode()  # cut inside the last row
    if kind == "short_row":
        rows[i] = rows[i].rsplit(" ", 1)[0]
    elif kind == "long_row":
        rows[i] += "  1"
    elif kind == "non_numeric":
        rows[i] = rows[i][:-2] + " x"
    elif kind == "zero":
        rows[i] = rows[i][:-2] + " 0"
    elif kind == "duplicate_name":
        rows.append(rows[i])
        lines[0] = str(len(rows))
    elif kind == "wrong_count":
        lines[0] = str(len(rows) + draw(st.sampled_from([-1, 1, 5])))
    elif kind == "header_name_missing":
        lines[1] = " ".join(NAMES[:-1])
    body = lines[:2] + rows
    if kind == "crlf":
        return ("\r\n".join(body) + "\r\n").encode()
    if kind == "mixed_endings":
        return "".join(line + ("\r\n" if j % 2 else "\n") for j, line in enumerate(body)).encode()
    if kind == "blank_lines_at_end":
        return ("\n".join(body) + "\n\n\n").encode()
    if kind == "bom":
        return b"\xef\xbb\xbf" + "\n".join(body).encode()
    if kind == "extra_spaces":
        return "\n".join(line.replace(" ", "   ") for line in body).encode()
    return ("\n".join(body) + "\n").encode()


@FUZZ
@given(rows=valid_rows, kind=st.sampled_from(HARMLESS + BREAKING), data=st.data())
def test_attribute_files(tmp_path_factory: pytest.TempPathFactory, rows, kind, data) -> None:
    CASES["attribute files"] += 1
    path = tmp_path_factory.mktemp("attr") / "list_attr_celeba.txt"
    path.write_bytes(mutate(attribute_lines(rows), kind, data.draw))
    try:
        table = formats.read_attributes(path)
    except formats.CelebAFormatError as error:
        assert str(error).startswith(str(path)), error
        assert kind in BREAKING, f"{kind} is documented as fine, but: {error}"
        return
    assert kind in HARMLESS, f"{kind} passed silently"
    assert list(table.columns) == NAMES and len(table) == len(rows)
    assert table.to_dict("index") == {n: dict(zip(NAMES, v)) for n, v in rows}


@FUZZ
@given(
    names=st.lists(st.integers(1, 99_999).map(lambda i: f"{i:06d}.jpg"), min_size=1, max_size=8),
    parts=st.data(),
    kind=st.sampled_from(["ok", "crlf", "three", "minus", "word", "missing", "duplicate"]),
)
def test_partition_files(tmp_path_factory: pytest.TempPathFactory, names, parts, kind) -> None:
    CASES["partition files"] += 1
    names = list(dict.fromkeys(names))
    values = [str(parts.draw(st.integers(0, 2))) for _ in names]
    i = parts.draw(st.integers(0, len(names) - 1))
    if kind in ("three", "minus", "word", "missing"):
        values[i] = {"three": "3", "minus": "-1", "word": "two", "missing": ""}[kind]
    lines = [f"{n} {v}".strip() for n, v in zip(names, values)]
    if kind == "duplicate":
        lines.append(lines[i])
    ending = "\r\n" if kind == "crlf" else "\n"
    path = tmp_path_factory.mktemp("part") / "list_eval_partition.txt"
    path.write_text(ending.join(lines) + ending)
    try:
        split = formats.read_partition(path)
    except formats.CelebAFormatError as error:
        assert str(error).startswith(str(path)) and kind not in ("ok", "crlf"), error
        return
    assert kind in ("ok", "crlf"), f"{kind} passed silently"
    assert split.to_dict() == {n: formats.SPLITS[int(v)] for n, v in zip(names, values)}


# --- images --------------------------------------------------------------------------------------


def encoded(draw: Any) -> tuple[bytes, str]:
    """An image file of some kind, or something that is not one, and what it is."""
    kinds = ["rgb", "gray", "rgba", "cmyk", "16bit", "palette", "tiny", "truncated", "empty"]
    kind = draw(st.sampled_from([*kinds, "noise", "png_as_jpg", "exif"]))
    w, h = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    pixels = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(0, 256, (h, w, 3))
    image = Image.fromarray(pixels.astype(np.uint8))
    buffer = io.BytesIO()
    if kind == "empty":
        return b"", kind
    if kind == "noise":
        return bytes(draw(st.binary(min_size=1, max_size=200))), kind
    if kind == "tiny":
        image = image.resize((1, 1))
    converted = {"gray": "L", "rgba": "RGBA", "cmyk": "CMYK", "palette": "P"}
    if kind in converted:
        image = image.convert(converted[kind])
    if kind == "16bit":
        image = Image.fromarray((pixels[..., 0] * 257).astype(np.uint16))
    if kind == "exif":
        exif = Image.Exif()
        exif[0x0112] = draw(st.integers(1, 8))
        image.save(buffer, format="JPEG", exif=exif)
    elif kind in ("cmyk", "rgb", "gray", "truncated"):
        image.save(buffer, format="JPEG")
    else:
        image.save(buffer, format="PNG")  # png_as_jpg: PNG bytes, whatever the name says
    data = buffer.getvalue()
    if kind == "truncated":
        data = data[: max(1, len(data) // draw(st.integers(2, 10)))]
    return data, kind


@FUZZ
@given(data=st.data())
def test_photos(data) -> None:
    CASES["images"] += 1
    blob, kind = encoded(data.draw)
    try:
        photo = load_photo(blob, "upload.jpg")
    except PhotoError as error:
        assert "upload.jpg" in str(error), error
        assert kind in ("truncated", "empty", "noise"), f"{kind}: {error}"
        return
    assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[2] == 3
    try:
        square = load_square(blob, 8, "upload.jpg")  # the --no-align path
    except ValueError as error:
        assert "upload.jpg" in str(error) and kind == "truncated", f"{kind}: {error}"
        return
    assert square.shape == (8, 8, 3) and square.dtype == np.uint8


def test_a_decompression_bomb_is_refused_before_decoding() -> None:
    CASES["images"] += 1
    buffer = io.BytesIO()
    Image.new("L", (9000, 8000)).save(buffer, format="PNG")  # 72 megapixels, 70 KB
    with pytest.raises(PhotoError, match="bomb.png is 9000x8000 = 72 megapixels"):
        load_photo(buffer.getvalue(), "bomb.png")


# --- params --------------------------------------------------------------------------------------

ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**9), 10**9),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(-3, 300), max_size=4),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


@FUZZ
@given(config=st.sampled_from(CONFIGS), data=st.data(), value=ANY_VALUE)
def test_params(tmp_path_factory: pytest.TempPathFactory, config, data, value) -> None:
    CASES["params"] += 1
    cls, section, supplied, shared = config
    key = data.draw(st.sampled_from(sorted(k for k in PARAMS[section] if k not in supplied)))
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_text(yaml.safe_dump({**PARAMS, section: {**PARAMS[section], key: value}}))
    try:
        built = _common.Params(path).build(cls, section, supplied, shared)
    except ConfigError as error:
        assert f"{section}: " in str(error), error
        return
    except ValueError as error:  # a key of another config in the same section
        assert str(path) in str(error), error
        return
    if hasattr(built, key):  # what was accepted is the value, and a sane one
        kept = getattr(built, key)
        assert kept == (tuple(value) if isinstance(value, list) else value) or (
            isinstance(kept, float) and isinstance(value, int) and kept == value
        ), (key, value, kept)
        assert not (isinstance(kept, float) and not math.isfinite(kept))


def test_every_family_ran() -> None:
    """Runs last in the module: each family generated cases."""
    # pytest runs a module's tests in order; the counts are printed by the fixture
    assert {"attribute files", "partition files", "images", "params"} <= set(CASES)
