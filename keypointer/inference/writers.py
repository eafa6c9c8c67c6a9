"""What ``keypointer predict`` writes: COCO results JSON, DeepLabCut-style CSVs, drawn images
and, per video, the files of :mod:`keypointer.inference.video_outputs`, into an output folder
that a failed run takes away again."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keypointer.config import KEYPOINT_SCORE_THRESHOLD
from keypointer.errors import DataError
from keypointer.files import atomic_path
from keypointer.inference.runners import FramePrediction
from keypointer.inference.sources import DRAWABLE_EXTS, Frame, Source, iter_frames
from keypointer.inference.tracks import PostProcess, VideoTable, VideoTracks, finish
from keypointer.inference.video import drawn_suffix
from keypointer.inference.video_outputs import (
    coco_triplets,
    draw_video,
    json_results,
    write_dlc_video_csv,
    write_dlc_video_h5,
    write_frames_csv,
)
from keypointer.output_paths import make_output_dir, remove_created, same_file
from keypointer.skeleton import Skeleton
from keypointer.viz import draw_keypoints, write_image

log = logging.getLogger("keypointer")


@dataclass
class ImageTable:
    """Rows of the images' DeepLabCut-style CSV: (index, [(keypoints (K, 2), scores (K,)) per instance])."""

    rows: list[tuple[str, list[tuple[np.ndarray, np.ndarray]]]] = field(default_factory=list)


class OutputNames:
    """The file names of one run's outputs, unique among them: an input with a stem another
    input has (another folder) gets ``name-2``. Videos reserve their stem (ext ""), for all
    their files. Asked in the same order, the names are the same: :func:`planned_files` asks
    first, before any work, and :class:`Outputs` then writes to the names it got."""

    RESERVED = frozenset({"predictions.csv", "predictions.json", "predictions", "images", "drawn"})

    def __init__(self) -> None:
        self._names: dict[tuple[Path, str], str] = {}
        self.drawn_suffix: dict[Path, str] = {}  # video -> its drawn video's suffix, as planned

    def __call__(self, src: Path, ext: str) -> str:
        key = (Path(src), ext)
        if key not in self._names:
            taken = set(self._names.values()) | self.RESERVED
            taken |= {Path(n).stem for n in self._names.values()}
            name, n = src.stem + ext, 1
            while name in taken:
                n += 1
                name = f"{src.stem}-{n}{ext}"
            self._names[key] = name
        return self._names[key]


def drawn_image_name(src: Path, names: OutputNames) -> str:
    """The drawn copy's name under ``drawn/``: the input's format where OpenCV writes it."""
    ext = src.suffix.lower() if src.suffix.lower() in DRAWABLE_EXTS else ".png"
    return names(src, ext)


def planned_files(
    out: Path,
    sources: Sequence[Source],
    names: OutputNames,
    draw: bool = True,
    h5: bool = False,
    sizes: Mapping[Path, tuple[int, int]] | None = None,
) -> list[Path]:
    """Every file a run on ``sources`` will write into ``out`` (``sizes``: each video's
    (width, height), which picks its drawn video's format), in the order the run names them,
    so that they can all be checked before any work."""
    files = [out / "predictions.json", out / "images.json"]
    if any(s.kind == "image" for s in sources):
        files.append(out / "predictions.csv")
    for s in sources:
        if s.kind == "image":
            files += [out / "drawn" / drawn_image_name(s.path, names)] if draw else []
            continue
        stem = names(s.path, "")
        files += [out / f"{stem}.csv", out / f"{stem}.frames.csv"]
        files += [out / f"{stem}.h5"] if h5 else []
        if draw:
            suffix = drawn_suffix(*(sizes or {}).get(s.path, (0, 0)))
            names.drawn_suffix[s.path] = suffix
            files.append(out / "drawn" / f"{stem}{suffix}")
    return files


