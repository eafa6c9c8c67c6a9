"""MOT-style identity metrics for keypoint tracks: CLEAR-MOT (MOTA, switches, fragmentations)
and the ID measures (IDF1), from ground truth and predictions that both carry identities.

Inputs are per-frame lists: frame t holds ``ids`` (M_t,) ints and keypoints (M_t, K, 2) in
image pixels (x, y), NaN for a missing point; (M_t, K, 3) arrays are read as COCO (x, y, v)
with v = 0 meaning absent. An instance with no finite keypoint is not in that frame (nothing
to match, nothing to miss), and a predicted id of -1 means "not tracked" (the instance is no
hypothesis and is ignored).

A ground-truth and a predicted instance may be paired when their distance passes the
threshold: ``match="oks"``: 1 - OKS <= 1 - threshold (OKS as COCO computes it, scale s^2 = the
area of the ground truth's keypoint box unless ``areas`` are given, k = 2 sigma);
``match="pixels"``: mean distance over the keypoints both have <= threshold pixels.

The event logic is that of py-motmetrics (``MOTAccumulator.update``, Bernardin & Stiefelhagen
2008): each frame first keeps last frame's correspondences that are still within the
threshold, then pairs the rest by a minimum-cost assignment that first maximises the number of
pairs; a pair that contradicts the ground truth's previous partner is an ID switch. One
difference: when two ground-truth tracks last had the same prediction, only the later pair
is kept in the first step (py-motmetrics keeps the one listed first, so its counts can
depend on the order of instances within a frame; ours do not). IDF1 is
Ristani et al. 2016 (global one-to-one assignment of ground-truth to predicted tracks).

We implement it here (~150 lines) rather than depend on py-motmetrics: that package works with
numpy 2 / pandas 3 but pulls in pandas (not otherwise a keypointer dependency), was last
released in 2022, and is slow per frame; tests/metrics/test_tracking_metrics.py checks our
numbers against it when it is installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, TypedDict

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from keypointer.errors import DataError
from keypointer.skeleton import DEFAULT_SIGMA


class MotMetrics(TypedDict):
    """:func:`mot_metrics`' result, all floats (counts too)."""

    mota: float
    motp: float
    idf1: float
    idp: float
    idr: float
    num_switches: float
    num_fragmentations: float
    num_misses: float
    num_false_positives: float
    num_matches: float
    num_detections: float
    num_objects: float
    num_predictions: float
    num_frames: float
    num_unique_objects: float
    idtp: float
    idfp: float
    idfn: float


MOT_KEYS = tuple(MotMetrics.__annotations__)


class MotFrame(NamedTuple):
    """One frame's instances that take part, from :func:`mot_frames`."""

    gt_ids: np.ndarray  # (G,) int64
    gt_keypoints: np.ndarray  # (G, K, 2) image pixels, NaN for a missing point
    gt_areas: np.ndarray | None  # (G,) OKS scales s^2, or None: the keypoint boxes'
    pred_ids: np.ndarray  # (P,) int64, tracked only
    pred_keypoints: np.ndarray  # (P, K, 2)


