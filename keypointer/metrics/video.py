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

:func:`score_tracks` puts it together for ``keypointer eval`` on a video truth: the tracker's
tracks and the nearest-centroid baseline re-tracking the very same per-frame instances.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import NamedTuple, Protocol

import numpy as np

from keypointer.data.synthetic_truth import VideoTruth
from keypointer.metrics.arrays import JsonValue, json_ready
from keypointer.metrics.keypoints import bbox_norm, pck, pixel_errors
from keypointer.metrics.located import located_oks
from keypointer.metrics.tracking import (
    frame_events,
    min_cost_matching,
    mot_frames,
    mot_metrics,
    pose_distances,
)
from keypointer.temporal.tracking import nearest_centroid_ids

Metrics = dict[str, JsonValue]  # a JSON-ready metrics dict (NaN as None)

OKS_SHOWN = ("AP", "AP50", "AP75", "AR")
FAR = -1e6  # px: where a missing predicted point goes for OKS (similarity exactly 0)
# A tiny pixel-distance term breaks ties between pairs whose OKS is 0 (far apart: exp(-d^2)
# underflows): without it the assignment among them would be arbitrary. Bounded by TIE, it
# never overrides a real OKS difference.
TIE = 1e-6


def truth_points(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The truth's points that count, and which of them are visible.

    Args:
        truth: (T, M, K, 3) x, y, v.

    Returns:
        points (T, M, K, 2) with NaN where v == 0, and visible (T, M, K) bool (v == 2).
    """
    truth = np.asarray(truth, np.float64)
    counted = (truth[..., 2] > 0) & np.isfinite(truth[..., :2]).all(-1)
    return np.where(counted[..., None], truth[..., :2], np.nan), truth[..., 2] >= 2


def scale_areas(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The OKS scale of each truth instance.

    Args:
        points: (T, M, K, 2) truth points, NaN where absent.
        boxes: (T, M, 4) truth boxes x, y, w, h.

    Returns:
        (T, M) s^2: the box area w * h, else (a box missing or empty) that of the points' box.
    """
    boxes = np.asarray(boxes, np.float64)
    area = boxes[..., 2] * boxes[..., 3]
    with _quiet_nan():
        span = np.nanmax(points, axis=-2) - np.nanmin(points, axis=-2)
    return np.where(np.isfinite(area) & (area > 0), area, span[..., 0] * span[..., 1])


def match_poses(
    gt: np.ndarray, pred: np.ndarray, sigmas: Sequence[float], areas: np.ndarray
) -> np.ndarray:
    """Pair the predictions with the truth tracks, frame by frame.

    Per frame a minimum-cost assignment on 1 - OKS with as many pairs as possible (a pair
    with no point in common cannot be made).

    Args:
        gt: (T, M, K, 2) truth points, NaN for missing ones.
        pred: (T, N, K, 2) predicted points, NaN for missing ones.
        sigmas: (K,) OKS sigmas.
        areas: (T, M) OKS scales (:func:`scale_areas`).

    Returns:
        (T, M) the column of ``pred`` paired with each truth track, -1 for none.
    """
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
    """The prediction paired with each truth track.

    Args:
        pred: (T, N, K, 2) predicted points.
        match: (T, M) the column of ``pred`` paired with each truth track, -1 for none.

    Returns:
        (T, M, K, 2) the paired predictions, NaN where none.
    """
    t, m = match.shape
    out = np.full((t, m, *pred.shape[2:]), np.nan)
    f, g = np.nonzero(match >= 0)
    out[f, g] = pred[f, match[f, g]]
    return out


class PoseScores(NamedTuple):
    """:func:`pose_metrics`' result: ``metrics`` JSON-ready (NaN -> None); ``error`` (T, M)
    each truth track's mean pixel error per frame (NaN: not paired); ``match`` (T, M) the
    prediction column paired with each truth track (-1: none)."""

    metrics: Metrics
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

    Args:
        truth: (T, M, K, 3) truth x, y, v.
        boxes: (T, M, 4) truth boxes x, y, w, h.
        pred: (T, N, K, 2) predicted points, NaN for missing ones.
        scores: (T, N, K) keypoint scores.
        instance_scores: (T, N) instance scores (they rank the predictions for OKS AP).
        names: the K keypoint names.
        sigmas: (K,) OKS sigmas.
        alpha: the PCK threshold, a fraction of the box's longest side.
        tracks: the M truth track names (for ``per_track``).
        fast: (T, M) bool, frames of fast motion (errors then also split into
            ``mean_px_fast`` and ``mean_px_steady``).

    Returns:
        :class:`PoseScores`: the metrics of :func:`accuracy` plus ``extra_instances`` and
        ``oks``, each truth track's error over time, the pairing and the paired points.
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
    return PoseScores(json_ready(out), over_time, match, paired)


SAME_POINTS_KEYS = ("mean_px", "median_px", "rmse_px", "pck", "jitter_px", "excess_motion_px")
SAME_POINTS_KEYS += ("num_keypoints",)


def same_points(
    truth: np.ndarray, boxes: np.ndarray, paired: np.ndarray, keep: np.ndarray, alpha: float = 0.05
) -> Metrics:
    """Errors and jitter counting only some points: raw and smoothed predictions on the
    points both have, to compare like with like (a smoother leaves out low-scoring points it
    cannot fill, often the worst ones, and fills short gaps).

    Args:
        truth: (T, M, K, 3) truth x, y, v.
        boxes: (T, M, 4) truth boxes x, y, w, h.
        paired: (T, M, K, 2) the prediction paired with each truth track.
        keep: (T, M, K) bool, the points to count.
        alpha: the PCK threshold.

    Returns:
        :data:`SAME_POINTS_KEYS` of :func:`accuracy`, JSON-ready.
    """
    gt, visible = truth_points(truth)
    gt = np.where(np.asarray(keep, bool)[..., None], gt, np.nan)
    out = accuracy(gt, visible, boxes, paired, [""] * gt.shape[2], alpha)
    return json_ready({key: out[key] for key in SAME_POINTS_KEYS})


def accuracy(
    gt: np.ndarray,
    visible: np.ndarray,
    boxes: np.ndarray,
    paired: np.ndarray,
    names: Sequence[str],
    alpha: float = 0.05,
    tracks: Sequence[str] | None = None,
    fast: np.ndarray | None = None,
) -> dict[str, object]:
    """Errors of paired predictions against the truth.

    Counted: points the truth has, in instances with a paired prediction that has them too
    (a paired prediction lacking a point adds to ``missing_keypoints``).

    Args:
        gt: (T, M, K, 2) truth points, NaN: not counted.
        visible: (T, M, K) bool, the truth's visible points.
        boxes: (T, M, 4) truth boxes x, y, w, h (the PCK scale).
        paired: (T, M, K, 2) the prediction paired with each truth track.
        names: the K keypoint names (for ``per_keypoint``).
        alpha: the PCK threshold.
        tracks: the M truth track names (for ``per_track``).
        fast: (T, M) bool, frames of fast motion.

    Returns:
        Errors (px), PCK, jitter, counts, ``per_keypoint`` and ``per_track``; NaN where
        nothing was counted (not yet JSON-ready).
    """
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
    out: dict[str, object] = {
        "mean_px": px["mean"],
        "rmse_px": px["rmse"],
        "median_px": float(np.median(err[counted])) if counted.any() else np.nan,
        "pck_alpha": alpha,
        "pck": acc.overall,
        "mean_px_visible": _mean(err[counted & visible]),
        "mean_px_hidden": _mean(err[counted & ~visible]),
        "jitter_px": jit.jitter_px,
        "motion_px": jit.motion_px,
        "truth_motion_px": jit.truth_motion_px,
        "excess_motion_px": jit.motion_px - jit.truth_motion_px,
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
        {
            "name": name,
            "count": int(px["per_keypoint_count"][j]),
            "mean_px": px["per_keypoint_mean"][j],
            "rmse_px": px["per_keypoint_rmse"][j],
            "pck": acc.per_keypoint[j],
            "jitter_px": jit.per_keypoint[j],
        }
        for j, name in enumerate(names)
    ]
    names_m = list(tracks) if tracks is not None else [str(i) for i in range(m)]
    out["per_track"] = [
        {
            "track": name,
            "frames": int(present[:, i].sum()),
            "matched": int(matched[:, i].sum()),
            "mean_px": _mean(err[:, i][counted[:, i]]),
        }
        for i, name in enumerate(names_m)
    ]
    return out


class Jitter(NamedTuple):
    """:func:`jitter`'s result, px per frame (NaN: no pair of consecutive frames)."""

    jitter_px: float  # mean ||d pred - d truth||
    motion_px: float  # mean ||d pred||
    truth_motion_px: float  # mean ||d truth||
    per_keypoint: np.ndarray  # (K,) jitter_px per keypoint


def jitter(gt: np.ndarray, paired: np.ndarray) -> Jitter:
    """Frame-to-frame motion of the paired predictions against the truth's (module doc).

    Args:
        gt: (T, M, K, 2) truth points, NaN where absent.
        paired: (T, M, K, 2) the prediction paired with each truth track.

    Returns:
        :class:`Jitter`, px per frame.
    """
    both = np.isfinite(gt).all(-1) & np.isfinite(paired).all(-1)  # (T, M, K)
    step = both[1:] & both[:-1]
    d_pred, d_gt = np.diff(paired, axis=0), np.diff(gt, axis=0)
    change = np.where(step, np.linalg.norm(np.nan_to_num(d_pred - d_gt), axis=-1), np.nan)
    with _quiet_nan():
        per_keypoint = np.nanmean(change.reshape(-1, gt.shape[2]), axis=0)
    return Jitter(
        jitter_px=_mean(change[step]),
        motion_px=_mean(np.linalg.norm(np.nan_to_num(d_pred), axis=-1)[step]),
        truth_motion_px=_mean(np.linalg.norm(np.nan_to_num(d_gt), axis=-1)[step]),
        per_keypoint=per_keypoint,
    )


def tracks_array(ids: Sequence[np.ndarray], keypoints: Sequence[np.ndarray], k: int) -> np.ndarray:
    """Per-frame instances with track ids, as one array of tracks.

    Args:
        ids: per frame (M_t,) track ids, -1 untracked (left out).
        keypoints: per frame (M_t, K, 2) points.
        k: K, the number of keypoints.

    Returns:
        (T, N, K, 2) track n in column n, NaN where absent.
    """
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
) -> Metrics:
    """CLEAR-MOT and IDF1 of predicted tracks against the truth's.

    Args:
        truth: (T, M, K, 3) truth x, y, v (column = identity).
        boxes: (T, M, 4) truth boxes x, y, w, h (the OKS scale).
        pred: (T, N, K, 2) predicted tracks (column = track id).
        sigmas: (K,) OKS sigmas.
        threshold: the OKS at which a prediction pairs with a truth instance.
        frames: the T frame numbers (default 0..T-1).

    Returns:
        :func:`~keypointer.metrics.tracking.mot_metrics`' values, JSON-ready, with
        ``switches_per_1000_frames`` and ``switch_frames``: the frame number of every ID
        switch, once per switching truth track, in order.
    """
    gt, _ = truth_points(truth)
    areas = list(scale_areas(gt, boxes))
    gt_ids, gt_kp, pred_ids, pred_kp = _mot_inputs(truth, pred)
    out: dict[str, object] = dict(
        mot_metrics(
            gt_ids, gt_kp, pred_ids, pred_kp, threshold=threshold, sigmas=sigmas, areas=areas
        )
    )
    numbers = list(range(len(truth))) if frames is None else [int(f) for f in frames]
    out["switches_per_1000_frames"] = 1000.0 * out["num_switches"] / max(len(truth), 1)
    out["switch_frames"] = switch_frames(
        gt_ids, gt_kp, pred_ids, pred_kp, areas, sigmas=sigmas, threshold=threshold, numbers=numbers
    )
    return json_ready(out)


