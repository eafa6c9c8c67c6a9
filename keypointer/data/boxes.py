"""The boxes around an instance: one name for each kind of box, and one convention for each.

Two conventions, both (x, y, w, h) in image pixels:

- a **span** runs between pixel centres: keypoints have pixel centres at integers, and the span
  of points goes from the lowest to the highest, ``w = max - min`` (one point: ``w = 0``);
- a **COCO box** has its edges on pixel edges: pixel ``i`` (centre ``i``) covers
  ``[i, i + 1]`` in box coordinates, so the box of the pixels that points lie in is
  ``x = min``, ``w = max - min + 1`` (one point: its 1x1 pixel).

The boxes of an :class:`~keypointer.data.types.Instance`:

- :func:`labelled_box`: the box the labels give it, when it has an area (COCO);
- :func:`instance_box`: that box, else the pixels of its labelled keypoints (COCO): what the
  locator learns to find;
- :func:`crop_box`: the box the pose model's crop is cut around (COCO), None for the whole
  image; the crop is that box grown to the input's aspect ratio and by ``BOX_MARGIN``
  (:func:`keypointer.inference.crops.crop_matrix`, the training dataset);
- :func:`scale_box`: the labelled box, else the span of the labelled keypoints: the size that
  PCK, OKS and the mean-pose guard measure an instance by
  (:func:`keypointer.metrics.bboxes_from_keypoints` is the span of (N, K, 2) arrays).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Protocol

import numpy as np

Box = tuple[float, float, float, float]
"""(x, y, w, h) in image pixels."""


class InstanceLike(Protocol):
    """What the boxes of an instance are made from (a :class:`keypointer.data.types.Instance`):
    ``keypoints`` (K, 3) x, y, visibility (> 0: labelled) and the labelled ``bbox`` or None."""

    keypoints: np.ndarray
    bbox: Box | None


def labelled_points(inst: InstanceLike) -> np.ndarray:
    """(M, 2) float64 points of ``inst``'s keypoints that are labelled and finite."""
    pts = np.asarray(inst.keypoints, np.float64)
    return pts[(pts[:, 2] > 0) & np.isfinite(pts[:, :2]).all(1), :2]


def keypoint_span(points: np.ndarray) -> Box | None:
    """Span (x, y, w, h), pixel centres at integers, of points (M, 2); None for no point."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return None
    lo, hi = pts.min(0), pts.max(0)
    return float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])


def keypoint_boxes(points: np.ndarray) -> np.ndarray:
    """(M, K, 2) points (NaN: none) -> (M, 4) COCO boxes of the pixels they lie in (NaN rows
    for rows without a finite point)."""
    pts = np.asarray(points, np.float64)
    if len(pts) == 0:
        return np.zeros((0, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN, as said
        lo, hi = np.nanmin(pts, 1), np.nanmax(pts, 1)
    return np.concatenate([lo, hi - lo + 1.0], 1)


def keypoint_box(points: np.ndarray) -> Box | None:
    """COCO box of the pixels that points (M, 2) lie in; None for no point."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return None
    x, y, w, h = keypoint_boxes(pts[None])[0]
    return float(x), float(y), float(w), float(h)


def grow_boxes(boxes: np.ndarray, ratio: tuple[float, float]) -> np.ndarray:
    """(M, 4) boxes grown by ``ratio`` (w, h) about their centres -> (M, 4)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    size = b[:, 2:] * np.asarray(ratio, np.float64)
    centre = b[:, :2] + b[:, 2:] / 2
    return np.concatenate([centre - size / 2, size], 1)


def labelled_box(inst: InstanceLike) -> Box | None:
    """The COCO box the labels give ``inst``, when it has one with an area; else None."""
    box = inst.bbox
    if box is None or not (box[2] > 0 and box[3] > 0):
        return None
    x, y, w, h = box
    return float(x), float(y), float(w), float(h)


def instance_box(inst: InstanceLike) -> Box | None:
    """COCO box of ``inst``: :func:`labelled_box`, else the pixels of its labelled keypoints
    (:func:`keypoint_box`; one keypoint: its pixel); None when it has neither."""
    return labelled_box(inst) or keypoint_box(labelled_points(inst))


def crop_box(inst: InstanceLike, whole_image: bool) -> Box | None:
    """COCO box the pose crop of ``inst`` is cut around (before the margin and the input's
    aspect ratio); None: the whole image. :func:`labelled_box`, else, unless the set is
    ``whole_image`` (:attr:`~keypointer.data.types.KeypointSet.whole_image`),
    :func:`keypoint_crop_box` of its labelled keypoints."""
    box = labelled_box(inst)
    if box is not None or whole_image:
        return box
    return keypoint_crop_box(labelled_points(inst))


def keypoint_crop_box(points: np.ndarray) -> Box | None:
    """:func:`keypoint_box` of finite points (M, 2) when they span at least a pixel; None for
    one point (or none): it has no extent to crop by."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(1)]
    if len(pts) == 0 or np.all(pts.max(0) - pts.min(0) < 1.0):
        return None
    return keypoint_box(pts)


def scale_box(inst: InstanceLike) -> Box | None:
    """The size ``inst`` is measured by: :func:`labelled_box`, else the span of its labelled
    keypoints (:func:`keypoint_span`); None when it has neither."""
    return labelled_box(inst) or keypoint_span(labelled_points(inst))


def scale_boxes(instances: Iterable[InstanceLike]) -> np.ndarray:
    """(N, 4) float64 :func:`scale_box` of each of N instances; NaN rows for none."""
    boxes = [scale_box(inst) for inst in instances]
    return np.array([b if b is not None else (np.nan,) * 4 for b in boxes], np.float64).reshape(
        -1, 4
    )
