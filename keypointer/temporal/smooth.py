"""Smoothing of keypoint tracks over time: Savitzky-Golay, running median, or a
confidence-weighted constant-velocity Kalman filter with a Rauch-Tung-Striebel smoother.

Arrays: frames along the first axis; ``xy`` (T, K, 2) in image pixels (NaN: no value),
``scores`` (T, K), ``times`` (T,) seconds, strictly increasing. Every method runs the same steps
per keypoint:

1. A point counts as missing when it has no value or scores below ``min_score``.
2. Outliers count as missing too: points further from a running median (the same window) than
   :data:`OUTLIER_SIGMAS` robust standard deviations of that keypoint's distances to it
   (Hampel's rule). A one-frame mislocalisation is then dropped, not spread over the window.
   :func:`spike_outliers` names these points (``keypointer predict`` flags them ``jump``).
3. The track splits into segments at gaps longer than ``max_gap`` frames; shorter gaps are
   filled (linear interpolation in time for savgol/median, the model's prediction for kalman).
   Longer gaps, and frames before a keypoint's first or after its last value, stay NaN.
4. The filter runs on each segment. All three are symmetric in time: no lag.

The window is set in seconds and converted with the median frame interval, so one setting
suits 30 and 250 fps. Irregular times (variable frame rate, dropped frames): savgol and median
assume equal spacing, so a segment whose intervals differ from the median by more than
:data:`UNIFORM_TOLERANCE` is resampled onto an even grid at the median interval, filtered,
and read back at the frame times (both linear interpolation). The Kalman filter uses each
frame's own interval.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import median_filter
from scipy.signal import savgol_coeffs, savgol_filter

from keypointer.config import KEYPOINT_SCORE_THRESHOLD
from keypointer.errors import ConfigError, DataError

METHODS = ("savgol", "median", "kalman")
# Seconds: where the error on synthetic tracks at 30 and 250 fps was least, the smaller where
# two tie (safer for fast motion; the median clips fast motion's peaks as its window grows).
# Measured: benchmarks/RESULTS.md, "Temporal smoothing and outlier flags".
DEFAULT_WINDOW = {"savgol": 0.2, "median": 0.1, "kalman": 0.2}
POLYORDER = 2  # savgol: quadratic, as movement and DeepLabCut use; smooths from 5 frames on
OUTLIER_SIGMAS = 5.0  # Rayleigh tail above 5 sigma: 4e-6 of clean points are dropped
OUTLIER_FRAMES = 5  # running median for the outlier test: removes excursions up to 2 frames
MIN_NOISE_PX = 0.5  # floor of the robust noise estimate: quantised predictions have MAD 0
UNIFORM_TOLERANCE = 0.01  # relative interval deviation that still counts as equal spacing
MAX_FIT_FRAMES = 201  # savgol windows up to this use cached fit matrices (frames x frames)
RAYLEIGH_MEDIAN = float(np.sqrt(2 * np.log(2)))  # median of a 2-D Gaussian's radius / sigma


def smooth(
    xy: np.ndarray,
    scores: np.ndarray,
    times: np.ndarray,
    method: str,
    min_score: float = KEYPOINT_SCORE_THRESHOLD,
    max_gap: int = 10,
    window: float | None = None,
) -> np.ndarray:
    """Smooth keypoint tracks over time (the steps of the module doc).

    Args:
        xy: (T, K, 2) image pixels, NaN where missing.
        scores: (T, K).
        times: (T,) seconds, increasing.
        method: one of :data:`METHODS`.
        min_score: points scoring below it count as missing.
        max_gap: gaps up to this many frames are filled, longer ones stay NaN.
        window: the filter's length in seconds (None: the method's :data:`DEFAULT_WINDOW`); for
            kalman it sets the process noise so the smoother passes the frequencies savgol
            passes with that window.

    Returns:
        (T, K, 2) smoothed keypoints in image pixels; NaN where a track has no value.
    """
    xy, scores, times = _check(xy, scores, times, method, max_gap, window)
    if xy.shape[0] == 0 or xy.shape[1] == 0:
        return xy.copy()
    dt, frames = _timing(times, method, window)
    valid = _scored(xy, scores, min_score)
    valid &= ~_outliers(xy, valid, min(frames, OUTLIER_FRAMES))
    start, covered = _segments(valid, max_gap)
    if method == "kalman":
        out = _kalman(xy, scores, times, valid, start, frames, dt)
    else:
        out = np.full(xy.shape, np.nan)
        for k in range(xy.shape[1]):
            for a, b in _runs(covered[:, k]):
                out[a:b, k] = _filter_segment(
                    xy[a:b, k], valid[a:b, k], times[a:b], method, frames, dt
                )
    out[~covered] = np.nan
    return out


def spike_outliers(
    xy: np.ndarray,
    scores: np.ndarray,
    times: np.ndarray,
    method: str,
    min_score: float = KEYPOINT_SCORE_THRESHOLD,
    window: float | None = None,
) -> np.ndarray:
    """The points that :func:`smooth` leaves out as spikes (step 2 of the module doc) although
    they have a value scoring at least ``min_score``. Smoothing replaces them, as it replaces
    missing and low-score points; ``keypointer predict`` flags them ``jump`` so that no point
    changes unflagged.

    Args:
        xy, scores, times, method, min_score, window: as :func:`smooth`.

    Returns:
        (T, K) bool.
    """
    xy, scores, times = _check(xy, scores, times, method, 0, window)
    if xy.shape[0] == 0 or xy.shape[1] == 0:
        return np.zeros(xy.shape[:2], bool)
    _, frames = _timing(times, method, window)
    return _outliers(xy, _scored(xy, scores, min_score), min(frames, OUTLIER_FRAMES))


def _timing(times: np.ndarray, method: str, window: float | None) -> tuple[float, int]:
    """(median frame interval in s, the window in frames)."""
    dt = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    return dt, _window_frames(DEFAULT_WINDOW[method] if window is None else window, dt, method)


def _scored(xy: np.ndarray, scores: np.ndarray, min_score: float) -> np.ndarray:
    """(T, K) points with a value scoring at least ``min_score`` (step 1)."""
    return np.isfinite(xy).all(-1) & (np.nan_to_num(scores, nan=-np.inf) >= min_score)


def _check(
    xy: np.ndarray,
    scores: np.ndarray,
    times: np.ndarray,
    method: str,
    max_gap: int,
    window: float | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The arrays as float64, checked (errors by the rule of :mod:`keypointer.errors`): the
    settings are arguments (ConfigError), shapes that do not fit are the caller's bug
    (ValueError), times that are not finite or go back are the video's (DataError)."""
    if method not in METHODS:
        raise ConfigError(f"unknown smoothing method {method!r}; use one of {', '.join(METHODS)}")
    if max_gap < 0 or (window is not None and not window > 0):
        raise ConfigError(f"need max_gap >= 0 and window > 0 s, got {max_gap} and {window}")
    xy = np.asarray(xy, np.float64)
    scores = np.asarray(scores, np.float64)
    times = np.asarray(times, np.float64)
    if xy.ndim != 3 or xy.shape[2] != 2 or scores.shape != xy.shape[:2]:
        raise ValueError(f"need xy (T, K, 2) and scores (T, K), got {xy.shape} and {scores.shape}")
    if times.shape != (xy.shape[0],):
        raise ValueError(f"need {xy.shape[0]} frame times, got shape {times.shape}")
    if not np.isfinite(times).all():
        raise DataError(
            f"need {xy.shape[0]} finite frame times, got {times[~np.isfinite(times)][0]}"
        )
    if np.any(np.diff(times) <= 0):
        i = int(np.argmax(np.diff(times) <= 0)) + 1
        raise DataError(f"frame times must increase; frame {i} is at {times[i]} s")
    return xy, scores, times


