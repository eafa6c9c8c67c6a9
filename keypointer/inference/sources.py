"""``keypointer predict``'s inputs and outputs: images, folders, videos, detection boxes;
COCO results JSON, DeepLabCut-style CSV, drawn images and videos.

Every bad input (a missing path, an undecodable image or video, a malformed boxes file)
raises :class:`~keypointer.errors.DataError` naming the file.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from keypointer.data.images import read_image
from keypointer.engine.video import DrawnVideo, VideoWriteError, read_video
from keypointer.errors import DataError
from keypointer.output_paths import make_output_dir, remove_created
from keypointer.skeleton import Skeleton

log = logging.getLogger("keypointer")

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pgm", ".ppm"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm", ".h264"}
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
    fps: float = 25.0
    boxes: list[tuple[list[float], float, int | None]] | None = None  # (bbox, score, image_id)


def collect_sources(inputs: Sequence[str | Path]) -> list[Source]:
    """Files and folders (searched recursively, sorted) -> images and videos, in order."""
    sources: list[Source] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = [_source(p) for p in sorted(path.rglob("*")) if p.is_file()]
            found = [s for s in found if s is not None]
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
    return sources


def _source(path: Path) -> Source | None:
    ext = path.suffix.lower()
    if ext in IMAGE_EXTS:
        return Source(path, "image")
    if ext in VIDEO_EXTS:
        return Source(path, "video")
    return None


def count_frames(sources: Sequence[Source]) -> int:
    """Images plus the frame counts videos declare (for the progress bar; may be estimates)."""
    total = 0
    for s in sources:
        if s.kind == "image":
            total += 1
            continue
        cap = cv2.VideoCapture(str(s.path))
        total += max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0) if cap.isOpened() else 0
        cap.release()
    return total


def iter_frames(sources: Sequence[Source]) -> Iterator[Frame]:
    for s in sources:
        if s.kind == "image":
            yield Frame(s, read_image(s.path))
        else:
            yield from _video_frames(s)


def _video_frames(source: Source) -> Iterator[Frame]:
    for number, image, fps in read_video(source.path):
        yield Frame(source, image, number, fps)


# --------------------------------------------------------------------------- boxes


Detections = dict[Path, list[tuple[list[float], float, int | None]]]


def load_detections(
    path: str | Path, sources: Sequence[Source], min_score: float = 0.0
) -> Detections:
    """A COCO detections JSON -> image path -> [(bbox x, y, w, h, score, image_id)], best first.

    Accepted: a results list ``[{"image_id", "bbox", "score"?}, ...]`` whose ``image_id`` is an
    image's file name, its stem, or the number in its stem ("000042.jpg" is 42); or a COCO
    dataset ``{"images": [{"id", "file_name"}], "annotations": [{"image_id", "bbox"}]}``.
    Boxes scoring below ``min_score`` are left out; boxes of no input image are counted in a
    warning.
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


# --------------------------------------------------------------------------- outputs


@dataclass
class _Table:
    """Rows of one DeepLabCut-style CSV: (index, [(keypoints (K, 2), scores (K,)) per instance])."""

    rows: list[tuple[str, list[tuple[np.ndarray, np.ndarray]]]] = field(default_factory=list)


