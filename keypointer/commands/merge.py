"""``keypointer merge``: join two label sets of one skeleton (for example a project's labels
and the frames ``keypointer suggest`` wrote, once corrected); where both label an image, the
second one's labels win.

An image is the image itself, not its name: the same file (by identity: symlinks and hard
links too), or, for label sets in different folders (a project copied elsewhere), the same
path relative to its labels' folder AND the same content (bytes, else decoded pixels). Two
different images of one relative path (``labeled-data/video/img042.png`` from two videos
both named ``video.mp4``) are two images: both are kept, under distinct names in the output.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TypedDict

import numpy as np

from keypointer.data.check import validate
from keypointer.data.formats import (
    detect_format,
    file_format,
    label_format,
    load_dataset,
    losses,
    output_target,
    write_labels,
)
from keypointer.data.types import KeypointSet, Sample
from keypointer.errors import DataError
from keypointer.output_paths import canonical, filling_dir

log = logging.getLogger("keypointer")


class MergeSummary(TypedDict):
    """What :func:`merge_command` did: images of A relabelled from B, images added from B,
    images written, and the file or folder written."""

    replaced: int
    added: int
    images: int
    out: Path


def merge_command(
    a: str | Path,
    b: str | Path,
    out: str | Path,
    format: str | None = None,
    overwrite: bool = False,
    quiet: bool = False,
) -> MergeSummary:
    """Join labels ``a`` and ``b`` (any readable format) into ``out``; returns what happened.

    The output format is ``format``, else the one ``out``'s extension names (.json: coco,
    .csv: csv), else ``a``'s. An input file is never written over, whatever the spelling of
    ``out``. Each set is checked on its own, so a message names the file at fault; images
    not labelled yet are fine. Image ids that clash (two COCO files numbered from 1) are
    renumbered. Different keypoint names raise DataError naming both files; the same names
    in another order are reordered. What the output format cannot hold is logged (see
    :func:`keypointer.data.formats.losses`).
    """
    a, b, out = Path(a), Path(b), Path(out)
    fmt, out = _output(a, b, out, format, overwrite)
    ka, kb = load_dataset(a), load_dataset(b)
    for kset in (ka, kb):
        validate(kset, check_images=False, require_labels=False)
        for line in kset.warnings:
            log.warning("%s", line)
        for reason, n in kset.dropped.items():
            log.warning("%s: left out %d %s", kset.source, n, reason)
    kb = _same_skeleton(ka, kb, a, b)
    samples, replaced, added = merge_samples(ka, kb)
    merged = KeypointSet(ka.skeleton, _unique_ids(samples), a)
    for line in losses(merged, fmt):
        log.warning("%s", line)
    written = _write(merged, out, fmt)
    if not quiet:
        print(
            f"{replaced} images of {a} relabelled from {b}, {added} added from {b}; "
            f"{len(samples)} images -> {written}"
        )
    return {"replaced": replaced, "added": added, "images": len(samples), "out": written}


def _output(a: Path, b: Path, out: Path, format: str | None, overwrite: bool) -> tuple[str, Path]:
    """The output format and file or folder (canonical); refused before anything is read when
    writing it could destroy labels (an input, an existing file without --overwrite, a full
    folder)."""
    if format is not None:
        label_format(format, written=True)  # an unknown one ends here, before any reading
    fmt = format or file_format(out) or detect_format(a)
    return fmt, output_target(fmt, out, [a, b], overwrite)


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
    """``ka``'s samples with those whose image ``kb`` also labels replaced by ``kb``'s (in
    place, keeping ``ka``'s image id), then ``kb``'s others; returns (samples, replaced,
    added). One image: see the module docstring."""
    by_file: dict[tuple, int] = {}
    by_rel: dict[str, list[int]] = {}
    for i, s in enumerate(ka.samples):
        by_file.setdefault(file_key(s), i)
        rel = relative_key(s, ka)
        if rel is not None:
            by_rel.setdefault(rel, []).append(i)
    samples = list(ka.samples)
    replaced: set[int] = set()
    added = 0
    for s in kb.samples:
        hit = by_file.get(file_key(s))
        if hit is None:
            rel = relative_key(s, kb)
            same = (i for i in by_rel.get(rel, []) if same_content(ka.samples[i], s))
            hit = next(same, None) if rel is not None else None
        if hit is not None and hit not in replaced:
            samples[hit] = replace(s, id=ka.samples[hit].id)
            replaced.add(hit)
        else:
            samples.append(s)
            added += 1
    return samples, len(replaced), added


def file_key(sample: Sample) -> tuple:
    """The image file's identity (device and inode when it exists: hard links and symlinks
    are one file, as :func:`keypointer.output_paths.same_file` says; else its canonical
    path), with the frame number for a frame of a video."""
    try:
        st = os.stat(sample.image)
        where: tuple = (st.st_dev, st.st_ino)
    except (OSError, ValueError):
        where = (str(canonical(sample.image)),)
    return (*where, sample.frame)


def relative_key(sample: Sample, kset: KeypointSet) -> str | None:
    """The image's path relative to its labels' folder (the folder read, or the label file's
    folder; a DeepLabCut CSV's project two folders up), with ``#frame`` for a frame of a
    video; None when the image lies outside that folder."""
    if kset.source is None:
        return None
    source = Path(kset.source)
    root = source if source.is_dir() else source.parent
    if source.suffix.lower() == ".csv" and root.parent.name == "labeled-data":
        root = root.parent.parent
    try:
        rel = canonical(sample.image).relative_to(canonical(root)).as_posix()
    except ValueError:
        return None
    return rel if sample.frame is None else f"{rel}#{sample.frame}"


def same_content(a: Sample, b: Sample) -> bool:
    """Whether two images (or frames) hold the same picture: the same bytes, else the same
    decoded pixels (a frame saved again, losslessly). Unreadable: not the same."""
    try:
        if a.frame == b.frame and _same_bytes(a.image, b.image):
            return True
        pa, pb = a.read(), b.read()
    except (OSError, DataError):
        return False
    return pa.shape == pb.shape and np.array_equal(pa, pb)


def _same_bytes(p: Path, q: Path, chunk: int = 1 << 20) -> bool:
    if os.path.getsize(p) != os.path.getsize(q):
        return False
    with open(p, "rb") as f, open(q, "rb") as g:
        while True:
            x, y = f.read(chunk), g.read(chunk)
            if x != y:
                return False
            if not x:
                return True


def _unique_ids(samples: list[Sample]) -> list[Sample]:
    """``samples`` with each id that an earlier sample already has replaced by a new integer
    (two COCO files both number their images from 1; the COCO writer keeps unique integer
    ids, so a project's ids survive the merge)."""
    taken = {s.id for s in samples}
    fresh = max((i for i in taken if isinstance(i, int) and not isinstance(i, bool)), default=0)
    seen: set = set()
    out = []
    for s in samples:
        if s.id is not None and s.id in seen:
            fresh += 1
            while fresh in taken:
                fresh += 1
            s = replace(s, id=fresh)
        seen.add(s.id)
        out.append(s)
    return out


def _write(kset: KeypointSet, out: Path, fmt: str) -> Path:
    if label_format(fmt).file_name:
        return write_labels(kset, fmt, out)  # a file format: written atomically
    with filling_dir(out):  # no half-written folder: what this wrote goes again on failure
        if fmt != "dlc":
            return write_labels(kset, fmt, out)
        with tempfile.TemporaryDirectory(dir=out, prefix=".merge-") as staging:
            # The DeepLabCut writer names each labeled-data/<video> after an image's folder and
            # numbers folders of one name apart (clip, clip_2); two projects' labeled-data/clip
            # must stay one folder, so the images are linked into one tree first.
            staged = replace(kset, samples=_one_tree(kset.samples, Path(staging)))
            return write_labels(staged, fmt, out)


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
