"""Pose files of a camera group: each camera's 2D keypoints in, 3D keypoints out.

2D (one file a camera): DeepLabCut's layout, which ``keypointer predict`` writes per video
(``<video>.csv``, and ``<video>.h5`` with ``--h5``): header rows scorer, [individuals,]
bodyparts, coords (x, y, likelihood), then one row per frame, the frame number first.

3D: Anipose's ``pose_3d`` CSV, which anipose and ``movement``
(``movement.io.load_poses.from_anipose_file``) read: per keypoint ``<kp>_x, <kp>_y, <kp>_z,
<kp>_error`` (mean reprojection error, px), ``<kp>_ncams`` (views used) and ``<kp>_score``
(the least score of those views), then ``M_00`` ... ``M_22`` (a rotation of the world,
identity here), ``center_0`` ... ``center_2`` (zeros) and ``fnum`` (the frame number). Empty
cells are NaN: no point (fewer than 2 views).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from keypointer.errors import DataError
from keypointer.files import atomic_path

DLC_HELP = (
    "a 2D pose file in DeepLabCut's layout starts with the header rows scorer, [individuals,] "
    "bodyparts, coords (x, y, likelihood)"
)
PER_KEYPOINT_3D = ("x", "y", "z", "error", "ncams", "score")


@dataclass(frozen=True)
class Poses2D:
    """One camera's 2D keypoints.

    Attributes:
        keypoints: the K keypoint names, in file order.
        points: (F, K, 2) pixels; NaN where missing.
        scores: (F, K) likelihoods; 0 where missing.
        frames: (F,) frame numbers (row i is frame ``frames[i]``).
    """

    keypoints: list[str]
    points: np.ndarray
    scores: np.ndarray
    frames: np.ndarray


def read_poses_2d(path: str | Path) -> Poses2D:
    """A camera's 2D keypoints from a DeepLabCut-layout ``.csv`` or ``.h5`` (``keypointer
    predict``'s per-video files, DeepLabCut's own).

    Raises:
        DataError: naming the file: not that layout, no likelihood column, several animals.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file", path)
    if path.suffix.lower() in (".h5", ".hdf5"):
        header, rows = read_h5_table(path)
    elif path.name.lower().endswith(".frames.csv"):
        raise DataError(
            "this is predict's per-track table; give the video's <video>.csv beside it "
            "(DeepLabCut's layout)",
            path,
        )
    elif path.suffix.lower() == ".csv":
        header, rows = read_csv_table(path)
    else:
        raise DataError("not a 2D pose file: expected a DeepLabCut-layout .csv or .h5", path)
    return table_poses(header, rows, path)


