"""keypointer.temporal.smooth: exact on tracks the filters must keep, gaps, irregular times, and
known-truth trajectories (error, jitter, lag: helpers.synthetic_tracks and track_metrics,
which benchmarks/smoothing.py also uses)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import synthetic_tracks, track_metrics
from hypothesis import given, settings
from hypothesis import strategies as st

from keypointer.errors import ConfigError, DataError
from keypointer.temporal.smooth import METHODS, smooth


def test_synthetic_tracks_are_what_they_say():
    truth, xy, scores, times = synthetic_tracks(num_frames=300, seed=1)
    assert truth.shape == xy.shape == (300, 6, 2) and scores.shape == (300, 6)
    np.testing.assert_allclose(np.diff(times), 1 / 30)
    err = np.linalg.norm(xy - truth, axis=-1)
    assert 0.5 < np.median(err[scores > 0.6]) < 4  # noise of 1.5 / score px
    assert (scores < 0.3).any() and (err > 19).any()  # low-score stretches and spikes exist


@pytest.mark.parametrize("fps", [30.0, 250.0])
@pytest.mark.parametrize("method", METHODS)
def test_known_truth_less_error_less_jitter_no_lag(method, fps):
    """On the frames with a usable raw value: less error and jitter, no lag; and the short
    low-score stretches are filled. The median filter clips the peaks of fast motion, so it
    gains least at 30 fps (benchmarks/smoothing.py)."""
    truth, xy, scores, times = synthetic_tracks(num_frames=int(20 * fps), fps=fps, seed=2)
    usable = (scores >= 0.3)[..., None]
    out = smooth(xy, scores, times, method)
    before = track_metrics(np.where(usable, xy, np.nan), truth)
    after = track_metrics(np.where(usable, out, np.nan), truth)
    assert after["error"] < (0.95 if method == "median" else 0.7) * before["error"]
    assert after["jitter"] < 0.6 * before["jitter"]
    assert after["lag"] == 0
    assert np.isfinite(out).all(-1).mean() > usable.mean() + 0.01  # gaps up to 10 frames filled


@settings(max_examples=30, deadline=None)
@given(
    method=st.sampled_from(METHODS),
    value=st.tuples(st.floats(-1e4, 1e4), st.floats(-1e4, 1e4)),
    num_frames=st.integers(1, 60),
    fps=st.sampled_from([10.0, 30.0, 250.0]),
)
def test_constant_track_is_kept(method, value, num_frames, fps):
    xy = np.broadcast_to(np.array(value), (num_frames, 3, 2)).copy()
    times = np.arange(num_frames) / fps
    out = smooth(xy, np.ones((num_frames, 3)), times, method)
    np.testing.assert_allclose(out, xy, atol=1e-6 * (1 + np.abs(value).max()))


@settings(max_examples=40, deadline=None)
@given(
    method=st.sampled_from(METHODS),
    velocity=st.tuples(st.floats(-300, 300), st.floats(-300, 300)),
    steps=st.lists(st.floats(0.5, 1.6), min_size=2, max_size=80),
    fps=st.sampled_from([30.0, 250.0]),
)
def test_linear_track_is_kept_also_at_irregular_times(method, velocity, steps, fps):
    times = np.concatenate([[0.0], np.cumsum(steps)]) / fps
    xy = (50.0 + times[:, None] * np.array(velocity))[:, None, :]
    out = smooth(xy, np.ones((len(times), 1)), times, method)
    np.testing.assert_allclose(out, xy, atol=1e-4)


@pytest.mark.parametrize("method", ["median", "kalman"])
def test_single_spike_is_removed(method):
    rng = np.random.default_rng(0)
    t = 300
    times = np.arange(t) / 30
    truth = np.stack([100 + 20 * np.sin(times), 80 + 10 * np.cos(times)], -1)[:, None]
    xy = truth + rng.normal(0, 0.5, truth.shape)
    xy[150] += [40.0, -30.0]
    out = smooth(xy, np.full((t, 1), 0.9), times, method)
    assert np.linalg.norm(out[150, 0] - truth[150, 0]) < 1.0
    assert np.abs(out - truth).max() < 2.0  # the neighbours are not pulled either


@settings(max_examples=40, deadline=None)
@given(
    method=st.sampled_from(METHODS),
    max_gap=st.integers(0, 12),
    gap=st.integers(1, 20),
    lead=st.integers(0, 5),
)
def test_gaps_up_to_max_gap_are_filled_longer_stay_nan(method, max_gap, gap, lead):
    t = 80
    times = np.arange(t) / 30
    xy = np.stack([10 + 3 * times, 20 - times], -1)[:, None].repeat(2, 1)
    scores = np.ones((t, 2))
    xy[:lead, 0] = np.nan  # before the first value: stays NaN
    scores[30 : 30 + gap, 0] = 0.1  # a low-score stretch counts as missing
    xy[30 : 30 + gap, 1] = np.nan  # and so does no value
    out = smooth(xy, scores, times, method, max_gap=max_gap)
    assert np.isnan(out[:lead, 0]).all() and np.isfinite(out[lead:30, 0]).all()
    inside = out[30 : 30 + gap]
    if gap <= max_gap:
        assert np.isfinite(inside).all()
        truth = np.stack([10 + 3 * times, 20 - times], -1)[30 : 30 + gap]
        np.testing.assert_allclose(inside, truth[:, None].repeat(2, 1), atol=1e-3)
    else:
        assert np.isnan(inside).all()
    assert np.isfinite(out[30 + gap :]).all()


@settings(max_examples=20, deadline=None)
@given(method=st.sampled_from(METHODS), junk=st.floats(-1e5, 1e5), seed=st.integers(0, 99))
def test_low_score_points_do_not_count(method, junk, seed):
    truth, xy, scores, times = synthetic_tracks(num_frames=120, num_keypoints=2, seed=seed)
    scores[40:43] = 0.1
    changed = xy.copy()
    changed[40:43] = junk
    a = smooth(xy, scores, times, method)
    b = smooth(changed, scores, times, method)
    np.testing.assert_allclose(a, b)


@pytest.mark.parametrize("method", ["savgol", "median"])
def test_dropped_frames_are_handled_in_time(method):
    """Every third frame missing from the time axis (variable frame rate): as good as the full
    track at those frames, because the filter runs on an even grid in time."""
    truth, xy, scores, times = synthetic_tracks(num_frames=900, seed=3, spike_rate=0, low_rate=0)
    keep = np.arange(900) % 3 != 2
    full = smooth(xy, scores, times, method)
    dropped = smooth(xy[keep], scores[keep], times[keep], method)
    err_full = track_metrics(full[keep], truth[keep])["error"]
    err_dropped = track_metrics(dropped, truth[keep])["error"]
    raw = track_metrics(xy[keep], truth[keep])["error"]
    assert err_dropped < (0.95 if method == "median" else 0.8) * raw
    assert err_dropped < 1.3 * err_full


def test_kalman_uses_each_frames_interval():
    """A constant-velocity track sampled with gaps in time: position grows with time, not with
    frame count, so the smoother keeps it exactly."""
    times = np.array([0.0, 0.1, 0.2, 0.5, 0.6, 1.5, 1.6, 1.7])
    xy = np.stack([5 + 40 * times, 7 - 10 * times], -1)[:, None]
    out = smooth(xy, np.ones((len(times), 1)), times, "kalman", window=0.3)
    np.testing.assert_allclose(out, xy, atol=1e-4)


@pytest.mark.parametrize("method, window", [("savgol", 0.5), ("median", 0.3), ("kalman", 0.5)])
def test_window_is_in_seconds(method, window):
    """A 2 Hz sine is damped by the same share at 30 and 250 fps with the same window."""
    gains = []
    for fps in (30.0, 250.0):
        times = np.arange(int(10 * fps)) / fps
        xy = np.stack([np.sin(2 * np.pi * 2 * times)] * 2, -1)[:, None] * 10
        out = smooth(xy, np.ones((len(times), 1)), times, method, window=window)
        mid = slice(len(times) // 4, 3 * len(times) // 4)
        gains.append(np.std(out[mid, 0, 0]) / np.std(xy[mid, 0, 0]))
    assert gains[0] < 0.8 and abs(gains[0] - gains[1]) < 0.05


def test_kalman_window_passes_what_savgol_passes():
    """Both filters halve the power at the same frequency for the same window."""
    from scipy.signal import savgol_coeffs

    fps, window = 30.0, 0.3
    n = 9  # 0.3 s at 30 fps
    f = np.linspace(0, 0.5, 2001)
    gain = np.cos(2 * np.pi * f[:, None] * np.arange(-4, 5)) @ savgol_coeffs(n, 2)
    f_cut = f[np.argmax(gain < 2**-0.5)] * fps
    times = np.arange(int(30 * fps)) / fps
    xy = np.stack([np.sin(2 * np.pi * f_cut * times)] * 2, -1)[:, None] * 10
    mid = slice(len(times) // 4, 3 * len(times) // 4)
    for method in ("savgol", "kalman"):
        out = smooth(xy, np.ones((len(times), 1)), times, method, window=window)
        assert np.std(out[mid, 0, 0]) / np.std(xy[mid, 0, 0]) == pytest.approx(2**-0.5, abs=0.03)


def test_lower_score_weighs_less_in_kalman():
    """A reading 2 noise sigmas off (not an outlier): with a lower score the smoothed track
    follows it less."""
    rng = np.random.default_rng(0)
    times = np.arange(41) / 30
    xy = 100 + rng.normal(0, 2, (41, 1, 2))
    xy[20] = xy[19:22:2].mean(0) + 4.0
    scores = np.full((41, 1), 0.9)
    low = scores.copy()
    low[20] = 0.35
    follow = [smooth(xy, s, times, "kalman")[20, 0] - xy[20, 0] for s in (scores, low)]
    assert np.all(np.abs(follow[1]) > np.abs(follow[0]) + 0.2)


@pytest.mark.parametrize("method", METHODS)
def test_empty_and_all_missing(method):
    assert smooth(np.zeros((0, 3, 2)), np.zeros((0, 3)), np.zeros(0), method).shape == (0, 3, 2)
    xy = np.full((10, 2, 2), np.nan)
    xy[:, 1] = 5.0
    out = smooth(xy, np.ones((10, 2)), np.arange(10) / 30, method)
    assert np.isnan(out[:, 0]).all()
    np.testing.assert_allclose(out[:, 1], 5.0)


@pytest.mark.parametrize(
    "args, match",
    [
        ((np.zeros((5, 2, 2)), np.ones((5, 2)), np.arange(5.0), "mean"), "unknown smoothing"),
        ((np.zeros((5, 2, 3)), np.ones((5, 2)), np.arange(5.0), "median"), r"xy \(T, K, 2\)"),
        ((np.zeros((5, 2, 2)), np.ones((5, 3)), np.arange(5.0), "median"), r"scores \(T, K\)"),
        ((np.zeros((5, 2, 2)), np.ones((5, 2)), np.arange(4.0), "median"), "frame times"),
        ((np.zeros((3, 2, 2)), np.ones((3, 2)), np.array([0, 2, 1.0]), "kalman"), "increase"),
        ((np.zeros((2, 2, 2)), np.ones((2, 2)), np.array([0, np.nan]), "kalman"), "finite"),
    ],
)
def test_bad_input_raises_by_the_error_rule(args, match):
    """A bad method is an argument error, arrays that do not fit are the caller's bug, times
    that go back or are not finite are the video's data."""
    kind = {"unknown smoothing": ConfigError, "increase": DataError, "finite": DataError}
    with pytest.raises(kind.get(match, ValueError), match=match):
        smooth(*args)


def test_bad_window_or_gap():
    with pytest.raises(ConfigError, match="window"):
        smooth(np.zeros((5, 1, 2)), np.ones((5, 1)), np.arange(5.0), "savgol", window=0)
    with pytest.raises(ConfigError, match="max_gap"):
        smooth(np.zeros((5, 1, 2)), np.ones((5, 1)), np.arange(5.0), "savgol", max_gap=-1)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(5, 300), half=st.integers(2, 40), seed=st.integers(0, 1000))
def test_savgol_matches_scipy_interp_mode(n, half, seed):
    """The cached-matrix Savitzky-Golay equals scipy.signal.savgol_filter(mode="interp")."""
    from scipy.signal import savgol_filter

    from keypointer.temporal.smooth import POLYORDER, savgol_interp

    frames = min(2 * half + 1, n if n % 2 else n - 1)
    x = np.random.default_rng(seed).normal(size=(n, 2)).cumsum(0)
    want = savgol_filter(x, frames, POLYORDER, axis=0, mode="interp")
    np.testing.assert_allclose(savgol_interp(x, frames), want, atol=1e-9 * (1 + np.abs(x).max()))
