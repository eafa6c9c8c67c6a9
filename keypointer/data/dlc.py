"""DeepLabCut projects, single- and multi-animal: reader and writer.

A project is ``config.yaml`` plus ``labeled-data/<video>/CollectedData_<scorer>.csv`` (layouts
in :mod:`keypointer.data.dlc_csv`). Single-animal: ``bodyparts`` and ``skeleton`` (name
pairs); one instance per frame. Multi-animal (``multianimalproject: true``):
``multianimalbodyparts`` (every animal's), ``uniquebodyparts`` and ``individuals``; each
individual with at least one labelled point in a frame is one instance, its ``track`` the
individual's name (an identity across frames only as far as the labeller kept one: with
``identity: false`` DeepLabCut does not ask for it). DeepLabCut has no occlusion flag, so a
labelled point reads as v=2. The body-part order is config.yaml's (or the CSV's, without a
config), never sorted. Frames have no box (``bbox`` None).

Unique body parts (individual ``single``) are not read: keypointer's skeleton is the one of
each animal, and a point that belongs to no animal is neither part of every animal (training
would teach each animal's crop to find the feeder) nor an animal of its own (a second kind of
object under one skeleton). They are counted in ``KeypointSet.dropped`` and named in one
warning. A project whose only body parts are unique ones is read with ``single`` as its one
animal. Skeleton edges that name a unique body part are dropped with a warning.

A Lightning Pose project is read the same way: one DeepLabCut-style CSV at the folder's root
(``CollectedData.csv``, image paths relative to the folder), no ``config.yaml``.
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import yaml

from keypointer.data.dlc_csv import SINGLE, Table, assign_individuals, parse_csv, write_table
from keypointer.data.types import (
    Instance,
    KeypointSet,
    Sample,
    path_exists,
    read_text,
    require_image_files,
)
from keypointer.errors import DataError
from keypointer.output_paths import same_file
from keypointer.skeleton import Skeleton, guess_flip_pairs

UNIQUE = "unique body-part points (DeepLabCut individual 'single'; belong to no animal)"


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
        return _build([path], root, read_config(config) if config.is_file() else None, images, path)
    is_yaml = path.suffix.lower() in (".yaml", ".yml")
    root = path.parent if is_yaml else path
    config = path if is_yaml else root / "config.yaml"
    found = root_csvs(root) if not config.is_file() else []
    if root == path and len(found) == 1:  # a Lightning Pose project
        return _build(found, root, None, images, root)
    cfg = read_config(config)
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
    return _build(files, root, cfg, images, root)


def _h5_only(folder: Path) -> bool:
    return any(folder.glob("CollectedData_*.h5")) and not any(folder.glob("CollectedData_*.csv"))


@dataclass
class DlcConfig:
    """What keypointer reads of a config.yaml. ``names``: the (animals') body parts in file
    order; ``edges``: name pairs among them; ``unique``: a multi-animal project's unique body
    parts; ``individuals``: its individuals (None for single-animal projects)."""

    names: list[str]
    edges: list[tuple[str, str]] = field(default_factory=list)
    unique: list[str] = field(default_factory=list)
    individuals: list[str] | None = None
    warnings: list[str] = field(default_factory=list)


def _names(cfg: dict, key: str, path: Path, required: bool = True) -> list[str]:
    names = cfg.get(key)
    if names is None and not required:
        return []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DataError(f"{key!r} must be a list of names", path, key)
    if len(set(names)) != len(names):
        raise DataError(f"{key!r} lists a name twice", path, key)
    return names


def read_config(path: Path) -> DlcConfig:
    """The body parts, edges and (multi-animal) unique parts and individuals of a config."""
    cfg = load_yaml(path, "config.yaml")
    if not isinstance(cfg, dict):
        raise DataError("config.yaml must be a YAML mapping", path)
    multi = bool(cfg.get("multianimalproject")) or cfg.get("bodyparts") == "MULTI!"
    if multi:
        names = _names(cfg, "multianimalbodyparts", path)
        unique = _names(cfg, "uniquebodyparts", path, required=False)
        individuals = _names(cfg, "individuals", path, required=False)
        if not names:  # only unique body parts: "single" is the one animal
            names, unique = unique, []
    else:
        names, unique, individuals = _names(cfg, "bodyparts", path), [], None
    if not names:
        key = "multianimalbodyparts" if multi else "bodyparts"
        raise DataError(f"{key!r} must be a non-empty list of names", path, key)
    if set(names) & set(unique):
        raise DataError("a body part is both unique and every animal's", path, "uniquebodyparts")
    edges, warnings = _config_edges(cfg.get("skeleton") or [], names, unique, path)
    return DlcConfig(names, edges, unique, individuals, warnings)


def _config_edges(edges: object, names: list, unique: list, path: Path) -> tuple[list, list[str]]:
    if not isinstance(edges, list):
        raise DataError("'skeleton' must be a list of [name, name] pairs", path, "skeleton")
    kept, dropped = [], []
    for edge in edges:
        if not (
            isinstance(edge, list) and len(edge) == 2 and all(isinstance(e, str) for e in edge)
        ):
            raise DataError(
                f"skeleton edge {edge!r:.60} is not a [name, name] pair", path, "skeleton"
            )
        if all(e in names for e in edge):
            kept.append((edge[0], edge[1]))
        elif all(e in names or e in unique for e in edge):
            dropped.append(f"[{edge[0]}, {edge[1]}]")
        else:
            raise DataError(
                f"skeleton edge {edge!r:.60} does not name two body parts", path, "skeleton"
            )
    warnings = [f"{path}: dropped skeleton edges naming unique body parts: {', '.join(dropped)}"]
    return kept, warnings if dropped else []


def load_yaml(path: Path, what: str) -> object:
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


def _build(files, root, config: DlcConfig | None, images, source) -> KeypointSet:
    names = list(config.names) if config is not None else None
    samples: list[Sample] = []
    unique: Counter[str] = Counter()
    seen: dict[str, None] = {}  # individuals, in order
    for file in files:
        table = parse_csv(file)
        animals = [i for i in table.parts if i != SINGLE] or [SINGLE]
        if names is None:  # no config: the first file's body parts, in its order
            names = list(dict.fromkeys(p for i in animals for p in table.parts[i]))
        extra = [p for i in animals for p in table.parts[i] if p not in names]
        if extra:
            raise DataError(f"body part {extra[0]!r} is not in config.yaml", file, "line 2")
        where = file.relative_to(root).as_posix() if file.is_relative_to(root) else file.name
        for line, image, points in table.rows:
            record = f"{where} line {line}"
            insts = [_instance(table, names, i, points[i], record) for i in animals]
            insts = [i for i in insts if i is not None or not table.multi]
            if table.multi:
                seen.update(dict.fromkeys(i.track for i in insts))
                if SINGLE not in animals and SINGLE in points:
                    unique.update(_labelled_names(table.parts[SINGLE], points[SINGLE]))
            file_path = _find(image, root, file.parent, images)
            samples.append(Sample(file_path, 0, 0, insts, image, record))
    index = {n: i for i, n in enumerate(names)}
    edges = config.edges if config is not None else []
    skeleton = Skeleton(
        tuple(names), [(index[a], index[b]) for a, b in edges], guess_flip_pairs(names)
    )
    kset = KeypointSet(skeleton, samples, source, warnings=list(config.warnings) if config else [])
    _multi_notes(kset, unique, list(seen), config)
    return kset


def _instance(table: Table, names: list[str], ind, kp: np.ndarray, record: str):
    """The (K, 3) instance of individual ``ind`` in ``names`` order; None when a multi-animal
    individual has no labelled point (DeepLabCut writes every individual in every row)."""
    full = np.zeros((len(names), 3))
    order = [names.index(p) for p in table.parts[ind]]
    full[order] = kp
    if not table.multi:
        return Instance(full, None, record)
    if not (full[:, 2] > 0).any():
        return None
    track = None if ind == SINGLE else ind
    return Instance(full, None, record if track is None else f"{record}, individual {ind}", track)


def _labelled_names(parts: list[str], kp: np.ndarray) -> list[str]:
    return [p for p, v in zip(parts, kp[:, 2], strict=True) if v > 0]


def _multi_notes(kset: KeypointSet, unique: Counter, seen: list, config) -> None:
    """Count and name the unique body-part points left out, and individuals the config lacks."""
    if unique:
        kset.dropped[UNIQUE] = sum(unique.values())
        kset.warnings.append(
            f"{kset.source}: unique body parts {', '.join(unique)} ({sum(unique.values())} "
            "labelled points, DeepLabCut individual 'single') are not read: keypointer's "
            "skeleton is each animal's"
        )
    listed = config.individuals if config is not None else None
    missing = [i for i in seen if i is not None and listed and i not in listed]
    if missing:
        kset.warnings.append(
            f"{kset.source}: individuals {', '.join(missing)} of the CSVs are not in "
            "config.yaml's 'individuals'"
        )


def _find(image: str, root: Path, folder: Path, images: str | Path | None) -> Path:
    name = image.rsplit("/", 1)[-1]
    bases = [Path(images)] if images is not None else [root, folder]
    candidates = [b / image for b in bases] + [b / name for b in bases]
    return next((c for c in candidates if path_exists(c)), candidates[0])


def write_dlc(kset: KeypointSet, out_dir: str | Path, scorer: str = "keypointer") -> Path:
    """Write a DeepLabCut project (images copied into ``labeled-data/<video>/``); returns out_dir.

    ``<video>`` is each image's folder name (folders of one name get ``_2``, ``_3``, ...).
    Occluded points (v=1) become plain labels, and boxes are not stored. When
    an image has more than one instance or any instance has a track, the project is
    multi-animal: one individual per track (in order of first appearance), then
    ``individual1``, ``individual2``, ... for instances without one. Instances with no
    labelled point are not written there (DeepLabCut reads them as absent).
    """
    out_dir = Path(out_dir)
    require_image_files(kset, "a DeepLabCut project")
    names = kset.skeleton.names
    individuals, columns = assign_individuals(kset)
    videos: dict[str, list[tuple[str, list]]] = {}
    folder_video: dict[Path, str] = {}
    for sample, cols in zip(kset.samples, columns, strict=True):
        video = _video_name(sample.image.parent, folder_video)
        target = out_dir / "labeled-data" / video / sample.image.name
        _copy(sample.image, target, kset.source, sample.record)
        points: list = [None] * max(len(individuals or ()), 1)
        for inst, col in zip(sample.instances, cols, strict=True):
            points[col] = inst.keypoints
        videos.setdefault(video, []).append((f"labeled-data/{video}/{target.name}", points))
    for video, rows in videos.items():
        path = out_dir / "labeled-data" / video / f"CollectedData_{scorer}.csv"
        write_table(path, rows, names, scorer, individuals)
    _write_config(out_dir, kset.skeleton, scorer, list(videos), individuals)
    return out_dir


def _video_name(folder: Path, taken: dict[Path, str]) -> str:
    if folder not in taken:
        base = folder.name or "images"
        name, n = base, 2
        while name in taken.values():
            name, n = f"{base}_{n}", n + 1
        taken[folder] = name
    return taken[folder]


def _copy(src: Path, dst: Path, source: object, record: str) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if path_exists(dst) and same_file(dst, src):  # by identity: hard links, symlinks, ..
        return
    try:
        shutil.copyfile(src, dst)
    except OSError as err:
        raise DataError(f"cannot copy image {src}: {err.strerror or err}", source, record) from None


def _write_config(
    out_dir: Path, skeleton: Skeleton, scorer: str, videos: list[str], individuals: list | None
) -> None:
    names = list(skeleton.names)
    cfg: dict[str, object] = {
        "Task": out_dir.name or "keypointer",
        "scorer": scorer,
        "date": date.today().strftime("%b%d"),
        "multianimalproject": individuals is not None,
        "identity": False if individuals is not None else None,
        "project_path": str(out_dir.resolve()),
        "video_sets": {},
        "individuals": individuals,
        "uniquebodyparts": [] if individuals is not None else None,
        "multianimalbodyparts": names if individuals is not None else None,
        "bodyparts": "MULTI!" if individuals is not None else names,
        "skeleton": [[names[a], names[b]] for a, b in skeleton.edges],
        "numframes2pick": 20,
        "TrainingFraction": [0.95],
        "iteration": 0,
        "default_net_type": "resnet_50",
        "snapshotindex": -1,
        "batch_size": 8,
    }
    cfg = {k: v for k, v in cfg.items() if v is not None}
    text = "# Written by keypointer convert; labelled frames in labeled-data/\n"
    text += f"# ({', '.join(videos)})\n"
    text += yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None)
    (out_dir / "config.yaml").write_text(text, encoding="utf-8")
