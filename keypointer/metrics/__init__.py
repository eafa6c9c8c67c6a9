"""Keypoint metrics (:mod:`.keypoints`: PCK, AUC, NME, pixel errors) and OKS AP/AR (:mod:`.oks`).

Pure functions of arrays in image pixels; see :mod:`keypointer.metrics.keypoints` for the
conventions.
"""

from keypointer.metrics.arrays import to_numpy
from keypointer.metrics.keypoints import (
    DEFAULT_AUC_MAX_ALPHA,
    DEFAULT_AUC_STEPS,
    FACE_EYE_CORNERS,
    MetricResult,
    auc,
    bbox_diagonal_norm,
    bbox_norm,
    bboxes_from_keypoints,
    evaluate_keypoints,
    eye_indices,
    image_norm,
    interocular_norm,
    keypoint_errors,
    nme,
    nme_norm,
    pair_norm,
    pck,
    pck_auc,
    pck_curve,
    pixel_errors,
    torso_norm,
)
from keypointer.metrics.oks import OKS_STAT_NAMES, oks_ap

__all__ = [
    "DEFAULT_AUC_MAX_ALPHA", "DEFAULT_AUC_STEPS", "FACE_EYE_CORNERS", "OKS_STAT_NAMES",
    "MetricResult", "auc", "bbox_diagonal_norm", "bbox_norm", "bboxes_from_keypoints",
    "evaluate_keypoints", "eye_indices", "image_norm", "interocular_norm", "keypoint_errors",
    "nme", "nme_norm", "oks_ap", "pair_norm", "pck", "pck_auc", "pck_curve", "pixel_errors",
    "to_numpy", "torso_norm",
]  # fmt: skip