def _window_frames(window: float, dt: float, method: str) -> int:
    """The window in frames: odd, at least 3 (median) or POLYORDER + 3 (savgol, and kalman,
    which borrows savgol's cutoff: a window of POLYORDER + 1 frames fits every point exactly
    and smooths nothing)."""
    n = int(round(window / dt)) // 2 * 2 + 1
    return max(n, 3 if method == "median" else POLYORDER + 3)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True in a 1-D mask."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _segments(valid: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, K) masks: ``start`` where a segment begins (a value after none, or after a gap
    longer than max_gap), ``covered`` the frames inside segments (values and short gaps)."""
    t = valid.shape[0]
    idx = np.arange(t)[:, None]
    prev = np.maximum.accumulate(np.where(valid, idx, -1), axis=0)
    nxt = np.minimum.accumulate(np.where(valid, idx, t)[::-1], axis=0)[::-1]
    before = np.vstack([np.full((1, valid.shape[1]), -1), prev[:-1]])
    start = valid & ((before < 0) | (idx - before - 1 > max_gap))
    covered = valid | ((prev >= 0) & (nxt < t) & (nxt - prev - 1 <= max_gap))
    return start, covered


def _interp(new: np.ndarray, old: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(n, 2) values at times ``old`` read at times ``new`` (linear; the ends held)."""
    return np.stack([np.interp(new, old, values[:, c]) for c in range(2)], -1)


