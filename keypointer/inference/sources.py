"""What ``keypointer predict`` reads: images, folders, videos (frame by frame) and COCO
detection boxes.

Every bad input (a missing path, an undecodable image or video, a malformed boxes file)
raises :class:`~keypointer.errors.DataError` naming the file.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from queue import Full, Queue
from typing import TypeVar

import numpy as np

from keypointer.config import DEFAULT_FPS
from keypointer.data.images import read_image
from keypointer.errors import DataError
from keypointer.inference.video import FrameRange, estimate_frames, iter_video
from keypointer.output_paths import is_inside

T = TypeVar("T")

log = logging.getLogger("keypointer")

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pgm", ".ppm"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm", ".h264"}
"""Suffixes (lower case) of the video files ``predict`` reads, with OpenCV."""
DRAWABLE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class Source:
    path: Path
    kind: str  # "image" | "video"


@dataclass
class Frame:
    """One image, or one frame of a video (``number`` is then the 0-based frame number)."""

    source: Source
    image: np.ndarray  # (H, W, 3) uint8 RGB
    number: int | None = None
    fps: float = DEFAULT_FPS
    time: float | None = None  # seconds from the video's start (its own timestamp, VFR-safe)


def collect_sources(inputs: Sequence[str | Path], out: str | Path | None = None) -> list[Source]:
    """Images and videos to predict, from files and folders.

    Files a folder search finds inside the output folder are outputs (of this command's earlier
    runs), never inputs: all of ``out`` when it lies inside the searched folder, else (``out`` is
    that folder or holds it) its ``drawn/`` folder, where drawn images and videos go. One
    warning gives their count. Files named one by one are always taken.

    Args:
        inputs: files and folders (searched recursively, sorted).
        out: the output folder, or None.

    Returns:
        The images and videos, in order.
    """
    sources: list[Source] = []
    skipped = 0
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = [_source(p) for p in sorted(path.rglob("*")) if p.is_file()]
            found = [s for s in found if s is not None]
            if out is not None:
                outputs = _outputs_in(path, Path(out))
                kept = [s for s in found if not is_inside(s.path, outputs)]
                skipped, found = skipped + len(found) - len(kept), kept
            if not found:
                raise DataError("no images or videos in this folder", path)
            sources += found
        elif path.is_file():
            source = _source(path)
            if source is None:
                raise DataError(
                    f"not an image or a video file (expected one of "
                    f"{', '.join(sorted(IMAGE_EXTS | VIDEO_EXTS))})",
                    path,
                )
            sources.append(source)
        else:
            raise DataError("no such file or folder", path)
    if not sources:
        raise DataError("no input given")
    if skipped:
        log.warning(
            "%s: %d images/videos inside the output folder were skipped (outputs are not inputs)",
            out,
            skipped,
        )
    return sources


def _outputs_in(folder: Path, out: Path) -> Path:
    """The part of ``out`` a search of ``folder`` must skip (see :func:`collect_sources`)."""
    return out / "drawn" if is_inside(folder, out) else out


def _source(path: Path) -> Source | None:
    ext = path.suffix.lower()
    if ext in IMAGE_EXTS:
        return Source(path, "image")
    if ext in VIDEO_EXTS:
        return Source(path, "video")
    return None


def count_frames(sources: Sequence[Source], frames: FrameRange | None = None) -> int:
    """How many frames ``predict`` will read (for the progress bar; an estimate).

    Args:
        sources: images and videos.
        frames: the frames picked of each video; None: all.

    Returns:
        The images plus the picked frames that the videos declare.
    """
    return sum(1 if s.kind == "image" else estimate_frames(s.path, frames) for s in sources)


def iter_frames(
    sources: Sequence[Source], frames: FrameRange | None = None, warn: bool = True
) -> Iterator[Frame]:
    """Every image, and the picked frames of every video, in order.

    Args:
        sources: images and videos.
        frames: the frames picked of each video; None: all.
        warn: warn about unreadable frames (False for a second read of the same videos).

    Returns:
        An iterator of :class:`Frame`.
    """
    for s in sources:
        if s.kind == "image":
            yield Frame(s, read_image(s.path))
        else:
            yield from _video_frames(s, frames or FrameRange(), warn)


def _video_frames(source: Source, frames: FrameRange, warn: bool) -> Iterator[Frame]:
    for f in iter_video(source.path, frames, warn):
        yield Frame(source, f.image, f.number, f.fps, f.time)


# --------------------------------------------------------------------------- read-ahead

_DONE = object()


def read_ahead(items: Iterable[T], depth: int) -> Iterator[T]:
    """Items produced in a background thread, at most ``depth`` ahead of the consumer.

    Decoding (OpenCV releases the GIL) overlaps with inference, and never more than ``depth``
    items are held. An exception in the thread is raised here, where its item would have come;
    closing this generator stops the thread and closes ``items`` (which releases a video) in it.

    Args:
        items: what to produce.
        depth: the most items produced and not yet consumed.

    Returns:
        An iterator of the same items, in order.
    """
    queue: Queue = Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        it = iter(items)
        try:
            for item in it:
                if not _put(queue, (item, None), stop):
                    return
            _put(queue, (_DONE, None), stop)
        except BaseException as err:  # handed to the consumer, which raises it
            _put(queue, (_DONE, err), stop)
        finally:
            if hasattr(it, "close"):
                it.close()  # a generator: its finally blocks run (a video is released)

    thread = threading.Thread(target=produce, name="keypointer-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, err = queue.get()
            if err is not None:
                raise err
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        thread.join()


def _put(queue: Queue, entry: tuple, stop: threading.Event) -> bool:
    """Put ``entry`` unless the consumer has stopped (then False)."""
    while not stop.is_set():
        try:
            queue.put(entry, timeout=0.05)
            return True
        except Full:
            continue
    return False


# --------------------------------------------------------------------------- boxes


Detections = dict[Path, list[tuple[list[float], float, int | None]]]


def load_detections(
    path: str | Path, sources: Sequence[Source], min_score: float = 0.0
) -> Detections:
    """The boxes of a COCO detections JSON, by input image.

    Accepted: a results list ``[{"image_id", "bbox", "score"?}, ...]`` whose ``image_id`` is an
    image's file name, its stem, or the number in its stem ("000042.jpg" is 42); or a COCO
    dataset ``{"images": [{"id", "file_name"}], "annotations": [{"image_id", "bbox"}]}``. Boxes
    of no input image are counted in a warning.

    Args:
        path: the JSON file.
        sources: the input images and videos.
        min_score: boxes scoring below it are left out.

    Returns:
        Image path -> [(COCO box x, y, w, h, score, image_id)], best first.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise DataError("boxes file not found", path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"not a readable JSON file ({err})", path) from None
    names: dict[object, str] = {}
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        names = {im.get("id"): str(im.get("file_name", "")) for im in data.get("images", [])}
        data = data["annotations"]
    if not isinstance(data, list):
        raise DataError("expected a list of detections with image_id and bbox", path)
    lookup = _image_lookup([s.path for s in sources if s.kind == "image"])
    out: Detections = {}
    unmatched = 0
    for i, det in enumerate(data):
        bbox, score, image_id = _detection(det, path, i)
        key = names.get(image_id, image_id)
        image = lookup.get(str(key)) or lookup.get(Path(str(key)).name)
        if image is None:
            unmatched += 1
        elif score >= min_score:
            out.setdefault(image, []).append((bbox, score, image_id))
    if unmatched:
        log.warning("%s: %d boxes name no input image; they were left out", path, unmatched)
    for dets in out.values():
        dets.sort(key=lambda d: -d[1])
    return out


def _detection(det: object, path: Path, i: int) -> tuple[list[float], float, object]:
    record = f"detection {i}"
    if not isinstance(det, dict) or "image_id" not in det or "bbox" not in det:
        raise DataError("each detection needs image_id and bbox", path, record)
    bbox = det["bbox"]
    try:
        bbox = [float(v) for v in bbox]
        score = float(det.get("score", 1.0))
    except (TypeError, ValueError):
        raise DataError(f"bbox must be 4 numbers, got {bbox!r}", path, record) from None
    if len(bbox) != 4 or not all(map(math.isfinite, bbox)) or bbox[2] <= 0 or bbox[3] <= 0:
        raise DataError(f"bbox must be finite x, y, w, h with w, h > 0, got {bbox}", path, record)
    return bbox, score, det["image_id"]


def _image_lookup(images: Sequence[Path]) -> dict[str, Path]:
    """Keys a detection's image_id may take: path, file name, stem, the stem's number."""
    lookup: dict[str, Path] = {}
    for p in images:
        keys = [str(p), p.as_posix(), p.name, p.stem]
        if p.stem.isdigit():
            keys.append(str(int(p.stem)))
        for k in keys:
            lookup.setdefault(k, p)
    return lookup
