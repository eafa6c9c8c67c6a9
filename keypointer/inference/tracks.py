"""One video's predictions as tracks: identities, outlier flags and smoothing.

``keypointer predict`` streams frames through the model and keeps only small arrays per frame
(:class:`VideoTable`); when a video ends, :func:`finish` turns them into a
:class:`VideoTracks`: instances matched to tracks through time (when the video holds several),
per-keypoint outlier flags, and, on request, smoothed coordinates next to the raw ones.
Smoothing and flags need the whole track (the smoothers look ahead), which is why they run at
the end of each video, not frame by frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keypointer.config import KEYPOINT_SCORE_THRESHOLD
from keypointer.inference.runners import FramePrediction
from keypointer.temporal.outliers import outlier_flags
from keypointer.temporal.smooth import smooth
from keypointer.temporal.tracking import track

FLAGS = ("low_score", "jump", "flip")


@dataclass
class PostProcess:
    """What happens to a video's predictions after the model.

    ``smooth``: None, or a method of :data:`keypointer.temporal.smooth.METHODS`; ``min_score``:
    below it a point counts as missing for smoothing and is flagged ``low_score``;
    ``max_gap``: frames of missing points the smoother fills; ``max_instances``: a known number
    of animals (tracks never exceed it); None lets tracks start freely.
    """

    smooth: str | None = None
    min_score: float = KEYPOINT_SCORE_THRESHOLD
    max_gap: int = 10
    max_instances: int | None = None


@dataclass
class VideoTable:
    """Per-frame predictions of one video, as small arrays (no images are kept)."""

    source: Path
    fps: float
    numbers: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    keypoints: list[np.ndarray] = field(default_factory=list)  # (M, K, 2) per frame
    scores: list[np.ndarray] = field(default_factory=list)  # (M, K)
    instance_scores: list[np.ndarray] = field(default_factory=list)  # (M,)
    flip_gaps: list[np.ndarray | None] = field(default_factory=list)  # (M, K) or None

    def add(self, pred: FramePrediction) -> None:
        frame = pred.frame
        time = frame.time if frame.time is not None else frame.number / max(frame.fps, 1e-9)
        self.numbers.append(int(frame.number))
        self.times.append(float(time))
        self.keypoints.append(np.asarray(pred.keypoints, np.float32))
        self.scores.append(np.asarray(pred.scores, np.float32))
        self.instance_scores.append(np.asarray(pred.instance_scores, np.float32))
        gap = pred.flip_gap
        self.flip_gaps.append(None if gap is None else np.asarray(gap, np.float32))

    def __len__(self) -> int:
        return len(self.numbers)

    @property
    def multi(self) -> bool:
        """Whether any frame held more than one instance (then identities are tracked)."""
        return any(len(kp) > 1 for kp in self.keypoints)


@dataclass
class VideoTracks:
    """A finished video: T frames, N tracks, K keypoints. Absent values are NaN.

    ``raw`` and ``final`` (T, N, K, 2) image px: final is the smoothed track when smoothing
    ran, else the raw one; ``scores`` (T, N, K); ``instance_scores`` (T, N); ``flags`` name ->
    (T, N, K) bool; ``flip_gap`` (T, N, K) px or None; ``tracks`` the N track names.
    """

    source: Path
    fps: float
    numbers: np.ndarray
    times: np.ndarray
    tracks: list[str]
    raw: np.ndarray
    final: np.ndarray
    scores: np.ndarray
    instance_scores: np.ndarray
    flags: dict[str, np.ndarray]
    flip_gap: np.ndarray | None
    smoothed: bool
    multi: bool


def finish(table: VideoTable, post: PostProcess) -> VideoTracks:
    """Match instances to tracks, flag outliers and smooth, per track (see the module doc).

    Args:
        table: the video's per-frame predictions.
        post: the tracking, flagging and smoothing settings.

    Returns:
        The finished :class:`VideoTracks`.
    """
    multi = table.multi or (post.max_instances or 1) > 1
    ids = _track_ids(table, post) if multi else [np.zeros(len(kp), int) for kp in table.keypoints]
    n = max([int(i.max()) + 1 for i in ids if len(i) and i.max() >= 0] + [1])
    t, k = len(table), _num_keypoints(table)
    raw = np.full((t, n, k, 2), np.nan)
    scores = np.full((t, n, k), np.nan)
    inst = np.full((t, n), np.nan)
    has_gap = any(g is not None for g in table.flip_gaps)
    gap = np.full((t, n, k), np.nan) if has_gap else None
    for f, frame_ids in enumerate(ids):
        for m, i in enumerate(frame_ids):
            if i < 0:
                continue  # an instance the tracker left out (over max_instances)
            raw[f, i], scores[f, i] = table.keypoints[f][m], table.scores[f][m]
            inst[f, i] = table.instance_scores[f][m]
            if gap is not None and table.flip_gaps[f] is not None:
                gap[f, i] = table.flip_gaps[f][m]
    times = np.asarray(table.times, np.float64)
    final, flags = raw.copy(), {name: np.zeros((t, n, k), bool) for name in FLAGS}
    for i in range(n):
        g = None if gap is None else gap[:, i]
        found = outlier_flags(
            raw[:, i],
            scores[:, i],
            times,
            min_score=post.min_score,
            flip_gap=g,
            smoothing=post.smooth,  # the smoother's spike test's points are flagged jump too
        )
        for name in FLAGS:
            flags[name][:, i] = found[name]
        if post.smooth:
            final[:, i] = smooth(
                raw[:, i], scores[:, i], times, post.smooth, post.min_score, post.max_gap
            )
    names = [f"track{i}" for i in range(n)] if multi else ["individual0"]
    return VideoTracks(
        source=table.source,
        fps=table.fps,
        numbers=np.asarray(table.numbers),
        times=times,
        tracks=names,
        raw=raw,
        final=final,
        scores=scores,
        instance_scores=inst,
        flags=flags,
        flip_gap=gap,
        smoothed=bool(post.smooth),
        multi=multi,
    )


def _num_keypoints(table: VideoTable) -> int:
    return next((kp.shape[1] for kp in table.keypoints if kp.ndim == 3), 0)


def _track_ids(table: VideoTable, post: PostProcess) -> list[np.ndarray]:
    """Per frame (M,) track ids from 0 (-1: left out), identities kept through the video."""
    times = np.asarray(table.times, np.float64)
    ids = track(table.keypoints, table.scores, times, max_instances=post.max_instances)
    return [np.asarray(i, int) for i in ids]
