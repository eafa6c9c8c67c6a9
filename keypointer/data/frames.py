"""Frames of a video as training images (SLEAP labels frames of videos, not image files).

:func:`read_frame` decodes frame ``index`` (0-based) with OpenCV, as SLEAP's own OpenCV
backend does (seek with ``CAP_PROP_POS_FRAMES``, then read), so the pixels are the ones the
labeller saw. Each thread keeps its last few videos open and remembers where it stands, so
reading frames in order (``keypointer check``, one loader worker) decodes each frame once
instead of seeking back to a key frame for every one.

Training reads its frames in random order, many times over: :func:`cache_frames` decodes the
labelled frames once, each video in one forward pass, and :func:`read_frame` serves them from
memory afterwards. The cache is keyed by the video's identity (resolved path, size, modification
time), so an edited video is decoded again, and holds at most a byte budget
(:func:`frame_budget`); the videos beyond it are read frame by frame, as before, and a warning
says so once. Loader workers are forked after the datasets are built, so they inherit the
cache and decode nothing (a "spawn" start method would give each worker an empty cache: the
frames are then read one by one, with the same pixels, only slower).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.progress import Progress

from keypointer.errors import DataError

log = logging.getLogger("keypointer")

OPEN_PER_THREAD = 4  # videos kept open by one thread
READ_AHEAD = 64  # frames decoded forward rather than seeking (a seek decodes from a key frame)
CACHE_BYTES = 8 << 30  # most bytes of decoded frames kept (also at most half the free memory)
PROGRESS_FROM = 50  # frames; fewer are decoded without a progress bar

VideoKey = tuple[str, int, int]  # (resolved path, size in bytes, modification time in ns)

_local = threading.local()
_cache: dict[VideoKey, dict[int, np.ndarray]] = {}  # video -> frame number -> (H, W, 3) RGB
_keys: dict[str, VideoKey] = {}  # a path as given -> its video's key when cached
_warned = False  # the over-budget warning is given once


def read_frame(path: str | Path, index: int) -> np.ndarray:
    """Frame ``index`` (0-based) of a video as (H, W, 3) uint8 RGB: from the cache
    (:func:`cache_frames`) when it holds it, else decoded from the file.

    Raises :class:`DataError` naming the file and the frame when the video cannot be opened
    or has no such frame.
    """
    if index < 0:
        raise DataError(f"frame {index} does not exist (frames count from 0)", path)
    frames = _cached(path)
    if frames is not None and index in frames:
        return frames[index].copy()  # a fresh array, as a decoded one (callers may write it)
    return _decode(Path(path), index)


def cache_frames(
    frames: Iterable[tuple[str | Path, int]],
    *,
    budget_bytes: int | None = None,
    progress: bool = False,
) -> int:
    """Decode the given video frames once, each video in one forward pass in frame order, and
    keep them for :func:`read_frame`. Frames already cached are not decoded again.

    A video whose frames do not fit in what is left of the budget is left out whole (its
    frames are then read one by one); a warning says so, once per process. A frame that
    cannot be decoded is left out (reading it later raises, as before).

    Args:
        frames: (video path, frame number) pairs, in any order, repeats allowed.
        budget_bytes: most bytes the whole cache may hold; None: :func:`frame_budget`.
        progress: show a progress bar (from :data:`PROGRESS_FROM` frames to decode).

    Returns:
        The number of frames decoded now.
    """
    global _warned
    wanted: dict[str, set[int]] = {}
    for path, index in frames:
        if index >= 0:
            wanted.setdefault(str(path), set()).add(int(index))
    todo: list[tuple[str, VideoKey, list[int]]] = []  # path, key, frames to decode
    budget = frame_budget() if budget_bytes is None else budget_bytes
    keys = {path: key for path in wanted if (key := video_key(path)) is not None}
    for key in keys.values():
        _drop_stale(key)
    used = cached_bytes()
    left_out: list[str] = []
    for path, key in keys.items():  # a missing video: read_frame gives the error when asked
        have = _cache.get(key, {})
        missing = sorted(n for n in wanted[path] if n not in have)
        if have:
            _keys[path] = key
        size = _frame_bytes(path) if missing else None
        if size is None:
            continue  # all cached already, or not a video OpenCV opens (read_frame says so)
        if used + len(missing) * size > budget:
            left_out.append(Path(path).name)
            continue
        used += len(missing) * size
        todo.append((path, key, missing))
    if left_out and not _warned:
        _warned = True
        log.warning(
            "the labelled frames of %d video(s) (%s) do not fit in the %.1f GB frame cache: "
            "reading them from the video for every sample (slower)",
            len(left_out),
            ", ".join(left_out[:3]) + (", ..." if len(left_out) > 3 else ""),
            budget / 1e9,
        )
    total = sum(len(numbers) for _, _, numbers in todo)
    done = 0
    show = progress and total >= PROGRESS_FROM
    with Progress(console=Console(stderr=True), disable=not show, transient=True) as bar:
        task = bar.add_task(f"decoding {total} labelled video frames", total=total)
        for path, key, numbers in todo:
            store = _cache.setdefault(key, {})
            _keys[path] = key
            for index in numbers:  # sorted: forward reads, a seek only across long gaps
                try:
                    image = _decode(Path(path), index)
                except DataError:
                    pass  # left out: the dataset reports it when it reads the frame
                else:
                    image.setflags(write=False)
                    store[index] = image
                    done += 1
                bar.advance(task)
            _close(Path(path))  # the pass is over; training reads from memory
    return done


def clear_frame_cache() -> None:
    """Forget every cached frame (the memory goes back when no array refers to it)."""
    _cache.clear()
    _keys.clear()


def cached_bytes() -> int:
    """Bytes of decoded frames the cache holds now."""
    return sum(f.nbytes for frames in _cache.values() for f in frames.values())


def frame_budget() -> int:
    """The cache's default byte budget: :data:`CACHE_BYTES`, at most half the memory free now."""
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not on Linux
        return CACHE_BYTES
    return int(min(CACHE_BYTES, free // 2))


def video_key(path: str | Path) -> VideoKey | None:
    """A video's identity: (resolved path, size in bytes, modification time in ns); None when
    the file cannot be found."""
    try:
        resolved = Path(path).resolve()
        stat = resolved.stat()
    except (OSError, ValueError):
        return None
    return str(resolved), stat.st_size, stat.st_mtime_ns


def _cached(path: str | Path) -> dict[int, np.ndarray] | None:
    """The cached frames of ``path``'s video, when the file is still the one decoded."""
    key = _keys.get(str(path))
    if key is None:
        return None
    try:
        stat = os.stat(key[0])
    except OSError:
        return None
    if (stat.st_size, stat.st_mtime_ns) != key[1:]:
        return None  # edited since: decode it again
    return _cache.get(key)


def _drop_stale(key: VideoKey) -> None:
    """Forget the frames of an older version of ``key``'s file."""
    for old in [k for k in _cache if k[0] == key[0] and k != key]:
        del _cache[old]


def _frame_bytes(path: str) -> int | None:
    info = video_info(path)
    return None if info is None else info[0] * info[1] * 3


def _decode(path: Path, index: int) -> np.ndarray:
    """Frame ``index`` decoded from the file (this thread's open reader, moved forward or
    seeking)."""
    video = _open(path)
    if video.next != index and not 0 < index - video.next <= READ_AHEAD:
        video.capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        video.next = index
    while video.next < index:  # a short way forward: decode, don't seek
        if not video.capture.grab():
            break
        video.next += 1
    ok, image = video.capture.read() if video.next == index else (False, None)
    if not ok or image is None:
        _close(path)  # the reader's state is unknown now
        raise DataError(f"cannot decode frame {index} of the video", path)
    video.next = index + 1
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2RGB)


def video_info(path: str | Path) -> tuple[int, int, int] | None:
    """(width, height, frame count) of a video from its header, or None when OpenCV cannot
    open it. The count is the container's; some formats only estimate it."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return None
        size = (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        return int(size[0]), int(size[1]), max(int(count), 0)
    finally:
        capture.release()


class _Video:
    def __init__(self, capture: cv2.VideoCapture) -> None:
        self.capture = capture
        self.next = 0  # the frame the next read() returns


def _videos() -> OrderedDict[Path, _Video]:
    # Keyed by process too: a forked loader worker must not share its parent's decoder.
    if getattr(_local, "pid", None) != os.getpid():
        _local.pid, _local.videos = os.getpid(), OrderedDict()
    return _local.videos


def _open(path: Path) -> _Video:
    videos = _videos()
    if path in videos:
        videos.move_to_end(path)
        return videos[path]
    if not path.is_file():
        raise DataError("video file not found", path)
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise DataError("cannot open the video (corrupt or an unsupported format)", path)
    videos[path] = _Video(capture)
    while len(videos) > OPEN_PER_THREAD:
        _, old = videos.popitem(last=False)
        old.capture.release()
    return videos[path]


def _close(path: Path) -> None:
    video = _videos().pop(path, None)
    if video is not None:
        video.capture.release()
