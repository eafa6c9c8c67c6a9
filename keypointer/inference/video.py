"""Reading videos past damaged frames, and writing drawn videos without half-written files.

OpenCV's ``read()`` returns False both at the end of a video and at a frame it cannot decode.
Stopping at the first False silently drops every frame after a damaged one, so a failed read
before the frame count the container declares is recorded and reading goes on: in MPEG-4 and
MJPG streams the decoder picks up again at the next good frame.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from keypointer.errors import DataError

log = logging.getLogger("keypointer")

MAX_BAD_RUN = 100  # failed reads in a row before the rest of a video is given up
FOURCC = "mp4v"  # the drawn videos' codec (.mp4); every OpenCV wheel with FFmpeg has it
SHOWN_RANGES = 12  # frame ranges listed in a warning; more end with "..."


def read_video(path: Path) -> Iterator[tuple[int, np.ndarray, float]]:
    """(frame number from 0, RGB uint8 image, fps) for every frame that can be decoded.

    Frames that cannot be decoded keep their numbers (the ones after them are not shifted)
    and are listed in one warning at the end. Raises :class:`DataError` when the video cannot
    be opened or no frame of it can be read.
    """
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError("cannot open this video (corrupt, or a codec OpenCV lacks)", path)
    declared = max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if math.isfinite(fps) and fps > 0 else 25.0
    gaps = FrameGaps()
    number = bad_run = frames_read = 0
    try:
        while True:
            ok, bgr = cap.read()
            if ok:
                yield number, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), fps
                bad_run, frames_read = 0, frames_read + 1
            elif number >= declared or bad_run >= MAX_BAD_RUN:
                break  # the end, or damage too long to wait out: the rest counts as unreadable
            else:
                gaps.add(number)
                bad_run += 1
            number += 1
    finally:
        cap.release()
    gaps.add(number, declared - 1)
    if frames_read == 0:
        raise DataError("no frame could be read from this video", path)
    if gaps:
        log.warning(
            "%s: %d of %d frames could not be read and have no predictions: "
            "frames %s (numbered from 0, as in the outputs)",
            path, len(gaps), max(number, declared), gaps,
        )  # fmt: skip


class FrameGaps:
    """Unreadable frame numbers as [first, last] ranges, added in increasing order (a
    truncated long video's tail stays one range, not a list of numbers)."""

    def __init__(self) -> None:
        self.ranges: list[list[int]] = []

    def add(self, first: int, last: int | None = None) -> None:
        last = first if last is None else last
        if last < first:
            return
        if self.ranges and first <= self.ranges[-1][1] + 1:
            self.ranges[-1][1] = max(self.ranges[-1][1], last)
        else:
            self.ranges.append([first, last])

    def __len__(self) -> int:
        return sum(b - a + 1 for a, b in self.ranges)

    def __str__(self) -> str:
        """Like 3-5, 9, 12-13: the first SHOWN_RANGES ranges, then an ellipsis."""
        text = [str(a) if a == b else f"{a}-{b}" for a, b in self.ranges[:SHOWN_RANGES]]
        return ", ".join(text + (["..."] if len(self.ranges) > SHOWN_RANGES else []))


def frame_ranges(numbers: Iterable[int]) -> str:
    """[3, 4, 5, 9, 12, 13] -> "3-5, 9, 12-13", as the warning lists them."""
    gaps = FrameGaps()
    for n in sorted(numbers):
        gaps.add(n)
    return str(gaps)


class VideoWriteError(Exception):
    """A drawn video that cannot be written; the message is the cause."""


class DrawnVideo:
    """A drawn video, written under a temporary name and renamed when complete (a run that
    fails leaves no half-written video). Frames a damaged input lacked are written black, so
    frame n of the drawn video stays frame n of the input and of the CSV."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]):
        self.path, self.size = path, size
        self.tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
        self.next = 0
        self._writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*FOURCC), fps, size)
        if not self._writer.isOpened():
            self._writer.release()
            raise VideoWriteError(_write_problem(self.tmp))

    def write(self, number: int, rgb: np.ndarray) -> None:
        w, h = self.size
        for _ in range(self.next, number):
            self._writer.write(np.zeros((h, w, 3), np.uint8))
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.next = max(self.next, number + 1)

    def close(self) -> Path:
        self._writer.release()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        self._writer.release()
        self.tmp.unlink(missing_ok=True)


def _write_problem(path: Path) -> str:
    """Why OpenCV could not open ``path`` for writing: the file system, or the codec."""
    try:
        with open(path, "wb"):
            pass
    except OSError as err:
        return f"cannot create the file: {err.strerror or err}"
    finally:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
    return f"this OpenCV build cannot encode {FOURCC!r} video (it lacks the FFmpeg encoder)"
