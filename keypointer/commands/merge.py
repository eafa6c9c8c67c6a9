"""``keypointer merge``: join two label sets of one skeleton (for example a project's labels
and the frames ``keypointer suggest`` wrote, once corrected); where both label an image, the
second one's labels win."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from keypointer.data.check import validate
from keypointer.data.formats import (
    FORMATS,
    detect_format,
    load_dataset,
    write_coco,
    write_csv,
    write_dlc,
    write_yolo,
)
from keypointer.data.types import KeypointSet, Sample, path_exists
from keypointer.errors import DataError
from keypointer.output_paths import (
    check_output_dir,
    check_output_file,
    make_output_dir,
    remove_created,
)

FILE_NAMES = {"coco": "annotations.json", "csv": "labels.csv"}


def merge_command(
    a: str | Path,
    b: str | Path,
    out: str | Path,
    format: str | None = None,
    overwrite: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Join labels ``a`` and ``b`` (any readable format) into ``out``; returns what happened.

    The output format is ``format``, else the one ``out``'s extension names (.json: coco,
    .csv: csv), else ``a``'s. One image is one file, or one path relative to its labels'
    folder (``labeled-data/clip/img042.png`` in two DeepLabCut projects). Different keypoint
    names raise DataError naming both files; the same names in another order are reordered.
    """
    a, b, out = Path(a), Path(b), Path(out)
    fmt, out = _output(a, b, out, format, overwrite)
    ka, kb = load_dataset(a), load_dataset(b)
    kb = _same_skeleton(ka, kb, a, b)
    samples, replaced, added = merge_samples(ka, kb)
    merged = KeypointSet(ka.skeleton, samples, a)
    validate(merged, check_images=False)
    written = _write(merged, out, fmt)
    if not quiet:
        print(
            f"{replaced} images of {a} relabelled from {b}, {added} added from {b}; "
            f"{len(samples)} images -> {written}"
        )
    return {"replaced": replaced, "added": added, "images": len(samples), "out": written}


def _output(a: Path, b: Path, out: Path, format: str | None, overwrite: bool) -> tuple[str, Path]:
    """The output format and file or folder; refused before anything is read when writing it
    could destroy labels (an input, an existing file without --overwrite, a full folder)."""
    if format is not None and format not in FORMATS:
        raise DataError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    ext = {".json": "coco", ".csv": "csv"}.get(out.suffix.lower())
    fmt = format or ext or detect_format(a)
    if fmt in FILE_NAMES:
        if out.suffix.lower() not in (".json", ".csv"):
            out = out / FILE_NAMES[fmt]
        for src in (a, b):
            if path_exists(out) and out.resolve() == src.resolve():
                raise DataError("refusing to overwrite an input file", out)
        if path_exists(out) and not overwrite:
            # A user's labels are the one thing that must never be lost.
            raise DataError("the output file exists; pass --overwrite to replace it", out)
        check_output_file(out, FILE_NAMES[fmt])
        return fmt, out
    if path_exists(out) and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"the output folder ({fmt}) exists and is not empty; choose a new one", out)
    check_output_dir(out)
    return fmt, out


def _same_skeleton(ka: KeypointSet, kb: KeypointSet, a: Path, b: Path) -> KeypointSet:
    """``kb`` with its keypoints in ``ka``'s order; DataError when the names differ."""
    na, nb = ka.skeleton.names, kb.skeleton.names
    if na == nb:
        return kb
    if sorted(na) != sorted(nb):
        only_a = [n for n in na if n not in nb][:3]
        only_b = [n for n in nb if n not in na][:3]
        raise DataError(
            f"different skeletons: {a} has {len(na)} keypoints, {b} has {len(nb)}"
            f" (only in the first: {only_a or 'none'}, only in the second: {only_b or 'none'})"
        )
    order = [nb.index(n) for n in na]
    samples = [
        replace(s, instances=[replace(i, keypoints=i.keypoints[order]) for i in s.instances])
        for s in kb.samples
    ]
    return replace(kb, skeleton=ka.skeleton, samples=samples)


def merge_samples(ka: KeypointSet, kb: KeypointSet) -> tuple[list[Sample], int, int]:
    """``ka``'s samples with those ``kb`` also labels replaced by ``kb``'s (in place), then
    ``kb``'s others; returns (samples, replaced, added)."""
    index: dict[str, int] = {}
    for i, s in enumerate(ka.samples):
        for key in image_keys(s, ka):
            index.setdefault(key, i)
    samples = list(ka.samples)
    replaced: set[int] = set()
    added = 0
    for s in kb.samples:
        hits = [index[k] for k in image_keys(s, kb) if k in index]
        if hits and hits[0] not in replaced:
            samples[hits[0]] = s
            replaced.add(hits[0])
        else:
            samples.append(s)
            added += 1
    return samples, len(replaced), added


def image_keys(sample: Sample, kset: KeypointSet) -> list[str]:
    """What identifies an image across two label sets: its resolved file, and its path
    relative to the labels' folder (the folder read, or the label file's folder; a
    DeepLabCut CSV's project two folders up); with the frame number for a frame of a video."""
    resolved = Path(os.path.abspath(sample.image)).resolve()
    frame = getattr(sample, "frame", None)
    tail = "" if frame is None else f"#{frame}"
    keys = [f"file:{resolved}{tail}"]
    source = kset.source
    if source is not None:
        source = Path(source)
        root = source if source.is_dir() else source.parent
        if source.suffix.lower() == ".csv" and root.parent.name == "labeled-data":
            root = root.parent.parent
        try:
            keys.append(f"rel:{resolved.relative_to(root.resolve()).as_posix()}{tail}")
        except ValueError:
            pass
    return keys


def _write(kset: KeypointSet, out: Path, fmt: str) -> Path:
    if fmt == "coco":
        return write_coco(kset, out)  # coco and csv: written atomically
    if fmt == "csv":
        return write_csv(kset, out)
    top = make_output_dir(out)
    try:
        if fmt == "yolo":
            return write_yolo(kset, out)
        with tempfile.TemporaryDirectory(dir=out, prefix=".merge-") as staging:
            # The DeepLabCut writer names each labeled-data/<video> after an image's folder and
            # numbers folders of one name apart (clip, clip_2); two projects' labeled-data/clip
            # must stay one folder, so the images are linked into one tree first.
            write_dlc(replace(kset, samples=_one_tree(kset.samples, Path(staging))), out)
        return out
    except BaseException:
        # No half-written folder: take away what this wrote (the folder was new or empty).
        if top is not None:
            remove_created(top)
        else:
            for child in out.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise


def _one_tree(samples: list[Sample], staging: Path) -> list[Sample]:
    """The samples with their images linked (or copied) into ``staging/<folder name>/``; two
    different images of one folder and file name go to ``<folder>_2``, ``_3``, ..."""
    placed: dict[Path, Path] = {}
    staged = []
    for s in samples:
        source, base = s.image.resolve(), s.image.parent.name or "images"
        folder, n = base, 2
        while placed.get(staging / folder / s.image.name, source) != source:
            folder, n = f"{base}_{n}", n + 1
        target = staging / folder / s.image.name
        if target not in placed:
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)  # another file system, or no hard links
            placed[target] = source
        staged.append(replace(s, image=target))
    return staged
