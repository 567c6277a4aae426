"""What many tests share: configs built from params.yaml (`make`), small images and CelebA-format
folders that the tests make themselves, the repository's scripts as modules, the browser."""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fader.config import field_names
from fader.data import formats
from fader.data.config import PreprocessConfig, SourceConfig
from fader.eval.evaluate import EvaluateConfig
from fader.image import GUTTER, crop_box
from fader.model.networks import ClassifierConfig, ModelConfig
from fader.report.render import RenderConfig
from fader.train.config import ClassifierTrainConfig, TrainConfig
from stages import _common

T = TypeVar("T")

# Test tensors are tiny: one thread avoids OpenMP's barrier costs, which grow badly when the
# two cores are shared with another process.
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHARED_CELEBA = ROOT.parent / "shared" / "celeba-mini"


def load_script(relative: str) -> ModuleType:
    """A script of the repository that is not in a package (e.g. `.ci/gate.py`), as a module."""
    path = ROOT / relative
    name = path.stem
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while they are built
        spec.loader.exec_module(module)
    return sys.modules[name]


#: The params.yaml section each config class is built from in the pipeline.
CONFIG_SECTIONS: dict[type, str] = {
    SourceConfig: "data",
    PreprocessConfig: "data",
    ModelConfig: "model",
    ClassifierConfig: "train_classifier",
    ClassifierTrainConfig: "train_classifier",
    TrainConfig: "train_fader",
    EvaluateConfig: "evaluate",
    RenderConfig: "render",
}

#: Where tests need other values than params.yaml's, in its sections (merged the way the smoke
#: configs are, so a key params.yaml lacks is an error). Everything else comes from params.yaml,
#: so a new parameter needs no edit here.
TEST_OVERRIDES: dict[str, dict[str, Any]] = {
    # the same layout and batches whatever the machine ("auto" looks for CUDA and the image
    # size); the tests that check "auto" ask for it
    "train_fader": {"memory_format": "contiguous", "data_on_device": False},
}

#: params.yaml with `TEST_OVERRIDES`: what `make` fills unlisted fields from.
TEST_PARAMS: dict[str, Any] = _common.Params(
    ROOT / "params.yaml", TEST_OVERRIDES, "TEST_OVERRIDES"
).values


def params_defaults(cls: type) -> dict[str, Any]:
    """The values of `cls`'s fields in `TEST_PARAMS` (YAML lists as the configs' tuples)."""
    # the data section's configs also take the top-level seed
    values = {"seed": TEST_PARAMS["seed"], **TEST_PARAMS[CONFIG_SECTIONS[cls]]}
    return {
        name: tuple(values[name]) if isinstance(values[name], list) else values[name]
        for name in field_names(cls)
        if name in values
    }


def make(cls: type[T], **values: Any) -> T:
    """A config of class `cls`: `values`, the rest from params.yaml (with `TEST_OVERRIDES`).

    Fields that are not params (a model's `img_size` and `n_attr`) must be given.
    """
    return cls(**{**params_defaults(cls), **values})


# --- images -------------------------------------------------------------------------------------


def encode(picture: Image.Image, format: str = "PNG", **options: Any) -> bytes:
    """`picture` as the bytes of an image file."""
    buffer = io.BytesIO()
    picture.save(buffer, format=format, **options)
    return buffer.getvalue()


def asymmetric(width: int = 30, height: int = 20) -> np.ndarray:
    """An image whose every pixel differs: any transposition shows."""
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def cell(grid: np.ndarray, row: int, col: int, size: int, gutter: int = GUTTER) -> np.ndarray:
    """The (size, size, 3) cell at (row, col) of a grid made by `tile` (inverse of `tile`)."""
    y, x = row * (size + gutter), col * (size + gutter)
    return grid[y : y + size, x : x + size]


def make_raw_celeba(
    root: Path, n: int = 12, size: tuple[int, int] = (178, 218), seed: int = 0
) -> Path:
    """A tiny CelebA-format folder: banded JPEGs (red top, green middle, blue bottom margin).

    The bands sit exactly where the official crop cuts (rows 20..198 at 178x218), so a prepared
    image that is pure green proves the crop. Splits: the first 60% train, then valid, test.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    _, top, _, bottom = crop_box(width, height)
    (root / formats.IMAGE_DIR).mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    for name in names:
        pixels = np.zeros((height, width, 3), np.uint8)
        pixels[:top] = (255, 0, 0)
        pixels[top:bottom] = (0, 255, 0)
        pixels[bottom:] = (0, 0, 255)
        Image.fromarray(pixels).save(root / formats.IMAGE_DIR / name, quality=95)
    values = rng.choice(np.array([-1, 1], np.int8), size=(n, len(formats.CELEBA_ATTRIBUTES)))
    formats.write_attributes(
        root / formats.ATTR_FILE,
        pd.DataFrame(values, index=names, columns=list(formats.CELEBA_ATTRIBUTES)),
    )
    split = np.array(["train"] * int(0.6 * n) + ["valid"] * int(0.2 * n))
    split = np.concatenate([split, ["test"] * (n - len(split))])
    formats.write_partition(root / formats.PARTITION_FILE, pd.Series(split, index=names))
    return root


@pytest.fixture
def raw_celeba(tmp_path: Path) -> Path:
    return make_raw_celeba(tmp_path / "raw")


@pytest.fixture
def shared_celeba() -> Path:
    if not SHARED_CELEBA.is_dir():
        pytest.skip(f"{SHARED_CELEBA} is absent")
    return SHARED_CELEBA


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The number of generated cases per family of tests/test_fuzz.py, when it ran."""
    fuzz = sys.modules.get("tests.test_fuzz")
    if fuzz is not None and fuzz.CASES:
        counts = ", ".join(f"{family} {n}" for family, n in sorted(fuzz.CASES.items()))
        terminalreporter.write_line(f"fuzz: generated cases per family: {counts}")


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Headless Debian chromium driven by Playwright (its own browser download is unreachable)."""
    if CHROMIUM is None:
        if os.environ.get("FADER_REQUIRE_BROWSER"):  # set by .ci/run, which installs chromium
            pytest.fail("FADER_REQUIRE_BROWSER is set but no chromium is installed")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()
