"""Pure functions for top-down crops and augmentation.

Coordinates are (x, y) pixels with pixel centres at integers, so a pixel
covers [i - 0.5, i + 0.5]. A crop is a ``center`` (2,) in those coordinates and
a ``size`` (2,) = (width, height) measured edge to edge. All geometry lives in
one float64 2x3 matrix that maps network-input pixels to original-image pixels;
the image is warped with it once and keypoints are mapped with its inverse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from keypointer.config import AugmentConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_MEAN255 = np.array(IMAGENET_MEAN, np.float32) * 255.0
_INV_STD255 = 1.0 / (np.array(IMAGENET_STD, np.float32) * 255.0)
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601 grey, as torchvision's rgb_to_grayscale


@dataclass(frozen=True)
class AugmentParams:
    """One draw of the geometric augmentation."""

    scale: float = 1.0
    rotation: float = 0.0  # degrees, counter-clockwise as seen on screen
    shift: tuple[float, float] = (0.0, 0.0)  # fraction of the crop size
    flip: bool = False


def bbox_crop(bbox: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(center, size) of a COCO (x, y, w, h) box, whose edges lie on pixel edges."""
    x, y, w, h = (float(v) for v in bbox)
    return np.array([x + w / 2 - 0.5, y + h / 2 - 0.5]), np.array([w, h])


