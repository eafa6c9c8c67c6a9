"""Per-point outlier flags on keypoint tracks, and a per-frame score of how much a frame is
worth labelling.

Arrays: frames along the first axis; ``xy`` (T, K, 2) in image pixels (NaN: no value),
``scores`` (T, K), ``times`` (T,) seconds, increasing; ``flip_gap`` (T, K) pixels between the
plain and the flipped-back prediction (flip test-time augmentation), NaN where unknown.

The jump rule, per keypoint, on its points scoring at least ``min_score`` (the others are
flagged low_score already, and their noise would set the limit). A one-frame mislocalisation
shows as a fast move into a frame and a fast move out of it, back to where the track was. So
each frame gets the slower of its two speeds, in and out, from the neighbouring frames with
values (px/s): a genuine fast motion keeps both high only while it lasts, and a spike makes
one such value per bad frame, not two. The limit is ``jump_factor`` x the ``jump_percentile``
of these values over the video, so the rule needs no units and holds while fewer than
(100 - jump_percentile) % of frames are spikes. A frame is a jump when

- its slower speed passes the limit (a one-frame spike; at the track's ends the one side), or
- it lies in a short excursion: a move above the limit, then within :data:`MAX_EXCURSION`
  frames one back to within half that distance of where it left, or
- its slower speed off the keypoint's course passes that measure's own limit; the course is a
  running median of :data:`COURSE_FRAMES` frames, which follows steps and fast motion but
  not one- or two-frame spikes, so spikes smaller than a frame's motion are found too.

A lasting move (a step) is not flagged: either side of it may be the true one.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.ndimage import median_filter
from scipy.stats import rankdata

from keypointer.config import KEYPOINT_SCORE_THRESHOLD
from keypointer.errors import DataError
from keypointer.temporal.smooth import spike_outliers

MAX_EXCURSION = 5  # frames: longer stays away count as a real move, not a jump
COURSE_FRAMES = 5  # running median: the keypoint's course without one- and two-frame spikes
FLIP_FRACTION = 0.1  # of the instance's size: 2x PCK@0.05's radius, so past it >= 1 side is off


def outlier_flags(
    xy: np.ndarray,
    scores: np.ndarray,
    times: np.ndarray,
    min_score: float = KEYPOINT_SCORE_THRESHOLD,
    jump_percentile: float = 99.0,
    jump_factor: float = 2.0,
    flip_gap: np.ndarray | None = None,
    flip_tolerance: float | None = None,
    smoothing: str | None = None,
) -> dict[str, np.ndarray]:
    """Flag each point of one instance's track that is unsure, jumps, or disagrees with flip.

    Args:
        xy: (T, K, 2) image pixels, NaN where missing.
        scores: (T, K).
        times: (T,) seconds, increasing.
        min_score: points scoring below it are ``low_score``.
        jump_percentile, jump_factor: the jump limit (see the module doc).
        flip_gap: (T, K) pixels between the plain and the flipped-back prediction, or None.
        flip_tolerance: ``flip_gap`` above this many pixels is ``flip``; None:
            :data:`FLIP_FRACTION` of the instance's size in that frame (the longer side of its
            keypoints' extent).
        smoothing: a method of :data:`keypointer.temporal.smooth.METHODS` (run with its
            default window and this ``min_score``): every point its spike test leaves out
            (:func:`~keypointer.temporal.smooth.spike_outliers`) is a ``jump`` too, so each
            point smoothing replaces is flagged ``low_score`` or ``jump``.

    Returns:
        {"low_score", "jump", "flip"}: (T, K) bool each; ``flip`` all False without
        ``flip_gap``.
    """
    xy, scores, times = _check(xy, scores, times, flip_gap)
    has = np.isfinite(xy).all(-1)
    low = ~has | ~(np.nan_to_num(scores, nan=-np.inf) >= min_score)
    jump = np.zeros(low.shape, bool)
    for k in range(xy.shape[1]):
        idx = np.flatnonzero(~low[:, k])  # low-score points are flagged already, and noisy
        if len(idx) >= 3:
            jump[idx[_jumps(xy[idx, k], times[idx], jump_percentile, jump_factor)], k] = True
    if smoothing is not None:
        jump |= spike_outliers(xy, scores, times, smoothing, min_score)
    flip = np.zeros(low.shape, bool)
    if flip_gap is not None:
        tol = _flip_tolerance(xy) if flip_tolerance is None else np.full(len(xy), flip_tolerance)
        flip = np.nan_to_num(np.asarray(flip_gap, np.float64), nan=-np.inf) > tol[:, None]
    return {"low_score": low, "jump": jump, "flip": flip}


def frame_uncertainty(
    flags: dict[str, np.ndarray], scores: np.ndarray, flip_gap: np.ndarray | None = None
) -> np.ndarray:
    """How much each frame is worth labelling.

    The sum of up to three terms in [0, 1], each a mean over the K keypoints: the share flagged
    (any flag), 1 - score (no score counts as 0), and, with ``flip_gap``, each point's gap as a
    rank among its keypoint's gaps in the video (0 smallest, 1 largest; unit-free, so a
    keypoint whose flips always disagree by many pixels does not drown the others).

    Args:
        flags: name -> (T, K) bool, as :func:`outlier_flags` returns.
        scores: (T, K).
        flip_gap: (T, K) pixels, NaN where unknown, or None.

    Returns:
        (T,) float: higher = more worth labelling.
    """
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 2:
        raise ValueError(f"need scores (T, K), got shape {scores.shape}")
    flagged = np.zeros(scores.shape, bool)
    for name, f in flags.items():
        if np.shape(f) != scores.shape:
            raise ValueError(f"flag {name!r} has shape {np.shape(f)}, scores {scores.shape}")
        flagged |= np.asarray(f, bool)
    if scores.shape[1] == 0:
        return np.zeros(len(scores))
    u = flagged.mean(1) + (1 - np.clip(np.nan_to_num(scores, nan=0.0), 0, 1)).mean(1)
    if flip_gap is not None and len(scores):
        gap = np.asarray(flip_gap, np.float64)
        ranks = rankdata(np.where(np.isfinite(gap), gap, np.nan), axis=0, nan_policy="omit")
        count = np.isfinite(gap).sum(0, keepdims=True)
        u += np.nan_to_num((ranks - 1) / np.maximum(count - 1, 1), nan=0.0).mean(1)
    return u


def _check(
    xy: np.ndarray, scores: np.ndarray, times: np.ndarray, flip_gap: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The arrays as float64, checked: shapes that do not fit are the caller's bug
    (ValueError), times that are not finite or go back are the video's (DataError)."""
    xy = np.asarray(xy, np.float64)
    scores = np.asarray(scores, np.float64)
    times = np.asarray(times, np.float64)
    if xy.ndim != 3 or xy.shape[2] != 2 or scores.shape != xy.shape[:2]:
        raise ValueError(f"need xy (T, K, 2) and scores (T, K), got {xy.shape} and {scores.shape}")
    if times.shape != (len(xy),):
        raise ValueError(f"need {len(xy)} frame times, got shape {times.shape}")
    if not np.isfinite(times).all() or np.any(np.diff(times) <= 0):
        raise DataError(f"need {len(xy)} finite, increasing frame times")
    if flip_gap is not None and np.shape(flip_gap) != scores.shape:
        raise ValueError(f"flip_gap has shape {np.shape(flip_gap)}, scores {scores.shape}")
    return xy, scores, times


