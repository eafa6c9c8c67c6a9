"""Pose files of a camera group: each camera's 2D keypoints in, 3D keypoints out.

2D (one file a camera): DeepLabCut's layout, which ``keypointer predict`` writes per video
(``<video>.csv``, and ``<video>.h5`` with ``--h5``): header rows scorer, [individuals,]
bodyparts, coords (x, y, likelihood), then one row per frame, the frame number first; or a
SLEAP ``.slp``. Several animals: an axis of individuals (one for a single-animal file).

3D: Anipose's ``pose_3d`` CSV, which anipose and ``movement``
(``movement.io.load_poses.from_anipose_file``) read: per keypoint ``<kp>_x, <kp>_y, <kp>_z,
<kp>_error`` (mean reprojection error, px), ``<kp>_ncams`` (views used) and ``<kp>_score``
(the least score of those views), then ``M_00`` ... ``M_22`` (a rotation of the world,
identity here), ``center_0`` ... ``center_2`` (zeros) and ``fnum`` (the frame number). Empty
cells are NaN: no point (fewer than 2 views). One animal a file (the layout has no
individuals); all animals in one ``.h5`` in DeepLabCut's layout (:func:`write_pose3d_h5`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from keypointer.errors import DataError
from keypointer.files import atomic_path, write_h5_table

DLC_HELP = (
    "a 2D pose file in DeepLabCut's layout starts with the header rows scorer, [individuals,] "
    "bodyparts, coords (x, y, likelihood)"
)
PER_KEYPOINT_3D = ("x", "y", "z", "error", "ncams", "score")


@dataclass(frozen=True)
class Poses2D:
    """One camera's 2D keypoints of I animals (I = 1 for a single-animal file).

    Attributes:
        keypoints: the K keypoint names, in file order.
        points: (F, I, K, 2) pixels; NaN where missing.
        scores: (F, I, K) likelihoods; 0 where missing.
        frames: (F,) frame numbers (row i is frame ``frames[i]``).
        individuals: the I animals' names in the file (DeepLabCut's individuals, predict's
            tracks; ``""`` for a single-animal file). Several cameras' names need not agree:
            :mod:`keypointer.multiview.identities` matches the animals across views.
        unique: DeepLabCut's unique body parts (individual ``single``), left out: they
            belong to no animal.
    """

    keypoints: list[str]
    points: np.ndarray
    scores: np.ndarray
    frames: np.ndarray
    individuals: list[str] = field(default_factory=lambda: [""])
    unique: list[str] = field(default_factory=list)


def read_poses_2d(path: str | Path) -> Poses2D:
    """A camera's 2D keypoints from a DeepLabCut-layout ``.csv`` or ``.h5`` (``keypointer
    predict``'s per-video files, DeepLabCut's own, single- or multi-animal) or a SLEAP
    ``.slp`` (:func:`read_sleap_poses`).

    Raises:
        DataError: naming the file: not that layout, no likelihood column.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file", path)
    if path.suffix.lower() == ".slp":
        return read_sleap_poses(path)
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
        raise DataError(
            "not a 2D pose file: expected a DeepLabCut-layout .csv or .h5, or a SLEAP .slp", path
        )
    return table_poses(header, rows, path)


