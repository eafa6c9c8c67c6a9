"""Which video frames are most worth labelling next: rank by how unsure the model is, spread
the picks over different-looking frames, and keep them apart in time.

Arrays: frames along the first axis, keypoints (T, K, 2) in frame pixels, scores (T, K), times
(T,) in seconds. :func:`collect_tracks` gathers the stream of
:meth:`~keypointer.inference.pipeline.Pipeline.run` per video (with a tiny grey thumbnail of
each frame);
:func:`suggest_frames` ranks and picks; the rest are pure steps of it
(:func:`image_features`, :func:`normalised_poses`, :func:`cluster_labels`, :func:`pick_frames`).

Frames are clustered on thumbnails, as DeepLabCut's own frame extraction clusters downsampled
frames. Measured: benchmarks/RESULTS.md, "Frame suggestion (`keypointer suggest`)".
"""

from __future__ import annotations

import bisect
import heapq
import warnings
from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy.cluster.vq import kmeans2

from keypointer.config import KEYPOINT_SCORE_THRESHOLD
from keypointer.inference.tracks import PostProcess, VideoTable, finish
from keypointer.inference.video import FrameRange, iter_video
from keypointer.temporal.outliers import frame_uncertainty, outlier_flags

FLAG_NAMES = {"low_score": "low score", "jump": "jump", "flip": "flip disagrees"}
# Weight of a cluster's next pick per pick it already has (see pick_frames). 0: one frame of
# every cluster before a second of any, the rule: picking by uncertainty alone would
# spend every pick on one kind of frame in a video with long repeated hard scenes.
# Measured: benchmarks/RESULTS.md, "Frame suggestion (`keypointer suggest`)".
DECAY = 0.0
THUMB = 16  # side in px of the grey thumbnails the frames are clustered on
SHOWN_NAMES = 3  # keypoint names listed per flag in a reason; more end with "+N"


@dataclass
class VideoTrack:
    """One video's predictions.

    ``numbers`` (T,) frame numbers from 0, ``times`` (T,) seconds, ``size`` (width, height)
    of the frames, ``thumbs`` (T, THUMB * THUMB) uint8 grey thumbnails (see
    :func:`thumbnail`) or None. A single-instance model: ``keypoints`` (T, K, 2), ``scores``
    (T, K), ``flip_gap`` (T, K) or None, ``names`` None. Several instances (a two-stage model,
    or frames holding more than one): the instances matched into N identities through the
    video (:func:`keypointer.inference.tracks.finish`, as ``predict`` tracks them):
    ``keypoints`` (T, N, K, 2), ``scores`` (T, N, K), ``flip_gap`` (T, N, K) or None, NaN
    where an identity is absent, and ``names`` the N identities.
    """

    path: Path
    fps: float
    size: tuple[int, int]
    numbers: np.ndarray
    times: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    flip_gap: np.ndarray | None = None
    thumbs: np.ndarray | None = None
    names: list[str] | None = None

    def __len__(self) -> int:
        return len(self.numbers)

    @property
    def multi(self) -> bool:
        return self.keypoints.ndim == 4


@dataclass
class Suggestion:
    """A frame picked for labelling: ``track`` indexes the tracks, ``index`` the track's frames;
    ``reason`` says what made the model unsure of it."""

    track: int
    index: int
    number: int
    time: float
    uncertainty: float
    reason: str
    keypoints: np.ndarray  # (K, 2); several instances: (M, K, 2), the ones in the frame
    scores: np.ndarray  # (K,); several instances: (M, K)
    names: list[str] | None = None  # several instances: the M identities


@dataclass
class _Builder:
    path: Path
    fps: float
    size: tuple[int, int]
    rows: list[tuple] = field(default_factory=list)
    table: VideoTable | None = None


