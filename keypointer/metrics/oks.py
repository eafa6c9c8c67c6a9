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

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from keypointer.metrics.arrays import to_numpy

OKS_STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def oks_ap(
    pred: Any,
    scores: Any,
    gt: Any,
    visible: Any,
    sigmas: Sequence[float],
    bboxes: Any = None,
    areas: Any = None,
    image_ids: Any = None,
) -> dict[str, float]:
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
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_dataset, results = _coco_inputs(pred, scores, gt, visible, sigmas, bboxes, areas, image_ids)
    if not results:
        return {name: float("nan") for name in OKS_STAT_NAMES}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt = COCO()
        coco_gt.dataset = gt_dataset
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {
        name: float("nan") if value == -1 else float(value)
        for name, value in zip(OKS_STAT_NAMES, evaluator.stats, strict=True)
    }


def _coco_inputs(
    pred: Any,
    scores: Any,
    gt: Any,
    visible: Any,
    sigmas: Sequence[float],
    bboxes: Any,
    areas: Any,
    image_ids: Any,
) -> tuple[dict, list[dict]]:
    """The COCO ground-truth dataset dict and the list of result dicts."""
    pred, gt = to_numpy(pred), to_numpy(gt)
    labelled = to_numpy(visible) > 0
    n, k = labelled.shape
    if pred.shape != (n, k, 2) or gt.shape != (n, k, 2):
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must be (N, K, 2) = ({n}, {k}, 2)")
    labelled &= np.isfinite(gt).all(-1)
    if len(sigmas) != k:
        raise ValueError(f"{len(sigmas)} OKS sigmas for {k} keypoints")
    boxes, area = _boxes_and_areas(gt, labelled, bboxes, areas)
    instance_scores = _instance_scores(scores, n, k)
    ids = np.arange(n) if image_ids is None else to_numpy(image_ids, np.int64).reshape(n)
    v = np.where(labelled, 2.0, 0.0)
    gt_xyv = np.concatenate([np.where(labelled[..., None], gt, 0.0), v[..., None]], axis=-1)
    annotations = [
        {
            "id": i + 1,  # COCOeval uses id 0 to mean "unmatched"
            "image_id": int(ids[i]),
            "category_id": 1,
            "keypoints": gt_xyv[i].reshape(-1).tolist(),
            "num_keypoints": int(labelled[i].sum()),
            "bbox": boxes[i].tolist(),
            "area": float(area[i]),
            "iscrowd": 0,
        }
        for i in range(n)
    ]
    dataset = {
        "images": [{"id": int(i)} for i in dict.fromkeys(ids.tolist())],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "object", "keypoints": [str(j) for j in range(k)]}],
    }
    has_label = labelled.any(axis=1)
    if not np.isfinite(pred[has_label]).all():
        raise ValueError("predicted keypoints contain NaN or inf")
    # COCOeval ignores the third keypoint value; keypoint scores are written for the record.
    kp_scores = to_numpy(scores) if scores is not None and np.ndim(scores) == 2 else np.ones((n, k))
    pred_xys = np.concatenate([pred, kp_scores.reshape(n, k, 1)], axis=-1)
    results = [
        {
            "image_id": int(ids[i]),
            "category_id": 1,
            "keypoints": pred_xys[i].reshape(-1).tolist(),
            "score": float(instance_scores[i]),
        }
        for i in np.flatnonzero(has_label)
    ]
    return dataset, results


def _boxes_and_areas(
    gt: np.ndarray, labelled: np.ndarray, bboxes: Any, areas: Any
) -> tuple[np.ndarray, np.ndarray]:
    n = len(gt)
    if bboxes is None and areas is None:
        raise ValueError("OKS needs the instance scale: pass bboxes or areas")
    if bboxes is not None:
        boxes = to_numpy(bboxes).reshape(n, 4)
    else:  # only used by COCOeval for instances without labels, which it ignores
        boxes = np.zeros((n, 4))
        for i in np.flatnonzero(labelled.any(axis=1)):
            lo, hi = gt[i][labelled[i]].min(0), gt[i][labelled[i]].max(0)
            boxes[i] = [lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]]
    area = boxes[:, 2] * boxes[:, 3] if areas is None else to_numpy(areas).reshape(n)
    return boxes, area


def _instance_scores(scores: Any, n: int, k: int) -> np.ndarray:
    if scores is None:
        return np.ones(n)
    s = to_numpy(scores)
    if s.shape == (n,):
        return s
    if s.shape == (n, k):
        return s.mean(axis=1)
    raise ValueError(f"scores must be (N,) or (N, K) = ({n},) or ({n}, {k}), got {s.shape}")
