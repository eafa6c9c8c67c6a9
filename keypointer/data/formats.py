"""Read any supported label format into a :class:`KeypointSet`, and convert between formats.

Formats: ``coco`` (keypoint JSON), ``dlc`` (DeepLabCut project or CollectedData CSV),
``yolo`` (Ultralytics pose data.yaml + labels/*.txt), ``csv`` (``image,<name>_x,<name>_y``),
and, read only, ``sleap`` (a SLEAP ``.slp`` file, through the ``sleap`` extra).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from keypointer.data.check import validate
from keypointer.data.coco import read_coco, write_coco
from keypointer.data.csv_format import read_csv, write_csv
from keypointer.data.dlc import is_dlc_csv, read_dlc, root_csvs, write_dlc
from keypointer.data.sleap import read_sleap
from keypointer.data.types import KeypointSet, path_exists
from keypointer.data.yolo import is_yolo_yaml, read_yolo, write_yolo
from keypointer.errors import DataError
from keypointer.output_paths import canonical, check_output_dir, check_target
from keypointer.skeleton import guess_flip_pairs

log = logging.getLogger("keypointer")
FORMATS = ("coco", "dlc", "yolo", "csv")  # read and written
READ_FORMATS = (*FORMATS, "sleap")  # read only: sleap
SUPPORTED = (
    "a COCO keypoint .json file, a DeepLabCut project folder (config.yaml + labeled-data/) "
    "or CollectedData_*.csv, a Lightning Pose folder (one CollectedData.csv at its root), a "
    "YOLO pose data.yaml (or its folder), a CSV with columns image,<name>_x,<name>_y, or a "
    "SLEAP .slp file"
)

FORMAT_NAMES = {"coco": "COCO", "dlc": "DeepLabCut", "yolo": "YOLO pose", "csv": "The plain CSV"}
FILE_NAMES = {"coco": "annotations.json", "csv": "labels.csv"}  # the file formats' default names

__all__ = ["FORMATS", "READ_FORMATS", "convert", "detect_format", "load_dataset", "losses"]
__all__ += ["output_target", "source_files"]
__all__ += ["read_coco", "read_csv", "read_dlc", "read_sleap", "read_yolo"]
__all__ += ["write_coco", "write_csv", "write_dlc", "write_yolo"]


def detect_format(path: str | Path) -> str:
    """The format a path holds, from its name and its first bytes; DataError if unknown."""
    path = Path(path)
    if not path_exists(path):
        raise DataError("no such file or folder", path)
    suffix = path.suffix.lower()
    if path.is_dir():
        if (path / "config.yaml").is_file() and (path / "labeled-data").is_dir():
            return "dlc"
        if any((path / n).is_file() for n in ("data.yaml", "data.yml")):
            return "yolo"
        found = root_csvs(path)
        if len(found) == 1:  # a Lightning Pose project: DeepLabCut-style labels, no config
            return "dlc"
        if found:
            names = ", ".join(p.name for p in found)
            raise DataError(f"several DeepLabCut-style CSVs ({names}); pass one of them", path)
    elif suffix == ".json":
        return "coco"
    elif suffix == ".slp":
        return "sleap"
    elif suffix == ".csv":
        return "dlc" if is_dlc_csv(path) else "csv"
    elif suffix in (".yaml", ".yml"):
        if is_yolo_yaml(path):
            return "yolo"
        if (path.parent / "labeled-data").is_dir():
            return "dlc"
    raise DataError(f"cannot tell the label format; expected {SUPPORTED}", path)


def load_dataset(
    path: str | Path,
    format: str | None = None,
    images: str | Path | None = None,
    split: str | None = None,
    category: int | str | None = None,
) -> KeypointSet:
    """Read labels; ``format`` (one of :data:`READ_FORMATS`) is detected from the path when
    None.

    ``images``: folder the label file's image paths are relative to. ``split``: which
    image set of a YOLO data.yaml ("train" by default); other formats ignore it.
    ``category``: which COCO category to read when the file's categories differ.
    """
    path = Path(path)
    if format is None:
        format = detect_format(path)
    elif not path_exists(path):
        raise DataError("no such file or folder", path)
    if format == "coco":
        return read_coco(path, images, category)
    if format == "dlc":
        return read_dlc(path, images)
    if format == "yolo":
        return read_yolo(path, images, split)
    if format == "csv":
        return read_csv(path, images)
    if format == "sleap":
        return read_sleap(path, images)
    raise DataError(f"unknown format {format!r}; choose one of {', '.join(READ_FORMATS)}", path)


def convert(
    src: str | Path,
    dst: str | Path,
    to: str = "coco",
    format: str | None = None,
    images: str | Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Read ``src`` and write it as ``to``; returns what was written.

    coco/csv: ``dst`` is the file (a folder gets ``annotations.json`` / ``labels.csv``); an
    existing one is replaced only with ``overwrite`` (never a file read, whatever the path's
    spelling: see :func:`output_target`), atomically. yolo/dlc: ``dst`` is a new or empty
    folder, and the images are copied into it. The labels are checked first (the same fatal
    problems as ``keypointer check``, without reading every image; images not labelled yet
    are fine); the data is written as read, not cleaned. Instances stay instances, and
    tracks are kept where the target has identities (COCO ``track_id``, DeepLabCut
    individuals, the CSV's ``track`` column). What the target cannot hold is logged, one
    warning per kind of loss with counts (:func:`losses`), as are the reader's warnings and
    left-out records.

    Frames of videos (SLEAP) are written as PNG files: for coco/csv into the new folder
    ``<dst stem>_frames/<video>/`` beside ``dst``, for yolo/dlc straight into the dataset.
    """
    if to not in FORMATS:
        raise DataError(f"unknown target format {to!r}; choose one of {', '.join(FORMATS)}")
    dst = output_target(to, Path(dst), [Path(src)], overwrite)
    kset = load_dataset(src, format, images)
    validate(kset, check_images=False, require_labels=False)
    for line in kset.warnings:
        log.warning("%s", line)
    for reason, n in kset.dropped.items():
        log.warning("%s: left out %d %s", kset.source, n, reason)
    for line in losses(kset, to):
        log.warning("%s", line)
    if to in ("coco", "csv"):
        with _frame_files(kset, dst.parent / f"{dst.stem}_frames") as kset:
            return write_coco(kset, dst) if to == "coco" else write_csv(kset, dst)
    with _frame_files(kset, None) as kset:
        return write_yolo(kset, dst) if to == "yolo" else write_dlc(kset, dst)


