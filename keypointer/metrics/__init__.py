"""Metrics: pure functions of arrays in image pixels (conventions as in
:mod:`keypointer.codecs`: keypoints (N, K, 2) x, y, ``visible`` (N, K) bool, boxes COCO
x, y, w, h).

- :mod:`.keypoints`: PCK and its AUC, NME and its normalisers, pixel errors, and
  :func:`evaluate_keypoints`, the usual set for one dataset;
- :mod:`.oks`: COCO OKS AP/AR, one prediction per ground-truth instance;
- :mod:`.located`: OKS AP/AR and missed/extra counts of instances a model found itself;
- :mod:`.coco_eval`: the COCO dicts and the quiet COCOeval run that those two share;
- :mod:`.boxes`: the locator's box recall, precision and IoU;
- :mod:`.tracking`: CLEAR-MOT and IDF1 of keypoint tracks;
- :mod:`.video`: a video's predicted tracks scored against known tracks;
- :mod:`.arrays`: inputs to numpy arrays, results to JSON values.
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
    "DEFAULT_AUC_MAX_ALPHA",
    "DEFAULT_AUC_STEPS",
    "FACE_EYE_CORNERS",
    "OKS_STAT_NAMES",
    "MetricResult",
    "auc",
    "bbox_diagonal_norm",
    "bbox_norm",
    "bboxes_from_keypoints",
    "evaluate_keypoints",
    "eye_indices",
    "image_norm",
    "interocular_norm",
    "keypoint_errors",
    "nme",
    "nme_norm",
    "oks_ap",
    "pair_norm",
    "pck",
    "pck_auc",
    "pck_curve",
    "pixel_errors",
    "to_numpy",
    "torso_norm",
]
