"""Validate a dataset and summarise it: for ``keypointer check`` and the check before training.

Fatal problems raise :class:`DataError` naming the label file and the record: no images, a
missing (or, when images are read, unreadable) image file, duplicate image ids, a keypoint
count that differs from the skeleton, a visibility other than 0/1/2, a labelled point or a
box with NaN/infinite coordinates, a labelled point more than the image's size outside it, an
image smaller than 8x8 pixels, edges or flip pairs naming unknown keypoints (a flip pair
of a keypoint with itself too), a box entirely outside its image or one that holds none of
its instance's labelled keypoints (wrong units, or another instance's box: training would
crop the wrong region), nothing labelled at all (for training; ``keypointer check`` warns:
frames still to label are a normal state of a labelling project). Everything else is a warning (the readers'
own warnings and an image file listed under two ids, whose labels then count twice, too), and :func:`validate` returns a cleaned copy
for training: labelled points outside the image become unlabelled (the image spans
[-0.5, size - 0.5] in pixel-centre coordinates; half a pixel more is tolerated), boxes with
no area are dropped (the dataset uses the keypoints' extent), instances with no labelled
point and images with no such instance are left out. Each is counted in the report. The
report also counts instances per image and instances per track (identity); one track twice in
an image is a warning (training does not use tracks; a DeepLabCut writer refuses it).
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from rich.progress import Progress

from keypointer.data.types import Instance, KeypointSet, Sample, path_exists
from keypointer.errors import DataError

OUTSIDE = "labelled points outside the image (set unlabelled)"
NO_LABELS = "instances with no labelled keypoint (not trained on)"
NO_INSTANCES = "images with no usable instance (not trained on)"
BAD_BOX = "boxes with no area (keypoints' extent used instead)"
UNREAD = "images not read (size unknown)"
SAME_IMAGE = "image files listed again under another id (labels count twice)"
SAME_TRACK = "images with one track on two instances"
NOTHING_LABELLED = (
    "no instance has a labelled keypoint yet: label these images before training "
    "(training refuses a dataset with nothing to train on)"
)
PROGRESS_FROM = 100  # images; fewer are read without a progress bar
MIN_SIDE = 8  # pixels; a smaller image is a placeholder or a broken file, not a training image


@dataclass
class CheckReport:
    """What :func:`validate` found. ``cleaned`` is the set to train on.

    ``labelled``: keypoint name -> labelled count in ``cleaned``. ``image_sizes``: (min width,
    min height, max width, max height) over the images of known size, or None.
    ``counts``: reason -> how many records were dropped or changed (readers' counts included).
    ``per_image``: instances to train on per image -> number of images (0 for images left
    out), in increasing order. ``tracks``: track name -> instances to train on with it.
    """

    cleaned: KeypointSet
    num_images: int
    num_instances: int
    total_instances: int
    labelled: dict[str, int]
    image_sizes: tuple[int, int, int, int] | None
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    per_image: dict[int, int] = field(default_factory=dict)
    tracks: dict[str, int] = field(default_factory=dict)


def validate(
    kset: KeypointSet,
    check_images: bool = True,
    progress: bool = False,
    require_labels: bool = True,
) -> CheckReport:
    """Check ``kset``; raise DataError on the first fatal problem, else return the report.

    ``check_images``: decode every image (finds corrupt files; slow for large sets). Without
    it, images are only checked to exist, and read only when their size is not in the labels.
    ``require_labels``: nothing labelled at all is fatal (training, evaluation); False for
    ``check``, ``merge`` and ``convert``, where frames still to label are a normal state of
    a labelling project (``suggest`` writes them): a warning then.
    """
    source = kset.source
    _check_fatal(kset)
    counts: Counter[str] = Counter(kset.dropped)
    sizes, warnings = _read_sizes(kset, check_images, progress, counts)
    same = _same_images(kset)
    counts[SAME_IMAGE] += len(same)
    warnings = [*kset.warnings, *same, *warnings]
    samples = [
        _clean(s, size, kset, warnings, counts) for s, size in zip(kset.samples, sizes, strict=True)
    ]
    kept = [s for s in samples if s.instances]
    counts[NO_INSTANCES] += len(samples) - len(kept)
    same_track = [w for s in samples for w in _same_tracks(s)]
    counts[SAME_TRACK] += len(same_track)
    warnings += same_track
    if not kept and require_labels:
        raise DataError("no instance has a labelled keypoint: nothing to train on", source)
    names = kset.skeleton.names
    per_kp = sum((i.labelled.astype(int) for s in kept for i in s.instances), np.zeros(len(names)))
    labelled = {n: int(c) for n, c in zip(names, per_kp, strict=True)}
    if not kept:
        warnings.append(NOTHING_LABELLED)
    else:
        warnings += [f"keypoint {n!r} is never labelled" for n, c in labelled.items() if c == 0]
    known = [sz for sz in sizes if sz[0] and sz[1]]
    wh = np.array(known).reshape(-1, 2)
    extent = (*wh.min(0).tolist(), *wh.max(0).tolist()) if known else None
    cleaned = KeypointSet(kset.skeleton, kept, source, dict(kset.dropped))
    return CheckReport(
        cleaned=cleaned,
        num_images=len(kset.samples),
        num_instances=sum(len(s.instances) for s in kept),
        total_instances=kset.num_instances,
        labelled=labelled,
        image_sizes=extent,
        warnings=warnings,
        counts={k: v for k, v in counts.items() if v},
        per_image=dict(sorted(Counter(len(s.instances) for s in samples).items())),
        tracks=cleaned.tracks,
    )


def _check_fatal(kset: KeypointSet) -> None:
    """The problems that need no image decoding, in the order a user should fix them."""
    try:
        kset.skeleton.validate()
    except DataError as err:
        raise DataError(err.message, kset.source, "skeleton") from None
    if not kset.samples:
        raise DataError("the dataset has no images", kset.source)
    _check_ids(kset)
    for sample in kset.samples:
        for inst in sample.instances:
            _check_instance(inst, sample, kset)
    for sample in kset.samples:
        if not path_exists(sample.image):
            raise DataError(f"image file {sample.image} not found", kset.source, _where(sample))


def _where(sample: Sample, inst: Instance | None = None) -> str:
    where = sample.record or f"image {sample.image.name}"
    if inst is not None and inst.record and inst.record != sample.record:
        # "labels/a.txt line 3" already says "labels/a.txt": no need to repeat it.
        where = inst.record if inst.record.startswith(where) else f"{where}, {inst.record}"
    return where


def _check_ids(kset: KeypointSet) -> None:
    seen: dict[object, str] = {}
    for sample in kset.samples:
        if sample.id is None:
            continue
        if sample.id in seen:
            raise DataError(
                f"duplicate image id {sample.id!r} (also {seen[sample.id]})",
                kset.source,
                _where(sample),
            )
        seen[sample.id] = _where(sample)


def _same_images(kset: KeypointSet) -> list[str]:
    """One warning per sample whose image file an earlier sample already lists."""
    first: dict[tuple, Sample] = {}
    warnings = []
    for sample in kset.samples:
        key = sample.key
        if key in first:
            frame = "" if sample.frame is None else f" frame {sample.frame}"
            warnings.append(
                f"{_where(sample)}: image file {sample.image.name}{frame} is also listed as "
                f"{_where(first[key])}; its labels count twice"
            )
        else:
            first[key] = sample
    return warnings


def _same_tracks(sample: Sample) -> list[str]:
    """One warning per track that names two instances of ``sample``."""
    seen = Counter(i.track for i in sample.instances if i.track is not None)
    return [
        f"{_where(sample)}: track {t!r} names {n} instances of one image"
        for t, n in seen.items()
        if n > 1
    ]


def _check_instance(inst: Instance, sample: Sample, kset: KeypointSet) -> None:
    names = kset.skeleton.names
    kp = np.asarray(inst.keypoints, dtype=np.float64)
    where = _where(sample, inst)
    if kp.ndim != 2 or kp.shape[1] != 3:
        raise DataError(f"keypoints must be (K, 3), got shape {kp.shape}", kset.source, where)
    if len(kp) != len(names):
        raise DataError(
            f"{len(kp)} keypoints but the skeleton has {len(names)}", kset.source, where
        )
    bad = ~np.isin(kp[:, 2], (0, 1, 2))
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"keypoint {names[i]!r} has visibility {kp[i, 2]:g}; expected 0, 1 or 2",
            kset.source,
            where,
        )
    bad = (kp[:, 2] > 0) & ~np.isfinite(kp[:, :2]).all(1)
    if bad.any():
        i = int(np.argmax(bad))
        x, y = kp[i, :2]
        raise DataError(
            f"keypoint {names[i]!r} is labelled but its coordinates are {x:g}, {y:g}",
            kset.source,
            where,
        )
    if inst.bbox is not None and not np.isfinite(np.asarray(inst.bbox, dtype=float)).all():
        raise DataError(f"the box {inst.bbox} is not finite", kset.source, where)


def _read_sizes(
    kset: KeypointSet, check_images: bool, progress: bool, counts: Counter
) -> tuple[list[tuple[int, int]], list[str]]:
    """(width, height) per sample, from the file where read, else from the labels."""
    todo = [i for i, s in enumerate(kset.samples) if check_images or not (s.width and s.height)]
    sizes = [(s.width, s.height) for s in kset.samples]
    warnings: list[str] = []
    if not todo:
        return sizes, warnings

    show = progress and len(todo) >= PROGRESS_FROM
    with (
        ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool,
        Progress(disable=not show, transient=True) as bar,
    ):
        task = bar.add_task("reading images", total=len(todo))
        for i, (size, why) in zip(
            todo, pool.map(lambda i: _decode(kset.samples[i]), todo), strict=True
        ):
            bar.advance(task)
            sample = kset.samples[i]
            if size is None and check_images:
                raise DataError(
                    f"image file {sample.image} cannot be read: {why}",
                    kset.source,
                    _where(sample),
                )
            if size is None:
                counts[UNREAD] += 1
                warnings.append(f"{_where(sample)}: image file cannot be read: {why}")
            elif sample.width and sample.height and size != (sample.width, sample.height):
                warnings.append(
                    f"{_where(sample)}: the labels say {sample.width}x{sample.height} but the "
                    f"image is {size[0]}x{size[1]}; using the image's size"
                )
            sizes[i] = size or sizes[i]
    return sizes, warnings


def _decode(sample: Sample) -> tuple[tuple[int, int] | None, str]:
    """(width, height) as training decodes the image (or video frame), or None and why not."""
    try:
        img = sample.read()
    except DataError as err:
        return None, err.message
    return (int(img.shape[1]), int(img.shape[0])), ""


def _clean(
    sample: Sample, size: tuple[int, int], kset: KeypointSet, warnings: list, counts: Counter
) -> Sample:
    w, h = size
    names = kset.skeleton.names
    if w and h and min(w, h) < MIN_SIDE:
        raise DataError(
            f"image file {sample.image} is {w}x{h} pixels: too small to train on "
            f"(at least {MIN_SIDE}x{MIN_SIDE})",
            kset.source,
            _where(sample),
        )
    kept = []
    for inst in sample.instances:
        kp = np.array(inst.keypoints, dtype=np.float64)
        kp[kp[:, 2] <= 0] = 0.0
        if w and h:
            _check_far(kp, w, h, sample, inst, kset)
            x, y = kp[:, 0], kp[:, 1]
            out = (kp[:, 2] > 0) & ((x < -1) | (x > w) | (y < -1) | (y > h))
            if out.any():
                counts[OUTSIDE] += int(out.sum())
                bad = ", ".join(names[i] for i in np.flatnonzero(out))
                warnings.append(
                    f"{_where(sample, inst)}: {bad} outside the {w}x{h} image (set unlabelled)"
                )
                kp[out] = 0.0
        box = inst.bbox
        if box is not None and (box[2] <= 0 or box[3] <= 0):
            counts[BAD_BOX] += 1
            box = None
        if box is not None:
            _check_box(box, kp, size, sample, inst, kset)
        if not (kp[:, 2] > 0).any():
            counts[NO_LABELS] += 1
            continue
        kept.append(Instance(kp, box, inst.record, inst.track))
    return Sample(sample.image, w, h, kept, sample.id, sample.record, sample.frame)


def _check_far(
    kp: np.ndarray, w: int, h: int, sample: Sample, inst: Instance, kset: KeypointSet
) -> None:
    """A labelled point more than the image's own size outside it is no slip of the hand but
    wrong units (normalised, or another image's pixels) or garbage: fatal, not a warning."""
    x, y = kp[:, 0], kp[:, 1]
    far = (kp[:, 2] > 0) & ((x < -w) | (x > 2 * w) | (y < -h) | (y > 2 * h))
    if far.any():
        i = int(np.argmax(far))
        raise DataError(
            f"keypoint {kset.skeleton.names[i]!r} is labelled at ({x[i]:g}, {y[i]:g}), far "
            f"outside the {w}x{h} image (wrong units or image?)",
            kset.source,
            _where(sample, inst),
        )


def _check_box(
    box: tuple[float, float, float, float],
    kp: np.ndarray,
    size: tuple[int, int],
    sample: Sample,
    inst: Instance,
    kset: KeypointSet,
) -> None:
    """A box that misses the image, or all of its own labelled keypoints, is in other units or
    belongs to another instance; training would crop the wrong region: fatal."""
    bx, by, bw, bh = (float(b) for b in box)
    shown = "[" + ", ".join(f"{b:g}" for b in (bx, by, bw, bh)) + "]"
    w, h = size
    # The image spans [-0.5, size - 0.5] in pixel-centre coordinates.
    if w and h and (bx > w - 0.5 or by > h - 0.5 or bx + bw < -0.5 or by + bh < -0.5):
        raise DataError(
            f"the box {shown} lies entirely outside the {w}x{h} image",
            kset.source,
            _where(sample, inst),
        )
    labelled = kp[kp[:, 2] > 0, :2]
    # Keypoints may stick out of a tight box (COCO's by up to 8% of its side): grow it first.
    mx, my = 1 + 0.1 * bw, 1 + 0.1 * bh
    inside = (
        (labelled[:, 0] >= bx - mx)
        & (labelled[:, 0] <= bx + bw + mx)
        & (labelled[:, 1] >= by - my)
        & (labelled[:, 1] <= by + bh + my)
    )
    if len(labelled) and not inside.any():
        raise DataError(
            f"the box {shown} holds none of the instance's {len(labelled)} labelled keypoints",
            kset.source,
            _where(sample, inst),
        )
