"""OKS-based AP and AR through pycocotools' COCOeval.

The arrays are turned into in-memory COCO ground truth and results and scored
by ``COCOeval(iouType="keypoints")`` with the skeleton's sigmas, so the numbers
are exactly those of the COCO keypoint benchmark code.

Conventions:

- One prediction per ground-truth instance (top-down evaluation on given boxes).
  Instances with no labelled keypoint are kept in the ground truth (COCOeval
  ignores them, as it does ``num_keypoints == 0`` in COCO files) but get no
  prediction: it could only ever count as a false positive.
- The OKS scale ``s^2`` is the instance area: ``areas`` when given (COCO's
  segmentation area), else the box area ``w * h`` (larger than COCO's
  segmentation areas, so OKS is a little more lenient than on COCO itself).
- ``image_ids`` groups instances that share an image (COCOeval matches
  predictions to ground truth per image, at most 20 per image). Without it each
  instance is its own image.
- Instance scores rank the predictions: ``scores`` of shape (N,) as given, or
  the mean keypoint score when ``scores`` is (N, K); all 1.0 when None.
- Statistics that COCOeval reports as -1 (no ground truth in that area range)
  are returned as NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from keypointer.metrics.arrays import to_numpy
from keypointer.metrics.coco_eval import (
    OKS_STAT_NAMES,
    CocoDataset,
    CocoResult,
    OksStats,
    boxes_and_areas,
    coco_annotations,
    coco_dataset,
    coco_result,
    run_cocoeval,
)


def oks_ap(
    pred: npt.ArrayLike,
    scores: npt.ArrayLike | None,
    gt: npt.ArrayLike,
    visible: npt.ArrayLike,
    sigmas: Sequence[float],
    bboxes: npt.ArrayLike | None = None,
    areas: npt.ArrayLike | None = None,
    image_ids: npt.ArrayLike | None = None,
) -> OksStats:
    """COCO keypoint AP/AR of predictions against ground truth.

    Args:
        pred: (N, K, 2) predicted keypoints, image pixels.
        scores: (N, K) keypoint scores, (N,) instance scores, or None.
        gt: (N, K, 2) ground-truth keypoints.
        visible: (N, K) labelled keypoints: bool, or COCO visibility (v > 0 is labelled).
        sigmas: (K,) OKS sigmas, e.g. ``skeleton.oks_sigmas``.
        bboxes: (N, 4) ground-truth boxes x, y, w, h; needed unless ``areas`` is given.
        areas: (N,) ground-truth areas (the OKS scale); default ``w * h`` of ``bboxes``.
        image_ids: (N,) ints; instances with the same id share an image.

    Returns:
        ``{"AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"}``
        as floats (NaN where undefined); all NaN when no instance has a label.
    """
    dataset, results = _coco_inputs(pred, scores, gt, visible, sigmas, bboxes, areas, image_ids)
    if not results:
        return dict.fromkeys(OKS_STAT_NAMES, float("nan"))
    return run_cocoeval(dataset, results, sigmas)[0]


def _coco_inputs(
    pred: npt.ArrayLike,
    scores: npt.ArrayLike | None,
    gt: npt.ArrayLike,
    visible: npt.ArrayLike,
    sigmas: Sequence[float],
    bboxes: npt.ArrayLike | None,
    areas: npt.ArrayLike | None,
    image_ids: npt.ArrayLike | None,
) -> tuple[CocoDataset, list[CocoResult]]:
    """The COCO ground-truth dataset and the results of the instances with a label."""
    pred, gt = to_numpy(pred), to_numpy(gt)
    labelled = to_numpy(visible) > 0
    n, k = labelled.shape
    if pred.shape != (n, k, 2) or gt.shape != (n, k, 2):
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must be (N, K, 2) = ({n}, {k}, 2)")
    labelled &= np.isfinite(gt).all(-1)
    if len(sigmas) != k:
        raise ValueError(f"{len(sigmas)} OKS sigmas for {k} keypoints")
    boxes, area = boxes_and_areas(gt, labelled, bboxes, areas)
    instance_scores = _instance_scores(scores, n, k)
    ids = np.arange(n) if image_ids is None else to_numpy(image_ids, np.int64).reshape(n)
    annotations = coco_annotations(gt, labelled, boxes, area, ids)
    dataset = coco_dataset(dict.fromkeys(ids.tolist()), annotations, k)
    has_label = labelled.any(axis=1)
    if not np.isfinite(pred[has_label]).all():
        raise ValueError("predicted keypoints contain NaN or inf")
    # COCOeval ignores the third keypoint value; keypoint scores are written for the record.
    kp_scores = to_numpy(scores) if scores is not None and np.ndim(scores) == 2 else np.ones((n, k))
    pred_xys = np.concatenate([pred, kp_scores.reshape(n, k, 1)], axis=-1)
    results = [
        coco_result(ids[i], pred_xys[i], instance_scores[i]) for i in np.flatnonzero(has_label)
    ]
    return dataset, results


def _instance_scores(scores: npt.ArrayLike | None, n: int, k: int) -> np.ndarray:
    if scores is None:
        return np.ones(n)
    s = to_numpy(scores)
    if s.shape == (n,):
        return s
    if s.shape == (n, k):
        return s.mean(axis=1)
    raise ValueError(f"scores must be (N,) or (N, K) = ({n},) or ({n}, {k}), got {s.shape}")
