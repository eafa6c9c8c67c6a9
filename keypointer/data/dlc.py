"""DeepLabCut (single-animal) projects: reader and writer.

A project is ``config.yaml`` (``bodyparts``, ``skeleton`` as name pairs) plus
``labeled-data/<video>/CollectedData_<scorer>.csv``: three header rows (scorer, bodyparts,
coords), then one row per frame: the image path relative to the project root (one cell, or
three cells ``labeled-data,<video>,<file>`` as newer DeepLabCut writes it) and x, y per body
part; empty cells mean "not labelled". DeepLabCut has no occlusion flag, so a labelled point
reads as v=2. The body-part order is config.yaml's (or the CSV's, without a config), never
sorted. Frames have no box (``bbox`` None).

A Lightning Pose project is read the same way: one DeepLabCut-style CSV at the folder's root
(``CollectedData.csv``, image paths relative to the folder), no ``config.yaml``.
"""

from __future__ import annotations

import csv
import io
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from keypointer.data.csv_format import csv_rows, parse_cell, trim_trailing
from keypointer.data.types import Instance, KeypointSet, Sample, path_exists, read_text
from keypointer.errors import DataError
from keypointer.skeleton import Skeleton, guess_flip_pairs

MULTI_ANIMAL = "multi-animal DeepLabCut projects are not supported yet"


def is_dlc_csv(path: Path) -> bool:
    """Whether a CSV file starts like a DeepLabCut label file (a 'scorer' header row)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except (OSError, ValueError):
        return False
    return head.lstrip(b"\xef\xbb\xbf").lower().startswith(b"scorer")


def root_csvs(folder: Path) -> list[Path]:
    """The DeepLabCut-style CSVs at a folder's root (where Lightning Pose keeps its labels)."""
    try:
        return sorted(p for p in folder.glob("*.csv") if p.is_file() and is_dlc_csv(p))
    except OSError:
        return []


def read_dlc(path: str | Path, images: str | Path | None = None) -> KeypointSet:
    """Read a project folder (or its config.yaml), a Lightning Pose folder, or one
    ``CollectedData_*.csv`` file.

    For a single CSV the names come from ``config.yaml`` two folders up when there is one,
    else from the CSV's header. ``images``: folder the CSV's image paths are relative to.
    """
    path = Path(path)
    if path.suffix.lower() == ".csv":
        root = path.parents[2] if len(path.parents) > 2 else path.parent
        config = root / "config.yaml"
        names, edges = read_config(config) if config.is_file() else (None, [])
        return _build([path], root, names, edges, images, path)
    root = path.parent if path.suffix.lower() in (".yaml", ".yml") else path
    found = root_csvs(root) if not (root / "config.yaml").is_file() else []
    if root == path and len(found) == 1:  # a Lightning Pose project
        return _build(found, root, None, [], images, root)
    names, edges = read_config(root / "config.yaml")
    labeled = root / "labeled-data"
    files = sorted(labeled.glob("*/CollectedData_*.csv"))
    h5_only = [d.name for d in sorted(labeled.glob("*/")) if _h5_only(d)]
    if h5_only:
        raise DataError(
            f"labeled-data/{h5_only[0]} has CollectedData_*.h5 but no .csv; save the labels "
            "again in DeepLabCut (it writes both) or export the .h5 to CSV",
            root,
        )
    if not files:
        raise DataError("no labeled-data/<video>/CollectedData_<scorer>.csv files", root)
    return _build(files, root, names, edges, images, root)


def _h5_only(folder: Path) -> bool:
    return any(folder.glob("CollectedData_*.h5")) and not any(folder.glob("CollectedData_*.csv"))


