"""Measure the alignment template: where the face detector puts the five landmarks on real,
aligned CelebA images (`fader.data.align.TEMPLATE` holds the result).

    python experiments/align_template.py ../shared/celeba-mini [--out metrics/align_template.json]

Every image of `<celeba_dir>/img_align_celeba*/` (CelebA's aligned crops, at any size with their
aspect ratio: celeba-mini's are 89x109) is scaled to 178x218 (Lanczos), and the largest face's
landmarks are kept. The template is their mean per landmark. The file also says how far the
alignment lands from it on the same images: each image's landmarks mapped through its own
least-squares similarity onto the template, their mean, 95th-percentile and largest distance to
it, in pixels at 178x218.

Then `--unaligned N` of the images are un-aligned (rotated ±25°, scaled 0.6-1.5, shifted on a
canvas 2.2 times as large, seeded) and aligned again with `fader.data.align.align`. With the
un-aligning warp known, the file says how far that lands from (a) aligning the original image:
the original's landmarks and the frame's corners, and (b) CelebA's own framing of the image: the
corners.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import typer
from PIL import Image

from fader import io
from fader.data import align, formats


def main(
    celeba_dir: Path = typer.Argument(..., exists=True, file_okay=False),
    out: Path = typer.Option(Path("metrics/align_template.json"), help="JSON to write."),
    unaligned: int = typer.Option(60, min=1, help="Images to un-align and align again."),
) -> None:
    """Detect the landmarks on every aligned image and write their mean and spread."""
    folders = sorted(p for p in celeba_dir.glob(f"{formats.IMAGE_DIR}*") if p.is_dir())
    paths = sorted(path for folder in folders for path in folder.glob("*.jpg"))
    if not paths:
        raise typer.BadParameter(f"no JPEGs in {celeba_dir}/{formats.IMAGE_DIR}*/")
    start = time.perf_counter()
    found = []
    for path in paths:
        faces = align.detect_faces(_aligned_image(path))
        if faces:
            found.append(faces[0].landmarks)
    landmarks = np.stack(found)  # (N, 5, 2)
    template = landmarks.mean(axis=0)
    errors = []
    for points in landmarks:
        matrix = align.similarity(points, template)
        mapped = points @ matrix[:, :2].T + matrix[:, 2]
        errors.append(np.linalg.norm(mapped - template, axis=1).mean())
    seconds = time.perf_counter() - start
    result = {
        "images": len(paths),
        "faces_found": len(found),
        "size": list(align.ALIGNED_SIZE),
        "template": {name: template[i].round(2).tolist() for i, name in enumerate(align.LANDMARKS)},
        "spread_px": {
            name: landmarks[:, i].std(axis=0).round(2).tolist()
            for i, name in enumerate(align.LANDMARKS)
        },
        "alignment_error_px": {
            "mean": round(float(np.mean(errors)), 3),
            "p95": round(float(np.percentile(errors, 95)), 3),
            "max": round(float(np.max(errors)), 3),
        },
        "ms_per_image": round(1000 * seconds / len(paths), 1),
        "unaligned": _unaligned_errors(paths[:unaligned]),
    }
    io.write_json(out, result)
    typer.echo(json.dumps(result, indent=2))


def _aligned_image(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize(align.ALIGNED_SIZE, Image.Resampling.LANCZOS))


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:2, :2].T + matrix[:2, 2]


def _unaligned_errors(paths: list[Path], seed: int = 0) -> dict:
    """How far aligning an un-aligned copy lands (module docstring), in px at 178x218."""
    width, height = align.ALIGNED_SIZE
    corners = np.array([[0, 0], [width, 0], [0, height], [width, height]], np.float64)
    rng = np.random.default_rng(seed)
    landmarks, corners_vs_original, corners_vs_celeba, seconds = [], [], [], []
    for path in paths:
        face = _aligned_image(path)
        original = align.align(face)
        canvas = (int(width * 2.2), int(height * 2.2))
        angle, scale = rng.uniform(-25, 25), rng.uniform(0.6, 1.5)
        unalign = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
        unalign[:, 2] += np.array(canvas) / 2 - (width / 2, height / 2) + rng.uniform(-40, 40, 2)
        background = tuple(int(v) for v in rng.integers(0, 256, 3))
        photo = cv2.warpAffine(face, unalign, canvas, flags=cv2.INTER_CUBIC, borderValue=background)
        start = time.perf_counter()
        matrix = align.align(photo).matrix
        seconds.append(time.perf_counter() - start)
        recovered = np.vstack([matrix, [0, 0, 1]]) @ np.vstack([unalign, [0, 0, 1]])
        points = original.face.landmarks
        landmarks.append(_distance(_apply(recovered, points), _apply(original.matrix, points)))
        corners_vs_original.append(
            _distance(_apply(recovered, corners), _apply(original.matrix, corners))
        )
        corners_vs_celeba.append(_distance(_apply(recovered, corners), corners))
    return {
        "images": len(paths),
        "landmarks_vs_aligning_the_original": _summary(landmarks),
        "corners_vs_aligning_the_original": _summary(corners_vs_original),
        "corners_vs_celeba_framing": _summary(corners_vs_celeba),
        "ms_per_photo": round(1000 * float(np.mean(seconds)), 1),
    }


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance between corresponding points."""
    return float(np.linalg.norm(a - b, axis=1).mean())


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "mean": round(float(np.mean(values)), 3),
        "p95": round(float(np.percentile(values, 95)), 3),
        "max": round(float(np.max(values)), 3),
    }


if __name__ == "__main__":
    typer.run(main)
