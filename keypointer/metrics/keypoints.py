"""Keypoint metrics: PCK and its AUC, NME, pixel errors as DeepLabCut reports them.

Pure functions on (N, K, 2) predictions and ground truth in image pixels and an
(N, K) bool mask of labelled keypoints (numpy arrays, lists or torch tensors).
OKS AP/AR through pycocotools lives in :mod:`keypointer.metrics.oks`.

Conventions (they matter when comparing numbers with other tools):

- Only labelled keypoints (``visible``) with a finite ground truth count. A
  sample whose normaliser is NaN, zero or negative (e.g. the torso pair is not
  labelled) is left out; every result carries the ``count`` of keypoints used.
- ``overall`` pools all counted keypoints of all samples. MMPose instead
  averages the per-keypoint values (its ``avg_acc``): that is ``keypoint_mean``.
- A keypoint is correct for PCK@alpha when ``distance <= alpha * norm``
  (MMPose uses ``<``; they differ only on exact ties, e.g. a perfect prediction
  at alpha = 0).
- AUC is the trapezoidal area under PCK(alpha) for alpha in [0, max_alpha],
  divided by max_alpha, so it is in [0, 1] and a perfect predictor scores 1.
  Default max_alpha = 0.2: PCK@0.2 is the loosest threshold in common use and
  beyond it the curve of any usable model is flat. (MMPose's ``keypoint_auc``
  is the mean PCK over 20 thresholds 0, 0.05, ..., 0.95 of a fixed pixel norm.)
- A NaN/inf prediction is wrong for PCK and has an infinite error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

import numpy as np
import numpy.typing as npt

from keypointer.errors import ConfigError
from keypointer.metrics.arrays import JsonValue, json_ready, to_numpy
from keypointer.metrics.oks import oks_ap
from keypointer.skeleton import Skeleton

DEFAULT_AUC_MAX_ALPHA = 0.2
DEFAULT_AUC_STEPS = 41  # alpha step 0.005 up to 0.2
# Standard outer eye corners of unnamed face layouts (300W 68 points, WFLW 98 points).
FACE_EYE_CORNERS = {68: (36, 45), 98: (60, 72)}
_EYE_NAMES = (
    ("left_eye_outer", "right_eye_outer"),
    ("left_eye_outer_corner", "right_eye_outer_corner"),
    ("left_eye", "right_eye"),
    ("l_eye", "r_eye"),
    ("eye_left", "eye_right"),
    ("lefteye", "righteye"),
    ("eyel", "eyer"),
)
# Names that mark a body rather than a face: its eyes are no scale for NME.
_BODY_WORDS = ("shoulder", "hip", "elbow", "knee", "wrist", "ankle", "leg", "paw", "tail", "wing")
_TORSO_PAIRS = (("left_shoulder", "right_hip"), ("right_shoulder", "left_hip"))


@dataclass(frozen=True)
class MetricResult:
    """A metric over all keypoints and per keypoint.

    ``per_keypoint`` (K,) is NaN for keypoints never counted; ``overall`` pools
    every counted keypoint (NaN when none); counts are numbers of keypoints used.
    """

    overall: float
    per_keypoint: np.ndarray
    count: int
    per_keypoint_count: np.ndarray

    @property
    def keypoint_mean(self) -> float:
        """Mean of the per-keypoint values (MMPose's ``avg_acc`` for PCK)."""
        valid = self.per_keypoint[~np.isnan(self.per_keypoint)]
        return float(valid.mean()) if valid.size else float("nan")


class PixelErrors(TypedDict):
    """:func:`pixel_errors`' result: pooled values, then (K,) arrays per keypoint."""

    mean: float
    rmse: float
    per_keypoint_mean: np.ndarray
    per_keypoint_rmse: np.ndarray
    count: int
    per_keypoint_count: np.ndarray


def keypoint_errors(pred: npt.ArrayLike, gt: npt.ArrayLike) -> np.ndarray:
    """Euclidean distances between predictions and ground truth.

    Args:
        pred: (N, K, 2) predicted keypoints, image pixels.
        gt: (N, K, 2) ground-truth keypoints.

    Returns:
        (N, K) distances in pixels; inf where the prediction is NaN or inf.
    """
    pred, gt = to_numpy(pred), to_numpy(gt)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 2:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must both be (N, K, 2)")
    err = np.hypot(*(pred - gt).transpose(2, 0, 1))
    return np.where(np.isfinite(pred).all(-1), err, np.inf)


def _valid_mask(gt: np.ndarray, visible: npt.ArrayLike) -> np.ndarray:
    """(N, K) bool: labelled and with a finite ground truth."""
    vis = to_numpy(visible, bool)
    if vis.shape != gt.shape[:2]:
        raise ValueError(f"visible {vis.shape} must be (N, K) = {gt.shape[:2]}")
    return vis & np.isfinite(gt).all(-1)


def _per_sample(norm: npt.ArrayLike, n: int) -> np.ndarray:
    """(n,) norms from a scalar or an (n,) array."""
    norm = to_numpy(norm)
    return np.full(n, float(norm)) if norm.ndim == 0 else norm


def _errors_over_norm(
    pred: npt.ArrayLike, gt: npt.ArrayLike, visible: npt.ArrayLike, norm: npt.ArrayLike
) -> np.ndarray:
    """(N, K) distances / norm, NaN where not counted (unlabelled, or norm not > 0)."""
    gt = to_numpy(gt)
    norm = _per_sample(norm, len(gt))
    if norm.shape != (len(gt),):
        raise ValueError(f"norm {norm.shape} must be a scalar or (N,) = ({len(gt)},)")
    valid = _valid_mask(gt, visible) & (np.isfinite(norm) & (norm > 0))[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        d = keypoint_errors(pred, gt) / norm[:, None]
    return np.where(valid, d, np.nan)


def _summarise(values: np.ndarray) -> MetricResult:
    """Pool an (N, K) array whose NaNs mark keypoints not counted."""
    counted = ~np.isnan(values)
    counts = counted.sum(axis=0)
    sums = np.where(counted, values, 0.0).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_keypoint = np.where(counts > 0, sums / counts, np.nan)
    total = int(counts.sum())
    overall = float(sums.sum() / total) if total else float("nan")
    return MetricResult(overall, per_keypoint, total, counts)


# --- normalisers: each returns (N,) pixels, NaN where undefined -------------------------


def bbox_norm(bboxes: npt.ArrayLike) -> np.ndarray:
    """Longest side ``max(w, h)`` of each box: MMPose's PCK ``norm_item='bbox'``.

    Args:
        bboxes: (N, 4) boxes x, y, w, h in image pixels.

    Returns:
        (N,) pixels.
    """
    b = to_numpy(bboxes).reshape(-1, 4)
    return np.maximum(b[:, 2], b[:, 3])


def bbox_diagonal_norm(bboxes: npt.ArrayLike) -> np.ndarray:
    """Diagonal ``sqrt(w^2 + h^2)`` of each box (NME without named eyes).

    Args:
        bboxes: (N, 4) boxes x, y, w, h in image pixels.

    Returns:
        (N,) pixels.
    """
    b = to_numpy(bboxes).reshape(-1, 4)
    return np.hypot(b[:, 2], b[:, 3])


def image_norm(sizes: npt.ArrayLike) -> np.ndarray:
    """Longest side ``max(width, height)`` of each image.

    Args:
        sizes: (N, 2) image sizes (width, height).

    Returns:
        (N,) pixels.
    """
    s = to_numpy(sizes).reshape(-1, 2)
    return np.maximum(s[:, 0], s[:, 1])


def bboxes_from_keypoints(gt: npt.ArrayLike, visible: npt.ArrayLike) -> np.ndarray:
    """The box around each sample's labelled keypoints.

    Args:
        gt: (N, K, 2) ground-truth keypoints, image pixels.
        visible: (N, K) bool, labelled.

    Returns:
        (N, 4) boxes x, y, w, h; NaN for samples without a labelled keypoint.
    """
    gt = to_numpy(gt)
    valid = _valid_mask(gt, visible)
    xy = np.where(valid[..., None], gt, np.nan)
    rows = valid.any(axis=1)
    lo, hi = np.nanmin(xy[rows], axis=1), np.nanmax(xy[rows], axis=1)
    out = np.full((len(gt), 4), np.nan)
    out[rows] = np.concatenate([lo, hi - lo], axis=1)
    return out


def pair_norm(gt: npt.ArrayLike, visible: npt.ArrayLike, i: int, j: int) -> np.ndarray:
    """Distance between ground-truth keypoints ``i`` and ``j`` of each sample.

    Samples with a NaN norm are left out of PCK and NME (see ``count``).

    Args:
        gt: (N, K, 2) ground-truth keypoints, image pixels.
        visible: (N, K) bool, labelled.
        i: a keypoint index.
        j: the other keypoint index.

    Returns:
        (N,) pixels; NaN where either keypoint is unlabelled.
    """
    gt = to_numpy(gt)
    valid = _valid_mask(gt, visible)
    d = np.hypot(*(gt[:, i] - gt[:, j]).T)
    return np.where(valid[:, i] & valid[:, j], d, np.nan)


def torso_norm(gt: npt.ArrayLike, visible: npt.ArrayLike, skeleton: Skeleton) -> np.ndarray:
    """Torso diameter: left_shoulder to right_hip, else right_shoulder to left_hip per sample.

    Args:
        gt: (N, K, 2) ground-truth keypoints, image pixels.
        visible: (N, K) bool, labelled.
        skeleton: names the keypoints; :class:`ConfigError` when it names neither pair.

    Returns:
        (N,) pixels; NaN where neither pair is labelled.
    """
    index = {n.lower(): k for k, n in enumerate(skeleton.names)}
    pairs = [(index[a], index[b]) for a, b in _TORSO_PAIRS if a in index and b in index]
    if not pairs:
        raise ConfigError(
            "the torso normaliser needs keypoints named left_shoulder and right_hip "
            f"(or right_shoulder and left_hip); this skeleton has {list(skeleton.names)}"
        )
    norm = pair_norm(gt, visible, *pairs[0])
    for i, j in pairs[1:]:
        norm = np.where(np.isnan(norm), pair_norm(gt, visible, i, j), norm)
    return norm


def eye_indices(skeleton: Skeleton) -> tuple[int, int] | None:
    """Indices of the two eyes (outer corners when named) of a face skeleton.

    Unnamed 68- and 98-point layouts use the 300W (36, 45) and WFLW (60, 72)
    outer eye corners. Skeletons that name limbs (bodies, animals) have none:
    their eyes are too close together and too often hidden to be a scale.

    Args:
        skeleton: the keypoint names.

    Returns:
        (left, right) keypoint indices, or None.
    """
    names = [n.lower() for n in skeleton.names]
    if any(word in n for n in names for word in _BODY_WORDS):
        return None
    index = {n: k for k, n in enumerate(names)}
    for left, right in _EYE_NAMES:
        if left in index and right in index:
            return index[left], index[right]
    if not any("eye" in n for n in names):
        return FACE_EYE_CORNERS.get(len(names))
    return None


def interocular_norm(
    gt: npt.ArrayLike, skeleton: Skeleton, visible: npt.ArrayLike | None = None
) -> np.ndarray:
    """Inter-ocular distance per sample (eyes as :func:`eye_indices` finds them).

    Args:
        gt: (N, K, 2) ground-truth keypoints, image pixels.
        skeleton: a face skeleton; :class:`ConfigError` when it has no eyes.
        visible: (N, K) bool, labelled; default all.

    Returns:
        (N,) pixels; NaN where an eye is unlabelled.
    """
    gt = to_numpy(gt)
    eyes = eye_indices(skeleton)
    if eyes is None:
        raise ConfigError(
            "inter-ocular NME needs a face skeleton with named eyes "
            "(left_eye/right_eye) or the 68/98-point layouts"
        )
    vis = np.ones(gt.shape[:2], bool) if visible is None else visible
    return pair_norm(gt, vis, *eyes)


def nme_norm(
    gt: npt.ArrayLike,
    visible: npt.ArrayLike,
    skeleton: Skeleton,
    bboxes: npt.ArrayLike | None = None,
    pair: tuple[int, int] | None = None,
) -> tuple[np.ndarray, str]:
    """The NME normaliser: a given pair, else inter-ocular, else the box diagonal.

    Args:
        gt: (N, K, 2) ground-truth keypoints, image pixels.
        visible: (N, K) bool, labelled.
        skeleton: decides whether there are eyes.
        bboxes: (N, 4) boxes x, y, w, h; default the box around the labelled keypoints.
        pair: two keypoint indices to measure between instead.

    Returns:
        (N,) pixels and the normaliser's name ("pair", "interocular" or "bbox_diagonal").
    """
    if pair is not None:
        return pair_norm(gt, visible, *pair), "pair"
    if eye_indices(skeleton) is not None:
        return interocular_norm(gt, skeleton, visible), "interocular"
    if bboxes is None:
        bboxes = bboxes_from_keypoints(gt, visible)
    return bbox_diagonal_norm(bboxes), "bbox_diagonal"


# --- metrics -----------------------------------------------------------------------------


def pck(
    pred: npt.ArrayLike,
    gt: npt.ArrayLike,
    visible: npt.ArrayLike,
    norm: npt.ArrayLike,
    alpha: float = 0.05,
) -> MetricResult:
    """Percentage of correct keypoints: the share with ``distance <= alpha * norm``.

    Args:
        pred: (N, K, 2) predicted keypoints, image pixels.
        gt: (N, K, 2) ground-truth keypoints.
        visible: (N, K) bool, labelled.
        norm: (N,) pixels or a scalar.
        alpha: the threshold as a share of ``norm``.

    Returns:
        The share correct, pooled and per keypoint.
    """
    d = _errors_over_norm(pred, gt, visible, norm)
    return _summarise(np.where(np.isnan(d), np.nan, (d <= alpha).astype(float)))


def pck_undefined_reason(
    gt: npt.ArrayLike, visible: npt.ArrayLike, norm: npt.ArrayLike
) -> str | None:
    """Why :func:`pck` is NaN (it counts no keypoint), in words for a log.

    The usual cause is a box of zero size: without boxes in the labels, an instance's box is
    its labelled keypoints' extent, which has no size when they all sit on one point (a
    one-keypoint skeleton, or labels that put every keypoint at the same place). PCK judges
    a distance against that size, so it has nothing to judge by; the pixel error still holds.

    Args:
        gt: (N, K, 2) ground-truth keypoints, image pixels.
        visible: (N, K) bool, labelled.
        norm: (N,) pixels or a scalar, as given to :func:`pck`.

    Returns:
        The reason, or None when PCK is defined.
    """
    gt = to_numpy(gt)
    norm = _per_sample(norm, len(gt))
    labelled = _valid_mask(gt, visible)
    sized = np.isfinite(norm) & (norm > 0)
    if (labelled & sized[:, None]).any():
        return None
    if not labelled.any():
        return "PCK is undefined (nan): no keypoint of these instances is labelled"
    return (
        "PCK is undefined (nan): every instance's box has zero size (no box in the labels, and "
        "all its labelled keypoints on one point), and PCK measures a distance as a share of "
        "that size. The mean pixel error is the measure here; give boxes in the labels for a "
        "PCK"
    )


def pck_curve(
    pred: npt.ArrayLike,
    gt: npt.ArrayLike,
    visible: npt.ArrayLike,
    norm: npt.ArrayLike,
    alphas: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled PCK at each alpha.

    Args:
        pred: (N, K, 2) predicted keypoints, image pixels.
        gt: (N, K, 2) ground-truth keypoints.
        visible: (N, K) bool, labelled.
        norm: (N,) pixels or a scalar.
        alphas: (A,) thresholds; default 0, 0.005, ..., 0.2.

    Returns:
        alphas (A,) and PCK values (A,) (NaN when no keypoint counts).
    """
    if alphas is None:
        alphas = np.linspace(0.0, DEFAULT_AUC_MAX_ALPHA, DEFAULT_AUC_STEPS)
    alphas = np.asarray(alphas, dtype=np.float64)
    d = _errors_over_norm(pred, gt, visible, norm)
    d = np.sort(d[~np.isnan(d)])
    if d.size == 0:
        return alphas, np.full(alphas.shape, np.nan)
    return alphas, np.searchsorted(d, alphas, side="right") / d.size


def auc(alphas: npt.ArrayLike, values: npt.ArrayLike) -> float:
    """Trapezoidal area under a curve, divided by its alpha range.

    Args:
        alphas: (A,) increasing thresholds, A >= 2.
        values: (A,) the curve at each.

    Returns:
        The normalised area (in [0, 1] for a PCK curve).
    """
    a, v = to_numpy(alphas).reshape(-1), to_numpy(values).reshape(-1)
    if a.size < 2 or a.shape != v.shape or np.any(np.diff(a) <= 0):
        raise ValueError("auc needs two or more increasing alphas and one value for each")
    return float(np.sum((v[1:] + v[:-1]) * np.diff(a)) / 2 / (a[-1] - a[0]))


def pck_auc(
    pred: npt.ArrayLike,
    gt: npt.ArrayLike,
    visible: npt.ArrayLike,
    norm: npt.ArrayLike,
    max_alpha: float = DEFAULT_AUC_MAX_ALPHA,
) -> float:
    """AUC of the PCK curve on alpha in [0, max_alpha] (step max_alpha / 40).

    Args:
        pred: (N, K, 2) predicted keypoints, image pixels.
        gt: (N, K, 2) ground-truth keypoints.
        visible: (N, K) bool, labelled.
        norm: (N,) pixels or a scalar.
        max_alpha: the curve's last threshold.

    Returns:
        The AUC in [0, 1] (NaN when no keypoint counts).
    """
    alphas = np.linspace(0.0, max_alpha, DEFAULT_AUC_STEPS)
    return auc(*pck_curve(pred, gt, visible, norm, alphas))


def nme(
    pred: npt.ArrayLike, gt: npt.ArrayLike, visible: npt.ArrayLike, norm: npt.ArrayLike
) -> MetricResult:
    """Normalised mean error: the mean of ``distance / norm`` over counted keypoints (MMPose's).

    Args:
        pred: (N, K, 2) predicted keypoints, image pixels.
        gt: (N, K, 2) ground-truth keypoints.
        visible: (N, K) bool, labelled.
        norm: (N,) pixels or a scalar, e.g. from :func:`nme_norm`.

    Returns:
        The NME, pooled and per keypoint.
    """
    return _summarise(_errors_over_norm(pred, gt, visible, norm))


def pixel_errors(
    pred: npt.ArrayLike,
    gt: npt.ArrayLike,
    visible: npt.ArrayLike,
    scores: npt.ArrayLike | None = None,
    pcutoff: float | None = None,
) -> PixelErrors:
    """Pixel errors as DeepLabCut reports them, plus the true root mean square.

    DeepLabCut's "RMSE" (its "Test error") is ``sqrt(dx^2 + dy^2)`` per keypoint
    averaged over labelled keypoints, i.e. the mean Euclidean error: here
    ``mean``. ``rmse`` is the root of the mean squared distance (>= ``mean``).

    Args:
        pred: (N, K, 2) predicted keypoints, image pixels.
        gt: (N, K, 2) ground-truth keypoints.
        visible: (N, K) bool, labelled.
        scores: (N, K) keypoint scores; needed with ``pcutoff``.
        pcutoff: only keypoints scoring ``>= pcutoff`` count (DLC's "with p-cutoff").

    Returns:
        ``mean``, ``rmse`` (floats, NaN when nothing counts), ``per_keypoint_mean``,
        ``per_keypoint_rmse`` ((K,) arrays), ``count`` and ``per_keypoint_count`` (K,).
    """
    gt = to_numpy(gt)
    err = keypoint_errors(pred, gt)
    valid = _valid_mask(gt, visible)
    if pcutoff is not None:
        if scores is None:
            raise ValueError("pcutoff needs the predicted keypoint scores")
        valid &= to_numpy(scores).reshape(valid.shape) >= pcutoff
    mean = _summarise(np.where(valid, err, np.nan))
    squared = _summarise(np.where(valid, err**2, np.nan))
    return {
        "mean": mean.overall,
        "rmse": float(np.sqrt(squared.overall)),
        "per_keypoint_mean": mean.per_keypoint,
        "per_keypoint_rmse": np.sqrt(squared.per_keypoint),
        "count": mean.count,
        "per_keypoint_count": mean.per_keypoint_count,
    }


def evaluate_keypoints(
    pred: npt.ArrayLike,
    gt: npt.ArrayLike,
    visible: npt.ArrayLike,
    scores: npt.ArrayLike | None = None,
    bboxes: npt.ArrayLike | None = None,
    skeleton: Skeleton | None = None,
    alpha: float = 0.05,
    pcutoff: float | None = None,
    *,
    image_ids: npt.ArrayLike | None = None,
    areas: npt.ArrayLike | None = None,
    auc_max_alpha: float = DEFAULT_AUC_MAX_ALPHA,
) -> dict[str, JsonValue]:
    """The usual metrics of a dataset.

    PCK@alpha and its AUC use the box's longest side (``pck_norm`` "bbox"; when
    ``bboxes`` is None the box around the labelled keypoints, "keypoint_box").
    NME uses :func:`nme_norm`.

    Args:
        pred: (N, K, 2) predicted keypoints, image pixels.
        gt: (N, K, 2) ground-truth keypoints.
        visible: (N, K) bool, labelled.
        scores: (N, K) keypoint scores (for ``pcutoff`` and OKS AP).
        bboxes: (N, 4) ground-truth boxes x, y, w, h.
        skeleton: the keypoint names and OKS sigmas (required).
        alpha: the PCK threshold.
        pcutoff: adds pixel errors of the keypoints scoring at least this.
        image_ids: (N,) ints; instances with the same id share an image (OKS AP).
        areas: (N,) OKS scales; default the boxes' w * h.
        auc_max_alpha: the PCK curve's last threshold.

    Returns:
        A JSON-ready dict (NaN as None) of the pooled metrics, ``oks`` (the OKS AP/AR of
        :func:`oks_ap`, when ``bboxes`` or ``areas`` are given) and ``per_keypoint``: one
        dict per keypoint name.
    """
    if skeleton is None:
        raise ValueError("evaluate_keypoints needs the skeleton")
    gt = to_numpy(gt)
    if gt.ndim != 3 or gt.shape[1] != skeleton.num_keypoints:
        raise ValueError(f"gt {gt.shape} must be (N, {skeleton.num_keypoints}, 2)")
    box_name = "keypoint_box" if bboxes is None else "bbox"
    boxes = bboxes_from_keypoints(gt, visible) if bboxes is None else to_numpy(bboxes)
    box_norm = bbox_norm(boxes)
    acc = pck(pred, gt, visible, box_norm, alpha)
    norm, norm_name = nme_norm(gt, visible, skeleton, boxes)
    err = nme(pred, gt, visible, norm)
    px = pixel_errors(pred, gt, visible)
    out: dict[str, object] = {
        "num_instances": len(gt),
        "num_labelled": px["count"],
        "pck_alpha": alpha,
        "pck_norm": box_name,
        "pck": acc.overall,
        "pck_keypoint_mean": acc.keypoint_mean,
        "pck_count": acc.count,
        "pck_auc": pck_auc(pred, gt, visible, box_norm, auc_max_alpha),
        "pck_auc_max_alpha": auc_max_alpha,
        "nme": err.overall,
        "nme_norm": norm_name,
        "mean_px": px["mean"],
        "rmse_px": px["rmse"],
    }
    table: dict[str, list[str] | np.ndarray] = {
        "name": list(skeleton.names),
        "count": px["per_keypoint_count"],
        "pck": acc.per_keypoint,
        "nme": err.per_keypoint,
        "mean_px": px["per_keypoint_mean"],
        "rmse_px": px["per_keypoint_rmse"],
    }
    if pcutoff is not None:
        cut = pixel_errors(pred, gt, visible, scores, pcutoff)
        out.update(pcutoff=pcutoff, mean_px_pcutoff=cut["mean"], rmse_px_pcutoff=cut["rmse"])
        out["count_pcutoff"] = cut["count"]
        table["mean_px_pcutoff"] = cut["per_keypoint_mean"]
        table["count_pcutoff"] = cut["per_keypoint_count"]
    if bboxes is not None or areas is not None:
        sigmas = skeleton.oks_sigmas
        out["oks"] = oks_ap(
            pred, scores, gt, visible, sigmas, bboxes=bboxes, areas=areas, image_ids=image_ids
        )
    out["per_keypoint"] = [{key: col[j] for key, col in table.items()} for j in range(len(gt[0]))]
    return json_ready(out)
