"""A video's predicted tracks scored against known tracks: keypoint accuracy, jitter, identities.

Arrays cover the T frames of the truth: ``truth`` (T, M, K, 3) x, y, v in image pixels (v = 2
visible, 1 hidden, 0 outside the image or track absent: not counted), ``boxes`` (T, M, 4) COCO
x, y, w, h of the truth (the PCK and OKS scale), predictions (T, N, K, 2) in image pixels,
track n in column n, NaN where a track is absent or a point is missing.

Keypoint accuracy does not depend on identities: in each frame the predicted instances are
paired with the truth's by a Hungarian assignment on 1 - OKS (COCO's OKS, scale = the truth
box's area), every possible pair made; then errors, PCK and jitter are measured on the pairs,
and unpaired instances count as missed or extra. Identities are scored by
:func:`keypointer.metrics.tracking.mot_metrics` on the predicted track ids (OKS >= 0.5), so an
ID switch costs MOTA and IDF1 but not pixel error.

Jitter: per truth track and keypoint, over pairs of consecutive frames where both the truth
and the paired prediction have the point, ``jitter_px`` = mean ||d pred - d truth|| (the
frame-to-frame change of the error; 0 for a constant offset), and ``excess_motion_px`` =
mean ||d pred|| - mean ||d truth|| (the prediction's motion beyond the truth's own; negative
when a smoother lags or flattens fast motion). Both in pixels per frame.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from keypointer.metrics.keypoints import _jsonable, bbox_norm, pck, pixel_errors
from keypointer.metrics.located import located_oks
from keypointer.metrics.tracking import (
    _frame_events,
    _frames,
    min_cost_matching,
    mot_metrics,
    pose_distances,
)

OKS_SHOWN = ("AP", "AP50", "AP75", "AR")
FAR = -1e6  # px: where a missing predicted point goes for OKS (similarity exactly 0)
# A tiny pixel-distance term breaks ties between pairs whose OKS is 0 (far apart: exp(-d^2)
# underflows): without it the assignment among them would be arbitrary. Bounded by TIE, it
# never overrides a real OKS difference.
TIE = 1e-6


def truth_points(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, M, K, 3) x, y, v -> points (T, M, K, 2) with NaN where v == 0, visible (T, M, K)."""
    truth = np.asarray(truth, np.float64)
    counted = (truth[..., 2] > 0) & np.isfinite(truth[..., :2]).all(-1)
    return np.where(counted[..., None], truth[..., :2], np.nan), truth[..., 2] >= 2