def switch_frames(
    gt_ids: Sequence[np.ndarray],
    gt_keypoints: Sequence[np.ndarray],
    pred_ids: Sequence[np.ndarray],
    pred_keypoints: Sequence[np.ndarray],
    areas: Sequence[np.ndarray],
    sigmas: Sequence[float],
    threshold: float,
    numbers: Sequence[int],
) -> list[int]:
    """The frames of :func:`mot_metrics`' ID switches: the same event logic, frame by frame
    (``mot_metrics`` only counts them).

    Args:
        gt_ids, pred_ids: per frame (M_t,) ids; predicted -1 untracked.
        gt_keypoints, pred_keypoints: per frame (M_t, K, 3) or (M_t, K, 2) points.
        areas: per frame (G_t,) OKS scales of the truth.
        sigmas: (K,) OKS sigmas.
        threshold: the OKS at which a prediction pairs with a truth instance.
        numbers: the frame number of each frame.

    Returns:
        The frame number of every switch, once per switching truth track, in order.
    """
    partner: dict[int, int] = {}
    owner: dict[int, int] = {}
    out: list[int] = []
    cut = 1.0 - threshold
    frames = mot_frames(gt_ids, gt_keypoints, pred_ids, pred_keypoints, areas)
    for f, (gid, gkp, gar, pid, pkp) in enumerate(frames):
        cost = np.full((len(gid), len(pid)), np.inf)
        if len(gid) and len(pid):
            d = pose_distances(gkp, pkp, "oks", sigmas, gar)
            cost = np.where(d <= cut, d, np.inf)
        out += [numbers[f]] * frame_events(gid, pid, cost, partner, owner)[2]
    return out