def read_sleap_poses(path: str | Path) -> Poses2D:
    """A camera's 2D keypoints from a SLEAP ``.slp`` (sleap-io: the ``sleap`` extra).

    Per frame, its user-labelled instances (score 1) where it has any, else its predicted
    instances with their point scores. SLEAP's tracks are not kept: instance i of a frame is
    individual ``instance<i>`` (identities across views and over time are made again from the
    geometry, :mod:`keypointer.multiview.identities`).

    Raises:
        DataError: naming the file: sleap-io missing, unreadable, several videos or skeletons.
    """
    path = Path(path)
    try:
        import sleap_io  # optional: the sleap extra
    except ImportError:
        raise DataError(
            "reading SLEAP .slp files needs sleap-io: pip install 'keypointer[sleap]'", path
        ) from None
    try:
        labels = sleap_io.load_slp(str(path), open_videos=False)
    except Exception as err:  # noqa: BLE001 - h5py and sleap-io raise many kinds on a bad file
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise DataError(f"not a readable SLEAP file: {reason}", path) from None
    if len(labels.videos) > 1:
        raise DataError(f"holds {len(labels.videos)} videos; give one camera's file", path)
    if len(labels.skeletons) != 1:
        raise DataError(f"holds {len(labels.skeletons)} skeletons; triangulating needs 1", path)
    keypoints = list(labels.skeletons[0].node_names)
    frames = sorted(labels.labeled_frames, key=lambda lf: int(lf.frame_idx))
    per_frame = []
    for lf in frames:
        user = [i for i in lf.instances if type(i).__name__ != "PredictedInstance"]
        if user:
            arrays = [np.column_stack([i.numpy(), np.ones(len(keypoints))]) for i in user]
        else:
            arrays = [np.asarray(i.numpy(scores=True), dtype=np.float64) for i in lf.instances]
        per_frame.append(arrays)
    n = max([len(a) for a in per_frame] + [1])
    values = np.full((len(frames), n, len(keypoints), 3), np.nan)
    for f, arrays in enumerate(per_frame):
        for i, a in enumerate(arrays):
            values[f, i] = a
    xy, scores = values[..., :2], values[..., 2]
    missing = ~np.isfinite(xy).all(-1)
    xy[missing] = np.nan
    scores = np.where(missing, 0.0, np.nan_to_num(scores, nan=0.0))
    numbers = np.array([int(lf.frame_idx) for lf in frames], dtype=np.int64)
    return Poses2D(keypoints, xy, scores, numbers, [f"instance{i}" for i in range(n)])


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
    """:class:`Poses2D` of a DeepLabCut table (header rows, data rows as text).

    Multi-animal: every individual with the animals' body parts is an animal; individuals
    with no point in the whole file are left out (predict names tracks it may not fill);
    DeepLabCut's ``single`` individual (unique body parts) is left out, named in ``unique``.
    """
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
    parts_of: dict[str, list[str]] = {}
    for ind, part in columns:
        parts_of.setdefault(ind, []).append(part)
    # DeepLabCut writes a multi-animal project's unique body parts as individual "single"
    animals = [a for a in parts_of if a != "single"] or list(parts_of)
    unique = parts_of["single"] if animals != list(parts_of) else []
    keypoints = parts_of[animals[0]]
    for animal in animals[1:]:
        if set(parts_of[animal]) != set(keypoints):
            raise DataError(
                f"individuals {animals[0]!r} and {animal!r} have different body parts", path
            )
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
    index = np.array(
        [
            [[columns[a, k][c] - 1 for c in ("x", "y", "likelihood")] for k in keypoints]
            for a in animals
        ]
    )  # (I, K, 3) value columns
    table = values[:, index]  # (F, I, K, 3)
    present = np.isfinite(table[..., :2]).all(-1).any(axis=(0, 2))
    if present.any() and not present.all():
        animals = [a for a, p in zip(animals, present, strict=True) if p]
        table = table[:, present]
    xy = table[..., :2].copy()
    missing = ~np.isfinite(xy).all(-1)
    xy[missing] = np.nan
    scores = np.where(missing, 0.0, np.nan_to_num(table[..., 2], nan=0.0))
    return Poses2D(keypoints, xy, scores, frames, animals, unique)


def line(header: list[list[str]], i: int) -> str:
    """The CSV line of data row ``i``."""
    return f"line {len(header) + i + 1}"


def write_poses_2d_csv(
    path: str | Path,
    keypoints: Sequence[str],
    points: np.ndarray,
    scores: np.ndarray,
    scorer: str = "keypointer",
    individuals: Sequence[str] | None = None,
) -> Path:
    """One camera's points and scores in DeepLabCut's CSV layout (what :func:`read_poses_2d`
    reads): single-animal for (F, K, 2) points and (F, K) scores, multi-animal (an
    ``individuals`` row) for (F, I, K, 2) and (F, I, K) with ``individuals`` the I names."""
    path = Path(path)
    points, scores = np.asarray(points), np.asarray(scores)
    multi = individuals is not None
    if not multi:
        points, scores = points[:, None], scores[:, None]
    names = list(individuals) if multi else [""]
    cols = [(a, k, c) for a in names for k in keypoints for c in ("x", "y", "likelihood")]
    values = np.concatenate([points, scores[..., None]], axis=-1).reshape(len(points), -1)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["scorer"] + [scorer] * len(cols))
        if multi:
            writer.writerow(["individuals"] + [a for a, _, _ in cols])
        writer.writerow(["bodyparts"] + [k for _, k, _ in cols])
        writer.writerow(["coords"] + [c for _, _, c in cols])
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


H5_COORDS = ("x", "y", "z", "likelihood")


def write_pose3d_h5(
    path: str | Path, animals: Mapping[str, Poses3D], scorer: str = "keypointer"
) -> Path:
    """Every animal's 3D keypoints in DeepLabCut's layout as a pandas ``.h5`` (key
    ``df_with_missing``; pandas and tables: the h5 extra), atomically.

    Columns: a MultiIndex scorer / individuals / bodyparts / coords, coords x, y, z and
    likelihood (the ``_score`` of the pose_3d CSV); the index is the frame number. DeepLabCut's
    own 3D files have x, y, z only; ``movement.io.load_poses.from_dlc_file`` reads both, and
    with a ``likelihood`` coord it takes that as the confidence and the rest as space (older
    releases read only 2D files: x, y, likelihood). The reprojection error and views per
    point are in the pose_3d CSV only.

    Args:
        path: the ``.h5`` to write.
        animals: {name: :class:`Poses3D`} of the same keypoints and frames.
        scorer: the scorer level's value.
    """
    names = list(animals)
    first = animals[names[0]]
    cols = [(scorer, a, k, c) for a in names for k in first.keypoints for c in H5_COORDS]
    values = np.concatenate(
        [
            np.concatenate([p.points, p.score[..., None]], axis=-1).reshape(len(p.points), -1)
            for p in animals.values()
        ],
        axis=1,
    )
    levels = ["scorer", "individuals", "bodyparts", "coords"]
    return write_h5_table(path, values, cols, levels)


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