def _fill(times: np.ndarray, values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(n, 2) values with the missing ones linearly interpolated in time."""
    return _interp(times, times[valid], values[valid])


def _outliers(xy: np.ndarray, valid: np.ndarray, frames: int) -> np.ndarray:
    """(T, K) points further than OUTLIER_SIGMAS robust sigmas from the running median of
    their neighbours.

    Gaps are bridged by interpolation only to give the median something to read; the noise
    scale per keypoint is the median distance over the Rayleigh median (2-D Gaussian)."""
    t, k = valid.shape
    filled = np.full(xy.shape, np.nan)
    idx = np.arange(t, dtype=np.float64)
    for j in range(k):
        if valid[:, j].any():
            filled[:, j] = _fill(idx, xy[:, j], valid[:, j])
    # the point itself left out: with it, it is often its own median and the noise looks tiny
    footprint = np.ones((frames, 1, 1), bool)
    footprint[frames // 2] = False
    med = median_filter(np.nan_to_num(filled), footprint=footprint, mode="nearest")
    dist = np.linalg.norm(xy - med, axis=-1)
    dist_valid = np.where(valid, dist, np.nan)
    with np.errstate(all="ignore"):
        typical = np.nanmedian(np.where(valid.any(0), dist_valid, 0.0), axis=0)
    sigma = np.maximum(typical / RAYLEIGH_MEDIAN, MIN_NOISE_PX)
    return valid & (dist > OUTLIER_SIGMAS * sigma)


def _filter_segment(values, valid, times, method, frames, dt) -> np.ndarray:
    """One segment (n, 2) of one keypoint: gaps filled, then savgol or median."""
    filled = _fill(times, values, valid)
    steps = np.diff(times)
    if len(times) > 1 and np.abs(steps - dt).max() > UNIFORM_TOLERANCE * dt:
        n = int(round((times[-1] - times[0]) / dt)) + 1
        grid = np.linspace(times[0], times[-1], max(n, 2))
        on_grid = _filter_even(_interp(grid, times, filled), method, frames)
        return _interp(times, grid, on_grid)
    return _filter_even(filled, method, frames)


def _filter_even(values: np.ndarray, method: str, frames: int) -> np.ndarray:
    """savgol or median along axis 0 of evenly spaced (n, 2) values."""
    n = len(values)
    if method == "median":
        return median_filter(values, size=(frames, 1), mode="nearest")
    frames = min(frames, n if n % 2 else n - 1)
    if frames <= POLYORDER + 1:
        return values  # too short to fit and still smooth
    return savgol_interp(values, frames)


def savgol_interp(values: np.ndarray, frames: int) -> np.ndarray:
    """``scipy.signal.savgol_filter(values, frames, POLYORDER, axis=0, mode="interp")``: the
    ends take the polynomial of the first / last full window. Written as matrix products with
    savgol_coeffs because scipy fits those end polynomials with lstsq on every call, most of
    the time on a track broken into many segments (benchmarks/smoothing.py).

    Args:
        values: (n, 2) evenly spaced values.
        frames: the odd window length, at most n.

    Returns:
        (n, 2) filtered values.
    """
    n, h = len(values), frames // 2
    if frames > MAX_FIT_FRAMES:  # few such long windows: scipy's own edge fits cost little
        return savgol_filter(values, frames, POLYORDER, axis=0, mode="interp")
    fit = _fit_matrix(frames)
    out = np.empty_like(values)
    out[h : n - h] = sliding_window_view(values, frames, axis=0) @ fit[h]
    out[:h] = fit[:h] @ values[:frames]
    out[n - h :] = fit[h + 1 :] @ values[n - frames :]
    return out


@lru_cache(maxsize=64)
def _fit_matrix(frames: int) -> np.ndarray:
    """(frames, frames): row i evaluates the window's least-squares polynomial at position i."""
    rows = [savgol_coeffs(frames, POLYORDER, pos=i, use="dot") for i in range(frames)]
    return np.stack(rows)


def _process_noise(frames: int, dt: float) -> float:
    """Acceleration noise density q (px^2/s^3 per unit measurement variance at score 1) for
    which the kalman smoother halves the power (-3 dB) at the frequency where a savgol filter of
    ``frames`` frames does, so ``window`` means the same for both.

    The steady-state smoother of a constant-velocity model is close to the Wiener filter
    1 / (1 + (f / f0)^4) with f0 = (q / (r dt))^(1/4) / (2 pi), whose -3 dB point is
    f0 (sqrt(2) - 1)^(1/4). savgol's -3 dB point is read off its own coefficients."""
    n = min(frames, MAX_FIT_FRAMES)  # beyond, the cutoff falls as 1 / frames
    coeffs = savgol_coeffs(n, POLYORDER)
    f = np.linspace(0.0, 0.5, 2001)  # cycles per frame
    gain = np.cos(2 * np.pi * f[:, None] * np.arange(-(n // 2), n // 2 + 1)) @ coeffs
    f_cut = f[np.argmax(gain < 2**-0.5)] * n / frames / dt  # Hz
    f0 = f_cut / (np.sqrt(2.0) - 1.0) ** 0.25
    return dt * (2 * np.pi * f0) ** 4


def _kalman(xy, scores, times, valid, start, frames, dt) -> np.ndarray:
    """Constant-velocity Kalman filter + Rauch-Tung-Striebel smoother, (T, K, 2) out.

    State (position, velocity) per keypoint and axis; x and y share one covariance (same model,
    same noise), so the covariance recursion runs on (K,) arrays of its three entries, looped
    over frames. Measurement variance 1 / score^2 (noise std grows as the score falls), infinite
    for missing points. Each segment starts afresh: the first value, velocity unknown (a
    diffuse prior), and the smoother gain into a segment's start is 0, so segments are filtered
    independently. Written here, not taken from filterpy 2.0.0 or pykalman 0.11.2: both give
    the same track many times slower, as they step one keypoint's 4x4 matrices at a time in
    Python; pykalman's public class also takes no per-frame measurement noise (measured:
    benchmarks/RESULTS.md, "Kalman: ours vs filterpy 2.0.0 and pykalman 0.11.2")."""
    t, k = valid.shape
    q = _process_noise(frames, dt)
    r = np.where(valid, 1.0 / np.clip(np.nan_to_num(scores), 1e-3, 1.0) ** 2, np.inf)
    z = np.where(valid[..., None], xy, 0.0)
    h = np.diff(times, prepend=times[0])
    qa, qb, qc = q * h**3 / 3, q * h**2 / 2, q * h
    prior_p, prior_v = 1e6, 1e6 / dt**2
    xp, vp, xf, vf = (np.zeros((t, k, 2)) for _ in range(4))
    pa, pb, pc, f00, f01, f11 = (np.zeros((t, k)) for _ in range(6))
    x, v = np.zeros((k, 2)), np.zeros((k, 2))
    p00, p01, p11 = np.full(k, prior_p), np.zeros(k), np.full(k, prior_v)
    for i in range(t):
        x, a = x + h[i] * v, p00 + h[i] * (2 * p01 + h[i] * p11) + qa[i]
        b, c = p01 + h[i] * p11 + qb[i], p11 + qc[i]
        s = start[i]
        if s.any():
            a, b, c = np.where(s, prior_p, a), np.where(s, 0.0, b), np.where(s, prior_v, c)
            x, v = np.where(s[:, None], z[i], x), np.where(s[:, None], 0.0, v)
        xp[i], vp[i], pa[i], pb[i], pc[i] = x, v, a, b, c
        k0, k1 = a / (a + r[i]), b / (a + r[i])
        innov = z[i] - x
        x, v = x + k0[:, None] * innov, v + k1[:, None] * innov
        p00, p01, p11 = a * (1 - k0), b * (1 - k0), c - k1 * b
        xf[i], vf[i], f00[i], f01[i], f11[i] = x, v, p00, p01, p11
    return _rts(xp, vp, xf, vf, (pa, pb, pc), (f00, f01, f11), h, start)


def _rts(xp, vp, xf, vf, pred, filt, h, start) -> np.ndarray:
    """Rauch-Tung-Striebel pass: smoothed positions (T, K, 2). The gains
    G_i = P_i F_{i+1}^T Pp_{i+1}^-1 need only the forward covariances, so they are computed for
    all frames at once; only the state recursion loops."""
    (a, b, c), (p00, p01, p11) = (m[1:] for m in pred), (m[:-1] for m in filt)
    step = h[1:, None]
    m00, m01, m10, m11 = p00 + step * p01, p01, p01 + step * p11, p11
    det = a * c - b * b
    keep = ~start[1:] / det  # 0 into a segment's start: segments stay independent
    g00, g01 = (m00 * c - m01 * b) * keep, (m01 * a - m00 * b) * keep
    g10, g11 = (m10 * c - m11 * b) * keep, (m11 * a - m10 * b) * keep
    g00, g01, g10, g11 = (g[..., None] for g in (g00, g01, g10, g11))
    xs, vs = xf.copy(), vf.copy()
    for i in range(len(xs) - 2, -1, -1):
        dx, dv = xs[i + 1] - xp[i + 1], vs[i + 1] - vp[i + 1]
        xs[i] = xf[i] + g00[i] * dx + g01[i] * dv
        vs[i] = vf[i] + g10[i] * dx + g11[i] * dv
    return xs