def collect_tracks(
    predictions: Iterable,
    several: bool = False,
    min_score: float = KEYPOINT_SCORE_THRESHOLD,
    max_instances: int | None = None,
) -> list[VideoTrack]:
    """The poses of video frames, gathered per video.

    A frame's time is its own timestamp when the reader gave one, else its number / fps.

    Args:
        predictions: :class:`~keypointer.inference.runners.FramePrediction` of video frames.
        several: a two-stage model: every instance is kept, matched into identities as
            ``predict`` matches them; so is a video with a frame of more than one instance.
            Otherwise the one instance of each frame (of several, the highest-scoring one).
        min_score: the keypoint score a point needs to count as found.
        max_instances: the most identities per video, or None.

    Returns:
        One :class:`VideoTrack` per video, in the order met.
    """
    builders: dict[Path, _Builder] = {}
    for pred in predictions:
        frame = pred.frame
        path = frame.source.path
        if path not in builders:
            h, w = frame.image.shape[:2]
            builders[path] = _Builder(path, float(frame.fps), (int(w), int(h)))
            builders[path].table = VideoTable(path, float(frame.fps))
        time = frame.time if frame.time is not None else frame.number / frame.fps
        row = (frame.number, time, *_best_instance(pred), thumbnail(frame.image))
        builders[path].rows.append(row)
        builders[path].table.add(pred)
    post = PostProcess(min_score=min_score, max_instances=max_instances)
    return [_track(b, several, post) for b in builders.values()]


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A frame shrunk for clustering.

    Args:
        image: (H, W, 3) uint8 RGB.

    Returns:
        (THUMB * THUMB,) uint8: the frame in grey, shrunk by area averaging.
    """
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (THUMB, THUMB), interpolation=cv2.INTER_AREA).reshape(-1)


def image_features(thumbs: np.ndarray) -> np.ndarray:
    """Thumbnails made comparable across lighting.

    Args:
        thumbs: (T, D) thumbnails.

    Returns:
        (T, D) float64: each standardised to mean 0 and deviation 1, so that lighting that
        flickers or drifts does not split frames of one scene into clusters.
    """
    x = np.asarray(thumbs, np.float64)
    return (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-6)


def _best_instance(pred) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(K, 2) keypoints, (K,) scores, (K,) flip gap or None of the frame's highest-scoring
    instance (video frames are whole: one); no instance: NaN points scoring 0."""
    k = pred.scores.shape[-1]
    if len(pred.keypoints) == 0:
        gap = None if pred.flip_gap is None else np.full(k, np.nan)
        return np.full((k, 2), np.nan), np.zeros(k), gap
    m = int(np.argmax(pred.instance_scores)) if len(pred.instance_scores) else 0
    return pred.keypoints[m], pred.scores[m], None if pred.flip_gap is None else pred.flip_gap[m]


def _track(b: _Builder, several: bool, post: PostProcess) -> VideoTrack:
    numbers, times, kp, scores, gaps, thumbs = zip(*b.rows, strict=True)
    flip_gap = None if any(g is None for g in gaps) else np.stack(gaps).astype(np.float64)
    track = VideoTrack(
        path=b.path,
        fps=b.fps,
        size=b.size,
        numbers=np.array(numbers, np.int64),
        times=np.array(times, np.float64),
        keypoints=np.stack(kp).astype(np.float64),
        scores=np.stack(scores).astype(np.float64),
        flip_gap=flip_gap,
        thumbs=np.stack(thumbs),
    )
    if not (several or b.table.multi):
        return track
    tracks = finish(b.table, post)
    track.keypoints, track.scores = tracks.raw, np.nan_to_num(tracks.scores)
    track.flip_gap, track.names = tracks.flip_gap, list(tracks.tracks)
    return track


