"""OKS AP/AR of instances a model located itself, and counts of missed and extra instances.

:func:`keypointer.metrics.oks_ap` scores one prediction per ground-truth instance (poses on
given boxes). Here each image has its own list of predicted instances, found without the
labels (a locator, then the pose model on each crop), so COCOeval does the matching, exactly as
on the COCO benchmark. Missed and extra instances come from a one-to-one matching of the same
OKS values (COCOeval's own ``ious``), at OKS >= ``match_oks``.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from keypointer.metrics.oks import OKS_STAT_NAMES, _boxes_and_areas


def located_oks(
    pred: Sequence[np.ndarray],
    scores: Sequence[np.ndarray],
    instance_scores: Sequence[np.ndarray],
    gt: Sequence[np.ndarray],
    visible: Sequence[np.ndarray],
    bboxes: Sequence[np.ndarray],
    sigmas: Sequence[float],
    match_oks: float = 0.5,
) -> dict[str, float]:
    """Per image i: ``pred[i]`` (P_i, K, 2) image px, ``scores[i]`` (P_i, K),
    ``instance_scores[i]`` (P_i,), ``gt[i]`` (G_i, K, 2), ``visible[i]`` (G_i, K) labelled,
    ``bboxes[i]`` (G_i, 4) x, y, w, h (the OKS scale is the box area).

    Returns the COCO stats (AP, AP50, ... ARl; NaN where undefined) and ``gt_instances``,
    ``predicted``, ``matched``, ``missed`` (labelled instances without a prediction at
    OKS >= match_oks) and ``extra`` (predictions matching no labelled instance).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    k = len(sigmas)
    dataset, results = _coco_lists(pred, scores, instance_scores, gt, visible, bboxes, k)
    out = {name: float("nan") for name in OKS_STAT_NAMES}
    counts = {"gt_instances": 0, "predicted": len(results), "matched": 0}
    counts["gt_instances"] = sum(a["num_keypoints"] > 0 for a in dataset["annotations"])
    if results and counts["gt_instances"]:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            coco_gt = COCO()
            coco_gt.dataset = dataset
            coco_gt.createIndex()
            evaluator = COCOeval(coco_gt, coco_gt.loadRes(results), iouType="keypoints")
            evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        out = {n: float("nan") if v == -1 else float(v) for n, v in zip(OKS_STAT_NAMES, evaluator.stats, strict=True)}  # fmt: skip
        counts["matched"] = _matched(evaluator, match_oks)
    counts["missed"] = counts["gt_instances"] - counts["matched"]
    counts["extra"] = counts["predicted"] - counts["matched"]
    return {**out, **{key: float(v) for key, v in counts.items()}}


def _matched(evaluator: Any, match_oks: float) -> int:
    """One-to-one matches at OKS >= match_oks, image by image, over COCOeval's OKS matrices
    (detections by score, at most maxDets; labelled ground truth only)."""
    total = 0
    for (img, cat), ious in evaluator.ious.items():
        if len(ious) == 0:
            continue
        # COCOeval's ground truth for this image, in the order of the columns of ``ious``;
        # unlabelled instances get an OKS from their box but are ignored, so they go.
        labelled = np.array([a["num_keypoints"] > 0 for a in evaluator._gts[img, cat]], bool)
        ious = np.asarray(ious)[:, labelled]
        if ious.size == 0:
            continue
        rows, cols = linear_sum_assignment(-ious)
        total += int((ious[rows, cols] >= match_oks).sum())
    return total


def _coco_lists(pred, scores, instance_scores, gt, visible, bboxes, k: int) -> tuple[dict, list]:
    """The COCO ground-truth dataset dict and result list, image i having id i + 1."""
    annotations, results = [], []
    for i, (g, v, b) in enumerate(zip(gt, visible, bboxes, strict=True)):
        g, lab = np.asarray(g, np.float64).reshape(-1, k, 2), np.asarray(v).reshape(-1, k) > 0
        lab &= np.isfinite(g).all(-1)
        boxes, area = _boxes_and_areas(g, lab, np.asarray(b, np.float64).reshape(-1, 4), None)
        xyv = np.concatenate([np.where(lab[..., None], g, 0.0), 2.0 * lab[..., None]], -1)
        for j in range(len(g)):
            annotations.append({
                "id": len(annotations) + 1, "image_id": i + 1, "category_id": 1,
                "keypoints": xyv[j].reshape(-1).tolist(), "num_keypoints": int(lab[j].sum()),
                "bbox": boxes[j].tolist(), "area": float(area[j]), "iscrowd": 0,
            })  # fmt: skip
    for i, (p, s, inst) in enumerate(zip(pred, scores, instance_scores, strict=True)):
        p = np.asarray(p, np.float64).reshape(-1, k, 2)
        xys = np.concatenate([p, np.asarray(s, np.float64).reshape(-1, k, 1)], -1)
        for j in range(len(p)):
            if not np.isfinite(p[j]).all():
                continue  # a prediction without a value cannot be scored; COCOeval needs numbers
            results.append({"image_id": i + 1, "category_id": 1,
                            "keypoints": xys[j].reshape(-1).tolist(),
                            "score": float(np.asarray(inst).reshape(-1)[j])})  # fmt: skip
    dataset = {
        "images": [{"id": i + 1} for i in range(len(gt))],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "object", "keypoints": [str(j) for j in range(k)]}],
    }
    return dataset, results