def scale_areas(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(T, M) OKS scales s^2: the box area w * h, else (a box missing or empty) that of the
    truth's keypoint box."""
    boxes = np.asarray(boxes, np.float64)
    area = boxes[..., 2] * boxes[..., 3]
    with _quiet_nan():
        span = np.nanmax(points, axis=-2) - np.nanmin(points, axis=-2)
    return np.where(np.isfinite(area) & (area > 0), area, span[..., 0] * span[..., 1])


def match_poses(
    gt: np.ndarray, pred: np.ndarray, sigmas: Sequence[float], areas: np.ndarray
) -> np.ndarray:
    """(T, M) column of ``pred`` paired with each truth track per frame, -1 for none.

    ``gt`` (T, M, K, 2), ``pred`` (T, N, K, 2) with NaN for missing points, ``areas`` (T, M).
    Per frame a minimum-cost assignment on 1 - OKS with as many pairs as possible (a pair
    with no point in common cannot be made)."""
    out = np.full(gt.shape[:2], -1, dtype=np.int64)
    g_on, p_on = _present(gt), _present(pred)
    for f in range(len(gt)):
        gi, pi = np.flatnonzero(g_on[f]), np.flatnonzero(p_on[f])
        if not len(gi) or not len(pi):
            continue
        oks_cost = pose_distances(gt[f, gi], pred[f, pi], "oks", sigmas, areas[f, gi])
        px = pose_distances(gt[f, gi], pred[f, pi], "pixels")
        rows, cols = min_cost_matching(oks_cost + TIE * px / (px + 1.0))
        out[f, gi[rows]] = pi[cols]
    return out


def align(pred: np.ndarray, match: np.ndarray) -> np.ndarray:
    """(T, M, K, 2): the prediction paired with each truth track (NaN where none)."""
    t, m = match.shape
    out = np.full((t, m, *pred.shape[2:]), np.nan)
    f, g = np.nonzero(match >= 0)
    out[f, g] = pred[f, match[f, g]]
    return out


class PoseScores(NamedTuple):
    """:func:`pose_metrics`' result: ``metrics`` JSON-ready (NaN -> None); ``error`` (T, M)
    each truth track's mean pixel error per frame (NaN: not paired); ``match`` (T, M) the
    prediction column paired with each truth track (-1: none)."""

    metrics: dict[str, Any]
    error: np.ndarray
    match: np.ndarray
    paired: np.ndarray  # (T, M, K, 2) the prediction paired with each truth track, NaN: none


def pose_metrics(
    truth: np.ndarray,
    boxes: np.ndarray,
    pred: np.ndarray,
    scores: np.ndarray,
    instance_scores: np.ndarray,
    names: Sequence[str],
    sigmas: Sequence[float],
    alpha: float = 0.05,
    tracks: Sequence[str] | None = None,
    fast: np.ndarray | None = None,
) -> PoseScores:
    """Keypoint accuracy of predicted poses (identities ignored; see the module doc).

    ``pred`` (T, N, K, 2), ``scores`` (T, N, K), ``instance_scores`` (T, N) (they rank the
    predictions for OKS AP); ``tracks`` the M truth track names (for ``per_track``);
    ``fast`` (T, M) bool: frames of fast motion (errors then also split into ``mean_px_fast``
    and ``mean_px_steady``).
    """
    gt, visible = truth_points(truth)
    areas = scale_areas(gt, boxes)
    match = match_poses(gt, pred, sigmas, areas)
    paired = align(pred, match)
    out = accuracy(gt, visible, boxes, paired, names, alpha, tracks, fast)
    out["extra_instances"] = int(_present(pred).sum()) - out["matched_instances"]
    out["oks"] = _oks(gt, boxes, pred, scores, instance_scores, sigmas)
    err = np.linalg.norm(paired - gt, axis=-1)
    with _quiet_nan():
        over_time = np.nanmean(err, axis=-1)
    return PoseScores(_jsonable(out), over_time, match, paired)


SAME_POINTS_KEYS = (
    "mean_px", "median_px", "rmse_px", "pck", "jitter_px", "excess_motion_px", "num_keypoints",
)  # fmt: skip


def same_points(
    truth: np.ndarray, boxes: np.ndarray, paired: np.ndarray, keep: np.ndarray, alpha: float = 0.05
) -> dict[str, Any]:
    """Errors and jitter of ``paired`` (T, M, K, 2) counting only the points in ``keep``
    (T, M, K): raw and smoothed predictions on the points both have, to compare like with
    like (a smoother leaves out low-scoring points it cannot fill, often the worst ones, and
    fills short gaps)."""
    gt, visible = truth_points(truth)
    gt = np.where(np.asarray(keep, bool)[..., None], gt, np.nan)
    out = accuracy(gt, visible, boxes, paired, [""] * gt.shape[2], alpha)
    return _jsonable({key: out[key] for key in SAME_POINTS_KEYS})


def accuracy(
    gt: np.ndarray,
    visible: np.ndarray,
    boxes: np.ndarray,
    paired: np.ndarray,
    names: Sequence[str],
    alpha: float = 0.05,
    tracks: Sequence[str] | None = None,
    fast: np.ndarray | None = None,
) -> dict[str, Any]:
    """Errors of ``paired`` (T, M, K, 2) against ``gt`` (T, M, K, 2) (NaN: not counted).

    Counted: points the truth has, in instances with a paired prediction that has them too
    (a paired prediction lacking a point adds to ``missing_keypoints``)."""
    t, m, k = gt.shape[:3]
    has = np.isfinite(paired).all(-1)
    labelled = np.isfinite(gt).all(-1)
    present, matched = labelled.any(-1), has.any(-1) & labelled.any(-1)
    counted = labelled & matched[..., None] & has

    def flat(a: np.ndarray) -> np.ndarray:
        return a.reshape(t * m, *a.shape[2:])

    px = pixel_errors(flat(paired), flat(gt), flat(counted))
    acc = pck(flat(paired), flat(gt), flat(counted), bbox_norm(flat(boxes)), alpha)
    err = np.where(counted, np.linalg.norm(np.nan_to_num(paired - gt), axis=-1), np.nan)
    jit = jitter(gt, paired)
    out: dict[str, Any] = {
        "mean_px": px["mean"],
        "rmse_px": px["rmse"],
        "median_px": float(np.median(err[counted])) if counted.any() else np.nan,
        "pck_alpha": alpha,
        "pck": acc.overall,
        "mean_px_visible": _mean(err[counted & visible]),
        "mean_px_hidden": _mean(err[counted & ~visible]),
        **{key: jit[key] for key in ("jitter_px", "motion_px", "truth_motion_px")},
        "excess_motion_px": jit["motion_px"] - jit["truth_motion_px"],
        "num_keypoints": px["count"],
        "missing_keypoints": int((labelled & matched[..., None] & ~has).sum()),
        "truth_instances": int(present.sum()),
        "matched_instances": int(matched.sum()),
        "missed_instances": int((present & ~matched).sum()),
    }
    if fast is not None:
        quick = np.asarray(fast, bool)[..., None]
        out["mean_px_fast"] = _mean(err[counted & quick])
        out["mean_px_steady"] = _mean(err[counted & ~quick])
    out["per_keypoint"] = [
        {"name": name, "count": int(px["per_keypoint_count"][j]),
         "mean_px": px["per_keypoint_mean"][j], "rmse_px": px["per_keypoint_rmse"][j],
         "pck": acc.per_keypoint[j], "jitter_px": jit["per_keypoint"][j]}
        for j, name in enumerate(names)
    ]  # fmt: skip
    names_m = list(tracks) if tracks is not None else [str(i) for i in range(m)]
    out["per_track"] = [
        {"track": name, "frames": int(present[:, i].sum()), "matched": int(matched[:, i].sum()),
         "mean_px": _mean(err[:, i][counted[:, i]])}
        for i, name in enumerate(names_m)
    ]  # fmt: skip
    return out


def jitter(gt: np.ndarray, paired: np.ndarray) -> dict[str, Any]:
    """Frame-to-frame motion of ``paired`` against the truth's (see the module doc); px per
    frame, ``per_keypoint`` (K,) of the jitter."""
    both = np.isfinite(gt).all(-1) & np.isfinite(paired).all(-1)  # (T, M, K)
    step = both[1:] & both[:-1]
    d_pred, d_gt = np.diff(paired, axis=0), np.diff(gt, axis=0)
    change = np.where(step, np.linalg.norm(np.nan_to_num(d_pred - d_gt), axis=-1), np.nan)
    with _quiet_nan():
        per_keypoint = np.nanmean(change.reshape(-1, gt.shape[2]), axis=0)
    return {
        "jitter_px": _mean(change[step]),
        "motion_px": _mean(np.linalg.norm(np.nan_to_num(d_pred), axis=-1)[step]),
        "truth_motion_px": _mean(np.linalg.norm(np.nan_to_num(d_gt), axis=-1)[step]),
        "per_keypoint": per_keypoint,
    }


def tracks_array(ids: Sequence[np.ndarray], keypoints: Sequence[np.ndarray], k: int) -> np.ndarray:
    """Per-frame instances with track ids -> (T, N, K, 2), track n in column n; instances
    with id -1 (untracked) are left out."""
    n = max([int(np.max(i)) + 1 for i in ids if len(i)] + [0])
    out = np.full((len(ids), n, k, 2), np.nan)
    for f, (i, kp) in enumerate(zip(ids, keypoints, strict=True)):
        i = np.asarray(i, np.int64)
        out[f, i[i >= 0]] = np.asarray(kp, np.float64).reshape(len(i), k, 2)[i >= 0]
    return out


def tracking_metrics(
    truth: np.ndarray,
    boxes: np.ndarray,
    pred: np.ndarray,
    sigmas: Sequence[float],
    threshold: float = 0.5,
    frames: Sequence[int] | None = None,
) -> dict[str, Any]:
    """CLEAR-MOT and IDF1 of predicted tracks ``pred`` (T, N, K, 2) (column = track id)
    against the truth's tracks (column = identity), OKS >= ``threshold`` to pair.

    Adds ``switches_per_1000_frames`` and ``switch_frames``: the frame number (from
    ``frames``, default 0..T-1) of every ID switch, once per switching truth track, in order.
    """
    gt, _ = truth_points(truth)
    areas = list(scale_areas(gt, boxes))
    gt_ids, gt_kp, pred_ids, pred_kp = _mot_inputs(truth, pred)
    out: dict[str, Any] = dict(
        mot_metrics(gt_ids, gt_kp, pred_ids, pred_kp, threshold, "oks", sigmas, areas)
    )
    numbers = list(range(len(truth))) if frames is None else [int(f) for f in frames]
    out["switches_per_1000_frames"] = 1000.0 * out["num_switches"] / max(len(truth), 1)
    out["switch_frames"] = switch_frames(
        gt_ids, gt_kp, pred_ids, pred_kp, areas, sigmas, threshold, numbers
    )
    return _jsonable(out)


def switch_frames(
    gt_ids, gt_keypoints, pred_ids, pred_keypoints, areas, sigmas, threshold, numbers
) -> list[int]:
    """The frames of :func:`mot_metrics`' ID switches: the same event logic, frame by frame
    (``mot_metrics`` only counts them)."""
    partner: dict[int, int] = {}
    owner: dict[int, int] = {}
    out: list[int] = []
    cut = 1.0 - threshold
    for f, (gid, gkp, gar, pid, pkp) in enumerate(
        _frames(gt_ids, gt_keypoints, pred_ids, pred_keypoints, areas)
    ):
        cost = np.full((len(gid), len(pid)), np.inf)
        if len(gid) and len(pid):
            d = pose_distances(gkp, pkp, "oks", sigmas, gar)
            cost = np.where(d <= cut, d, np.inf)
        out += [numbers[f]] * _frame_events(gid, pid, cost, partner, owner)[2]
    return out


def _mot_inputs(truth: np.ndarray, pred: np.ndarray) -> tuple[list, list, list, list]:
    """Per-frame (truth ids, truth (M, K, 3), predicted ids, predicted (P, K, 2))."""
    m = truth.shape[1]
    on = _present(pred)
    pred_ids = [np.flatnonzero(row) for row in on]
    pred_kp = [pred[f, ids] for f, ids in enumerate(pred_ids)]
    return [np.arange(m)] * len(truth), list(truth), pred_ids, pred_kp


def _oks(gt, boxes, pred, scores, instance_scores, sigmas) -> dict[str, float]:
    """COCO OKS AP/AR with each frame an image. A prediction's missing point goes FAR away:
    it adds 0 to the OKS, as COCO counts a point the prediction lacks (COCOeval itself needs
    every value, and would drop the whole instance)."""
    g_on, p_on = _present(gt), _present(pred)
    pred = np.where(np.isfinite(pred).all(-1, keepdims=True), pred, FAR)
    stats = located_oks(
        [pred[f, p_on[f]] for f in range(len(gt))],
        [np.nan_to_num(scores[f, p_on[f]]) for f in range(len(gt))],
        [np.nan_to_num(instance_scores[f, p_on[f]]) for f in range(len(gt))],
        [gt[f, g_on[f]] for f in range(len(gt))],
        [np.isfinite(gt[f, g_on[f]]).all(-1) for f in range(len(gt))],
        [boxes[f, g_on[f]] for f in range(len(gt))],
        sigmas,
    )
    return {name: stats[name] for name in OKS_SHOWN}


def _present(points: np.ndarray) -> np.ndarray:
    """(T, N): instances with at least one point."""
    return np.isfinite(points).all(-1).any(-1)


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if values.size else float("nan")


@contextlib.contextmanager
def _quiet_nan() -> Iterator[None]:
    """All-NaN slices give NaN (wanted: no value), without numpy's warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