@contextmanager
def _frame_files(kset: KeypointSet, folder: Path | None) -> Iterator[KeypointSet]:
    """``kset`` with each frame of a video written to ``<folder>/<video>/img<frame>.png``.
    ``folder`` None: a temporary folder, removed when the block ends; else a new folder,
    kept unless the block fails."""
    if all(s.frame is None for s in kset.samples):
        yield kset
        return
    if folder is not None and path_exists(folder):
        raise DataError("the folder for the video frames exists; choose another output", folder)
    if folder is not None:
        folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".frames-", dir=folder.parent if folder else None))
    final, done = folder or work, False
    try:
        samples, names = [], {}
        for sample in kset.samples:
            if sample.frame is None:
                samples.append(sample)
                continue
            video = names.setdefault(sample.image, _unique(sample.image.stem, names.values()))
            name = f"{video}/img{sample.frame:06d}.png"
            _write_png(work / name, sample.read(), kset.source, sample.record)
            samples.append(replace(sample, image=final / name, frame=None))
        if folder is not None:
            work.rename(folder)  # whole or not at all
        yield replace(kset, samples=samples)
        done = folder is not None
    finally:
        if not done:
            shutil.rmtree(final, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def _unique(name: str, taken) -> str:
    taken, base, n = set(taken), name or "video", 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    return name


def _write_png(path: Path, rgb, source, record: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    try:
        if not ok:
            raise OSError("PNG encoding failed")
        data.tofile(str(path))
    except OSError as err:
        raise DataError(f"cannot write frame {path}: {err}", source, record) from None


def output_target(to: str, dst: Path, inputs: list[Path], overwrite: bool) -> Path:
    """Where ``convert`` or ``merge`` writes ``to`` (canonical: the path checked is the path
    written); refused before anything is read when it would destroy labels.

    coco/csv: the file ``dst`` (a folder name gets :data:`FILE_NAMES`' file inside it); never
    one of the files the inputs are read from (compared by identity: ``..`` through missing
    folders, symlinks and hard links name the file they reach), not even with ``overwrite``;
    another existing file only with ``overwrite``. yolo/dlc: a new or empty folder.
    """
    if to in FILE_NAMES:
        if dst.suffix.lower() not in (".json", ".csv"):
            dst = dst / FILE_NAMES[to]
        read = [f for src in inputs for f in source_files(src)]
        # A user's labels are the one thing that must never be lost.
        return check_target(dst, inputs=read, overwrite=overwrite, example=FILE_NAMES[to])
    folder = canonical(dst)
    if path_exists(folder) and (not folder.is_dir() or any(folder.iterdir())):
        raise DataError(f"the output folder ({to}) exists and is not empty; choose a new one", dst)
    check_output_dir(folder)
    return folder


def source_files(path: str | Path) -> list[Path]:
    """The label files reading ``path`` opens: the file itself, the CSVs of a DeepLabCut or
    Lightning Pose project (and its config.yaml), a YOLO data.yaml. (A file an output could be
    written over: the outputs are .json and .csv files.)"""
    path = Path(path)
    files = [path]
    try:
        folder = path if path.is_dir() else path.parent
        if path.is_dir() or path.suffix.lower() in (".yaml", ".yml"):
            names = ("config.yaml", "data.yaml", "data.yml")
            files += [folder / n for n in names if (folder / n).is_file()]
            files += sorted(folder.glob("labeled-data/*/CollectedData_*.csv"))
            files += root_csvs(folder)
        elif path.suffix.lower() == ".csv" and len(path.parents) > 2:
            files.append(path.parents[2] / "config.yaml")
    except OSError:  # a name the OS rejects: the reader says so
        pass
    return files


def losses(kset: KeypointSet, to: str) -> list[str]:
    """What writing ``kset`` as ``to`` cannot keep: one line per kind of loss, with counts
    (empty when nothing is lost). COCO holds everything keypointer reads; DeepLabCut has no
    boxes, no occlusion flag (v=1 becomes 2) and, multi-animal, no instance without a
    labelled point; the plain CSV has no boxes and no skeleton edges; YOLO has no identity
    and no instance without a box or a labelled point; only COCO stores flip pairs that
    left/right names would not give, and OKS sigmas."""
    name = FORMAT_NAMES[to]
    lines: list[str] = []
    empty = [i for s in kset.samples for i in s.instances if not i.labelled.any()]
    if to == "dlc":
        multi = any(len(s.instances) > 1 or any(i.track for i in s.instances) for s in kset.samples)
        dropped = empty if multi else []
        if dropped:
            boxed = sum(i.bbox is not None for i in dropped)
            lines.append(
                f"DeepLabCut (multi-animal) holds an individual only where it has labelled "
                f"points: {len(dropped)} instances with no labelled keypoint ({boxed} of them "
                "box-only) are left out"
            )
    elif to == "yolo":
        dropped = [i for i in empty if i.bbox is None]
        if dropped:
            lines.append(
                f"YOLO pose needs a box: left out {len(dropped)} instances with no box and no "
                "labelled keypoint"
            )
    else:
        dropped = []
    kept = [i for s in kset.samples for i in s.instances if not any(i is d for d in dropped)]
    if to in ("dlc", "csv"):
        boxes = sum(_own_box(i) for i in kept)
        if boxes:
            lines.append(
                f"{name} has no boxes: the boxes of {boxes} instances are dropped (reading it "
                "back, an instance's box is its labelled keypoints' extent)"
            )
    if to == "dlc":
        occluded = sum(int((i.keypoints[:, 2] == 1).sum()) for i in kept)
        if occluded:
            lines.append(
                f"DeepLabCut has no occlusion flag: {occluded} occluded points (v=1) are "
                "written as plain labels (v=2)"
            )
    if to == "yolo":
        tracked = [i.track for i in kept if i.track]
        if tracked:
            lines.append(
                f"YOLO pose labels have no identity: the tracks of {len(tracked)} instances "
                f"({len(set(tracked))} tracks) are not written"
            )
    return lines + _skeleton_losses(kset, to)


def _own_box(inst) -> bool:
    """Whether ``inst`` has a box that says more than its labelled keypoints' extent."""
    if inst.bbox is None:
        return False
    extent = inst.extent()
    return extent is None or not np.allclose(inst.bbox, extent, atol=1e-3)


def _skeleton_losses(kset: KeypointSet, to: str) -> list[str]:
    sk, name, lines = kset.skeleton, FORMAT_NAMES[to], []
    if to == "csv" and sk.edges:
        lines.append(f"{name} has no skeleton: its {len(sk.edges)} edges are dropped")
    guessed = {tuple(sorted(p)) for p in guess_flip_pairs(sk.names)}
    if to in ("dlc", "csv") and {tuple(sorted(p)) for p in sk.flip_pairs} != guessed:
        lines.append(
            f"{name} stores no flip pairs: reading it back guesses {len(guessed)} from the "
            f"left/right names instead of these {len(sk.flip_pairs)}"
        )
    if to != "coco" and sk.sigmas is not None:
        lines.append(f"{name} stores no OKS sigmas: the {len(sk.sigmas)} sigmas are dropped")
    return lines
