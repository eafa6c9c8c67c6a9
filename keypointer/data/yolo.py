"""Ultralytics YOLO pose datasets: reader and writer.

``data.yaml`` gives ``kpt_shape: [K, 2 or 3]``, ``flip_idx``, ``names``, the image folders
(``train``/``val``: a folder, a ``.txt`` list of images, or a list of those, relative to
``path``, itself relative to the YAML's folder; by default the YAML's folder). Each image
``.../images/.../x.jpg`` has a label file ``.../labels/.../x.txt`` (no file: no objects) with
one line per object: ``class cx cy w h`` then ``x y [v]`` per keypoint, all normalised by
the image's width and height. v is 0 unlabelled, 1 occluded, 2 visible; with ``kpt_shape``
[K, 2] a point at (0, 0) is unlabelled and any other is visible. The class is not kept: all
objects share one skeleton. Several lines are several instances. YOLO has no identity: the
writer leaves out ``Instance.track`` (``convert`` and ``merge`` say so in a warning).

Optional keys this module also reads and writes: ``kpt_names`` (a list of K names, or
``{class: list}``) and ``skeleton`` (0-based index pairs, for drawing).
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

from keypointer.data.dlc import load_yaml
from keypointer.data.types import (
    Instance,
    KeypointSet,
    Sample,
    image_size,
    path_exists,
    read_text,
    require_image_files,
    writable_instance,
)
from keypointer.errors import DataError
from keypointer.skeleton import Skeleton, guess_flip_pairs

IMAGE_SUFFIXES = (".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp")


def is_yolo_yaml(path: Path) -> bool:
    try:
        data = yaml.safe_load(read_text(path))
    except (DataError, yaml.YAMLError, RecursionError):
        return False
    return isinstance(data, dict) and "kpt_shape" in data


def read_yolo(
    path: str | Path, images: str | Path | None = None, split: str | None = None
) -> KeypointSet:
    """Read ``split`` ("train" by default, or "val", "test") of a YOLO pose dataset.

    ``path``: the data.yaml or its folder. ``images`` replaces the YAML's ``path`` (the
    dataset root the split folders are relative to).
    """
    path = Path(path)
    if path.is_dir():
        path = next((path / n for n in ("data.yaml", "data.yml") if (path / n).is_file()), path)
    data = load_yaml(path, "data.yaml")
    if not isinstance(data, dict):
        raise DataError("data.yaml must be a YAML mapping", path)
    k, ndim = _kpt_shape(data, path)
    skeleton = _skeleton(data, k, path)
    root = _root(data, path, images)
    files = _image_files(data, split or "train", root, path)
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        samples = list(pool.map(lambda f: _sample(f, root, k, ndim), files))
    return KeypointSet(skeleton, samples, path)


def _kpt_shape(data: dict, path: Path) -> tuple[int, int]:
    shape = data.get("kpt_shape")
    ok = isinstance(shape, list) and len(shape) == 2
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) for v in shape)
    if not ok or not (1 <= shape[0] <= 100_000 and shape[1] in (2, 3)):
        raise DataError(
            f"'kpt_shape' must be [number of keypoints, 2 or 3], not {shape!r:.40}",
            path,
            "kpt_shape",
        )
    return shape[0], shape[1]


def _skeleton(data: dict, k: int, path: Path) -> Skeleton:
    names = data.get("kpt_names")
    if isinstance(names, dict) and names:
        names = next(iter(names.values()))
    if names is None:
        names = [f"kp{i}" for i in range(k)]
    if not (isinstance(names, list) and len(names) == k and all(isinstance(n, str) for n in names)):
        raise DataError(f"'kpt_names' must list {k} names", path, "kpt_names")
    flip = data.get("flip_idx")
    if flip is None:
        pairs = guess_flip_pairs(names)
    else:
        ok = isinstance(flip, list) and len(flip) == k
        ok = ok and all(isinstance(j, int) and not isinstance(j, bool) and 0 <= j < k for j in flip)
        if not ok or any(flip[j] != i for i, j in enumerate(flip)):
            raise DataError(
                f"'flip_idx' must be a list of {k} indices that swaps pairs", path, "flip_idx"
            )
        pairs = [(i, j) for i, j in enumerate(flip) if i < j]
    edges = data.get("skeleton") or []
    try:
        skeleton = Skeleton(tuple(names), tuple((a, b) for a, b in edges), tuple(pairs))
        skeleton.validate()
    except (TypeError, ValueError, OverflowError, DataError) as err:
        message = err.message if isinstance(err, DataError) else "must be [index, index] pairs"
        raise DataError(f"'skeleton': {message}", path, "skeleton") from None
    return skeleton


def _root(data: dict, path: Path, images: str | Path | None) -> Path:
    if images is not None:
        return Path(images)
    root = data.get("path")
    if root is None:
        return path.parent
    if not isinstance(root, str):
        raise DataError("'path' must be a folder name", path, "path")
    root = Path(root)
    if root.is_absolute():
        return root
    if not path_exists(path.parent / root) and path_exists(Path.cwd() / root):
        return Path.cwd() / root
    return path.parent / root


def _image_files(data: dict, split: str, root: Path, path: Path) -> list[Path]:
    entries = data.get(split)
    if entries is None:
        raise DataError(f"data.yaml has no {split!r} key (the {split} images)", path, split)
    entries = entries if isinstance(entries, list) else [entries]
    files: list[Path] = []
    for entry in entries:
        if not isinstance(entry, str):
            raise DataError(f"{split!r} must be a folder, a .txt file or a list", path, split)
        where = root / entry
        if path_exists(where) and where.is_dir():
            files += sorted(f for f in where.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        elif path_exists(where) and where.suffix.lower() == ".txt":
            lines = [line.strip() for line in read_text(where, "image list").splitlines()]
            files += [where.parent / n for n in lines if n.lower().endswith(IMAGE_SUFFIXES)]
        else:
            raise DataError(f"{split} images {where} not found", path, split)
    return files


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``/images/`` in the path becomes ``/labels/``, suffix .txt."""
    text = image.as_posix()
    if "/images/" in text:
        text = "/labels/".join(text.rsplit("/images/", 1))
    return Path(text).with_suffix(".txt")


