"""Reading videos past damaged frames, and writing drawn videos without half-written files.

OpenCV's ``read()`` returns False both at the end of a video and at a frame it cannot decode.
Stopping at the first False silently drops every frame after a damaged one, so a failed read
before the frame count the container declares is recorded and reading goes on: in MPEG-4 and
MJPG streams the decoder picks up again at the next good frame.

Each frame carries its own timestamp (``CAP_PROP_POS_MSEC``: variable frame rates are kept),
and a :class:`FrameRange` (``--start``, ``--stop``, ``--every``) picks frames by number or
by time. OpenCV reads alone: PyAV decoded to RGB more slowly (measured: benchmarks/RESULTS.md,
"Streaming video prediction").
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from keypointer.config import DEFAULT_FPS
from keypointer.errors import ConfigError, DataError

log = logging.getLogger("keypointer")

MAX_BAD_RUN = 100  # failed reads in a row before the rest of a video is given up
FOURCC = "mp4v"  # the drawn videos' codec (.mp4); every OpenCV wheel with FFmpeg has it
SHOWN_RANGES = 12  # frame ranges listed in a warning; more end with "..."


class VideoFrame(NamedTuple):
    """One decoded frame: ``number`` from 0 (counting every frame, unreadable ones too),
    ``image`` RGB uint8 (H, W, 3), the container's ``fps``, ``time`` in seconds from the
    video's start (the frame's own timestamp)."""

    number: int
    image: np.ndarray
    fps: float
    time: float


def parse_position(value: str | int | float | None, option: str) -> int | float | None:
    """A position in a video, as ``--start`` and ``--stop`` take it.

    Args:
        value: ``"12.5s"`` or a float (seconds), ``"300"`` or an int (a frame number from 0),
            or None.
        option: the option's name, for the :class:`ConfigError` a bad value raises.

    Returns:
        Seconds (float), a frame number (int), or None.
    """
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        position: int | float = value
    else:
        text = str(value).strip().lower()
        try:
            position = float(text[:-1]) if text.endswith("s") else int(text)
        except ValueError:
            raise ConfigError(
                f"{option} {value!r}: expected a frame number (300) or seconds (12.5s)"
            ) from None
    if not math.isfinite(position) or position < 0:
        raise ConfigError(f"{option} {value!r}: must be a finite number, 0 or more")
    return position


@dataclass(frozen=True)
class FrameRange:
    """Which frames of each video to predict: from ``start`` (inclusive) to ``stop``
    (exclusive), every ``every``-th. A bound is a frame number (int, from 0) or seconds
    (float; compared with the frames' own timestamps, so variable frame rates are right);
    None is the video's start or end. ``every`` counts frame numbers from ``start`` when it
    is a frame number, else from the first frame in range."""

    start: int | float | None = None
    stop: int | float | None = None
    every: int = 1

    @classmethod
    def parse(cls, start: object = None, stop: object = None, every: object = 1) -> FrameRange:
        """From command-line values (``"12.5s"``, ``"300"``); raises :class:`ConfigError`."""
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ConfigError(f"--every {every!r}: must be a whole number, 1 or more")
        pick = cls(parse_position(start, "--start"), parse_position(stop, "--stop"), every)
        a, b = pick.start, pick.stop
        if a is not None and b is not None and isinstance(a, int) == isinstance(b, int) and b <= a:
            raise ConfigError(f"--stop {stop} must be after --start {start} (stop is exclusive)")
        return pick

    def __str__(self) -> str:
        def text(p: int | float | None) -> str:
            return "" if p is None else f"{p:g}s" if isinstance(p, float) else str(p)

        every = f" every {self.every}" if self.every > 1 else ""
        return f"frames {text(self.start)}:{text(self.stop)}{every}"

    def frame_bounds(self, fps: float) -> tuple[int, int | None]:
        """[first, stop) frame numbers; a bound in seconds is estimated through ``fps``."""

        def frame(p: int | float) -> int:
            return p if isinstance(p, int) else math.ceil(p * fps - 1e-6)

        first = 0 if self.start is None else frame(self.start)
        return first, None if self.stop is None else frame(self.stop)

    def count(self, declared: int, fps: float) -> int:
        """Frames picked from a video declaring ``declared`` frames (an estimate)."""
        first, stop = self.frame_bounds(fps)
        stop = declared if stop is None else min(stop, declared)
        return max(0, -(-(stop - first) // self.every))

    def where(self, number: int, time: float | None) -> int:
        """-1 before ``start``, 0 inside, 1 at or past ``stop``. With ``time`` None (a frame
        that could not be read) a bound in seconds counts as not reached."""

        def at(p: int | float) -> float | None:
            return number if isinstance(p, int) else time

        start, stop = self.start, self.stop
        if stop is not None and (t := at(stop)) is not None and t >= stop:
            return 1
        if start is not None and (t := at(start)) is not None and t < start:
            return -1
        return 0


def iter_video(
    path: Path, frames: FrameRange | None = None, warn: bool = True
) -> Iterator[VideoFrame]:
    """Every picked frame of a video that can be decoded, in order.

    Frames that cannot be decoded keep their numbers (the ones after them are not shifted) and
    are listed in one warning at the end. Frames before ``start`` or between picked ones are
    grabbed (decoded) but not converted. Raises :class:`DataError` when the video cannot be
    opened or no frame of it can be read.

    Args:
        path: the video file.
        frames: the frames to pick; None: all.
        warn: warn about unreadable frames (False for a second read).

    Returns:
        An iterator of :class:`VideoFrame` (number, (H, W, 3) uint8 RGB, fps, time).
    """
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DataError("cannot open this video (corrupt, or a codec OpenCV lacks)", path)
        reader = _Reader(cap, frames or FrameRange(), *_header(cap))
        yield from reader.frames()
    finally:
        cap.release()
    reader.report(path, warn)


def _header(cap: cv2.VideoCapture) -> tuple[float, int]:
    """(frames per second, declared frame count) of an open video; DEFAULT_FPS if it has none."""
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if math.isfinite(fps) and fps > 0 else DEFAULT_FPS
    return fps, max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)


class _Reader:
    """The reading loop of :func:`iter_video` and what it found: readable and picked frame
    counts, unreadable picked frames. Seeking (``CAP_PROP_POS_FRAMES``) is not used: OpenCV
    maps a frame number to a timestamp through the nominal frame rate, which cannot promise
    the same frame as counting from 0 in a damaged or variable-frame-rate video. Frames
    before ``start`` are grabbed without colour conversion instead, faster than full reads
    (measured: benchmarks/RESULTS.md, "Streaming video prediction")."""

    def __init__(self, cap: cv2.VideoCapture, pick: FrameRange, fps: float, declared: int):
        """``pick``: the frames wanted; ``fps`` and ``declared`` from the video's header."""
        self.cap, self.pick, self.fps, self.declared = cap, pick, fps, declared
        self.number = self.readable = self.picked = 0
        self.past_stop = False
        start = pick.start
        # Picked frames are first + k * every; with a start in seconds, first is known at
        # the first frame in range.
        self.first = 0 if start is None else start if isinstance(start, int) else None
        self.gaps = FrameGaps(pick.every, self.first or 0)

    def frames(self) -> Iterator[VideoFrame]:
        bad_run = 0
        while True:
            if self.cap.grab():
                bad_run, self.readable = 0, self.readable + 1
                time = frame_time(self.cap, self.number, self.fps)
                where = self.pick.where(self.number, time)
                if where > 0:
                    self.past_stop = True
                    return
                if where == 0 and self._picks():
                    ok, bgr = self.cap.retrieve()
                    if ok:
                        self.picked += 1
                        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                        yield VideoFrame(self.number, image, self.fps, time)
                    else:
                        self.gaps.add(self.number)
            elif self.number >= self.declared or bad_run >= MAX_BAD_RUN:
                return  # the end, or damage too long to wait out: the rest is unreadable
            else:
                if self.first is not None and self.pick.where(self.number, None) == 0:
                    self.gaps.add(self.number)  # outside the picked grid: add() drops it
                bad_run += 1
            self.number += 1

    def _picks(self) -> bool:
        if self.first is None:
            self.first = self.gaps.anchor = self.number
        return (self.number - self.first) % self.pick.every == 0

    def report(self, path: Path, warn: bool = True) -> None:
        """After reading: the unreadable tail, the one warning, or why nothing was read."""
        if not self.past_stop:  # the declared frames never read (a bound in s: estimated)
            first, stop = self.pick.frame_bounds(self.fps)
            end = self.declared if stop is None else min(stop, self.declared)
            if self.first is None:
                self.gaps.anchor = first
            self.gaps.add(max(self.number, first), end - 1)
        if self.readable == 0:
            raise DataError("no frame could be read from this video", path)
        if not warn:
            return
        if self.gaps:
            step = self.gaps.step
            step = f" (every {step} frames from frame {self.gaps.anchor})" if step > 1 else ""
            log.warning(
                "%s: %d of %d frames could not be read and have no predictions: "
                "frames %s%s (numbered from 0, as in the outputs)",
                path,
                len(self.gaps),
                self.picked + len(self.gaps),
                self.gaps,
                step,
            )
        elif self.picked == 0 and self.past_stop:
            log.warning("%s: no frame in %s (it stops before it starts here)", path, self.pick)
        elif self.picked == 0:
            log.warning("%s: no frame in %s (the video has %d)", path, self.pick, self.number)


def frame_time(cap: cv2.VideoCapture, number: int, fps: float) -> float:
    """When the frame just grabbed starts.

    Args:
        cap: the open video.
        number: the frame's number, from 0.
        fps: the video's frame rate.

    Returns:
        Seconds from the start: the container's own timestamp (so a variable frame rate is
        kept), or ``number / fps`` where it gives none; rounded to the microsecond (OpenCV's
        milliseconds carry float noise, 3.9999999999995 for 4).
    """
    msec = cap.get(cv2.CAP_PROP_POS_MSEC)
    if math.isfinite(msec) and (msec > 0 or (msec == 0 and number == 0)):
        return round(msec / 1000, 6)
    return round(number / fps, 6)


class VideoHeader(NamedTuple):
    """What a video's container declares: frame rate, frame count (0: unknown), frame size."""

    fps: float
    frames: int
    width: int
    height: int


def video_header(path: Path) -> VideoHeader:
    """The header of a video, read before any work.

    Args:
        path: the video file.

    Returns:
        Its :class:`VideoHeader`; :class:`DataError` when it cannot be opened.
    """
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DataError("cannot open this video (corrupt, or a codec OpenCV lacks)", path)
        fps, declared = _header(cap)
        width, height = (
            int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
        return VideoHeader(fps, declared, width, height)
    finally:
        cap.release()


def check_range(path: Path, header: VideoHeader, frames: FrameRange) -> None:
    """Refuse a frame range that picks none of a video's frames.

    Args:
        path: the video, named in the :class:`DataError`.
        header: its header (an unknown count, 0, is not judged: reading will tell).
        frames: the picked range.

    Returns:
        None; raises :class:`DataError` when ``frames`` picks none of the declared frames.
    """
    if header.frames > 0 and frames.count(header.frames, header.fps) == 0:
        raise DataError(
            f"{frames} picks no frame of this video: it has {header.frames} frames "
            f"(0 to {header.frames - 1}; {header.frames / header.fps:.2f} s at "
            f"{header.fps:g} frames/s)",
            path,
        )


def estimate_frames(path: Path, frames: FrameRange | None = None) -> int:
    """How many frames :func:`iter_video` will yield (for the progress bar only).

    Args:
        path: the video file.
        frames: the frames to pick; None: all.

    Returns:
        The count from the declared frame count; 0 when the video does not open.
    """
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return 0
        fps, declared = _header(cap)
        return (frames or FrameRange()).count(declared, fps)
    finally:
        cap.release()


class FrameGaps:
    """Unreadable frame numbers as [first, last] ranges, added in increasing order (a
    truncated long video's tail stays one range, not a list of numbers). With ``step`` > 1
    (``--every``) only numbers ``anchor + k * step`` count, and a range holds every
    ``step``-th number from its first to its last."""

    def __init__(self, step: int = 1, anchor: int = 0) -> None:
        self.step, self.anchor = step, anchor
        self.ranges: list[list[int]] = []

    def add(self, first: int, last: int | None = None) -> None:
        last = first if last is None else last
        first += (self.anchor - first) % self.step  # onto the grid: up, and down
        last -= (last - self.anchor) % self.step
        if last < first:
            return
        if self.ranges and first <= self.ranges[-1][1] + self.step:
            self.ranges[-1][1] = max(self.ranges[-1][1], last)
        else:
            self.ranges.append([first, last])

    def __len__(self) -> int:
        return sum((b - a) // self.step + 1 for a, b in self.ranges)

    def __str__(self) -> str:
        """Like 3-5, 9, 12-13: the first SHOWN_RANGES ranges, then an ellipsis."""
        text = [str(a) if a == b else f"{a}-{b}" for a, b in self.ranges[:SHOWN_RANGES]]
        return ", ".join(text + (["..."] if len(self.ranges) > SHOWN_RANGES else []))


class VideoWriteError(Exception):
    """A drawn video that cannot be written; the message is the cause."""


def drawn_suffix(width: int, height: int) -> str:
    """The drawn video's file suffix for frames of ``width`` x ``height``.

    OpenCV's FFmpeg writer cuts the last column and row of odd sizes for every codec (33x17
    became 32x16); OpenCV's own Motion JPEG writer keeps them, so the drawn video always has the
    input's size.

    Args:
        width: frame width, px.
        height: frame height, px.

    Returns:
        ``".mp4"`` (MPEG-4, small files), or ``".avi"`` (Motion JPEG) when a side is odd.
    """
    return ".avi" if width % 2 or height % 2 else ".mp4"


class DrawnVideo:
    """A drawn video, written under a temporary name and renamed when complete (a run that
    fails leaves no half-written video). Frames a damaged input lacked are written black, so
    frame n of the drawn video stays frame n of the input and of the CSV. A ``.avi`` path is
    written as Motion JPEG by OpenCV's own writer (odd sizes, see :func:`drawn_suffix`)."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]):
        self.path, self.size, self.fps = path, size, fps
        self.tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
        self.next = 0
        self.mjpeg = path.suffix.lower() == ".avi"
        if self.mjpeg:
            fourcc = cv2.VideoWriter_fourcc(*"MJPG")
            self._writer = cv2.VideoWriter(str(self.tmp), cv2.CAP_OPENCV_MJPEG, fourcc, fps, size)
        else:
            self._writer = cv2.VideoWriter(
                str(self.tmp), cv2.VideoWriter_fourcc(*FOURCC), fps, size
            )
        if not self._writer.isOpened():
            self._writer.release()
            raise VideoWriteError(_write_problem(self.tmp, "MJPG" if self.mjpeg else FOURCC))

    def write(self, number: int, rgb: np.ndarray) -> None:
        w, h = self.size
        for _ in range(self.next, number):
            self._writer.write(np.zeros((h, w, 3), np.uint8))
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.next = max(self.next, number + 1)

    def close(self) -> Path:
        self._writer.release()
        if self.mjpeg:
            exact_avi_rate(self.tmp, self.fps)
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        self._writer.release()
        self.tmp.unlink(missing_ok=True)


def exact_avi_rate(path: Path, fps: float) -> None:
    """Give an AVI written by OpenCV's Motion JPEG writer its exact frame rate.

    That writer stores a whole number of frames per second (7.5 became 8), which would stretch a
    drawn video of 29.97 or fps / --every frames per second. The rate is the fraction dwRate /
    dwScale of the video stream header, and avih's microseconds per frame; nothing is changed in
    a file of another layout.

    Args:
        path: the AVI file, rewritten in place.
        fps: the frame rate it should have.

    Returns:
        None.
    """
    rate = Fraction(fps).limit_denominator(100_000)
    with open(path, "r+b") as f:
        head = f.read(4096)
        avih, strh = head.find(b"avih"), head.find(b"strh")
        if not head.startswith(b"RIFF") or avih < 0 or head[strh + 8 : strh + 12] != b"vids":
            return
        f.seek(avih + 8)
        f.write(struct.pack("<I", round(1e6 / fps)))
        f.seek(strh + 28)  # fccType, fccHandler, dwFlags, wPriority, wLanguage, dwInitialFrames
        f.write(struct.pack("<II", rate.denominator, rate.numerator))  # dwScale, dwRate


def _write_problem(path: Path, fourcc: str = FOURCC) -> str:
    """Why OpenCV could not open ``path`` for writing: the file system, or the codec."""
    try:
        with open(path, "wb"):
            pass
    except OSError as err:
        return f"cannot create the file: {err.strerror or err}"
    finally:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
    return f"this OpenCV build cannot encode {fourcc!r} video (it lacks the FFmpeg encoder)"
