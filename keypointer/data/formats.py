"""Read any supported label format into a :class:`KeypointSet`, and convert between formats.

Formats: ``coco`` (keypoint JSON), ``dlc`` (DeepLabCut project or CollectedData CSV),
``yolo`` (Ultralytics pose data.yaml + labels/*.txt), ``csv`` (``image,<name>_x,<name>_y``).
"""

from __future__ import annotations

from pathlib import Path

from keypointer.data.check import validate
from keypointer.data.coco import read_coco, write_coco
from keypointer.data.csv_format import read_csv, write_csv
from keypointer.data.dlc import is_dlc_csv, read_dlc, root_csvs, write_dlc
from keypointer.data.types import KeypointSet, path_exists
from keypointer.data.yolo import is_yolo_yaml, read_yolo, write_yolo
from keypointer.errors import DataError

FORMATS = ("coco", "dlc", "yolo", "csv")
SUPPORTED = (
    "a COCO keypoint .json file, a DeepLabCut project folder (config.yaml + labeled-data/) "
    "or CollectedData_*.csv, a Lightning Pose folder (one CollectedData.csv at its root), a "
    "YOLO pose data.yaml (or its folder), or a CSV with columns image,<name>_x,<name>_y"
)

__all__ = ["FORMATS", "convert", "detect_format", "load_dataset"]
__all__ += ["read_coco", "read_csv", "read_dlc", "read_yolo"]
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
    """Read labels; ``format`` (one of :data:`FORMATS`) is detected from the path when None.

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
    raise DataError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}", path)


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
    existing one is replaced only with ``overwrite`` (never the input itself), atomically.
    yolo/dlc: ``dst`` is a new or empty folder, and the images are copied into it. The
    labels are checked first (the same fatal problems as ``keypointer check``, without
    reading every image); the data is written as read, not cleaned.
    """
    if to not in FORMATS:
        raise DataError(f"unknown target format {to!r}; choose one of {', '.join(FORMATS)}")
    dst = _output(Path(src), Path(dst), to, overwrite)
    kset = load_dataset(src, format, images)
    validate(kset, check_images=False)
    if to in ("coco", "csv"):
        return write_coco(kset, dst) if to == "coco" else write_csv(kset, dst)
    return write_yolo(kset, dst) if to == "yolo" else write_dlc(kset, dst)


def _output(src: Path, dst: Path, to: str, overwrite: bool) -> Path:
    """Where ``convert`` writes; refused before anything is read when it would destroy labels."""
    if to in ("coco", "csv"):
        if dst.suffix.lower() not in (".json", ".csv"):
            dst = dst / ("annotations.json" if to == "coco" else "labels.csv")
        if path_exists(dst) and dst.resolve() == src.resolve():
            raise DataError("refusing to overwrite the input file", dst)
        if path_exists(dst) and not overwrite:
            # A user's labels are the one thing that must never be lost.
            raise DataError("the output file exists; pass --overwrite to replace it", dst)
        return dst
    if path_exists(dst) and (not dst.is_dir() or any(dst.iterdir())):
        raise DataError("the output folder exists and is not empty; choose a new one", dst)
    return dst