def read_config(path: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Body-part names (file order) and skeleton edges (name pairs) of a DeepLabCut config."""
    cfg = load_yaml(path, "config.yaml")
    if not isinstance(cfg, dict):
        raise DataError("config.yaml must be a YAML mapping", path)
    if cfg.get("multianimalproject") or cfg.get("bodyparts") == "MULTI!":
        raise DataError(MULTI_ANIMAL, path)
    names = cfg.get("bodyparts")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DataError("'bodyparts' must be a non-empty list of names", path, "bodyparts")
    if len(set(names)) != len(names):
        raise DataError("'bodyparts' lists a name twice", path, "bodyparts")
    edges = cfg.get("skeleton") or []
    if not isinstance(edges, list):
        raise DataError("'skeleton' must be a list of [name, name] pairs", path, "skeleton")
    for edge in edges:
        if not (isinstance(edge, list) and len(edge) == 2 and all(e in names for e in edge)):
            raise DataError(
                f"skeleton edge {edge!r:.60} does not name two body parts", path, "skeleton"
            )
    return names, [(a, b) for a, b in edges]


def load_yaml(path: Path, what: str) -> Any:
    """``yaml.safe_load`` of a file; syntax errors become DataError with the line."""
    text = read_text(path, what)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        record = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise DataError(f"invalid YAML: {problem}", path, record) from None
    except RecursionError:
        raise DataError("invalid YAML: nested too deeply", path) from None


def _build(files, root, names, edges, images, source) -> KeypointSet:
    samples: list[Sample] = []
    for file in files:
        file_names, rows = parse_csv(file)
        names = names or file_names
        extra = [n for n in file_names if n not in names]
        if extra:
            raise DataError(f"body part {extra[0]!r} is not in config.yaml", file, "line 2")
        # Body parts missing from this file (added to config.yaml later) are unlabelled here.
        order = [file_names.index(n) if n in file_names else -1 for n in names]
        where = file.relative_to(root).as_posix() if file.is_relative_to(root) else file.name
        for line, image, kp in rows:
            full = np.zeros((len(names), 3))
            full[[i for i, j in enumerate(order) if j >= 0]] = kp[[j for j in order if j >= 0]]
            record = f"{where} line {line}"
            file_path = _find(image, root, file.parent, images)
            samples.append(Sample(file_path, 0, 0, [Instance(full, None, record)], image, record))
    index = {n: i for i, n in enumerate(names)}
    skeleton = Skeleton(
        tuple(names), [(index[a], index[b]) for a, b in edges], guess_flip_pairs(names)
    )
    return KeypointSet(skeleton, samples, source)


def _find(image: str, root: Path, folder: Path, images: str | Path | None) -> Path:
    name = image.rsplit("/", 1)[-1]
    bases = [Path(images)] if images is not None else [root, folder]
    candidates = [b / image for b in bases] + [b / name for b in bases]
    return next((c for c in candidates if path_exists(c)), candidates[0])


def _header(rows, path: Path) -> tuple[dict[str, dict[str, int]], int, int]:
    """Columns of each body part's x and y, the number of index columns, and of all columns."""
    header = [trim_trailing(next(rows, (0, []))[1]) for _ in range(3)]
    first = [h[0].strip().lower() if h else "" for h in header]
    if "individuals" in first:
        raise DataError(MULTI_ANIMAL, path, f"line {first.index('individuals') + 1}")
    if first != ["scorer", "bodyparts", "coords"]:
        raise DataError(
            "a DeepLabCut CSV starts with three header rows: scorer, bodyparts, coords", path
        )
    parts, coords = header[1], [c.strip() for c in header[2]]
    if len(parts) != len(coords) or not {"x", "y"} & set(coords):
        raise DataError("the bodyparts and coords rows do not match", path, "line 3")
    n_index = min(i for i, c in enumerate(coords) if c in ("x", "y"))
    columns: dict[str, dict[str, int]] = {}
    for i in range(n_index, len(coords)):
        if coords[i] in ("x", "y"):
            columns.setdefault(parts[i].strip(), {})[coords[i]] = i
    if any(len(c) != 2 for c in columns.values()) or "" in columns:
        raise DataError("every body part needs a name, an x and a y column", path, "line 3")
    return columns, n_index, len(coords)


def parse_csv(path: Path) -> tuple[list[str], list[tuple[int, str, np.ndarray]]]:
    """Body-part names (file order) and (line, image path, (K, 3) x/y/v) for each frame."""
    rows = csv_rows(path, "DeepLabCut CSV")
    columns, n_index, width = _header(rows, path)
    names = list(columns)
    frames = []
    for line, row in rows:
        record = f"line {line}"
        if len(row) > width and any(c.strip() for c in row[width:]):
            raise DataError(f"{len(row)} cells; the header has {width}", path, record)
        row = row + [""] * (width - len(row))
        image = "/".join(c.strip() for c in row[:n_index] if c.strip())
        if not image:
            raise DataError("the image path cell is empty", path, record)
        kp = np.zeros((len(names), 3))
        for k, name in enumerate(names):
            x = parse_cell(row[columns[name]["x"]], path, record, f"{name} x")
            y = parse_cell(row[columns[name]["y"]], path, record, f"{name} y")
            if (x is None) != (y is None):
                raise DataError(f"body part {name!r} has only one of x and y", path, record)
            if x is not None:
                kp[k] = (x, y, 2.0)
        frames.append((line, image, kp))
    return names, frames


def write_dlc(kset: KeypointSet, out_dir: str | Path, scorer: str = "keypointer") -> Path:
    """Write a DeepLabCut project (images copied into ``labeled-data/<video>/``); returns out_dir.

    ``<video>`` is each image's folder name. Occluded points (v=1) become plain labels.
    An image with more than one instance raises DataError (single-animal format).
    """
    out_dir = Path(out_dir)
    names = kset.skeleton.names
    videos: dict[str, list[tuple[str, Any]]] = {}
    folder_video: dict[Path, str] = {}
    for sample in kset.samples:
        if len(sample.instances) > 1:
            raise DataError(
                f"{len(sample.instances)} instances in one image; DeepLabCut single-animal "
                "projects hold one",
                kset.source,
                sample.record or sample.image.name,
            )
        video = _video_name(sample.image.parent, folder_video)
        target = out_dir / "labeled-data" / video / sample.image.name
        _copy(sample.image, target, kset.source, sample.record)
        inst = sample.instances[0] if sample.instances else None
        videos.setdefault(video, []).append((f"labeled-data/{video}/{target.name}", inst))
    for video, rows in videos.items():
        _write_csv(
            out_dir / "labeled-data" / video / f"CollectedData_{scorer}.csv", rows, names, scorer
        )
    _write_config(out_dir, kset.skeleton, scorer, list(videos))
    return out_dir


def _video_name(folder: Path, taken: dict[Path, str]) -> str:
    if folder not in taken:
        base = folder.name or "images"
        name, n = base, 2
        while name in taken.values():
            name, n = f"{base}_{n}", n + 1
        taken[folder] = name
    return taken[folder]


def _copy(src: Path, dst: Path, source: Any, record: str) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if path_exists(dst) and dst.resolve() == src.resolve():
        return
    try:
        shutil.copyfile(src, dst)
    except OSError as err:
        raise DataError(f"cannot copy image {src}: {err.strerror or err}", source, record) from None


def _write_csv(path: Path, rows: list, names: tuple[str, ...], scorer: str) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["scorer"] + [scorer] * 2 * len(names))
    writer.writerow(["bodyparts"] + [n for n in names for _ in "xy"])
    writer.writerow(["coords"] + ["x", "y"] * len(names))
    for image, inst in rows:
        cells = [image]
        for k in range(len(names)):
            x, y, v = inst.keypoints[k] if inst is not None else (0.0, 0.0, 0.0)
            labelled = v > 0 and np.isfinite(x) and np.isfinite(y)
            cells += [repr(float(x)), repr(float(y))] if labelled else ["", ""]
        writer.writerow(cells)
    path.write_text(out.getvalue(), encoding="utf-8")


def _write_config(out_dir: Path, skeleton: Skeleton, scorer: str, videos: list[str]) -> None:
    cfg = {
        "Task": out_dir.name or "keypointer",
        "scorer": scorer,
        "date": date.today().strftime("%b%d"),
        "multianimalproject": False,
        "project_path": str(out_dir.resolve()),
        "video_sets": {},
        "bodyparts": list(skeleton.names),
        "skeleton": [[skeleton.names[a], skeleton.names[b]] for a, b in skeleton.edges],
        "numframes2pick": 20,
        "TrainingFraction": [0.95],
        "iteration": 0,
        "default_net_type": "resnet_50",
        "snapshotindex": -1,
        "batch_size": 8,
    }
    text = "# Written by keypointer convert; labelled frames in labeled-data/\n"
    text += (
        "# ("
        + ", ".join(videos)
        + ")\n"
        + yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None)
    )
    (out_dir / "config.yaml").write_text(text, encoding="utf-8")