def read_csv_table(path: Path) -> tuple[list[list[str]], list[list[str]]]:
    """(header rows, data rows) of a DeepLabCut CSV, cells as text."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"not a CSV file: {err}", path) from None
    firsts = [r[0].strip().lower() if r else "" for r in rows[:4]]
    n = 4 if firsts[:2] == ["scorer", "individuals"] else 3
    if len(rows) < n or firsts[n - 2 : n] != ["bodyparts", "coords"]:
        raise DataError(DLC_HELP, path)
    return rows[:n], rows[n:]


def read_h5_table(path: Path) -> tuple[list[list[str]], list[list[str]]]:
    """The table of a DeepLabCut ``.h5`` in :func:`read_csv_table`'s form (pandas: the h5
    extra)."""
    try:
        import pandas as pd  # optional: the h5 extra
    except ImportError:
        raise DataError(
            "reading .h5 needs pandas and tables: pip install 'keypointer[h5]'", path
        ) from None
    try:
        frame = pd.read_hdf(path)
    except ImportError:
        raise DataError("reading .h5 needs tables: pip install 'keypointer[h5]'", path) from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"not a DeepLabCut .h5 file: {err}", path) from None
    columns = frame.columns
    if not isinstance(columns, pd.MultiIndex) or "coords" not in (columns.names or []):
        raise DataError(DLC_HELP, path)
    names = list(columns.names)
    header = [[name] + [str(c[i]) for c in columns] for i, name in enumerate(names)]
    values = frame.to_numpy(dtype=np.float64)
    rows = [
        [str(i)] + [repr(float(v)) for v in row] for i, row in zip(frame.index, values, strict=True)
    ]
    return header, rows


def table_poses(header: list[list[str]], rows: list[list[str]], path: Path) -> Poses2D:
    """:class:`Poses2D` of a DeepLabCut table (header rows, data rows as text)."""
    multi = len(header) == 4
    coords = [c.strip() for c in header[-1]]
    parts = [c.strip() for c in header[-2]]
    inds = [c.strip() for c in header[1]] if multi else [""] * len(coords)
    if len(parts) != len(coords) or len(inds) != len(coords):
        raise DataError("the header rows differ in length", path)
    columns: dict[tuple[str, str], dict[str, int]] = {}
    for i in range(1, len(coords)):
        if coords[i] in ("x", "y", "likelihood"):
            columns.setdefault((inds[i], parts[i]), {})[coords[i]] = i
    if not columns:
        raise DataError(DLC_HELP, path)
    for (ind, part), cols in columns.items():
        if set(cols) != {"x", "y", "likelihood"}:
            who = f"{part!r}" + (f" of {ind!r}" if ind else "")
            raise DataError(
                f"body part {who} needs x, y and likelihood columns (predictions, not labels)",
                path,
            )
    animals = list(dict.fromkeys(ind for ind, _ in columns))
    width = len(coords)
    values = np.full((len(rows), width - 1), np.nan)
    frames = np.zeros(len(rows), dtype=np.int64)
    for i, row in enumerate(rows):
        if len(row) > width and any(c.strip() for c in row[width:]):
            raise DataError(f"{len(row)} cells; the header has {width}", path, line(header, i))
        try:
            frames[i] = int(float(row[0]))
            values[i, : len(row) - 1] = [float(c) if c.strip() else np.nan for c in row[1:width]]
        except (ValueError, IndexError):
            raise DataError("a cell is not a number", path, line(header, i)) from None
    if len(animals) > 1:
        present = [a for a in animals if any_values(values, columns, a)]
        if len(present) > 1:
            raise DataError(
                f"holds several animals ({', '.join(present)}); triangulating several animals "
                "is not supported yet: give one animal's file per camera",
                path,
            )
        animals = present or animals[:1]
    animal = animals[0]
    keypoints = [part for ind, part in columns if ind == animal]
    xy = np.stack(
        [values[:, [columns[animal, k]["x"] - 1, columns[animal, k]["y"] - 1]] for k in keypoints],
        axis=1,
    )
    scores = np.stack([values[:, columns[animal, k]["likelihood"] - 1] for k in keypoints], 1)
    missing = ~np.isfinite(xy).all(-1)
    xy[missing] = np.nan
    scores = np.where(missing, 0.0, np.nan_to_num(scores, nan=0.0))
    return Poses2D(keypoints, xy.reshape(len(rows), len(keypoints), 2), scores, frames)


def line(header: list[list[str]], i: int) -> str:
    """The CSV line of data row ``i``."""
    return f"line {len(header) + i + 1}"


def any_values(
    values: np.ndarray, columns: dict[tuple[str, str], dict[str, int]], animal: str
) -> bool:
    """Whether ``animal`` has any point in the (F, columns) ``values``."""
    cols = [c["x"] - 1 for (ind, _), c in columns.items() if ind == animal]
    return bool(np.isfinite(values[:, cols]).any())


def write_poses_2d_csv(
    path: str | Path,
    keypoints: Sequence[str],
    points: np.ndarray,
    scores: np.ndarray,
    scorer: str = "keypointer",
) -> Path:
    """One camera's (F, K, 2) points and (F, K) scores in DeepLabCut's single-animal CSV
    layout (what :func:`read_poses_2d` reads)."""
    path = Path(path)
    cols = [(k, c) for k in keypoints for c in ("x", "y", "likelihood")]
    values = np.concatenate([points, scores[..., None]], axis=-1).reshape(len(points), -1)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["scorer"] + [scorer] * len(cols))
        writer.writerow(["bodyparts"] + [k for k, _ in cols])
        writer.writerow(["coords"] + [c for _, c in cols])
        write_numbers(f, np.column_stack([np.arange(len(values)), values]), integers=[0])
    return path


@dataclass(frozen=True)
class Poses3D:
    """3D keypoints of one animal.

    Attributes:
        keypoints: the K names.
        points: (F, K, 3) world points (the calibration's units); NaN where none.
        error: (F, K) mean reprojection error (px) over the views used.
        ncams: (F, K) views used (0 where no point).
        score: (F, K) the least 2D score of the views used (NaN where no point).
    """

    keypoints: list[str]
    points: np.ndarray
    error: np.ndarray
    ncams: np.ndarray
    score: np.ndarray


def write_pose3d_csv(path: str | Path, poses: Poses3D) -> Path:
    """``poses`` in Anipose's ``pose_3d`` CSV layout (module docstring), atomically."""
    path = Path(path)
    n_frames = len(poses.points)
    header: list[str] = [f"{k}_{p}" for k in poses.keypoints for p in PER_KEYPOINT_3D]
    header += [f"M_{i}{j}" for i in range(3) for j in range(3)]
    header += [f"center_{i}" for i in range(3)] + ["fnum"]
    ncams = np.where(poses.ncams >= 2, poses.ncams, np.nan)  # anipose: NaN under 2 views
    per_kp = np.concatenate(
        [poses.points, poses.error[..., None], ncams[..., None], poses.score[..., None]], axis=-1
    ).reshape(n_frames, -1)
    tail = np.broadcast_to(np.concatenate([np.eye(3).ravel(), np.zeros(3)]), (n_frames, 12))
    table = np.column_stack([per_kp, tail, np.arange(n_frames)])
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerow(header)
        write_numbers(f, table, integers=[-1])
    return path


def write_numbers(f: TextIO, table: np.ndarray, integers: Sequence[int] = ()) -> None:
    """(N, M) numbers as CSV rows, 6 decimals, NaN as an empty cell (``np.savetxt``: ~20x
    faster than a cell at a time); the columns ``integers`` as integers."""
    if not table.size:
        return
    fmt = ["%.6f"] * table.shape[1]
    for i in integers:
        fmt[i] = "%d"
    text = io.StringIO()
    np.savetxt(text, table, fmt=fmt, delimiter=",")
    # only numbers are written, so "nan" is a whole cell
    f.write(text.getvalue().replace("nan", ""))


def read_pose3d_csv(path: str | Path) -> Poses3D:
    """An Anipose ``pose_3d`` CSV (ours or anipose's); M and center are applied as anipose
    does not: points are given back in the file's frame, as written."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise DataError("no such file", path) from None
    if not rows:
        raise DataError("empty file", path)
    header = rows[0]
    index = {name: i for i, name in enumerate(header)}
    keypoints = [h[: -len("_ncams")] for h in header if h.endswith("_ncams")]
    if not keypoints:
        raise DataError("not an Anipose pose_3d CSV: no <keypoint>_ncams column", path)
    values = np.array(
        [[float(c) if c.strip() else np.nan for c in r] for r in rows[1:]], dtype=np.float64
    ).reshape(len(rows) - 1, len(header))

    def column(name: str) -> np.ndarray:
        if name not in index:
            raise DataError(f"no {name!r} column", path)
        return values[:, index[name]]

    def per_kp(part: str) -> np.ndarray:
        return np.stack([column(f"{k}_{part}") for k in keypoints], axis=1)

    points = np.stack([per_kp("x"), per_kp("y"), per_kp("z")], axis=-1)
    return Poses3D(
        keypoints=keypoints,
        points=points,
        error=per_kp("error"),
        ncams=np.nan_to_num(per_kp("ncams")).astype(int),
        score=per_kp("score"),
    )