class Tracks(Protocol):
    """A video's finished tracks (what :class:`keypointer.inference.tracks.VideoTracks`
    holds): T' frames predicted, N tracks, K keypoints, NaN where absent."""

    numbers: np.ndarray  # (T',) frame numbers
    raw: np.ndarray  # (T', N, K, 2) image px
    final: np.ndarray  # (T', N, K, 2): smoothed when smoothing ran, else raw
    scores: np.ndarray  # (T', N, K)
    instance_scores: np.ndarray  # (T', N)
    tracks: list[str]  # the N track names
    smoothed: bool
    multi: bool


class FrameInstances(Protocol):
    """The per-frame instances the tracks were made of (what
    :class:`keypointer.inference.tracks.VideoTable` holds), before any tracking."""

    times: list[float]  # (T',) seconds
    keypoints: list[np.ndarray]  # per frame (M_t, K, 2)
    scores: list[np.ndarray]  # per frame (M_t, K)

    def __len__(self) -> int: ...


class VideoCurves(NamedTuple):
    """What the plots of a video evaluation need, over the T frames of the truth."""

    raw: PoseScores  # the tracker's raw tracks
    smoothed: PoseScores | None  # the smoothed tracks; None without smoothing
    points: np.ndarray  # (T, N, K, 2) the tracker's raw tracks
    tracker: np.ndarray  # (T, M) the track id paired with each truth track, -1: none
    nearest_centroid: np.ndarray  # (T, M) the same for the nearest-centroid baseline