class Outputs:
    """Collects predictions frame by frame and writes them.

    ``out/predictions.json``: COCO results (image_id, category_id 1, keypoints [x, y, score]*K,
    score; video frames add frame, time, track and flags; a point without a value is
    x = y = score = 0, COCO's own convention, never null); ``out/images.json``: the image_id of
    every input image or frame; ``predictions.csv`` for the images, as DeepLabCut writes them
    (header rows scorer, [individuals,] bodyparts, coords; columns x, y, likelihood); drawn
    images and videos under ``out/drawn/``; per video the files of
    :mod:`keypointer.inference.video_outputs`. Videos are tracked, flagged and smoothed
    (``post``) when each ends. ``names``: the names :func:`planned_files` checked. ``out`` is
    created at once; :meth:`abort` takes away what a failed run wrote. No file is written
    over the input it was made from.
    """

    def __init__(
        self,
        out: Path,
        skeleton: Skeleton,
        threshold: float = KEYPOINT_SCORE_THRESHOLD,
        draw: bool = True,
        multi: bool = False,
        scorer: str = "keypointer",
        post: PostProcess | None = None,
        h5: bool = False,
        reread: Callable[[Path], Iterable[Frame]] | None = None,
        names: OutputNames | None = None,
    ):
        self.out, self.skeleton, self.threshold = Path(out), skeleton, threshold
        self.draw, self.multi, self.scorer = draw, multi, scorer
        self.post, self.h5 = post or PostProcess(min_score=threshold), h5
        self.reread = reread or (lambda path: iter_frames([Source(path, "video")]))
        self.results: list[dict] = []
        self.images: list[dict] = []
        self.table = ImageTable()
        self.videos: list[tuple[VideoTracks, int, dict]] = []  # tracks, first image_id, entry
        self._name = names or OutputNames()
        self._video: VideoTable | None = None
        self._video_entry: dict = {}
        self._next_id = 1
        self.written: list[Path] = []
        self._created = make_output_dir(self.out)

    def add(self, pred: FramePrediction) -> None:
        """One frame's predictions: keypoints (M, K, 2) in image pixels, scores (M, K)."""
        frame = pred.frame
        if frame.number is not None:
            self._add_video_frame(pred)
            return
        self._finish_video()
        image_id = pred.image_id if pred.image_id is not None else self._next_id
        if isinstance(image_id, int):
            self._next_id = max(self._next_id, image_id + 1)
        h, w = frame.image.shape[:2]
        entry = {"id": image_id, "file_name": str(frame.source.path), "width": w, "height": h}
        self.images.append(entry)
        for kp, sc, inst in zip(pred.keypoints, pred.scores, pred.instance_scores, strict=True):
            self.results.append(
                {
                    "image_id": image_id,
                    "category_id": 1,
                    "keypoints": coco_triplets(kp, sc),
                    "score": round(float(np.nan_to_num(inst)), 6),
                }
            )
        self.table.rows.append(
            (str(frame.source.path), list(zip(pred.keypoints, pred.scores, strict=True)))
        )
        if self.draw:
            self._draw(frame, pred.keypoints, pred.scores)

    def _add_video_frame(self, pred: FramePrediction) -> None:
        frame = pred.frame
        if self._video is None or self._video.source != frame.source.path:
            self._finish_video()
            self._video = VideoTable(frame.source.path, frame.fps)
            h, w = frame.image.shape[:2]
            self._video_entry = {"file_name": str(frame.source.path), "width": w, "height": h}
        self._video.add(pred)

    def _finish_video(self) -> None:
        """Track, flag and smooth the video that just ended, and write its files."""
        table, self._video = self._video, None
        if table is None or not len(table):
            return
        tracks = finish(table, self.post)
        src, stem = table.source, self._name(table.source, "")
        csv_path = self._target(self.out / f"{stem}.csv", src)
        self.written.append(write_dlc_video_csv(csv_path, tracks, self.skeleton, self.scorer))
        frames_path = self._target(self.out / f"{stem}.frames.csv", src)
        self.written.append(write_frames_csv(frames_path, tracks, self.skeleton))
        if self.h5:
            h5_path = self._target(self.out / f"{stem}.h5", src)
            self.written.append(write_dlc_video_h5(h5_path, tracks, self.skeleton, self.scorer))
        if self.draw:
            size = self._video_entry["width"], self._video_entry["height"]
            name = stem + self._name.drawn_suffix.get(src, drawn_suffix(*size))
            self.written += self._draw_video(self._target(self.out / "drawn" / name, src), tracks)
        self.videos.append((tracks, self._next_id, self._video_entry))
        self._next_id += len(tracks.numbers)

    def _draw_video(self, path: Path, tracks: VideoTracks) -> list[Path]:
        """The drawn video, in ``drawn/`` (which is taken away again when it stays empty)."""
        folder = path.parent
        made = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        drawn = draw_video(path, self.reread(tracks.source), tracks, self.skeleton, self.threshold)
        if drawn is None and made and not any(folder.iterdir()):
            folder.rmdir()
        return [drawn] if drawn is not None else []

    def _target(self, path: Path, src: Path) -> Path:
        """``path``, unless it is the input ``src`` (the plan checked every input already;
        this is the safety net at the moment of writing, by identity, not spelling)."""
        if same_file(path, src):
            raise DataError(f"refusing to overwrite an input file ({src})", path)
        return path

    def _draw(self, frame: Frame, keypoints: np.ndarray, scores: np.ndarray) -> None:
        image = frame.image
        for kp, sc in zip(keypoints, scores, strict=True):
            image = draw_keypoints(image, kp, self.skeleton, sc, self.threshold)
        src = frame.source.path
        path = self._target(self.out / "drawn" / drawn_image_name(src, self._name), src)
        self.written.append(write_image(path, image))

    def abort(self) -> None:
        """After a failure: no half-written video, and no output folder this run created."""
        remove_created(self._created)

    def close(self) -> list[Path]:
        """Finish videos, write the JSON and CSV files; returns every file written."""
        self._finish_video()
        self.written.append(self._write_json("predictions.json", self._all_results()))
        self.written.append(self._write_json("images.json", self._all_images()))
        if self.table.rows:
            path = self.out / "predictions.csv"
            self.written.append(
                write_dlc_csv(path, self.table, self.skeleton, self.scorer, self.multi)
            )
        return self.written

    def _all_results(self) -> Iterator[dict]:
        yield from self.results
        for tracks, first, _ in self.videos:
            yield from json_results(tracks, range(first, first + len(tracks.numbers)))

    def _all_images(self) -> Iterator[dict]:
        yield from self.images
        for tracks, first, entry in self.videos:
            for i, (number, time) in enumerate(zip(tracks.numbers, tracks.times, strict=True)):
                yield {"id": first + i, **entry, "frame": int(number), "time": round(time, 6)}

    def _write_json(self, name: str, items: Iterable[dict]) -> Path:
        """A JSON list written item by item (a long video's results never sit in memory as
        one string)."""
        path = self.out / name
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.write("[")
            for i, item in enumerate(items):
                f.write(("," if i else "") + json.dumps(item))
            f.write("]")
        return path


def write_dlc_csv(
    path: Path, table: ImageTable, skeleton: Skeleton, scorer: str, multi: bool
) -> Path:
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
