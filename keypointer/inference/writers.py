"""What ``keypointer predict`` writes: COCO results JSON, DeepLabCut-style CSVs, drawn images
and drawn videos, into an output folder that a failed run takes away again."""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keypointer.inference.runners import FramePrediction
from keypointer.inference.sources import DRAWABLE_EXTS, Frame
from keypointer.inference.video import DrawnVideo, VideoWriteError
from keypointer.output_paths import make_output_dir, remove_created
from keypointer.skeleton import Skeleton
from keypointer.viz import draw_keypoints, write_image

log = logging.getLogger("keypointer")


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

    def add(self, pred: FramePrediction) -> None:
        """One frame's predictions: keypoints (M, K, 2) in image pixels, scores (M, K)."""
        frame, keypoints, scores = pred.frame, pred.keypoints, pred.scores
        instance_scores, image_id = pred.instance_scores, pred.image_id
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