def min_cost_matching(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of a minimum-cost one-to-one matching; inf or NaN = may not pair.

    Among matchings it first maximises the number of allowed pairs, then minimises their
    cost (forbidden pairs get a cost larger than any full matching of allowed ones, as
    py-motmetrics does), because scipy's ``linear_sum_assignment`` takes no forbidden pairs.

    Args:
        cost: (R, C) costs.

    Returns:
        rows (M,) and columns (M,) of the pairs.
    """
    cost = np.asarray(cost, dtype=np.float64)
    valid = np.isfinite(cost)
    if not valid.any():
        return np.zeros(0, int), np.zeros(0, int)
    big = 2 * min(cost.shape) * (np.abs(cost[valid]).max() + 1) + 1
    rows, cols = linear_sum_assignment(np.where(valid, cost, big))
    keep = valid[rows, cols]
    return rows[keep], cols[keep]


def pose_distances(
    gt: np.ndarray,
    pred: np.ndarray,
    match: str = "oks",
    sigmas: Sequence[float] | None = None,
    areas: np.ndarray | None = None,
) -> np.ndarray:
    """Distances between every ground-truth and every predicted pose.

    A pair with no keypoint in common is at distance inf (pixels) or 1 (OKS).

    Args:
        gt: (G, K, 2) image pixels, NaN for a missing point.
        pred: (P, K, 2) image pixels, NaN for a missing point.
        match: "oks" for 1 - OKS, "pixels" for the mean distance over shared keypoints.
        sigmas: (K,) OKS sigmas; default ``DEFAULT_SIGMA`` each.
        areas: (G,) OKS scales s^2; default the ground truth's keypoint box w * h.

    Returns:
        (G, P) distances.
    """
    diff = gt[:, None] - pred[None]  # (G, P, K, 2)
    d2 = np.sum(diff**2, axis=-1)
    labelled = np.isfinite(gt).all(-1)  # (G, K)
    if match == "pixels":
        both = np.isfinite(d2)
        total = np.sum(np.sqrt(np.where(both, d2, 0.0)), axis=-1)
        return np.where(both.any(-1), total / np.maximum(both.sum(-1), 1), np.inf)
    if match != "oks":
        raise ValueError(f"match must be 'oks' or 'pixels', not {match!r}")
    k = 2 * np.asarray(sigmas if sigmas is not None else [DEFAULT_SIGMA] * gt.shape[1])
    if areas is None:
        span = np.nanmax(gt, axis=1) - np.nanmin(gt, axis=1)  # (G, 2)
        areas = span[:, 0] * span[:, 1]
    s2 = np.asarray(areas, dtype=np.float64)[:, None, None] + np.spacing(1)  # as cocoeval
    sim = np.where(np.isfinite(d2), np.exp(-np.nan_to_num(d2) / (2 * s2 * k**2)), 0.0)
    oks = np.sum(sim * labelled[:, None], axis=-1) / np.maximum(labelled.sum(-1), 1)[:, None]
    return 1.0 - oks


def mot_metrics(
    gt_ids: Sequence[npt.ArrayLike],
    gt_keypoints: Sequence[npt.ArrayLike],
    pred_ids: Sequence[npt.ArrayLike],
    pred_keypoints: Sequence[npt.ArrayLike],
    threshold: float = 0.5,
    match: str = "oks",
    sigmas: Sequence[float] | None = None,
    areas: Sequence[npt.ArrayLike] | None = None,
) -> MotMetrics:
    """CLEAR-MOT and ID metrics of predicted tracks against ground-truth tracks.

    Args:
        gt_ids: per frame (G_t,) ints.
        gt_keypoints: per frame (G_t, K, 2) image pixels with NaN for a missing point, or
            (G_t, K, 3) with v = 0 for absent.
        pred_ids: per frame (P_t,) ints; -1 = untracked (ignored).
        pred_keypoints: per frame (P_t, K, 2) or (P_t, K, 3), as ``gt_keypoints``.
        threshold: OKS at least this (``match="oks"``, default 0.5), or mean keypoint
            distance at most this many pixels (``match="pixels"``).
        match: "oks" or "pixels", see :func:`pose_distances`.
        sigmas: (K,) OKS sigmas (default ``DEFAULT_SIGMA`` each).
        areas: per frame (G_t,) OKS scales s^2 of the ground truth (default: keypoint box
            w * h).

    Returns:
        ``MOT_KEYS``: mota = 1 - (misses + switches + false positives) / objects; motp = mean
        distance of the paired instances (1 - OKS, or pixels); idf1 / idp / idr; counts as
        floats: num_detections pairs in all, of which num_switches changed partner and
        num_matches did not (py-motmetrics' names). Ratios are NaN when their denominator
        is 0.
    """
    if match not in ("oks", "pixels"):
        raise ValueError(f"match must be 'oks' or 'pixels', not {match!r}")
    frames = mot_frames(gt_ids, gt_keypoints, pred_ids, pred_keypoints, areas)
    cut = 1.0 - threshold if match == "oks" else threshold
    c = dict.fromkeys(("num_detections", "num_switches", "num_misses", "num_false_positives"), 0)
    partner: dict[int, int] = {}  # ground-truth id -> predicted id it was last matched to
    owner: dict[int, int] = {}  # predicted id -> ground-truth id it was last matched to
    status: dict[int, list[bool]] = {}  # ground-truth id -> matched or not, per frame present
    pair_frames: dict[tuple[int, int], int] = {}  # frames where (gt, pred) were within reach
    dist_sum, n_obj, n_pred = 0.0, 0, 0
    for gid, gkp, gar, pid, pkp in frames:
        d = pose_distances(gkp, pkp, match, sigmas, gar) if len(gid) and len(pid) else None
        reach = np.zeros((len(gid), len(pid)), bool) if d is None else d <= cut
        for i, j in zip(*np.nonzero(reach), strict=True):
            key = (int(gid[i]), int(pid[j]))
            pair_frames[key] = pair_frames.get(key, 0) + 1
        cost = np.full(reach.shape, np.inf) if d is None else np.where(reach, d, np.inf)
        rows, cols, switches = frame_events(gid, pid, cost, partner, owner)
        c["num_detections"] += len(rows)
        c["num_switches"] += switches
        c["num_misses"] += len(gid) - len(rows)
        c["num_false_positives"] += len(pid) - len(rows)
        dist_sum += float(d[rows, cols].sum()) if len(rows) else 0.0
        matched = set(rows.tolist())
        for i, g in enumerate(gid.tolist()):
            status.setdefault(g, []).append(i in matched)
        n_obj, n_pred = n_obj + len(gid), n_pred + len(pid)
    out = {k: float(v) for k, v in c.items()}
    out["num_matches"] = out["num_detections"] - out["num_switches"]  # py-motmetrics' names
    out["num_fragmentations"] = float(sum(_fragmentations(s) for s in status.values()))
    out.update(_id_measures(pair_frames, n_obj, n_pred))
    out.update(num_objects=float(n_obj), num_predictions=float(n_pred))
    out.update(num_frames=float(len(frames)), num_unique_objects=float(len(status)))
    errors = c["num_misses"] + c["num_switches"] + c["num_false_positives"]
    out["mota"] = 1.0 - errors / n_obj if n_obj else float("nan")
    pairs = c["num_detections"]
    out["motp"] = dist_sum / pairs if pairs else float("nan")
    return {k: out[k] for k in MOT_KEYS}


def frame_events(
    gid: np.ndarray,
    pid: np.ndarray,
    cost: np.ndarray,
    partner: dict[int, int],
    owner: dict[int, int],
) -> tuple[np.ndarray, np.ndarray, int]:
    """One frame's matches and ID switches, by py-motmetrics' event logic (module doc).

    Args:
        gid: (G,) ground-truth ids.
        pid: (P,) predicted ids.
        cost: (G, P) distances, inf where a pair is out of reach.
        partner: ground-truth id -> the predicted id it was last paired with; updated.
        owner: predicted id -> the ground-truth id it was last paired with; updated.

    Returns:
        rows (M,) and columns (M,) of the pairs, and the number of ID switches.
    """
    cost = cost.copy()
    kept_r, kept_c = [], []
    col_of = {int(h): j for j, h in enumerate(pid)}
    for i, g in enumerate(gid.tolist()):  # 1. keep last frame's partners when still in reach
        h = partner.get(g)
        # Only the pair still current both ways, so the result ignores the instances' order
        # (py-motmetrics lets the first listed ground truth keep a prediction two had).
        if h in col_of and owner.get(h) == g and np.isfinite(cost[i, col_of[h]]):
            kept_r.append(i)
            kept_c.append(col_of[h])
    cost[kept_r, :] = np.inf
    cost[:, kept_c] = np.inf
    rows, cols = min_cost_matching(cost)  # 2. pair the rest; a changed partner is a switch
    switches = 0
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        g, h = int(gid[i]), int(pid[j])
        switches += g in partner and partner[g] != h
        partner[g], owner[h] = h, g
    return np.r_[kept_r, rows].astype(int), np.r_[kept_c, cols].astype(int), switches


def _fragmentations(tracked: list[bool]) -> int:
    """Times a ground-truth track goes from tracked to missed and is later tracked again."""
    t = np.asarray(tracked)
    if not t.any():
        return 0
    first, last = np.flatnonzero(t)[[0, -1]]
    span = t[first : last + 1]
    return int(np.sum(span[:-1] & ~span[1:]))


def _id_measures(
    pair_frames: dict[tuple[int, int], int], n_obj: int, n_pred: int
) -> dict[str, float]:
    """IDTP from the one-to-one track assignment with most frames in reach; IDF1, IDP, IDR."""
    idtp = 0
    if pair_frames:
        gs = sorted({g for g, _ in pair_frames})
        ps = sorted({p for _, p in pair_frames})
        counts = np.zeros((len(gs), len(ps)))
        for (g, p), n in pair_frames.items():
            counts[gs.index(g), ps.index(p)] = n
        rows, cols = linear_sum_assignment(counts, maximize=True)
        idtp = int(counts[rows, cols].sum())

    def ratio(a: float, b: float) -> float:
        return a / b if b else float("nan")

    return {
        "idtp": float(idtp),
        "idfp": float(n_pred - idtp),
        "idfn": float(n_obj - idtp),
        "idf1": ratio(2 * idtp, n_obj + n_pred),
        "idp": ratio(idtp, n_pred),
        "idr": ratio(idtp, n_obj),
    }


def mot_frames(
    gt_ids: Sequence[npt.ArrayLike],
    gt_keypoints: Sequence[npt.ArrayLike],
    pred_ids: Sequence[npt.ArrayLike],
    pred_keypoints: Sequence[npt.ArrayLike],
    areas: Sequence[npt.ArrayLike] | None,
) -> list[MotFrame]:
    """The checked instances of each frame that take part in :func:`mot_metrics`.

    Args:
        gt_ids: per frame (G_t,) ints.
        gt_keypoints: per frame (G_t, K, 2) or (G_t, K, 3), as in :func:`mot_metrics`.
        pred_ids: per frame (P_t,) ints; -1 = untracked.
        pred_keypoints: per frame (P_t, K, 2) or (P_t, K, 3).
        areas: per frame (G_t,) OKS scales, or None.

    Returns:
        One :class:`MotFrame` per frame: instances with a finite keypoint, tracked
        predictions only. :class:`DataError` when frame counts, shapes or ids do not fit.
    """
    n = len(gt_ids)
    lengths = (len(gt_keypoints), len(pred_ids), len(pred_keypoints))
    if any(m != n for m in lengths) or (areas is not None and len(areas) != n):
        raise DataError(f"frame counts differ: {n} ground-truth id lists, {lengths} others")
    out, k = [], None
    for t in range(n):
        gid, gkp, keep = _instances(gt_ids[t], gt_keypoints[t], t, "ground truth", k, False)
        k = gkp.shape[1] if len(gkp) else k
        pid, pkp, pkeep = _instances(pred_ids[t], pred_keypoints[t], t, "prediction", k, True)
        k = pkp.shape[1] if len(pkp) else k
        pkeep &= pid >= 0
        gar = None if areas is None else np.asarray(areas[t], dtype=np.float64)[keep]
        out.append(MotFrame(gid[keep], gkp[keep], gar, pid[pkeep], pkp[pkeep]))
    return out


def _instances(
    ids: npt.ArrayLike, kp: npt.ArrayLike, t: int, what: str, k: int | None, untracked: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, keypoints (M, K, 2) with NaN for absent points, present (M,)) of one frame."""
    ids = np.asarray(ids).reshape(-1).astype(np.int64)
    kp = np.asarray(kp, dtype=np.float64)
    if kp.size == 0 and len(ids) == 0:
        return ids, np.zeros((0, k or 0, 2)), np.zeros(0, bool)
    if kp.ndim != 3 or kp.shape[-1] not in (2, 3) or len(kp) != len(ids):
        raise DataError(
            f"{what} keypoints {kp.shape} do not fit {len(ids)} ids", None, f"frame {t}"
        )
    if k is not None and kp.shape[1] != k:
        raise DataError(f"{what} has {kp.shape[1]} keypoints, expected {k}", None, f"frame {t}")
    real = ids[ids >= 0] if untracked else ids  # several untracked (-1) predictions are fine
    if len(np.unique(real)) != len(real):
        raise DataError(f"{what} repeats an id within a frame: {ids.tolist()}", None, f"frame {t}")
    if kp.shape[-1] == 3:
        kp = np.where((kp[..., 2:] > 0), kp[..., :2], np.nan)
    kp = np.where(np.isfinite(kp).all(-1, keepdims=True), kp, np.nan)
    return ids, kp, np.isfinite(kp).all(-1).any(-1)