def _jumps(p: np.ndarray, times: np.ndarray, percentile: float, factor: float) -> np.ndarray:
    """Indices into ``p`` (n, 2), one keypoint's frames that have values, that are jumps: by
    the raw speeds (with excursions), or by the speeds off the keypoint's course."""
    flagged = _raw_jumps(p, times, percentile, factor)
    if len(p) > 2 * (COURSE_FRAMES // 2):
        off = p - median_filter(p, size=(COURSE_FRAMES, 1), mode="nearest")
        over = _over_limit(off, times, percentile, factor)[1]
        ends = COURSE_FRAMES // 2  # too few neighbours there: the raw rule decides
        flagged.update((np.flatnonzero(over[ends:-ends]) + ends).tolist())
    return np.array(sorted(flagged), dtype=int)


def _over_limit(p, times, percentile, factor) -> tuple[np.ndarray, np.ndarray, float]:
    """Speeds into each frame after the first (n - 1,), the frames whose slower speed (in or
    out) passes factor x its percentile (n,), and that limit."""
    speed = np.linalg.norm(np.diff(p, axis=0), axis=-1) / np.diff(times)
    into = np.concatenate([[np.inf], speed])
    out = np.concatenate([speed, [np.inf]])
    slower = np.minimum(into, out)  # the track's ends have one side: that one counts
    limit = factor * np.percentile(slower, percentile)
    return speed, slower > limit, limit


def _raw_jumps(p, times, percentile, factor) -> set[int]:
    speed, over, limit = _over_limit(p, times, percentile, factor)
    # an end's one fast move may be its neighbour's spike: then only the neighbour is one
    over[0] &= not over[1]
    over[-1] &= not over[-2]
    flagged = set(np.flatnonzero(over).tolist())
    events = np.flatnonzero(speed > limit) + 1  # frames arrived at by a fast move
    for e, u in zip(events[:-1], events[1:], strict=True):
        back = np.linalg.norm(p[u] - p[e - 1]) < 0.5 * np.linalg.norm(p[e] - p[e - 1])
        if u - e <= MAX_EXCURSION and back:
            flagged.update(range(e, u))
    return flagged


def _flip_tolerance(xy: np.ndarray) -> np.ndarray:
    """(T,) FLIP_FRACTION of each frame's instance size (longer side of the keypoints' extent);
    frames without a size (fewer than two points) take the video's median size; inf when no
    frame has one (then nothing is flagged)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # frames with no points: NaN
        extent = np.nanmax(xy, axis=1) - np.nanmin(xy, axis=1)
    size = np.nan_to_num(extent.max(-1), nan=0.0) if len(xy) else np.zeros(0)
    good = size > 0
    fallback = np.median(size[good]) if good.any() else np.inf
    return FLIP_FRACTION * np.where(good, size, fallback)