def score_tracks(
    truth: VideoTruth,
    tracks: Tracks,
    instances: FrameInstances,
    alpha: float = 0.05,
    max_instances: int | None = None,
) -> tuple[Metrics, VideoCurves]:
    """Score a video's tracks against its truth: pose accuracy of the raw (and smoothed)
    tracks, and identities of the tracker against the nearest-centroid baseline re-tracking
    the very same per-frame instances.

    Args:
        truth: the known tracks; every frame of ``tracks`` is one of ``truth.frames``.
        tracks: the tracker's tracks of the frames predicted.
        instances: the per-frame instances ``tracks`` were made of.
        alpha: the PCK threshold, a fraction of the truth box's longest side.
        max_instances: the known number of animals the baseline may track (None: any).

    Returns:
        The metrics (JSON-ready: ``pose`` raw, smoothed and on the points both have,
        ``tracking`` per method, counts) and the :class:`VideoCurves`. Truth frames without
        a prediction count as frames without predictions.
    """
    rows = np.searchsorted(truth.frames, tracks.numbers)
    t, k, sigmas = len(truth.frames), len(truth.names), truth.skeleton.oks_sigmas

    def on_truth(a: np.ndarray) -> np.ndarray:
        full = np.full((t, *a.shape[1:]), np.nan)
        full[rows] = a
        return full

    def pose(points: np.ndarray) -> PoseScores:
        return pose_metrics(
            truth=truth.keypoints,
            boxes=truth.boxes,
            pred=points,
            scores=on_truth(tracks.scores),
            instance_scores=on_truth(tracks.instance_scores),
            names=truth.names,
            sigmas=sigmas,
            alpha=alpha,
            tracks=truth.tracks,
            fast=truth.fast,
        )

    raw = on_truth(tracks.raw)
    base_ids = nearest_centroid_ids(
        instances.keypoints,
        instances.scores,
        np.asarray(instances.times),
        max_instances=max_instances,
    )
    base = on_truth(tracks_array(base_ids, instances.keypoints, k))
    raw_scores = pose(raw)
    smoothed = pose(on_truth(tracks.final)) if tracks.smoothed else None
    common = None  # both on the points both have: like against like
    if smoothed is not None:
        kept = np.isfinite(smoothed.paired).all(-1) & np.isfinite(raw_scores.paired).all(-1)
        common = {
            name: same_points(truth.keypoints, truth.boxes, scored.paired, kept, alpha)
            for name, scored in (("raw", raw_scores), ("smoothed", smoothed))
        }
    gt, _ = truth_points(truth.keypoints)
    curves = VideoCurves(
        raw=raw_scores,
        smoothed=smoothed,
        points=raw,
        tracker=raw_scores.match,
        nearest_centroid=match_poses(gt, base, sigmas, scale_areas(gt, truth.boxes)),
    )
    tracking = {
        name: tracking_metrics(truth.keypoints, truth.boxes, points, sigmas, frames=truth.frames)
        for name, points in (("tracker", raw), ("nearest_centroid", base))
    }
    pose_scores = {
        "raw": raw_scores.metrics,
        "smoothed": smoothed.metrics if smoothed else None,
        "common_points": common,
    }
    metrics: Metrics = {
        "alpha": alpha,
        "fps": truth.fps,
        "num_frames": t,
        "num_frames_predicted": len(instances),
        "truth_tracks": list(truth.tracks),
        "predicted_tracks": len(tracks.tracks),
        "tracked": tracks.multi,
        "pose": pose_scores,
        "tracking": tracking,
    }
    return metrics, curves


