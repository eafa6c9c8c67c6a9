"""Finding the instances of whole images with a locator, for the pose model to crop.

``find_boxes(locator, images)`` letterboxes each RGB image into the locator's input, runs the
PyTorch :class:`~keypointer.models.locator.LocatorModel` or an exported
:class:`~keypointer.export.locator_onnx.OnnxLocator` (the same pre- and post-processing, so
both give the same boxes), keeps the boxes scoring at least ``threshold`` (at most
``max_instances``, best first) and maps them back to each image's own pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from keypointer.config import LOCATOR_SCORE_THRESHOLD
from keypointer.data import transforms as T
from keypointer.data.whole_images import clip_boxes, letterbox, map_boxes
from keypointer.export.locator_onnx import OnnxLocator
from keypointer.metrics.tracking import pose_distances
from keypointer.models.locator import LocatorModel

POSE_NMS_OKS = 0.8
"""Two located instances whose poses overlap more than this (OKS) are one animal found twice
(the locator's second peak on a figure gives a shifted box and the same pose): the lower
scoring one goes. MMPose's top-down OKS NMS uses 0.9; 0.8 leaves room for two real animals
overlapping in the same pose. Measured: benchmarks/RESULTS.md, "Several instances"."""


Locator = LocatorModel | OnnxLocator


def find_boxes(
    locator: Locator,
    images: Sequence[np.ndarray],
    threshold: float = LOCATOR_SCORE_THRESHOLD,
    max_instances: int | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The boxes of the instances a locator finds in whole images.

    Args:
        locator: a PyTorch or an exported locator.
        images: RGB (H, W, 3) uint8 images, of any sizes.
        threshold: the centre score a box needs.
        max_instances: keep at most this many boxes per image, the best; None: all.

    Returns:
        Per image, (boxes (M, 4) COCO x, y, w, h in its own pixels, scores (M,)), best first.
    """
    if not len(images):
        return []
    size = tuple(locator.input_size)
    mats = [letterbox(im.shape[1], im.shape[0], size) for im in images]
    crops = np.stack([T.warp_image(im, m, size) for im, m in zip(images, mats, strict=True)])
    boxes, scores = _run(locator, crops)
    out = []
    for b, s, m, im in zip(boxes, scores, mats, images, strict=True):
        keep = s >= threshold
        b, s = b[keep], s[keep]
        order = np.argsort(-s, kind="stable")[:max_instances]
        b, s = map_boxes(b[order], m), s[order]
        clipped = clip_boxes(b, (im.shape[1], im.shape[0]), min_side=1.0)
        if len(clipped) != len(b):  # a box wholly outside the image: drop it and its score
            inside = _inside(b, (im.shape[1], im.shape[0]))
            b, s = b[inside], s[inside]
            clipped = clip_boxes(b, (im.shape[1], im.shape[0]), min_side=1.0)
        out.append((clipped, s.astype(np.float64)))
    return out


def _inside(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    lo = np.clip(boxes[:, :2], 0, size)
    hi = np.clip(boxes[:, :2] + boxes[:, 2:], 0, size)
    return ((hi - lo) >= 1.0).all(1)


def _run(locator: Locator, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 crops (N, H, W, 3) -> boxes (N, k, 4) input px, scores (N, k), numpy."""
    if isinstance(locator, OnnxLocator):
        return locator.run(crops.transpose(0, 3, 1, 2).astype(np.float32))
    device = next(locator.parameters()).device
    x = torch.from_numpy(np.stack([T.to_chw_normalized(c) for c in crops])).to(device)
    boxes, scores = locator.predict(x)
    return boxes.float().cpu().numpy(), scores.float().cpu().numpy()


def keep_located(
    keypoints: np.ndarray,
    scores: np.ndarray,
    sigmas: Sequence[float],
    min_score: float = 0.0,
) -> np.ndarray:
    """The located instances to keep, judged by their poses.

    Args:
        keypoints: (M, K, 2) poses, image px.
        scores: (M, K) keypoint scores.
        sigmas: the skeleton's OKS sigmas (K,).
        min_score: the mean keypoint score an instance needs (the locator's
            ``min_pose_score``: a background peak or a sliver of an animal gets a pose the
            model is unsure of).

    Returns:
        Sorted indices (int): those sure enough, then :func:`pose_nms` on their mean score.
    """
    inst = np.asarray(scores, np.float64).mean(-1)
    sure = np.flatnonzero(inst >= min_score)
    return sure[pose_nms(keypoints[sure], inst[sure], sigmas)]


def pose_nms(
    keypoints: np.ndarray,
    instance_scores: np.ndarray,
    sigmas: Sequence[float],
    max_oks: float = POSE_NMS_OKS,
) -> np.ndarray:
    """Non-maximum suppression of poses found twice.

    Args:
        keypoints: (M, K, 2) poses, image px.
        instance_scores: (M,) one score per instance.
        sigmas: the skeleton's OKS sigmas (K,).
        max_oks: the OKS above which two poses are one instance.

    Returns:
        Sorted indices (int) kept: greedily by score, dropping any whose OKS with a kept one
        exceeds ``max_oks``.
    """
    keep: list[int] = []
    for i in np.argsort(-np.asarray(instance_scores), kind="stable"):
        if keep:
            oks = 1.0 - pose_distances(keypoints[keep], keypoints[i : i + 1], sigmas=sigmas)
            if oks.max() > max_oks:
                continue
        keep.append(int(i))
    return np.array(sorted(keep), dtype=int)


def new_poses(
    kept: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    sigmas: Sequence[float],
    min_score: float = 0.0,
    most: int | None = None,
    max_oks: float = POSE_NMS_OKS,
) -> np.ndarray:
    """The poses found by looking again that are new animals, not ones already kept.

    Args:
        kept: (M, K, 2) the frame's kept poses, image px.
        keypoints: (C, K, 2) candidate poses, image px.
        scores: (C, K) their keypoint scores.
        sigmas: the skeleton's OKS sigmas (K,).
        min_score: the mean keypoint score a candidate needs (as :func:`keep_located`).
        most: add at most this many; None: no limit.
        max_oks: the OKS above which a candidate is a kept pose (or a better candidate)
            found again.

    Returns:
        Indices (int) of the candidates to add, best mean score first.
    """
    if not len(keypoints):  # every candidate's first pose was dropped before the second pass
        return np.zeros(0, dtype=int)
    inst = np.asarray(scores, np.float64).reshape(len(keypoints), -1).mean(-1)
    taken = list(np.asarray(kept, np.float64).reshape(-1, *np.shape(keypoints)[1:]))
    add: list[int] = []
    for i in np.argsort(-inst, kind="stable"):
        if (most is not None and len(add) >= most) or inst[i] < min_score:
            break
        if taken:
            oks = 1.0 - pose_distances(np.stack(taken), keypoints[i : i + 1], sigmas=sigmas)
            if oks.max() > max_oks:
                continue
        add.append(int(i))
        taken.append(keypoints[i])
    return np.array(add, dtype=int)