class Outputs:
    """Collects predictions frame by frame and writes them.

    ``out/predictions.json``: COCO results (image_id, category_id 1, keypoints [x, y, score]*K,
    score); ``out/images.json``: the image_id of every input image or frame; ``predictions.csv``
    for the images and ``<video>.csv`` per video, as DeepLabCut writes them (header rows scorer,
    [individuals,] bodyparts, coords; columns x, y, likelihood); drawn images under
    ``out/drawn/`` and ``<video>.mp4`` per video. ``out`` is created at once (the drawn video
    opens in it); :meth:`abort` takes away what a failed run wrote.
    """

    def __init__(
        self,
        out: Path,
        skeleton: Skeleton,
        threshold: float = 0.3,
        draw: bool = True,
        multi: bool = False,
        scorer: str = "keypointer",
    ):
        self.out, self.skeleton, self.threshold = Path(out), skeleton, threshold
        self.draw, self.multi, self.scorer = draw, multi, scorer
        self.results: list[dict] = []
        self.images: list[dict] = []
        self.tables: dict[str, _Table] = {}
        self._names: dict[tuple[Path, str], str] = {}
        self._video: DrawnVideo | None = None
        self._video_source: Path | None = None
        self._next_id = 1
        self.written: list[Path] = []
        self._created = make_output_dir(self.out)

    def add(
        self,
        frame: Frame,
        keypoints: np.ndarray,
        scores: np.ndarray,
        instance_scores: np.ndarray,
        image_id: int | str | None = None,
    ) -> None:
        """Keypoints (M, K, 2) in image pixels, scores (M, K), instance scores (M,)."""
        if image_id is None:
            image_id = self._next_id
        if isinstance(image_id, int):
            self._next_id = max(self._next_id, image_id + 1)
        src = frame.source
        h, w = frame.image.shape[:2]
        entry = {"id": image_id, "file_name": str(src.path), "width": w, "height": h}
        if frame.number is not None:
            entry["frame"] = frame.number
        self.images.append(entry)
        for kp, sc, inst in zip(keypoints, scores, instance_scores, strict=True):
            flat = np.concatenate([kp, sc[:, None]], axis=1).reshape(-1)
            self.results.append(
                {
                    "image_id": image_id,
                    "category_id": 1,
                    "keypoints": [round(float(v), 4) for v in flat],
                    "score": round(float(inst), 6),
                }
            )
        key = "predictions.csv" if frame.number is None else self._name(src.path, ".csv")
        table = self.tables.setdefault(key, _Table())
        index = str(src.path) if frame.number is None else str(frame.number)
        table.rows.append((index, list(zip(keypoints, scores, strict=True))))
        if self.draw:
            self._draw(frame, keypoints, scores)

    def _draw(self, frame: Frame, keypoints: np.ndarray, scores: np.ndarray) -> None:
        from keypointer.viz import draw_keypoints, write_image

        image = frame.image
        for kp, sc in zip(keypoints, scores, strict=True):
            image = draw_keypoints(image, kp, self.skeleton, sc, self.threshold)
        src = frame.source.path
        if frame.number is None:
            ext = src.suffix.lower() if src.suffix.lower() in DRAWABLE_EXTS else ".png"
            self.written.append(write_image(self.out / "drawn" / self._name(src, ext), image))
            return
        if self._video_source != src:
            self._open_video(src, frame.fps, (image.shape[1], image.shape[0]))
        if self._video is not None:
            self._video.write(frame.number, image)

    def _open_video(self, src: Path, fps: float, size: tuple[int, int]) -> None:
        """Start ``src``'s drawn video; when OpenCV cannot, warn and go on without it (the
        predictions matter more than the drawing)."""
        self._close_video()
        self._video_source = src
        path = self.out / self._name(src, ".mp4")
        try:
            self._video = DrawnVideo(path, fps, size)
        except VideoWriteError as err:
            log.warning("%s: drawn video not written (%s); the predictions still are", path, err)

    def _name(self, src: Path, ext: str) -> str:
        """A file name for ``src`` with ``ext``, unique among the outputs (same stem, other
        folder: ``name-2``)."""
        key = (src, ext)
        if key not in self._names:
            taken = set(self._names.values()) | {"predictions.csv", "predictions.json"}
            name, n = src.stem + ext, 1
            while name in taken:
                n += 1
                name = f"{src.stem}-{n}{ext}"
            self._names[key] = name
        return self._names[key]

    def _close_video(self) -> None:
        if self._video is not None:
            self.written.append(self._video.close())
        self._video = None
        self._video_source = None

    def abort(self) -> None:
        """After a failure: no half-written video, and no output folder this run created."""
        if self._video is not None:
            self._video.abort()
            self._video = None
        remove_created(self._created)

    def close(self) -> list[Path]:
        """Finish videos, write the JSON and CSV files; returns every file written."""
        self._close_video()
        for name, payload in (("predictions.json", self.results), ("images.json", self.images)):
            path = self.out / name
            path.write_text(json.dumps(payload), encoding="utf-8")
            self.written.append(path)
        for name, table in self.tables.items():
            self.written.append(
                write_dlc_csv(self.out / name, table, self.skeleton, self.scorer, self.multi)
            )
        return self.written


def write_dlc_csv(path: Path, table: _Table, skeleton: Skeleton, scorer: str, multi: bool) -> Path:
    """DeepLabCut's layout: header rows scorer, [individuals,] bodyparts, coords; then one row
    per image or frame. Instances missing from a row (fewer boxes) are left empty."""
    k = skeleton.num_keypoints
    n_inst = max([len(insts) for _, insts in table.rows] + [1]) if multi else 1
    cols = [
        (f"individual{i}", name, c)
        for i in range(n_inst)
        for name in skeleton.names
        for c in ("x", "y", "likelihood")
    ]
    header = [["scorer"] + [scorer] * len(cols)]
    if multi:
        header.append(["individuals"] + [c[0] for c in cols])
    header.append(["bodyparts"] + [c[1] for c in cols])
    header.append(["coords"] + [c[2] for c in cols])
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerows(header)
        for index, insts in table.rows:
            cells: list[str] = []
            for i in range(n_inst):
                if i < len(insts):
                    kp, sc = insts[i]
                    values = np.concatenate([kp, sc[:, None]], axis=1).reshape(-1)
                    cells += [f"{v:.4f}" if np.isfinite(v) else "" for v in values]
                else:
                    cells += [""] * (3 * k)
            writer.writerow([index] + cells)
    return path
