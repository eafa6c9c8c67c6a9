"""Box metrics for the locator: recall and precision at an IoU threshold, and the mean IoU of
the matched boxes. Boxes are COCO (x, y, w, h) in image pixels.

IoU comes from pycocotools (``maskUtils.iou``, the COCO evaluator's own); each image's boxes are
matched one to one by the assignment that maximises the summed IoU (scipy's Hungarian solver),
so a box never counts for two instances, and a pair counts only at IoU >= the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import numpy as np
import numpy.typing as npt
from pycocotools import mask as mask_utils
from scipy.optimize import linear_sum_assignment


class BoxMetrics(TypedDict):
    """:func:`box_metrics`' result; the counts are floats too."""

    recall: float
    precision: float
    mean_iou: float
    matched: float
    predicted: float
    instances: float


def box_iou(pred: npt.ArrayLike, gt: npt.ArrayLike) -> np.ndarray:
    """IoU of every predicted box with every ground-truth box.

    Args:
        pred: (P, 4) COCO boxes x, y, w, h.
        gt: (G, 4) COCO boxes.

    Returns:
        (P, G) IoUs.
    """
    p = np.asarray(pred, np.float64).reshape(-1, 4)
    g = np.asarray(gt, np.float64).reshape(-1, 4)
    if len(p) == 0 or len(g) == 0:
        return np.zeros((len(p), len(g)))
    return np.asarray(mask_utils.iou(p, g, np.zeros(len(g), np.uint8)), np.float64)


def match_boxes(
    pred: npt.ArrayLike, gt: npt.ArrayLike, iou_threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matches of predicted to ground-truth boxes with the most summed IoU.

    Args:
        pred: (P, 4) COCO boxes x, y, w, h.
        gt: (G, 4) COCO boxes.
        iou_threshold: pairs below this IoU are dropped.

    Returns:
        pairs (M, 2) of [pred, gt] indices and their IoUs (M,).
    """
    iou = box_iou(pred, gt)
    if iou.size == 0:
        return np.zeros((0, 2), np.int64), np.zeros(0)
    rows, cols = linear_sum_assignment(iou, maximize=True)
    ok = iou[rows, cols] >= iou_threshold
    pairs = np.stack([rows[ok], cols[ok]], 1).astype(np.int64)
    return pairs, iou[rows[ok], cols[ok]]


def box_metrics(
    preds: Sequence[npt.ArrayLike], gts: Sequence[npt.ArrayLike], iou_threshold: float = 0.5
) -> BoxMetrics:
    """Recall, precision and mean IoU of predicted boxes over images.

    With nothing to find, recall is 1; with nothing found, precision is NaN (undefined: a
    locator that finds nothing is not precise); mean IoU is NaN without matches.

    Args:
        preds: per image i, (P_i, 4) predicted COCO boxes.
        gts: per image i, (G_i, 4) ground-truth COCO boxes.
        iou_threshold: the IoU at which a prediction matches.

    Returns:
        ``recall`` (matched / G), ``precision`` (matched / P), ``mean_iou`` of the matches,
        and the counts ``matched``, ``predicted``, ``instances`` (G).
    """
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predicted images but {len(gts)} ground-truth images")
    ious, n_pred, n_gt = [], 0, 0
    for p, g in zip(preds, gts, strict=True):
        _, iou = match_boxes(p, g, iou_threshold)
        ious.append(iou)
        n_pred += len(np.asarray(p).reshape(-1, 4))
        n_gt += len(np.asarray(g).reshape(-1, 4))
    matched = np.concatenate(ious) if ious else np.zeros(0)
    return {
        "recall": len(matched) / n_gt if n_gt else 1.0,
        "precision": len(matched) / n_pred if n_pred else float("nan"),
        "mean_iou": float(matched.mean()) if len(matched) else float("nan"),
        "matched": float(len(matched)),
        "predicted": float(n_pred),
        "instances": float(n_gt),
    }
