"""OKS AP/AR of instances a model located itself, and counts of missed and extra instances.

:func:`keypointer.metrics.oks_ap` scores one prediction per ground-truth instance (poses on
given boxes). Here each image has its own list of predicted instances, found without the
labels (a locator, then the pose model on each crop), so COCOeval does the matching, exactly as
on the COCO benchmark. Missed and extra instances come from a one-to-one matching of the same
OKS values (COCOeval's own ``ious``), at OKS >= ``match_oks``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pycocotools.cocoeval import COCOeval
from scipy.optimize import linear_sum_assignment

from keypointer.metrics.coco_eval import (
    OKS_STAT_NAMES,
    CocoAnnotation,
    CocoDataset,
    CocoResult,
    OksStats,
    boxes_and_areas,
    coco_annotations,
    coco_dataset,
    coco_result,
    run_cocoeval,
)


class LocatedOks(OksStats):
    """:func:`located_oks`' result: the COCO stats and instance counts (as floats)."""

    gt_instances: float
    predicted: float
    matched: float
    missed: float
    extra: float


def located_oks(
    pred: Sequence[np.ndarray],
    scores: Sequence[np.ndarray],
    instance_scores: Sequence[np.ndarray],
    gt: Sequence[np.ndarray],
    visible: Sequence[np.ndarray],
    bboxes: Sequence[np.ndarray],
    sigmas: Sequence[float],
    match_oks: float = 0.5,
) -> LocatedOks:
    """COCO keypoint AP/AR of the instances found in each image, with missed and extra counts.

    Args:
        pred: per image i, (P_i, K, 2) predicted keypoints, image pixels.
        scores: per image, (P_i, K) keypoint scores.
        instance_scores: per image, (P_i,) instance scores (they rank predictions for AP).
        gt: per image, (G_i, K, 2) ground-truth keypoints.
        visible: per image, (G_i, K) labelled keypoints.
        bboxes: per image, (G_i, 4) ground-truth boxes x, y, w, h (the OKS scale is w * h).
        sigmas: (K,) OKS sigmas.
        match_oks: the OKS at which a prediction matches a labelled instance.

    Returns:
        The COCO stats (AP, AP50, ... ARl; NaN where undefined) and ``gt_instances``,
        ``predicted``, ``matched``, ``missed`` (labelled instances without a prediction at
        OKS >= match_oks) and ``extra`` (predictions matching no labelled instance).
    """
    k = len(sigmas)
    dataset = _ground_truth(gt, visible, bboxes, k)
    results = _results(pred, scores, instance_scores, k)
    out: OksStats = dict.fromkeys(OKS_STAT_NAMES, float("nan"))
    counts = {"gt_instances": 0, "predicted": len(results), "matched": 0}
    counts["gt_instances"] = sum(a["num_keypoints"] > 0 for a in dataset["annotations"])
    if results and counts["gt_instances"]:
        out, evaluator = run_cocoeval(dataset, results, sigmas)
        counts["matched"] = _matched(evaluator, match_oks)
    counts["missed"] = counts["gt_instances"] - counts["matched"]
    counts["extra"] = counts["predicted"] - counts["matched"]
    return {**out, **{key: float(v) for key, v in counts.items()}}


def _matched(evaluator: COCOeval, match_oks: float) -> int:
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


def _ground_truth(
    gt: Sequence[np.ndarray], visible: Sequence[np.ndarray], bboxes: Sequence[np.ndarray], k: int
) -> CocoDataset:
    """The COCO ground-truth dataset, image i having id i + 1."""
    annotations: list[CocoAnnotation] = []
    for i, (g, v, b) in enumerate(zip(gt, visible, bboxes, strict=True)):
        g, lab = np.asarray(g, np.float64).reshape(-1, k, 2), np.asarray(v).reshape(-1, k) > 0
        lab &= np.isfinite(g).all(-1)
        boxes, area = boxes_and_areas(g, lab, np.asarray(b, np.float64).reshape(-1, 4), None)
        image_ids = np.full(len(g), i + 1)
        annotations += coco_annotations(g, lab, boxes, area, image_ids, len(annotations) + 1)
    return coco_dataset(range(1, len(gt) + 1), annotations, k)


def _results(
    pred: Sequence[np.ndarray],
    scores: Sequence[np.ndarray],
    instance_scores: Sequence[np.ndarray],
    k: int,
) -> list[CocoResult]:
    """The COCO results of the predictions with values, image i having id i + 1."""
    results: list[CocoResult] = []
    for i, (p, s, inst) in enumerate(zip(pred, scores, instance_scores, strict=True)):
        p = np.asarray(p, np.float64).reshape(-1, k, 2)
        xys = np.concatenate([p, np.asarray(s, np.float64).reshape(-1, k, 1)], -1)
        inst = np.asarray(inst).reshape(-1)
        # A prediction without a value cannot be scored; COCOeval needs numbers.
        results += [
            coco_result(i + 1, xys[j], inst[j]) for j in range(len(p)) if np.isfinite(p[j]).all()
        ]
    return results