def _sample(image: Path, root: Path, k: int, ndim: int) -> Sample:
    label = label_path(image)
    rel = _rel(image, root)
    if not path_exists(label):
        return Sample(image, 0, 0, [], rel, f"image {rel} (no label file)")
    where = _rel(label, root)
    rows = []
    for n, line in enumerate(read_text(label, "YOLO label file").splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != 5 + k * ndim:
            raise DataError(
                f"{len(tokens)} columns; expected 5 + {k} keypoints x {ndim} = {5 + k * ndim}",
                label,
                f"line {n}",
            )
        try:
            rows.append((n, np.array([float(t) for t in tokens])))
        except ValueError:
            raise DataError("a column is not a number", label, f"line {n}") from None
    if not rows:
        return Sample(image, 0, 0, [], rel, where)
    size = image_size(image)
    if size is None:
        raise DataError(
            f"cannot read image {image} (its size is needed to read the normalised labels)",
            label,
        )
    w, h = size
    instances = [_instance(v, k, ndim, w, h, f"{where} line {n}") for n, v in rows]
    return Sample(image, w, h, instances, rel, where)


def _instance(values: np.ndarray, k: int, ndim: int, w: int, h: int, record: str) -> Instance:
    cx, cy, bw, bh = values[1:5]
    pts = values[5:].reshape(k, ndim)
    kp = np.zeros((k, 3))
    kp[:, 0], kp[:, 1] = pts[:, 0] * w, pts[:, 1] * h
    kp[:, 2] = pts[:, 2] if ndim == 3 else np.where((pts[:, 0] == 0) & (pts[:, 1] == 0), 0, 2)
    box = ((cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h)
    return Instance(kp, tuple(float(b) for b in box), record)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def write_yolo(
    kset: KeypointSet, out_dir: str | Path, val: KeypointSet | None = None, name: str = "object"
) -> Path:
    """Write a YOLO pose dataset; returns the path of its data.yaml.

    Images are copied to ``images/train`` (and ``images/val`` for ``val``); without ``val``,
    the YAML's ``val`` points at the training images. Coordinates are written with 6
    decimals of the normalised value. An instance with neither a box nor a labelled
    keypoint cannot be written (YOLO needs a box) and is left out; so are tracks (YOLO has
    no identity). :func:`keypointer.data.formats.losses` counts both for the warnings of
    ``convert`` and ``merge``.
    """
    out_dir = Path(out_dir)
    parts = [p for p in (kset, val) if p is not None]
    for part in parts:
        require_image_files(part, "a YOLO dataset")
    for split, part in zip(("train", "val"), parts, strict=False):
        _write_split(part, out_dir, split)
    sk = kset.skeleton
    data = {
        "train": "images/train",
        "val": "images/val" if val is not None else "images/train",
        "kpt_shape": [sk.num_keypoints, 3],
        "flip_idx": sk.flip_index(),
        "names": {0: name},
        "kpt_names": {0: list(sk.names)},
        "skeleton": [list(e) for e in sk.edges],
    }
    out = out_dir / "data.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=None), encoding="utf-8")
    return out


def _write_split(kset: KeypointSet, out_dir: Path, split: str) -> None:
    (out_dir / "images" / split).mkdir(parents=True, exist_ok=True)
    (out_dir / "labels" / split).mkdir(parents=True, exist_ok=True)
    stems: set[str] = set()
    for i, sample in enumerate(kset.samples):
        stem = sample.image.stem
        for candidate in (stem, f"{sample.image.parent.name}_{stem}", f"{i}_{stem}"):
            if candidate not in stems:
                stem = candidate
                break
        stems.add(stem)
        record = sample.record or sample.image.name
        size = (sample.width, sample.height) if sample.width and sample.height else None
        size = size or image_size(sample.image)
        if size is None:
            raise DataError(f"cannot read image {sample.image}", kset.source, record)
        shutil.copyfile(sample.image, out_dir / "images" / split / (stem + sample.image.suffix))
        lines = [_line(inst, *size, kset.source) for inst in sample.instances]
        text = "".join(line + "\n" for line in lines if line is not None)
        (out_dir / "labels" / split / f"{stem}.txt").write_text(text, encoding="utf-8")


def _line(inst: Instance, w: int, h: int, source: object) -> str | None:
    kp, _, box = writable_instance(inst, source)
    if box is None:
        return None
    x, y, bw, bh = box
    values = [(x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h]
    cells = ["0"] + [f"{v:.6f}" for v in values]
    for px, py, v in kp:
        cells += [f"{px / w:.6f}", f"{py / h:.6f}", str(int(v))]
    return " ".join(cells)
