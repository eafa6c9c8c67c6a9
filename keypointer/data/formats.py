"""Read any supported label format into a :class:`KeypointSet`, and convert between formats.

Formats: ``coco`` (keypoint JSON), ``dlc`` (DeepLabCut project or CollectedData CSV),
``yolo`` (Ultralytics pose data.yaml + labels/*.txt), ``csv`` (``image,<name>_x,<name>_y``),
and, read only, ``sleap`` (a SLEAP ``.slp`` file, through the ``sleap`` extra).

:data:`REGISTRY` is the one place that names them: each :class:`LabelFormat` holds its
reader, its writer, where its labels go, and what it can hold. ``load_dataset``,
``convert``, ``merge`` and ``suggest`` look formats up there, so a new format is its own
module plus one entry in :data:`REGISTRY`.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Protocol

import cv2
import numpy as np

from keypointer.data.boxes import keypoint_span, labelled_points
from keypointer.data.check import validate
from keypointer.data.coco import read_coco, write_coco
from keypointer.data.csv_format import read_csv, write_csv
from keypointer.data.dlc import is_dlc_csv, read_dlc, root_csvs, write_dlc
from keypointer.data.sleap import read_sleap
from keypointer.data.types import Instance, KeypointSet, path_exists
from keypointer.data.yolo import is_yolo_yaml, read_yolo, write_yolo
from keypointer.errors import ConfigError, DataError
from keypointer.output_paths import canonical, check_new_dir, check_target
from keypointer.skeleton import guess_flip_pairs

log = logging.getLogger("keypointer")
SUPPORTED = (
    "a COCO keypoint .json file, a DeepLabCut project folder (config.yaml + labeled-data/) "
    "or CollectedData_*.csv, a Lightning Pose folder (one CollectedData.csv at its root), a "
    "YOLO pose data.yaml (or its folder), a CSV with columns image,<name>_x,<name>_y, or a "
    "SLEAP .slp file"
)


class Reader(Protocol):
    """Reads labels: ``path``, the folder image paths are relative to, a YOLO split, a COCO
    category (a format ignores the options it does not have)."""

    def __call__(
        self, path: Path, images: str | Path | None, split: str | None, category: int | str | None
    ) -> KeypointSet: ...


class Writer(Protocol):
    """Writes ``kset`` to ``target`` (the file, or the folder); returns what was written."""

    def __call__(self, kset: KeypointSet, target: Path, scorer: str) -> Path: ...


@dataclass(frozen=True)
class Holds:
    """What a format can hold; :func:`losses` warns of the rest.

    ``empty_instances``: which instances with no labelled keypoint it keeps: "all", "boxed"
    (those with a box: YOLO needs one), or "single" (none once the set is multi-animal:
    a DeepLabCut individual exists only where it has labelled points).
    """

    boxes: bool = True
    occlusion: bool = True  # v=1 apart from v=2
    identity: bool = True  # tracks
    edges: bool = True
    flip_pairs: bool = True  # pairs the left/right names would not give
    sigmas: bool = False  # OKS sigmas
    empty_instances: Literal["all", "boxed", "single"] = "all"


@dataclass(frozen=True)
class LabelFormat:
    """One label format.

    ``title``: its name in messages; ``file_name``: for a format that is one file, the
    file's name in a folder given as the target (None: the format is a folder); ``entry``:
    for a folder format, what in it a reader opens ("" the folder itself); ``write`` None:
    read only.
    """

    name: str
    title: str
    read: Reader
    write: Writer | None = None
    file_name: str | None = None
    entry: str = ""
    holds: Holds = Holds()

    def labels(self, out: Path) -> Path:
        """What ``keypointer check`` reads of a folder ``out`` written in this format."""
        return out / (self.file_name or self.entry)


REGISTRY: dict[str, LabelFormat] = {
    f.name: f
    for f in (
        LabelFormat(
            name="coco",
            title="COCO",
            read=lambda path, images, split, category: read_coco(path, images, category),
            write=lambda kset, target, scorer: write_coco(kset, target),
            file_name="annotations.json",
            holds=Holds(sigmas=True),
        ),
        LabelFormat(
            name="dlc",
            title="DeepLabCut",
            read=lambda path, images, split, category: read_dlc(path, images),
            write=lambda kset, target, scorer: write_dlc(kset, target, scorer),
            holds=Holds(boxes=False, occlusion=False, flip_pairs=False, empty_instances="single"),
        ),
        LabelFormat(
            name="yolo",
            title="YOLO pose",
            read=lambda path, images, split, category: read_yolo(path, images, split),
            write=lambda kset, target, scorer: write_yolo(kset, target),
            entry="data.yaml",
            holds=Holds(identity=False, empty_instances="boxed"),
        ),
        LabelFormat(
            name="csv",
            title="The plain CSV",
            read=lambda path, images, split, category: read_csv(path, images),
            write=lambda kset, target, scorer: write_csv(kset, target),
            file_name="labels.csv",
            holds=Holds(boxes=False, edges=False, flip_pairs=False),
        ),
        LabelFormat(
            name="sleap",
            title="SLEAP",
            read=lambda path, images, split, category: read_sleap(path, images),
        ),
    )
}
FORMATS = tuple(name for name, f in REGISTRY.items() if f.write is not None)  # read and written
READ_FORMATS = tuple(REGISTRY)  # FORMATS and the read-only ones (sleap)

__all__ = ["FORMATS", "READ_FORMATS", "REGISTRY", "Holds", "LabelFormat", "convert"]
__all__ += [
    "detect_format",
    "file_format",
    "label_format",
    "load_dataset",
    "losses",
    "output_target",
]
__all__ += ["source_files", "unique_name", "write_labels"]
__all__ += ["read_coco", "read_csv", "read_dlc", "read_sleap", "read_yolo"]
__all__ += ["write_coco", "write_csv", "write_dlc", "write_yolo"]


def label_format(
    name: str, written: bool = False, what: str = "format", path: Path | None = None
) -> LabelFormat:
    """The registered format ``name`` (``written``: one keypointer can write); otherwise a
    ConfigError (an argument error) that names the choices (``what``: what the name was
    given as; ``path``: the labels it was given for)."""
    choices = [n for n, f in REGISTRY.items() if f.write is not None or not written]
    if name not in choices:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}unknown {what} {name!r}; choose one of {', '.join(choices)}")
    return REGISTRY[name]


def file_format(path: Path) -> str | None:
    """The file format whose files end as ``path`` does (.json: coco, .csv: csv); None when
    none does (a folder, or a folder format's target)."""
    suffix = path.suffix.lower()
    found = (f.name for f in REGISTRY.values() if f.file_name and f.file_name.endswith(suffix))
    return next(found, None) if suffix else None


def write_labels(kset: KeypointSet, fmt: str, target: Path, scorer: str = "keypointer") -> Path:
    """Write ``kset`` as ``fmt`` to ``target`` (the file of a file format, else the folder);
    returns what the format's writer returns (the file, data.yaml, or the folder)."""
    write = label_format(fmt, written=True).write
    assert write is not None  # label_format(written=True) gives writable formats only
    return write(kset, target, scorer)


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
    return label_format(format, path=path).read(path, images, split, category)


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
    target = label_format(to, written=True, what="target format")
    dst = output_target(to, Path(dst), [Path(src)], overwrite)
    kset = load_dataset(src, format, images)
    validate(kset, check_images=False, require_labels=False)
    for line in kset.warnings:
        log.warning("%s", line)
    for reason, n in kset.dropped.items():
        log.warning("%s: left out %d %s", kset.source, n, reason)
    for line in losses(kset, to):
        log.warning("%s", line)
    # A file format points at the frames, kept beside it; a folder format copies them in.
    frames = dst.parent / f"{dst.stem}_frames" if target.file_name else None
    with _frame_files(kset, frames) as kset:
        return write_labels(kset, to, dst)


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
            video = names.setdefault(sample.image, unique_name(sample.image.stem, names.values()))
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


def unique_name(name: str, taken: Iterable[str]) -> str:
    """``name`` (empty: "video"), or ``name_2``, ``name_3``, ... when ``taken`` has it: a
    video's frames get a folder of their own."""
    taken, base, n = set(taken), name or "video", 2
    name = base
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    return name


def _write_png(path: Path, rgb: np.ndarray, source: Path | None, record: str) -> None:
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

    A file format (coco, csv): the file ``dst`` (a folder name gets the format's
    ``file_name`` inside it); never one of the files the inputs are read from (compared by
    identity: ``..`` through missing folders, symlinks and hard links name the file they
    reach), not even with ``overwrite``; another existing file only with ``overwrite``. A
    folder format (yolo, dlc): a new or empty folder.
    """
    file_name = label_format(to, written=True).file_name
    if file_name:
        if file_format(dst) is None:  # a folder: the format's file inside it
            dst = dst / file_name
        read = [f for src in inputs for f in source_files(src)]
        # A user's labels are the one thing that must never be lost.
        return check_target(dst, inputs=read, overwrite=overwrite, example=file_name)
    folder = canonical(dst)
    check_new_dir(folder, f"the output folder ({to})", shown=dst)
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
    """What writing ``kset`` as ``to`` cannot keep (see the format's :class:`Holds`): one
    line per kind of loss, with counts (empty when nothing is lost). COCO holds everything
    keypointer reads; DeepLabCut has no boxes, no occlusion flag (v=1 becomes 2) and,
    multi-animal, no instance without a labelled point; the plain CSV has no boxes and no
    skeleton edges; YOLO has no identity and no instance without a box or a labelled point;
    only COCO stores flip pairs that left/right names would not give, and OKS sigmas."""
    fmt = label_format(to, written=True)
    holds, name = fmt.holds, fmt.title
    lines: list[str] = []
    empty = [i for s in kset.samples for i in s.instances if not i.labelled.any()]
    dropped: list[Instance] = []
    if holds.empty_instances == "single":
        multi = any(len(s.instances) > 1 or any(i.track for i in s.instances) for s in kset.samples)
        dropped = empty if multi else []
        if dropped:
            boxed = sum(i.bbox is not None for i in dropped)
            lines.append(
                f"{name} (multi-animal) holds an individual only where it has labelled "
                f"points: {len(dropped)} instances with no labelled keypoint ({boxed} of them "
                "box-only) are left out"
            )
    elif holds.empty_instances == "boxed":
        dropped = [i for i in empty if i.bbox is None]
        if dropped:
            lines.append(
                f"{name} needs a box: left out {len(dropped)} instances with no box and no "
                "labelled keypoint"
            )
    kept = [i for s in kset.samples for i in s.instances if not any(i is d for d in dropped)]
    if not holds.boxes:
        boxes = sum(_own_box(i) for i in kept)
        if boxes:
            lines.append(
                f"{name} has no boxes: the boxes of {boxes} instances are dropped (reading it "
                "back, an instance's box is its labelled keypoints' extent)"
            )
    if not holds.occlusion:
        occluded = sum(int((i.keypoints[:, 2] == 1).sum()) for i in kept)
        if occluded:
            lines.append(
                f"{name} has no occlusion flag: {occluded} occluded points (v=1) are "
                "written as plain labels (v=2)"
            )
    if not holds.identity:
        tracked = [i.track for i in kept if i.track]
        if tracked:
            lines.append(
                f"{name} labels have no identity: the tracks of {len(tracked)} instances "
                f"({len(set(tracked))} tracks) are not written"
            )
    return lines + _skeleton_losses(kset, fmt)


def _own_box(inst: Instance) -> bool:
    """Whether ``inst`` has a box that says more than its labelled keypoints' extent."""
    if inst.bbox is None:
        return False
    extent = keypoint_span(labelled_points(inst))
    return extent is None or not np.allclose(inst.bbox, extent, atol=1e-3)


def _skeleton_losses(kset: KeypointSet, fmt: LabelFormat) -> list[str]:
    sk, name, lines = kset.skeleton, fmt.title, []
    if not fmt.holds.edges and sk.edges:
        lines.append(f"{name} has no skeleton: its {len(sk.edges)} edges are dropped")
    guessed = {tuple(sorted(p)) for p in guess_flip_pairs(sk.names)}
    if not fmt.holds.flip_pairs and {tuple(sorted(p)) for p in sk.flip_pairs} != guessed:
        lines.append(
            f"{name} stores no flip pairs: reading it back guesses {len(guessed)} from the "
            f"left/right names instead of these {len(sk.flip_pairs)}"
        )
    if not fmt.holds.sigmas and sk.sigmas is not None:
        lines.append(f"{name} stores no OKS sigmas: the {len(sk.sigmas)} sigmas are dropped")
    return lines