def normalised_poses(
    keypoints: np.ndarray, scores: np.ndarray, min_score: float = KEYPOINT_SCORE_THRESHOLD
) -> np.ndarray:
    """Poses free of position and size, for clustering.

    Each pose is moved to the mean of its sure points (all points when none is) and divided by
    their RMS distance from it; unsure points sit at the centre (0, 0), so a point the model could
    not find does not invent a pose.

    Args:
        keypoints: (T, K, 2) frame px.
        scores: (T, K).
        min_score: the score a sure point reaches.

    Returns:
        (T, 2K) float64 poses.
    """
    kp = np.nan_to_num(np.asarray(keypoints, np.float64))  # a missing point: unsure anyway
    sure = np.asarray(scores) >= min_score
    sure[~sure.any(1)] = True
    weight = sure[..., None].astype(np.float64)
    centre = (kp * weight).sum(1, keepdims=True) / weight.sum(1, keepdims=True)
    rel = (kp - centre) * weight
    scale = np.sqrt((rel**2).sum((1, 2)) / sure.sum(1))
    rel /= np.where(scale > 1e-9, scale, 1.0)[:, None, None]
    return rel.reshape(len(kp), -1)


def cluster_labels(features: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k-means (k-means++ start, seeded) of feature rows.

    Args:
        features: (T, D).
        k: the number of clusters; fewer distinct rows give fewer, and one may come out empty.
        seed: the k-means seed.

    Returns:
        (T,) int: the cluster of each row.
    """
    x = np.asarray(features, np.float64)
    k = min(k, len(np.unique(x, axis=0)))  # k-means++ cannot seed more centres than points
    if k <= 1:
        return np.zeros(len(x), np.int64)
    with warnings.catch_warnings():  # "One of the clusters is empty": pick_frames fills up
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        _, labels = kmeans2(x, k, iter=20, minit="++", seed=np.random.default_rng(seed))
    return labels.astype(np.int64)


def pick_frames(
    uncertainty: np.ndarray,
    clusters: np.ndarray,
    groups: Sequence[Hashable],
    positions: np.ndarray,
    num: int,
    min_gap: int | Sequence[int] = 0,
    decay: float = DECAY,
) -> list[int]:
    """Up to ``num`` frames, the most uncertain of their cluster each.

    Greedy: the next pick is the frame with the highest uncertainty x ``decay`` ** (picks its
    cluster already has): ``decay`` 0 takes one frame of every cluster before a second of any,
    1 ignores the clusters, in between a cluster's second frame must be clearly more uncertain
    than another cluster's first. Frames of cluster -1 come only after all others.

    Args:
        uncertainty: (T,) per frame.
        clusters: (T,) cluster of each frame.
        groups: (T,) group (video) of each frame.
        positions: (T,) frame numbers.
        num: the most frames to pick.
        min_gap: the fewest positions between two picks of one group (one value or (T,)); fewer
            than ``num`` come back only when the gap allows no more.
        decay: the weight of a cluster's next pick per pick it already has.

    Returns:
        Indices (int) of the picked frames, in order of picking.
    """
    unc = np.asarray(uncertainty, np.float64)
    gaps = np.broadcast_to(np.asarray(min_gap, np.int64), unc.shape)
    members: dict[int, deque[int]] = {}
    for i in np.lexsort((np.arange(len(unc)), -unc)):  # most uncertain first; ties: earlier
        members.setdefault(int(clusters[i]), deque()).append(int(i))
    taken: dict[Hashable, list[int]] = {}
    picks = dict.fromkeys(members, 0)
    heap: list[tuple] = []

    def free(i: int) -> bool:
        return not _too_close(taken.get(groups[i], []), int(positions[i]), int(gaps[i]))

    def push(c: int) -> None:  # the cluster's best frame still free, if any
        while members[c] and not free(members[c][0]):
            members[c].popleft()
        if members[c]:
            i = members[c][0]
            heapq.heappush(heap, (c < 0, -unc[i] * decay ** picks[c], -unc[i], i, c))

    for c in members:
        push(c)
    chosen: list[int] = []
    while heap and len(chosen) < num:
        *_, i, c = heapq.heappop(heap)
        if free(i):  # else a pick since the push came too close
            bisect.insort(taken.setdefault(groups[i], []), int(positions[i]))
            chosen.append(i)
            picks[c] += 1
        push(c)
    return chosen


def _too_close(spots: list[int], pos: int, gap: int) -> bool:
    """Whether ``pos`` is taken or nearer than ``gap`` to a taken position (sorted ``spots``)."""
    j = bisect.bisect_left(spots, pos)
    near = spots[max(j - 1, 0) : j + 1]
    return any(abs(pos - s) < max(gap, 1) for s in near)


def reason(flags: dict[str, np.ndarray], names: Sequence[str]) -> str:
    """Why a frame was picked, in words.

    Args:
        flags: {kind: (K,) bool} of one frame.
        names: the K keypoint names.

    Returns:
        Text such as "low score: head, neck; jump: left_hand".
    """
    parts = []
    for kind, label in FLAG_NAMES.items():
        if kind not in flags:
            continue
        hit = [names[k] for k in np.flatnonzero(flags[kind])]
        if hit:
            more = f" +{len(hit) - SHOWN_NAMES}" if len(hit) > SHOWN_NAMES else ""
            parts.append(f"{label}: {', '.join(hit[:SHOWN_NAMES])}{more}")
    return "; ".join(parts) or "least sure of its pose cluster"


def suggest_frames(
    tracks: Sequence[VideoTrack],
    names: Sequence[str],
    num: int,
    min_gap: int | None = None,
    min_score: float = KEYPOINT_SCORE_THRESHOLD,
    seed: int = 0,
    features: str | np.ndarray = "image",
    decay: float = DECAY,
    flip_rank: bool = False,
) -> list[Suggestion]:
    """The frames most worth labelling, in order of uncertainty.

    Outlier flags and uncertainty per frame come from :mod:`keypointer.temporal.outliers` (per
    video: jumps only mean something within one). All frames are clustered (k-means, k = ``num``)
    on ``features``; then :func:`pick_frames` takes the most uncertain frame of each cluster.

    Args:
        tracks: one :class:`VideoTrack` per video.
        names: the K keypoint names.
        num: how many frames.
        min_gap: frames between two picks of one video; None: one second of it.
        min_score: the keypoint score below which a point is flagged.
        seed: the k-means seed.
        features: "image" (:func:`image_features` of the thumbnails; poses for tracks without
            thumbnails), "pose" (:func:`normalised_poses`) or a (T, D) array for the tracks'
            frames in order.
        decay: see :func:`pick_frames`.
        flip_rank: rank the flip gap in the uncertainty too (see :func:`_score`).

    Returns:
        The :class:`Suggestion` of each picked frame.
    """
    scored = [_score(t, min_score, flip_rank) for t in tracks]
    unc = np.concatenate([s[1] for s in scored])
    where = [(ti, i) for ti, t in enumerate(tracks) for i in range(len(t))]
    gap_of = [default_gap(t.fps) if min_gap is None else min_gap for t in tracks]
    gaps = np.concatenate([np.full(len(t), g) for t, g in zip(tracks, gap_of, strict=True)])
    clusters = cluster_labels(_features(tracks, features, min_score), num, seed)
    positions = np.concatenate([t.numbers for t in tracks])
    picked = pick_frames(unc, clusters, [w[0] for w in where], positions, num, gaps, decay)
    out = []
    for j in picked:
        ti, i = where[j]
        t, flags = tracks[ti], scored[ti][0]
        why = reason({k: v[i] for k, v in flags.items()}, names)
        kp, sc, who = t.keypoints[i], t.scores[i], None
        if t.multi:  # the identities present in the frame
            here = np.isfinite(kp).any(axis=(1, 2))
            kp, sc, who = kp[here], sc[here], [n for n, h in zip(t.names, here, strict=True) if h]
        found = Suggestion(
            track=ti,
            index=i,
            number=int(t.numbers[i]),
            time=float(t.times[i]),
            uncertainty=float(unc[j]),
            reason=why,
            keypoints=kp,
            scores=sc,
            names=who,
        )
        out.append(found)
    return out


def _features(tracks: Sequence[VideoTrack], kind: str | np.ndarray, min_score: float):
    if not isinstance(kind, str):
        return np.asarray(kind, np.float64)
    if kind == "image" and all(t.thumbs is not None for t in tracks):
        return image_features(np.concatenate([t.thumbs for t in tracks]))
    kp = np.concatenate([_first(t.keypoints, t) for t in tracks])
    return normalised_poses(kp, np.concatenate([_first(t.scores, t) for t in tracks]), min_score)


def _first(values: np.ndarray, track: VideoTrack) -> np.ndarray:
    """The first identity's values of a track of several (poses are clustered on one)."""
    return values[:, 0] if track.multi else values


def default_gap(fps: float) -> int:
    """The default gap between two picks of one video: one second of it.

    Poses change over about that time, so nearer frames are near-duplicates, and a count in
    frames would mean 0.05 s at 200 fps but 0.4 s at 25.

    Args:
        fps: the video's frame rate.

    Returns:
        Frames, at least 1.
    """
    return max(int(round(fps)), 1)


def _score(
    track: VideoTrack, min_score: float, flip_rank: bool = False
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Outlier flags {kind: (T, K)} and (T,) uncertainty of one video. The flip gap counts
    through its flag (a gap large for the instance's size); ``flip_rank`` adds
    :func:`~keypointer.temporal.outliers.frame_uncertainty`'s rank of the gap too, which ranks
    0.1 px against 0.2 px as far apart as 0.1 px against 20 px (measured: benchmarks/RESULTS.md,
    "Frame suggestion (`keypointer suggest`)")."""
    if track.multi:
        return _score_several(track, min_score, flip_rank)
    flags = outlier_flags(
        track.keypoints, track.scores, track.times, min_score=min_score, flip_gap=track.flip_gap
    )
    gap = track.flip_gap if flip_rank else None
    return flags, np.asarray(frame_uncertainty(flags, track.scores, gap), np.float64)


def _score_several(
    track: VideoTrack, min_score: float, flip_rank: bool
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """:func:`_score` of a track of N identities: each identity's flags and uncertainty as
    one animal's, then per frame the least sure identity present in it (flags: any identity's;
    a frame with none present counts as unsure as a frame without a pose)."""
    n = track.keypoints.shape[1]
    present = np.isfinite(track.keypoints).any(axis=(2, 3))  # (T, N)
    per: list[tuple[dict, np.ndarray]] = []
    for i in range(n):
        gap = None if track.flip_gap is None else track.flip_gap[:, i]
        flags = outlier_flags(
            track.keypoints[:, i],
            track.scores[:, i],
            track.times,
            min_score=min_score,
            flip_gap=gap,
        )
        unc = frame_uncertainty(flags, track.scores[:, i], gap if flip_rank else None)
        per.append((flags, np.asarray(unc, np.float64)))
    unc_all = np.stack([u for _, u in per], axis=1)  # (T, N)
    unc = np.where(present, unc_all, -np.inf).max(1)
    none = ~present.any(1)
    unc[none] = unc_all[none].max(1)
    merged = {
        kind: np.any([f[kind] & present[:, i, None] for i, (f, _) in enumerate(per)], axis=0)
        for kind in per[0][0]
    }
    return merged, unc


def read_frames(path: Path, numbers: Iterable[int]) -> dict[int, np.ndarray]:
    """Wanted frames of a video, read in one pass from the start (the same numbering as
    :func:`~keypointer.inference.video.iter_video`; seeking is not exact in every codec).

    Args:
        path: the video file.
        numbers: the wanted frame numbers.

    Returns:
        Frame number -> (H, W, 3) uint8 RGB image.
    """
    wanted = set(int(n) for n in numbers)
    found: dict[int, np.ndarray] = {}
    if not wanted:
        return found
    for f in iter_video(path, FrameRange(min(wanted), max(wanted) + 1)):
        if f.number in wanted:
            found[f.number] = f.image
    return found
