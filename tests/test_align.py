"""fader.data.align: similarity fits, and (on real CelebA
faces, `-m celeba`) alignment that recovers CelebA's own framing of un-aligned faces."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from typer import Typer
from typer.testing import CliRunner

import stages.align
import stages.edit
from fader.data import align
from fader.image import PhotoError, load_photo
from fader.model import checkpoint
from fader.model.networks import AutoEncoder, ModelConfig
from tests.conftest import ROOT, asymmetric, encode, make

W, H = align.ALIGNED_SIZE
CORNERS = np.array([[0, 0], [W, 0], [0, H], [W, H]], np.float64)


def transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """outer ∘ inner, both (2, 3)."""
    return (np.vstack([outer, [0, 0, 1]]) @ np.vstack([inner, [0, 0, 1]]))[:2]


# --- the template and the similarity fit ---------------------------------------------------------


def test_the_template_is_the_measured_one() -> None:
    measured = json.loads((ROOT / "metrics" / "align_template.json").read_text())
    assert measured["faces_found"] > 0.99 * measured["images"]
    assert np.array_equal(align.TEMPLATE, [measured["template"][name] for name in align.LANDMARKS])


def test_similarity_recovers_a_known_transform_and_fits_noise_by_least_squares() -> None:
    known = cv2.getRotationMatrix2D((40.0, 60.0), 17.0, 1.3)
    known[:, 2] += (12.0, -7.0)
    target = transform(known, align.TEMPLATE)
    np.testing.assert_allclose(align.similarity(align.TEMPLATE, target), known, atol=1e-4)
    noisy = target + np.random.default_rng(1).normal(0, 2.0, target.shape)
    fitted = align.similarity(align.TEMPLATE, noisy)
    residual = np.square(transform(fitted, align.TEMPLATE) - noisy).sum()
    # no other similarity does better: nudging any parameter raises the squared residual
    for delta in (
        cv2.getRotationMatrix2D((0, 0), 0.5, 1.0),
        cv2.getRotationMatrix2D((0, 0), 0.0, 1.01),
    ):
        nudged = compose(delta, fitted)
        assert np.square(transform(nudged, align.TEMPLATE) - noisy).sum() > residual


def test_a_photo_without_a_face_says_so() -> None:
    with pytest.raises(PhotoError, match="no face found in blank.png.*--no-align"):
        align.align(np.full((240, 200, 3), 128, np.uint8), source="blank.png")


def test_paste_back_changes_only_the_face() -> None:
    photo = asymmetric(300, 400)
    matrix = cv2.getRotationMatrix2D((150.0, 200.0), 10.0, 1.1)
    matrix[:, 2] -= (61.0, 91.0)  # photo → aligned frame, face in the middle of the photo
    alignment = align.Alignment(
        align.warp(photo, matrix), matrix, align.Face((0, 0, 1, 1), align.TEMPLATE, 1.0)
    )
    assert np.array_equal(
        align.paste_back(photo, alignment, np.zeros((32, 32, 3), np.float32)), photo
    )
    brighter = align.paste_back(photo, alignment, np.full((32, 32, 3), 40.0, np.float32))
    assert brighter.shape == photo.shape
    centre = transform(cv2.invertAffineTransform(matrix), np.array([[W / 2, 20 + W / 2]]))[0]
    x, y = np.round(centre).astype(int)
    changed = brighter.astype(int) - photo.astype(int)
    assert (changed[y, x] == np.minimum(40, 255 - photo[y, x].astype(int))).all()
    assert (changed[:20] == 0).all() and (changed[-20:] == 0).all()  # far from the face


# --- real faces (../shared/celeba-mini) ----------------------------------------------------------


def celeba_faces(shared_celeba: Path, count: int) -> list[np.ndarray]:
    """Real aligned CelebA faces at 178x218 (celeba-mini's are half size)."""
    paths = sorted((shared_celeba / "img_align_celeba_89x109").glob("*.jpg"))[:count]
    faces = []
    for path in paths:
        with Image.open(path) as image:
            faces.append(np.asarray(image.convert("RGB").resize((W, H), Image.Resampling.LANCZOS)))
    return faces


def unalign(face: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The face rotated (±25°), scaled (0.6-1.5), shifted on a larger canvas; and that warp."""
    canvas = (int(W * 2.2), int(H * 2.2))
    matrix = cv2.getRotationMatrix2D((W / 2, H / 2), rng.uniform(-25, 25), rng.uniform(0.6, 1.5))
    matrix[:, 2] += np.array(canvas) / 2 - (W / 2, H / 2) + rng.uniform(-40, 40, 2)
    background = tuple(int(v) for v in rng.integers(0, 256, 3))
    warped = cv2.warpAffine(face, matrix, canvas, flags=cv2.INTER_CUBIC, borderValue=background)
    return warped, matrix


@pytest.mark.celeba
def test_alignment_recovers_celeba_framing_of_unaligned_faces(shared_celeba: Path) -> None:
    """Thresholds from the measured spread on 60 faces (align_template.json, docs/editing.md):
    the original's landmarks land 0.80 px on average (largest 3.2 px) from where aligning the
    original puts them, and the frame's corners 7.6 px on average from CelebA's own framing."""
    rng = np.random.default_rng(0)
    landmark_errors, corner_errors = [], []
    for face in celeba_faces(shared_celeba, 30):
        original = align.align(face)
        photo, unaligning = unalign(face, rng)
        recovered = compose(align.align(photo).matrix, unaligning)  # aligned → aligned again
        landmarks = original.face.landmarks
        moved = transform(recovered, landmarks) - transform(original.matrix, landmarks)
        landmark_errors.append(np.linalg.norm(moved, axis=1).mean())
        corner_errors.append(np.linalg.norm(transform(recovered, CORNERS) - CORNERS, axis=1).mean())
    assert np.mean(landmark_errors) < 1.5 and np.max(landmark_errors) < 6.0, landmark_errors
    assert np.mean(corner_errors) < 12.0, corner_errors


@pytest.mark.celeba
def test_a_sideways_phone_photo_aligns_like_the_upright_one(shared_celeba: Path) -> None:
    face = celeba_faces(shared_celeba, 1)[0]
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    stored = Image.fromarray(face).transpose(Image.Transpose.ROTATE_90)
    sideways = align.align(load_photo(encode(stored, "PNG", exif=exif)))  # lossless
    upright = align.align(face)
    error = np.linalg.norm(
        transform(sideways.matrix, CORNERS) - transform(upright.matrix, CORNERS), axis=1
    )
    assert error.max() < 1e-6, error  # the same pixels, the same alignment


@pytest.mark.celeba
def test_several_faces_the_largest_by_default(
    shared_celeba: Path, caplog: pytest.LogCaptureFixture
) -> None:
    big, small = celeba_faces(shared_celeba, 2)
    canvas = np.full((2 * H, 3 * W, 3), 90, np.uint8)
    canvas[: 2 * H, : 2 * W] = cv2.resize(big, (2 * W, 2 * H))
    canvas[H // 2 : H // 2 + H, 2 * W :] = small
    with caplog.at_level(logging.INFO, logger="fader.data.align"):
        largest = align.align(canvas, source="group.png")
    assert "group.png shows 2 faces; using face 0" in caplog.text
    assert largest.face.box[0] < 2 * W <= align.align(canvas, face=1).face.box[0]
    with pytest.raises(PhotoError, match=r"shows 2 face\(s\): --face must be in 0..1"):
        align.align(canvas, face=2)


@pytest.mark.celeba
def test_align_and_paste_back_commands(shared_celeba: Path, tmp_path: Path) -> None:
    photo, _ = unalign(celeba_faces(shared_celeba, 1)[0], np.random.default_rng(3))
    Image.fromarray(photo).save(tmp_path / "photo.jpg", quality=95)
    app = Typer()
    app.command("align")(stages.align.main)
    app.command("edit")(stages.edit.main)
    run = CliRunner().invoke
    result = run(app, ["align", str(tmp_path / "photo.jpg"), "-o", str(tmp_path / "aligned.png")])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "aligned.png") as aligned:
        assert aligned.size == (W, H)
    torch.manual_seed(0)
    cfg = make(ModelConfig, img_size=32, n_layers=4, n_attr=1, init_fm=4, max_fm=16)
    model = AutoEncoder(cfg).eval()
    checkpoint.save(tmp_path / "fader.pt", checkpoint.network_payload("fader", model, ["Smiling"]))
    args = ["edit", str(tmp_path / "photo.jpg"), "--model", str(tmp_path / "fader.pt")]
    args += [
        "--no-classifier",
        "--set",
        "Smiling=1",
        "--paste-back",
        "-o",
        str(tmp_path / "out.png"),
    ]
    result = run(app, args)
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "out.png") as out, Image.open(tmp_path / "photo.jpg") as original:
        edited, before = np.asarray(out).astype(int), np.asarray(original).astype(int)
    assert edited.shape == before.shape  # the whole photo, at its own resolution
    assert (edited[:10] == before[:10]).all()  # far from the face: untouched
    assert np.abs(edited - before).max() > 0  # the face changed
    Image.fromarray(photo).save(tmp_path / "photo.png")
    same = run(app, ["edit", str(tmp_path / "photo.png"), "-o", str(tmp_path / "photo.png")])
    assert same.exit_code == 2 and "write elsewhere (or --force)" in same.output