def _mot_inputs(
    truth: np.ndarray, pred: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Per-frame (truth ids, truth (M, K, 3), predicted ids, predicted (P, K, 2))."""
    m = truth.shape[1]
    on = _present(pred)
    pred_ids = [np.flatnonzero(row) for row in on]
    pred_kp = [pred[f, ids] for f, ids in enumerate(pred_ids)]
    return [np.arange(m)] * len(truth), list(truth), pred_ids, pred_kp


def _oks(
    gt: np.ndarray,
    boxes: np.ndarray,
    pred: np.ndarray,
    scores: np.ndarray,
    instance_scores: np.ndarray,
    sigmas: Sequence[float],
) -> dict[str, float]:
    """COCO OKS AP/AR with each frame an image. A prediction's missing point goes FAR away:
    it adds 0 to the OKS, as COCO counts a point the prediction lacks (COCOeval itself needs
    every value, and would drop the whole instance)."""
    g_on, p_on = _present(gt), _present(pred)
    pred = np.where(np.isfinite(pred).all(-1, keepdims=True), pred, FAR)
    frames = range(len(gt))
    stats = located_oks(
        pred=[pred[f, p_on[f]] for f in frames],
        scores=[np.nan_to_num(scores[f, p_on[f]]) for f in frames],
        instance_scores=[np.nan_to_num(instance_scores[f, p_on[f]]) for f in frames],
        gt=[gt[f, g_on[f]] for f in frames],
        visible=[np.isfinite(gt[f, g_on[f]]).all(-1) for f in frames],
        bboxes=[boxes[f, g_on[f]] for f in frames],
        sigmas=sigmas,
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
