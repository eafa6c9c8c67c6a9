"""A plain CSV a person can write by hand: ``image,<name>_x,<name>_y[,<name>_v],...``.

Comma-separated; a file whose header line has no comma but semicolons (as spreadsheets write
CSV in locales with a decimal comma) or tabs is read with that separator. Empty trailing
columns, as spreadsheets write them, are ignored. One row per labelled object. Several rows naming the same image are several instances of
that image. An empty x and y means "not labelled"; ``<name>_v`` columns are optional (0
unlabelled, 1 occluded, 2 visible; default 2 when x and y are given). Image paths are
relative to the CSV's folder, or to ``images`` when given. The keypoint order is the
column order; there are no edges, and flip pairs are guessed from left/right names. An
optional ``track`` (or ``individual``) column names each row's identity across images
(``Instance.track``; an empty cell: none); the writer adds it when any instance has a track.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from keypointer.data.types import (
    Instance,
    KeypointSet,
    Sample,
    read_text,
    require_image_files,
)
from keypointer.errors import DataError
from keypointer.files import write_text_atomic
from keypointer.skeleton import Skeleton, guess_flip_pairs

_SUFFIXES = ("_x", "_y", "_v")
TRACK_COLUMNS = ("track", "individual")


def parse_cell(cell: str, path: Path, record: str, column: str) -> float | None:
    """A numeric CSV cell; None for an empty cell or NaN (both mean "not labelled")."""
    text = cell.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        hint = " (write decimals with a '.')" if _decimal_comma(text) else ""
        raise DataError(
            f"column {column!r}: {text[:40]!r} is not a number{hint}", path, record
        ) from None
    return None if math.isnan(value) else value


def _decimal_comma(text: str) -> bool:
    try:
        float(text.replace(",", ".", 1))
    except ValueError:
        return False
    return True


def trim_trailing(cells: list[str]) -> list[str]:
    """``cells`` without the empty cells at its end (spreadsheets add empty columns)."""
    end = len(cells)
    while end and not cells[end - 1].strip():
        end -= 1
    return cells[:end]


def _delimiter(text: str) -> str:
    """',' unless the first line has none and has ';' or a tab instead."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    if "," in first:
        return ","
    return next((d for d in (";", "\t") if d in first), ",")


def csv_rows(path: Path, what: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) for each non-blank row; csv-module errors become DataError."""
    text = read_text(path, what)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise DataError(f"malformed CSV: {err}", path, f"line {reader.line_num}") from None
        if any(c.strip() for c in row):
            yield reader.line_num, row


def read_csv(path: str | Path, images: str | Path | None = None) -> KeypointSet:
    """Read a plain keypoint CSV (see the module docstring)."""
    path = Path(path)
    rows = csv_rows(path, "CSV file")
    first = next(rows, None)
    if first is None:
        raise DataError("the CSV file is empty", path)
    header = trim_trailing(first[1])
    names, columns, track_col = _header(header, path)
    root = Path(images) if images is not None else path.parent
    samples: dict[str, Sample] = {}
    for line, row in rows:
        record = f"line {line}"
        if len(row) > len(header) and any(c.strip() for c in row[len(header) :]):
            raise DataError(f"{len(row)} cells; the header has {len(header)}", path, record)
        row = row + [""] * (len(header) - len(row))
        image = row[0].strip()
        if not image:
            raise DataError("the image cell is empty", path, record)
        kp = np.zeros((len(names), 3))
        for k, name in enumerate(names):
            kp[k] = _point(row, columns[name], name, path, record)
        sample = samples.get(image)
        if sample is None:
            sample = samples[image] = Sample(root / image, id=image, record=record)
        track = (row[track_col].strip() or None) if track_col is not None else None
        sample.instances.append(Instance(kp, None, record, track))
    skeleton = Skeleton(tuple(names), (), guess_flip_pairs(names))
    return KeypointSet(skeleton, list(samples.values()), path)


def _header(
    header: list[str], path: Path
) -> tuple[list[str], dict[str, dict[str, int]], int | None]:
    """Keypoint names, each one's x/y/v column, and the track column (None when absent)."""
    cells = [c.strip() for c in header]
    if not cells or cells[0].lower() != "image":
        raise DataError("the first column must be 'image'", path, "line 1")
    names: list[str] = []
    columns: dict[str, dict[str, int]] = {}
    track_col = None
    for i, cell in enumerate(cells[1:], start=1):
        if cell.lower() in TRACK_COLUMNS:
            if track_col is not None:
                raise DataError("two identity columns (track, individual)", path, "line 1")
            track_col = i
            continue
        if not cell.endswith(_SUFFIXES) or len(cell) < 3:
            raise DataError(
                f"column {cell!r} is not image, track or <name>_x, <name>_y, <name>_v",
                path,
                "line 1",
            )
        name, axis = cell[:-2], cell[-1]
        if name not in columns:
            names.append(name)
            columns[name] = {}
        if axis in columns[name]:
            raise DataError(f"column {cell!r} appears twice", path, "line 1")
        columns[name][axis] = i
    for name in names:
        if "x" not in columns[name] or "y" not in columns[name]:
            raise DataError(f"keypoint {name!r} needs both {name}_x and {name}_y", path, "line 1")
    if not names:
        raise DataError("no keypoint columns (<name>_x, <name>_y)", path, "line 1")
    return names, columns, track_col


def _point(row: list[str], cols: dict[str, int], name: str, path: Path, record: str) -> tuple:
    x = parse_cell(row[cols["x"]], path, record, f"{name}_x")
    y = parse_cell(row[cols["y"]], path, record, f"{name}_y")
    v = parse_cell(row[cols["v"]], path, record, f"{name}_v") if "v" in cols else None
    if (x is None) != (y is None):
        raise DataError(f"keypoint {name!r} has only one of x and y", path, record)
    if x is None:
        if v:
            raise DataError(f"keypoint {name!r} has visibility {v:g} but no x, y", path, record)
        return 0.0, 0.0, 0.0
    return x, y, 2.0 if v is None else v


def write_csv(kset: KeypointSet, path: str | Path) -> Path:
    """Write one row per instance (an image without instances gets one empty row), with a
    ``track`` column after ``image`` when any instance has a track.

    Image paths are relative to the CSV's folder when inside it, else absolute.
    """
    path = Path(path)
    require_image_files(kset, "a CSV")
    path.parent.mkdir(parents=True, exist_ok=True)
    root = path.parent.resolve()
    names = kset.skeleton.names
    tracks = bool(kset.tracks)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    track_head = ["track"] if tracks else []
    writer.writerow(["image", *track_head] + [f"{n}_{a}" for n in names for a in "xyv"])
    for sample in kset.samples:
        try:
            image = sample.image.resolve().relative_to(root).as_posix()
        except ValueError:
            image = sample.image.resolve().as_posix()
        for inst in sample.instances or [None]:
            cells = [image] + ([(inst and inst.track) or ""] if tracks else [])
            for k in range(len(names)):
                x, y, v = inst.keypoints[k] if inst is not None else (0.0, 0.0, 0.0)
                cells += [repr(float(x)), repr(float(y)), str(int(v))] if v > 0 else ["", "", "0"]
            writer.writerow(cells)
    write_text_atomic(path, out.getvalue())
    return path
