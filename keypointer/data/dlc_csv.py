"""DeepLabCut's ``CollectedData_<scorer>.csv``, in both layouts: parse and write, and which
individual's columns each instance is written to.

Single-animal: header rows scorer, bodyparts, coords. Multi-animal: scorer, individuals,
bodyparts, coords, where each (individual, body part) has an x and a y column and the body
parts that belong to no animal ("unique" body parts: a feeder, a corner of the arena) sit
under the individual ``single``. Then one row per frame: the image path (one cell, or three
cells ``labeled-data,<video>,<file>`` as newer DeepLabCut writes it) and the coordinates;
empty cells mean "not labelled". The scorer row is not used (some files' is shorter).
"""

from __future__ import annotations

import csv
import io
import itertools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keypointer.data.csv_format import csv_rows, parse_cell, trim_trailing
from keypointer.data.types import KeypointSet
from keypointer.errors import DataError

SINGLE = "single"  # DeepLabCut's individual for the unique body parts
HEADER_HELP = (
    "a DeepLabCut CSV starts with three header rows: scorer, bodyparts, coords (single "
    "animal), or four: scorer, individuals, bodyparts, coords (multi-animal)"
)


@dataclass
class Table:
    """A parsed CSV. ``parts``: individual -> its body parts in file order (one individual,
    None, in the single-animal layout). ``rows``: (line, image path, individual -> (P, 3)
    x, y, v with v 2 where labelled, else all 0) per frame, P the individual's body parts."""

    parts: dict[str | None, list[str]]
    rows: list[tuple[int, str, dict[str | None, np.ndarray]]]

    @property
    def multi(self) -> bool:
        return list(self.parts) != [None]


def parse_csv(path: Path) -> Table:
    """Read one CollectedData CSV of either layout; DataError names the file and line."""
    rows = csv_rows(path, "DeepLabCut CSV")
    columns, n_index, width = _header(rows, path)
    parts: dict[str | None, list[str]] = {}
    for ind, part in columns:
        parts.setdefault(ind, []).append(part)
    frames = []
    for line, row in rows:
        record = f"line {line}"
        if len(row) > width and any(c.strip() for c in row[width:]):
            raise DataError(f"{len(row)} cells; the header has {width}", path, record)
        row = row + [""] * (width - len(row))
        image = "/".join(c.strip() for c in row[:n_index] if c.strip())
        if not image:
            raise DataError("the image path cell is empty", path, record)
        points = {ind: np.zeros((len(p), 3)) for ind, p in parts.items()}
        for ind, names in parts.items():
            for k, name in enumerate(names):
                cols = columns[(ind, name)]
                what = name if ind is None else f"{ind} {name}"
                x = parse_cell(row[cols["x"]], path, record, f"{what} x")
                y = parse_cell(row[cols["y"]], path, record, f"{what} y")
                if (x is None) != (y is None):
                    raise DataError(f"body part {what!r} has only one of x and y", path, record)
                if x is not None:
                    points[ind][k] = (x, y, 2.0)
        frames.append((line, image, points))
    return Table(parts, frames)


def _header(rows, path: Path) -> tuple[dict[tuple[str | None, str], dict[str, int]], int, int]:
    """Columns of each (individual, body part)'s x and y, the number of index columns, and
    the number of all columns."""
    header = [trim_trailing(next(rows, (0, []))[1]) for _ in range(3)]
    first = [h[0].strip().lower() if h else "" for h in header]
    multi = first[:2] == ["scorer", "individuals"]
    if multi:
        header.append(trim_trailing(next(rows, (0, []))[1]))
        first.append(header[3][0].strip().lower() if header[3] else "")
    if first[-2:] != ["bodyparts", "coords"] or first[0] != "scorer":
        raise DataError(HEADER_HELP, path)
    inds = header[1] if multi else None
    parts, coords = header[-2], [c.strip() for c in header[-1]]
    last = f"line {len(header)}"
    if len(parts) != len(coords) or (inds is not None and len(inds) != len(coords)):
        rows_named = "individuals, bodyparts and coords" if multi else "bodyparts and coords"
        raise DataError(f"the {rows_named} rows do not match", path, last)
    if not {"x", "y"} & set(coords):
        raise DataError("the coords row names no x or y column", path, last)
    n_index = min(i for i, c in enumerate(coords) if c in ("x", "y"))
    columns: dict[tuple[str | None, str], dict[str, int]] = {}
    for i in range(n_index, len(coords)):
        if coords[i] in ("x", "y"):
            ind = inds[i].strip() if inds is not None else None
            columns.setdefault((ind, parts[i].strip()), {})[coords[i]] = i
    for (ind, part), cols in columns.items():
        if len(cols) != 2 or not part or ind == "":
            what = "every body part" + (" of every individual" if multi else "")
            raise DataError(f"{what} needs a name, an x and a y column", path, last)
    return columns, n_index, len(coords)


def write_table(
    path: Path,
    rows: list[tuple[str, list[np.ndarray | None]]],
    names: tuple[str, ...],
    scorer: str,
    individuals: list[str] | None,
) -> None:
    """Write a CSV: ``rows`` are (image path, (K, 3) keypoints or None per individual) with
    one individual (single-animal layout: ``individuals`` None) or one per ``individuals``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    n = len(individuals) if individuals is not None else 1
    writer.writerow(["scorer"] + [scorer] * 2 * len(names) * n)
    if individuals is not None:
        writer.writerow(["individuals"] + [i for i in individuals for _ in names for _ in "xy"])
    writer.writerow(["bodyparts"] + [p for _ in range(n) for p in names for _ in "xy"])
    writer.writerow(["coords"] + ["x", "y"] * len(names) * n)
    for image, points in rows:
        cells = [image]
        for kp in points:
            for k in range(len(names)):
                x, y, v = kp[k] if kp is not None else (0.0, 0.0, 0.0)
                labelled = v > 0 and np.isfinite(x) and np.isfinite(y)
                cells += [repr(float(x)), repr(float(y))] if labelled else ["", ""]
        writer.writerow(cells)
    path.write_text(out.getvalue(), encoding="utf-8")


def assign_individuals(kset: KeypointSet) -> tuple[list[str] | None, list[list[int]]]:
    """The individuals to write (None: single-animal layout), and each sample's instances'
    columns among them."""
    if not any(len(s.instances) > 1 or any(i.track for i in s.instances) for s in kset.samples):
        return None, [[0] * len(s.instances) for s in kset.samples]
    tracks = list(kset.tracks)
    column = {t: i for i, t in enumerate(tracks)}
    if SINGLE in tracks:
        raise DataError(
            f"track {SINGLE!r} is DeepLabCut's name for unique body parts; rename it",
            kset.source,
        )
    spare = (f"individual{i}" for i in itertools.count(1) if f"individual{i}" not in tracks)
    generated: list[str] = []
    columns = []
    for sample in kset.samples:
        where = sample.record or sample.image.name
        counts = Counter(i.track for i in sample.instances if i.track)
        for track, n in counts.items():
            if n > 1:
                raise DataError(
                    f"track {track!r} names {n} instances of one image; DeepLabCut "
                    "holds one per individual",
                    kset.source,
                    where,
                )
        free = iter(range(len(sample.instances)))
        cols = []
        for inst in sample.instances:
            if inst.track:
                cols.append(column[inst.track])
                continue
            k = next(free)
            while len(generated) <= k:
                generated.append(next(spare))
            cols.append(len(tracks) + k)
        columns.append(cols)
    return tracks + generated, columns
