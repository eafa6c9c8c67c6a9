"""Frames of a video as training images (SLEAP labels frames of videos, not image files).

:func:`read_frame` decodes frame ``index`` (0-based) with OpenCV, as SLEAP's own OpenCV
backend does (seek with ``CAP_PROP_POS_FRAMES``, then read), so the pixels are the ones the
labeller saw. Each thread keeps its last few videos open and remembers where it stands, so
reading frames in order (``keypointer check``, one loader worker) decodes each frame once
instead of seeking back to a key frame for every one.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from keypointer.errors import DataError

OPEN_PER_THREAD = 4  # videos kept open by one thread
READ_AHEAD = 64  # frames decoded forward rather than seeking (a seek decodes from a key frame)

_local = threading.local()


def read_frame(path: str | Path, index: int) -> np.ndarray:
    """Frame ``index`` (0-based) of a video as (H, W, 3) uint8 RGB.

    Raises :class:`DataError` naming the file and the frame when the video cannot be opened
    or has no such frame.
    """
    if index < 0:
        raise DataError(f"frame {index} does not exist (frames count from 0)", path)
    video = _open(Path(path))
    if video.next != index and not 0 < index - video.next <= READ_AHEAD:
        video.capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        video.next = index
    while video.next < index:  # a short way forward: decode, don't seek
        if not video.capture.grab():
            break
        video.next += 1
    ok, image = video.capture.read() if video.next == index else (False, None)
    if not ok or image is None:
        _close(Path(path))  # the reader's state is unknown now
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
