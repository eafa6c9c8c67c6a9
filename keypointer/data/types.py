"""The one in-memory form of a labelled keypoint dataset, whatever its file format."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from keypointer.data.boxes import Box, keypoint_span
from keypointer.data.frames import read_frame
from keypointer.data.images import read_image
from keypointer.errors import DataError
from keypointer.skeleton import Skeleton


@dataclass
class Instance:
    """One labelled object in an image.

    ``keypoints`` is (K, 3): x, y in image pixels (pixel centres at integers)
    and visibility as COCO writes it: 0 unlabelled, 1 labelled but occluded,
    2 labelled and visible. ``bbox`` is a COCO (x, y, w, h) box, edges on pixel edges
    (:mod:`keypointer.data.boxes`), or None.
    ``record`` says where it came from, for messages ("annotation id 7", "line 12").
    ``track`` is the identity of the object across images when the labels give one (a
    DeepLabCut individual, a SLEAP track, a COCO ``track_id``, a CSV ``track`` column), else
    None. Two instances of one image should not share a track.
    """

    keypoints: np.ndarray
    bbox: Box | None = None
    record: str = ""
    track: str | None = None

    @property
    def labelled(self) -> np.ndarray:
        """(K,) bool: keypoints that have a usable label."""
        return self.keypoints[:, 2] > 0


@dataclass
class Sample:
    """One image and its instances. ``width``/``height`` are 0 when not known yet.

    ``frame``: None when ``image`` is an image file; else ``image`` is a video file and the
    image is its frame number ``frame`` (0-based), as SLEAP labels frames. :meth:`read`
    decodes either.
    """

    image: Path
    width: int = 0
    height: int = 0
    instances: list[Instance] = field(default_factory=list)
    id: int | str | None = None
    record: str = ""
    frame: int | None = None

    def read(self) -> np.ndarray:
        """The image as (H, W, 3) uint8 RGB; :class:`DataError` naming the file (and frame)
        when it cannot be decoded."""
        if self.frame is None:
            return read_image(self.image)
        return read_frame(self.image, self.frame)

    @property
    def key(self) -> tuple[str, int | None]:
        """What tells two images apart: the file, and the frame of a video."""
        # abspath, not resolve: no file-system call per image for large sets.
        return os.path.normcase(os.path.abspath(self.image)), self.frame


@dataclass
class KeypointSet:
    """A skeleton plus samples; ``source`` is the file or folder it was read from.

    ``dropped`` counts records a reader left out on purpose, by reason (e.g.
    ``{"crowd annotations (iscrowd=1)": 3}``), so that ``keypointer check`` can report them.
    ``warnings`` are what a reader tolerated but the user should hear about (e.g. skeleton
    edges dropped), one line each, naming the file.
    """

    skeleton: Skeleton
    samples: list[Sample]
    source: Path | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def whole_image(self) -> bool:
        """Every image holds at most one instance and none has a box: the model then sees
        the whole image (what the dataset crops, the recipe sizes and the guard measures)."""
        return all(len(s.instances) <= 1 for s in self.samples) and not any(
            i.bbox is not None for s in self.samples for i in s.instances
        )

    @property
    def num_instances(self) -> int:
        return sum(len(s.instances) for s in self.samples)

    @property
    def tracks(self) -> dict[str, int]:
        """Track name -> number of instances with it, in order of first appearance."""
        return dict(Counter(i.track for s in self.samples for i in s.instances if i.track))

    def subset(self, indices) -> KeypointSet:
        return replace(self, samples=[self.samples[i] for i in indices])

    def split(self, val_fraction: float, seed: int = 0) -> tuple[KeypointSet, KeypointSet]:
        """Random split by image (never splits the instances of one image)."""
        n = len(self.samples)
        order = np.random.default_rng(seed).permutation(n)
        n_val = int(round(n * val_fraction)) if n > 1 else 0
        n_val = min(max(n_val, 1 if val_fraction > 0 and n > 1 else 0), n - 1) if n > 1 else 0
        return self.subset(sorted(order[n_val:])), self.subset(sorted(order[:n_val]))


def path_exists(path: Path) -> bool:
    """``path.exists()`` that says False, not raises, for names the OS rejects (NUL, too long)."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of an image as training sees it (EXIF orientation applied), or None
    when it cannot be read. Decodes the whole image: OpenCV has no header-only reader."""
    try:
        img = read_image(path)
    except DataError:
        return None
    return int(img.shape[1]), int(img.shape[0])


def read_text(path: Path, what: str = "file") -> str:
    """A label file's text (UTF-8, with or without a BOM); unreadable or not UTF-8 -> DataError."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise DataError(f"cannot read the {what}: {err.strerror or err}", path) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(
            f"the {what} is not UTF-8 text (save it as UTF-8)", path, f"line {line}"
        ) from None


def writable_instance(inst: Instance, source: object) -> tuple[np.ndarray, np.ndarray, Box | None]:
    """What a writer stores for ``inst``: (K, 3) keypoints with unlabelled ones zeroed, the
    (K,) labelled mask, and the box, or the span of the labelled keypoints when it has none
    (:func:`~keypointer.data.boxes.keypoint_span`; None when nothing is labelled). NaN or
    infinite values raise :class:`DataError`."""
    kp = np.array(inst.keypoints, dtype=np.float64)
    labelled = kp[:, 2] > 0
    kp[~labelled] = 0.0
    box = inst.bbox
    if not np.isfinite(kp).all() or (box is not None and not np.isfinite(box).all()):
        raise DataError("NaN or infinite coordinates cannot be written", source, inst.record)
    return kp, labelled, box if box is not None else keypoint_span(kp[labelled, :2])


def require_image_files(kset: KeypointSet, what: str) -> None:
    """DataError when a sample is a frame of a video: ``what`` (a writer) stores image files.
    :func:`keypointer.data.formats.convert` writes such frames to PNG files first."""
    for sample in kset.samples:
        if sample.frame is not None:
            raise DataError(
                f"{what} needs image files, and this is frame {sample.frame} of a video "
                "(keypointer convert writes such frames to PNG files)",
                kset.source,
                sample.record or sample.image.name,
            )
