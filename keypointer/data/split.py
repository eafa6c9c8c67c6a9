"""The training/validation split, and whether it (and the labels) are spread in time.

A random split of frames from a video puts each validation frame next to training frames
(often the frame before and the frame after): the validation error then says how well the
model interpolates between labelled frames, not how it does on the rest of the video. So when
the labelled images are frames of videos, :func:`plan_split` holds out whole videos (when
there are :data:`MIN_VIDEOS` or more and some of them hold about ``val_fraction`` of the
frames), else the last ``val_fraction`` of each video's labelled frames, with the
:data:`GAP_FRAMES` training frames just before that block left out of both sides (at most
:data:`MAX_DROP_SHARE` of a video's training frames). Images that are not known to be frames
of videos are split at random by image, exactly as :meth:`KeypointSet.split` does.

An image is a frame of a video (:func:`frame_ref`) when its :class:`Sample` points into a video
file (SLEAP), when it is ``labeled-data/<video>/img<N>.<ext>`` (DeepLabCut, Lightning Pose:
the folder is the video, N the frame number), ``<video>_img<N>.png`` (``keypointer suggest``'s
COCO and CSV frames) or ``<video>/img<NNNNNN>.png`` (``keypointer convert``'s frames). Other
names say nothing certain about time, so their split stays random.

:func:`split_warnings` says when validation frames sit next to training frames (median
distance at most :data:`NEAR_FRAMES`) and :func:`clustering_warning` when the labelled frames
are clustered in time: most of them in a small part of the video(s), or in runs of neighbouring
frames. Both point to ``keypointer suggest``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from keypointer.data.types import KeypointSet, Sample
from keypointer.errors import ConfigError

SPLIT_MODES = ("auto", "random", "time", "video")
GAP_FRAMES = (
    30  # frames kept clear between a video's training and validation frames (1 s at 30 fps)
)
MAX_DROP_SHARE = 0.1  # most of a video's training frames the gap may leave out (labels are dear)
NEAR_FRAMES = 10  # validation frames at most this far (median) from training frames: "next to"
MIN_VIDEOS = 3  # fewer videos: blocks of time, not whole videos (auto)
VIDEO_SHARE = (0.5, 2.0)  # held-out videos hold this range of times val_fraction's frames (auto)
CLUSTER_QUANTILE, CLUSTER_SHARE = 0.9, 0.5  # 90% of the labels within half the video: clustered
MIN_CLUSTER_FRAMES = 5  # labelled frames a video (and the set) needs before its spread is judged
SUGGEST = "label frames spread over the video(s): `keypointer suggest` picks them"

_DLC_FRAME = re.compile(r"img(\d+)", re.IGNORECASE)  # DeepLabCut's extracted frame names
_SUGGEST_FRAME = re.compile(r"(.+)_img(\d+)", re.IGNORECASE)  # suggest's COCO/CSV frames
_CONVERT_FRAME = re.compile(r"img(\d{6})", re.IGNORECASE)  # convert's <video>/img000123.png


@dataclass(frozen=True)
class FrameRef:
    """Where a labelled image sits in time: its ``video`` (the video file, or the folder of
    its extracted frames, as an absolute path) and ``frame`` number."""

    video: str
    frame: int


@dataclass(frozen=True)
class VideoTiming:
    """What a video's header says: its frame count and frame rate (None when unknown, e.g.
    a folder of extracted frames)."""

    frames: int | None = None
    fps: float | None = None


@dataclass
class SplitPlan:
    """A split of N images, by index. ``dropped``: images on neither side (in the gap).

    ``mode`` is what was used ("random", "time", "video"; "separate" for validation labels of
    their own); ``how`` says it in words. ``gap``: no training frame lies within this many
    frames of a validation frame of its video (time splits; None otherwise). ``distances``: (V,) frames from each
    validation frame to the nearest training frame of its video (inf when its video has
    none), empty when the images' frames are not known; ``seconds``: the same in seconds,
    or None when a video's frame rate is unknown.
    """

    mode: str
    train: list[int]
    val: list[int]
    dropped: list[int]
    how: str
    gap: int | None = None
    distances: np.ndarray | None = None
    seconds: np.ndarray | None = None


def frame_ref(sample: Sample) -> FrameRef | None:
    """The video and frame number of ``sample``, or None when its name does not say.

    Args:
        sample: a labelled image.

    Returns:
        The frame's place in its video, or None.
    """
    path = Path(sample.image).absolute()
    if sample.frame is not None:
        return FrameRef(str(path), int(sample.frame))
    stem, parent = path.stem, path.parent
    match = _DLC_FRAME.fullmatch(stem)
    if match and parent.parent.name == "labeled-data":
        return FrameRef(str(parent), int(match.group(1)))
    match = _SUGGEST_FRAME.fullmatch(stem)
    if match:
        return FrameRef(str(parent / match.group(1)), int(match.group(2)))
    match = _CONVERT_FRAME.fullmatch(stem)
    if match and parent.name != "labeled-data":
        return FrameRef(str(parent), int(match.group(1)))
    return None


def frame_refs(kset: KeypointSet) -> list[FrameRef | None]:
    """:func:`frame_ref` of every sample of ``kset``, in order."""
    return [frame_ref(s) for s in kset.samples]


def video_timings(kset: KeypointSet) -> dict[str, VideoTiming]:
    """The frame count and rate of each video file ``kset``'s samples point into (headers only).

    Args:
        kset: labels; samples with ``frame`` set name their video file.

    Returns:
        {video (as in :class:`FrameRef`): timing}; videos that cannot be opened are left out.
    """
    out: dict[str, VideoTiming] = {}
    for sample in kset.samples:
        video = str(Path(sample.image).absolute())
        if sample.frame is None or video in out:
            continue
        capture = cv2.VideoCapture(video)
        try:
            if capture.isOpened():
                count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
                fps = float(capture.get(cv2.CAP_PROP_FPS))
                out[video] = VideoTiming(count if count > 0 else None, fps if fps > 0 else None)
        finally:
            capture.release()
    return out


def random_split(n: int, val_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """The random split by image, index for index the one :meth:`KeypointSet.split` makes.

    Args:
        n: number of images.
        val_fraction: share held out.
        seed: the permutation's seed.

    Returns:
        (training indices, validation indices), each increasing.
    """
    order = np.random.default_rng(seed).permutation(n)
    n_val = _val_count(n, val_fraction)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def plan_split(
    refs: Sequence[FrameRef | None],
    mode: str = "auto",
    val_fraction: float = 0.1,
    seed: int = 0,
    timings: dict[str, VideoTiming] | None = None,
    names: Sequence[str] | None = None,
) -> SplitPlan:
    """Split N images into training and validation (see the module's docstring).

    Args:
        refs: (N,) each image's :class:`FrameRef`, or None when not known.
        mode: "auto" (video or time when every image is a known frame, else random),
            "random", "time" (blocks of time) or "video" (whole videos).
        val_fraction: share of the images to validate on.
        seed: seed of the random split, and of which videos are held out.
        timings: frame rates, for :attr:`SplitPlan.seconds`.
        names: (N,) the images' names, for messages.

    Returns:
        The plan.

    Raises:
        ConfigError: an unknown mode; "time" or "video" when an image's frame is not known;
            "video" with frames of fewer than two videos.
    """
    if mode not in SPLIT_MODES:
        raise ConfigError(f"data.split must be one of {', '.join(SPLIT_MODES)}, not {mode!r}")
    n = len(refs)
    known = [r for r in refs if r is not None]
    if mode in ("time", "video") and len(known) < n:
        first = next(i for i, r in enumerate(refs) if r is None)
        name = names[first] if names is not None else f"image {first}"
        raise ConfigError(
            f"data.split={mode} needs images that are frames of videos, and {name} does not "
            "say its video and frame (data.split=random splits such images)"
        )
    if mode == "random" or len(known) < n or n < 2 or val_fraction <= 0:
        train, val = random_split(n, val_fraction, seed)
        why = "" if known or mode == "random" else ": the images' names do not place them in videos"
        plan = SplitPlan("random", train, val, [], f"images at random (seed {seed}){why}")
    else:
        videos = _by_video(refs)
        if mode == "video" and len(videos) < 2:
            raise ConfigError(
                "data.split=video needs frames of two videos or more; these are all from "
                f"{Path(next(iter(videos))).name}"
            )
        held = _held_videos(videos, val_fraction, seed, strict=mode == "auto")
        if mode == "video" or (mode == "auto" and held):
            plan = _video_plan(videos, held or [], n)
        else:
            plan = _time_plan(videos, val_fraction, n)
    if len(known) == n:
        plan.distances = nearest_frames([refs[i] for i in plan.train], [refs[i] for i in plan.val])
        plan.seconds = _seconds([refs[i] for i in plan.val], plan.distances, timings or {})
    return plan


def separate_plan(
    train: Sequence[FrameRef | None],
    val: Sequence[FrameRef | None],
    how: str,
    timings: dict[str, VideoTiming] | None = None,
) -> SplitPlan:
    """A :class:`SplitPlan` (mode "separate", no indices) for validation labels of their own:
    how far their frames are from the training frames, when both sides' frames are known.

    Args:
        train: the training images' frames.
        val: the validation images' frames.
        how: where the validation labels come from, in words.
        timings: frame rates, for :attr:`SplitPlan.seconds`.

    Returns:
        The plan, with distances when every image's frame is known.
    """
    plan = SplitPlan("separate", [], [], [], how)
    if all(r is not None for r in (*train, *val)):
        known_train = [r for r in train if r is not None]
        known_val = [r for r in val if r is not None]
        plan.distances = nearest_frames(known_train, known_val)
        plan.seconds = _seconds(known_val, plan.distances, timings or {})
    return plan


def nearest_frames(train: Sequence[FrameRef], val: Sequence[FrameRef]) -> np.ndarray:
    """(V,) frames from each validation frame to the nearest training frame of its video.

    Args:
        train: the training frames.
        val: the validation frames.

    Returns:
        Distances in frames; inf where the video has no training frame.
    """
    frames: dict[str, list[int]] = {}
    for r in train:
        frames.setdefault(r.video, []).append(r.frame)
    sorted_frames = {v: np.sort(f) for v, f in frames.items()}
    out = np.full(len(val), np.inf)
    for i, r in enumerate(val):
        ts = sorted_frames.get(r.video)
        if ts is None:
            continue
        j = int(np.searchsorted(ts, r.frame))
        near = ts[max(j - 1, 0) : j + 1]
        out[i] = float(np.abs(near - r.frame).min())
    return out


def split_summary(plan: SplitPlan) -> str:
    """One line: the split used and how far its validation frames are from training frames."""
    line = f"validation split: {plan.mode}, {plan.how}"
    d = plan.distances
    if d is None or not len(d):
        return line
    if np.isinf(d).all():
        return f"{line}; every validation frame is from a video not trained on"
    i = int(np.argmin(d))  # a finite one: not every distance is inf
    return (
        f"{line}; validation frames are at least {_frames(d[i])}{_in_seconds(plan.seconds, i)} "
        f"from the nearest training frame (median {_frames(float(np.median(d)))}"
        f"{_median_seconds(plan.seconds)})"
    )


def split_warnings(plan: SplitPlan) -> list[str]:
    """A line when the validation frames sit next to training frames, else nothing."""
    d = plan.distances
    if d is None or not len(d) or float(np.median(d)) > NEAR_FRAMES:
        return []
    fix = {
        "random": "set data.split=time",
        "separate": "validate on other videos, or on other stretches of them",
    }.get(plan.mode, "label frames farther apart")
    return [
        f"validation frames sit next to training frames (median {_frames(float(np.median(d)))} "
        "apart): the validation figures will look better than on the rest of the video; "
        f"{fix}, and {SUGGEST}"
    ]


def clustering_warning(
    refs: Sequence[FrameRef | None], timings: dict[str, VideoTiming] | None = None
) -> str | None:
    """A line when the labelled frames are clustered in time, else None.

    Clustered: in the videos of known length with :data:`MIN_CLUSTER_FRAMES` labelled frames
    or more, the shortest stretches holding :data:`CLUSTER_QUANTILE` of each one's labelled
    frames cover less than :data:`CLUSTER_SHARE` of those videos; or the median labelled frame
    is at most :data:`NEAR_FRAMES` from the next labelled frame of its video. Fewer than
    :data:`MIN_CLUSTER_FRAMES` labelled frames in all: nothing is said.

    Args:
        refs: each image's :class:`FrameRef`, None when not known (left out).
        timings: the videos' frame counts (:func:`video_timings`).

    Returns:
        The warning, or None.
    """
    videos = _by_video(refs)
    if sum(len(items) for items in videos.values()) < MIN_CLUSTER_FRAMES:
        return None  # too few labelled frames to say how they spread
    timings = timings or {}
    covered = length = 0
    gaps = []
    for video, items in videos.items():
        frames = np.array([f for f, _ in items])
        gaps.extend(_next_gaps(frames))
        total = timings.get(video, VideoTiming()).frames
        if total and len(frames) >= MIN_CLUSTER_FRAMES:
            covered += _shortest_span(frames, CLUSTER_QUANTILE)
            length += max(total, int(frames.max()) + 1)
    if length and covered / length < CLUSTER_SHARE:
        return (
            f"labelled frames are clustered in time: {CLUSTER_QUANTILE:.0%} of them lie within "
            f"{covered / length:.0%} of the video{'s' if len(videos) > 1 else ''}, so "
            f"validation on them says little about the rest; {SUGGEST}"
        )
    if gaps and float(np.median(gaps)) <= NEAR_FRAMES:
        return (
            "labelled frames are clustered in time: they come in runs of neighbouring frames "
            f"(median {_frames(float(np.median(gaps)))} to the next labelled one); {SUGGEST}"
        )
    return None


# --------------------------------------------------------------------------- helpers


def _val_count(n: int, val_fraction: float) -> int:
    # As KeypointSet.split counts: at least one, and never every image.
    if n <= 1:
        return 0
    n_val = int(round(n * val_fraction))
    return min(max(n_val, 1 if val_fraction > 0 else 0), n - 1)


def _by_video(refs: Sequence[FrameRef | None]) -> dict[str, list[tuple[int, int]]]:
    """{video: [(frame, image index), ...] in frame order}, videos in order of appearance."""
    videos: dict[str, list[tuple[int, int]]] = {}
    for i, r in enumerate(refs):
        if r is not None:
            videos.setdefault(r.video, []).append((r.frame, i))
    return {v: sorted(items) for v, items in videos.items()}


def _held_videos(
    videos: dict[str, list[tuple[int, int]]], val_fraction: float, seed: int, strict: bool
) -> list[str] | None:
    """Videos to hold out whole, taken in a seeded order while they fit; None when ``strict``
    (auto) and they do not hold about ``val_fraction`` of the frames, or too few videos."""
    n = sum(len(items) for items in videos.values())
    target = max(_val_count(n, val_fraction), 1)
    if strict and len(videos) < MIN_VIDEOS:
        return None
    names = list(videos)
    held, count = [], 0
    for k in np.random.default_rng(seed).permutation(len(names)):
        size = len(videos[names[k]])
        if count >= target or len(held) == len(names) - 1:
            break
        if count + size <= VIDEO_SHARE[1] * target:
            held.append(names[k])
            count += size
    if strict and count < VIDEO_SHARE[0] * target:
        return None
    if not held:  # every video is larger than wanted: the smallest one
        held = [min(names, key=lambda v: len(videos[v]))]
    return held


def _video_plan(videos: dict[str, list[tuple[int, int]]], held: list[str], n: int) -> SplitPlan:
    val = sorted(i for v in held for _, i in videos[v])
    train = sorted(i for v in videos if v not in held for _, i in videos[v])
    names = ", ".join(Path(v).name for v in held[:3]) + (", ..." if len(held) > 3 else "")
    how = f"{len(held)} of {len(videos)} videos held out whole ({names}): {len(val)} of {n} images"
    return SplitPlan("video", train, val, [], how)


def _time_plan(videos: dict[str, list[tuple[int, int]]], val_fraction: float, n: int) -> SplitPlan:
    counts = _allocate([len(items) for items in videos.values()], _val_count(n, val_fraction))
    if not any(counts):  # one frame per video: nothing to split in time
        return _video_plan(videos, _held_videos(videos, val_fraction, 0, False) or [], n)
    train, val, dropped, gaps = [], [], [], []
    for items, k in zip(videos.values(), counts, strict=True):
        if k == 0:
            train += [i for _, i in items]
            continue
        while k < len(items) - 1 and items[-k - 1][0] == items[-k][0]:
            k += 1  # one frame listed twice stays on one side
        block, rest = items[-k:], items[:-k]
        start = block[0][0]
        # The training frames within the gap are the last ones; at most the cap of them go.
        within = sum(start - f <= GAP_FRAMES for f, _ in rest)
        kept = rest[: len(rest) - min(within, int(MAX_DROP_SHARE * len(rest)))]
        val += [i for _, i in block]
        dropped += [i for _, i in rest[len(kept) :]]
        train += [i for _, i in kept]
        gaps.append(start - kept[-1][0] - 1)  # kept: 90% of rest, one frame or more
    gap = min(gaps)
    share = f"the last {val_fraction:.0%} of each video's labelled frames"
    how = f"{share} ({len(val)} of {n} images), {gap} frames clear before them"
    if dropped:
        how += f" ({len(dropped)} labelled frames in between left out)"
    return SplitPlan("time", sorted(train), sorted(val), sorted(dropped), how, gap=gap)


def _allocate(sizes: list[int], total: int) -> list[int]:
    """``total`` split over videos in proportion to ``sizes`` (largest remainders), each video
    keeping one frame or more for training."""
    caps = np.array([max(s - 1, 0) for s in sizes])
    share = total * np.array(sizes, dtype=float) / max(sum(sizes), 1)
    counts = np.minimum(np.floor(share).astype(int), caps)
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    want = min(total, int(caps.sum()))
    while counts.sum() < want:  # one more each, largest remainder first, while room is left
        for j in order:
            if counts.sum() < want and counts[j] < caps[j]:
                counts[j] += 1
    return counts.tolist()


def _next_gaps(frames: np.ndarray) -> list[float]:
    """Frames from each labelled frame to the nearest other labelled frame of the video."""
    if len(frames) < 2:
        return []
    f = np.sort(frames)
    d = np.diff(f).astype(float)
    return np.minimum(np.r_[np.inf, d], np.r_[d, np.inf]).tolist()


def _shortest_span(frames: np.ndarray, quantile: float) -> int:
    """Frames spanned by the shortest stretch holding ``quantile`` of ``frames``."""
    f = np.sort(frames)
    m = max(int(np.ceil(quantile * len(f))), 1)
    return int((f[m - 1 :] - f[: len(f) - m + 1]).min()) + 1


def _seconds(
    val: Sequence[FrameRef], distances: np.ndarray, timings: dict[str, VideoTiming]
) -> np.ndarray | None:
    fps = [timings.get(r.video, VideoTiming()).fps for r in val]
    if not val or any(f is None for f in fps):
        return None
    return distances / np.array(fps, dtype=float)


def _frames(d: float) -> str:
    return f"{d:.0f} frame{'' if d == 1 else 's'}" if np.isfinite(d) else "another video"


def _in_seconds(seconds: np.ndarray | None, i: int) -> str:
    return "" if seconds is None else f" ({seconds[i]:.2g} s)"


def _median_seconds(seconds: np.ndarray | None) -> str:
    if seconds is None:
        return ""
    median = float(np.median(seconds))
    return f", {median:.2g} s" if np.isfinite(median) else ""