def image_crop(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(center, size) of the whole image."""
    return np.array([(width - 1) / 2, (height - 1) / 2]), np.array([float(width), float(height)])


def fit_aspect(size: np.ndarray, input_size: tuple[int, int], margin: float = 1.0) -> np.ndarray:
    """Grow ``size`` (w, h) to the input's aspect ratio, then by ``margin``; never shrinks it."""
    w, h = float(size[0]), float(size[1])
    aspect = input_size[0] / input_size[1]
    if w > h * aspect:
        h = w / aspect
    else:
        w = h * aspect
    return np.array([w, h]) * margin


def crop_affine(
    center: np.ndarray,
    size: np.ndarray,
    input_size: tuple[int, int],
    rotation: float = 0.0,
    flip: bool = False,
) -> np.ndarray:
    """(2, 3) float64 matrix mapping input pixels to image pixels.

    Input pixel ((W-1)/2, (H-1)/2) lands on ``center``; the input's edges span
    ``size`` (which should have the input's aspect ratio), turned by ``rotation``
    degrees and mirrored left-right first when ``flip``.
    """
    w_in, h_in = input_size
    s = float(size[0]) / w_in
    t = math.radians(rotation)
    c, si = math.cos(t) * s, math.sin(t) * s
    # With y pointing down, a positive angle turns the image content clockwise in the crop.
    lin = np.array([[c, si], [-si, c]])
    if flip:
        lin = lin @ np.diag([-1.0, 1.0])
    c_in = np.array([(w_in - 1) / 2, (h_in - 1) / 2])
    return np.hstack([lin, (np.asarray(center, np.float64) - lin @ c_in)[:, None]])


def apply_affine(points: npt.ArrayLike, matrix: npt.ArrayLike) -> np.ndarray:
    """Map points (..., 2) through one (2, 3) matrix, or points (N, K, 2) through one matrix
    per row, matrices (N, 2, 3). Float64 numpy in and out (lists and CPU tensors welcome)."""
    pts = np.asarray(points, np.float64)
    m = np.asarray(matrix, np.float64)
    if m.ndim == 2:
        return pts @ m[:, :2].T + m[:, 2]
    return pts @ m[:, :, :2].transpose(0, 2, 1) + m[:, None, :, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(matrix, np.float64))


def warp_image(image: np.ndarray, matrix: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """Sample the input-sized crop: ``matrix`` maps input pixels to ``image`` pixels."""
    return cv2.warpAffine(
        image,
        matrix,
        tuple(input_size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def sample_params(rng: np.random.Generator, cfg: AugmentConfig) -> AugmentParams:
    """Draw scale, rotation, shift and flip. Always the same number of draws, for stable streams."""
    u = rng.random(5)
    lo, hi = cfg.scale
    return AugmentParams(
        scale=lo + (hi - lo) * float(u[0]),
        rotation=cfg.rotation * (2 * float(u[1]) - 1),
        shift=(cfg.shift * (2 * float(u[2]) - 1), cfg.shift * (2 * float(u[3]) - 1)),
        flip=bool(u[4] < cfg.flip),
    )


def half_body_points(
    points: np.ndarray, labelled: np.ndarray, rng: np.random.Generator
) -> np.ndarray | None:
    """The labelled points (M, 2) of the upper or lower half, split at their median y.

    Generic skeletons do not say which keypoints are "upper", so the split is
    geometric. None when fewer than 4 keypoints are labelled.
    """
    pts = points[labelled]
    if len(pts) < 4:
        return None
    median = np.median(pts[:, 1])
    halves = [pts[pts[:, 1] <= median], pts[pts[:, 1] > median]]
    first = int(rng.integers(2))
    for half in (halves[first], halves[1 - first]):
        if len(half) >= 2:
            return half
    return None


def color_jitter(
    image: np.ndarray,
    rng: np.random.Generator,
    brightness: float = 0.0,
    contrast: float = 0.0,
    saturation: float = 0.0,
    hue: float = 0.0,
) -> np.ndarray:
    """Jitter an (H, W, 3) uint8 RGB image as torchvision's ColorJitter does, in one pass.

    Factors are drawn from [1 - x, 1 + x] and hue turns by [-hue, hue]. Each
    step is affine in RGB (contrast about the mean grey, saturation as a blend
    with grey, hue as a rotation about the grey axis), so they compose into one
    3x4 matrix and one ``cv2.transform``: about 5x faster than an HSV round trip.
    """
    u = rng.random(4)
    if not (brightness or contrast or saturation or hue):
        return image
    b = 1.0 + brightness * (2 * u[0] - 1)
    c = 1.0 + contrast * (2 * u[1] - 1)
    s = 1.0 + saturation * (2 * u[2] - 1)
    grey_mean = b * float(_LUMA @ np.array(cv2.mean(image)[:3]))
    lin, off = np.eye(3) * (b * c), np.full(3, grey_mean * (1 - c))
    sat = s * np.eye(3) + (1 - s) * np.tile(_LUMA, (3, 1))
    rot = _hue_matrix(2 * math.pi * hue * (2 * u[3] - 1)) @ sat
    matrix = np.hstack([rot @ lin, (rot @ off)[:, None]]).astype(np.float32)
    return cv2.transform(image, matrix)


def _hue_matrix(angle: float) -> np.ndarray:
    """Hue rotation in RGB (the W3C filter-effects hueRotate matrix); greys stay put."""
    grey = np.tile([0.213, 0.715, 0.072], (3, 1))
    turn = np.array([[-0.213, -0.715, 0.928], [0.143, 0.140, -0.283], [-0.787, 0.715, 0.072]])
    return grey + math.cos(angle) * (np.eye(3) - grey) + math.sin(angle) * turn


def random_erase(
    image: np.ndarray,
    points: np.ndarray,
    visible: np.ndarray,
    rng: np.random.Generator,
    area: tuple[float, float] = (0.02, 0.2),
    tries: int = 10,
) -> np.ndarray:
    """Fill a random rectangle with noise, leaving at least one visible keypoint uncovered.

    ``points`` (K, 2) are input pixels; keypoints under the patch stay labelled,
    as an occluded keypoint's position is still known. Returns a new image.
    """
    h, w = image.shape[:2]
    pts = points[visible]
    for _ in range(tries):
        a = rng.uniform(*area) * w * h
        ratio = math.exp(rng.uniform(math.log(0.3), math.log(3.3)))
        ew, eh = int(round(math.sqrt(a * ratio))), int(round(math.sqrt(a / ratio)))
        if not (0 < ew < w and 0 < eh < h):
            continue
        x0, y0 = int(rng.integers(0, w - ew + 1)), int(rng.integers(0, h - eh + 1))
        inside = (
            (pts[:, 0] >= x0 - 0.5)
            & (pts[:, 0] < x0 + ew - 0.5)
            & (pts[:, 1] >= y0 - 0.5)
            & (pts[:, 1] < y0 + eh - 0.5)
        )
        if len(pts) and inside.all():
            continue
        out = image.copy()
        out[y0 : y0 + eh, x0 : x0 + ew] = rng.integers(0, 256, (eh, ew, 3), dtype=np.uint8)
        return out
    return image


def to_chw_normalized(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32, ImageNet mean/std normalised."""
    out = np.empty((3, *image.shape[:2]), np.float32)
    # Plane by plane: numpy broadcasting over a last axis of 3 is several times slower.
    for c, plane in enumerate(cv2.split(image)):
        out[c] = plane
        out[c] -= _MEAN255[c]
        out[c] *= _INV_STD255[c]
    return out
