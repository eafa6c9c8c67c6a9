"""Every point smoothing treats as missing is flagged in the outputs: low-score points are
``low_score``, and the spikes the smoother's own outlier test leaves out are ``jump``, even
where they are too many for the jump rule's percentile limit to see."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keypointer.inference.runners import FramePrediction
from keypointer.inference.sources import Frame, Source
from keypointer.inference.tracks import PostProcess, VideoTable, finish
from keypointer.temporal.outliers import outlier_flags
from keypointer.temporal.smooth import METHODS

FPS = 30.0
SPIKES = (10, 30, 31, 55, 80, 81, 100)  # 6% of the frames, some two frames long


def _track(seed: int = 0, frames: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """(T, 1, 2) a smooth curve with 0.3 px noise, and the same with 8 px spikes at SPIKES."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / FPS
    clean = np.stack([50 + 20 * np.sin(2 * t), 50 + 10 * np.cos(3 * t)], -1)[:, None]
    clean = clean + rng.normal(0, 0.3, clean.shape)
    spiked = clean.copy()
    spiked[list(SPIKES), 0, 0] += 8.0
    return clean, spiked


def _table(xy: np.ndarray, scores: np.ndarray) -> VideoTable:
    source = Source(Path("clip.mp4"), "video")
    table = VideoTable(source.path, FPS)
    image = np.zeros((4, 4, 3), np.uint8)
    for f in range(len(xy)):
        frame = Frame(source, image, f, FPS, f / FPS)
        table.add(FramePrediction(frame, xy[f][None], scores[f][None], scores[f].mean()[None]))
    return table


@pytest.mark.parametrize("method", METHODS)
def test_spikes_the_smoother_drops_are_flagged_jump(method):
    clean, spiked = _track()
    scores = np.full(spiked.shape[:2], 0.9)
    tracks = finish(_table(spiked, scores), PostProcess(smooth=method))
    flagged = tracks.flags["jump"][:, 0, 0] | tracks.flags["low_score"][:, 0, 0]
    replaced = np.linalg.norm(tracks.final[:, 0, 0] - spiked[:, 0], axis=-1) > 4
    single = [10, 55, 100]  # (a 3-frame running median keeps the 2-frame ones, unflagged)
    assert replaced[single].all() and flagged[single].all(), np.flatnonzero(flagged)
    # far off the clean track, so smoothing treated it as missing: never without a flag
    assert not (replaced & ~flagged).any(), np.flatnonzero(replaced & ~flagged)
    # without smoothing, the flags stay the jump rule's own
    plain = finish(_table(spiked, scores), PostProcess())
    assert not plain.flags["jump"][list(SPIKES), 0, 0].all()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("fps_scale", [1.0, 0.3, 8.0])  # 30, 9 and 240 fps: windows differ
def test_every_point_left_out_is_low_score_or_jump(method, fps_scale):
    from keypointer.temporal.smooth import spike_outliers  # new: imported here, not above,
    # so that the other tests of this file run (and fail) on code without it

    rng = np.random.default_rng(7)
    _, xy = _track(seed=3)
    xy = np.concatenate([xy, xy + rng.normal(0, 2, xy.shape)], axis=1)  # K = 2
    xy[rng.random(xy.shape[:2]) < 0.05] += rng.normal(0, 15, 2)
    xy[5, 1] = np.nan
    scores = rng.uniform(0.1, 1.0, xy.shape[:2])
    times = np.arange(len(xy)) / (FPS * fps_scale)
    left_out = spike_outliers(xy, scores, times, method, min_score=0.3)
    assert left_out.any()
    flags = outlier_flags(xy, scores, times, min_score=0.3, smoothing=method)
    assert not (left_out & ~(flags["jump"] | flags["low_score"])).any()
    assert not (left_out & flags["low_score"]).any()  # the spike test sees scored points only
