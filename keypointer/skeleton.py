"""Skeletons: keypoint names, edges, flip pairs and OKS sigmas."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from keypointer.errors import DataError

COCO_BODY_NAMES = tuple(
    "nose left_eye right_eye left_ear right_ear left_shoulder right_shoulder left_elbow "
    "right_elbow left_wrist right_wrist left_hip right_hip left_knee right_knee left_ankle "
    "right_ankle".split()
)
# COCO's per-keypoint OKS sigmas (cocoapi, cocoeval.py), in the order of COCO_BODY_NAMES.
COCO_BODY_SIGMAS = tuple(
    float(s)
    for s in "0.026 0.025 0.025 0.035 0.035 0.079 0.079 0.072 0.072 0.062 0.062 0.107 0.107 "
    "0.087 0.087 0.089 0.089".split()
)
COCO_BODY_EDGES = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
    (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip
DEFAULT_SIGMA = 0.05  # uniform OKS sigma when a skeleton gives none

_LEFT_RIGHT = (
    ("left", "right"),
    ("Left", "Right"),
    ("LEFT", "RIGHT"),
    ("l_", "r_"),
    ("_l", "_r"),
    ("L", "R"),
    ("l", "r"),
)


@dataclass(frozen=True)
class Skeleton:
    """What the K keypoints of a dataset are.

    ``edges`` and ``flip_pairs`` are pairs of 0-based keypoint indices. A
    horizontal flip swaps the members of each flip pair. ``sigmas`` are the
    per-keypoint OKS constants (COCO's for the COCO body, else uniform).
    """

    names: tuple[str, ...]
    edges: tuple[tuple[int, int], ...] = ()
    flip_pairs: tuple[tuple[int, int], ...] = ()
    sigmas: tuple[float, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        object.__setattr__(self, "edges", tuple((int(a), int(b)) for a, b in self.edges))
        object.__setattr__(self, "flip_pairs", tuple((int(a), int(b)) for a, b in self.flip_pairs))
        if self.sigmas is not None:
            object.__setattr__(self, "sigmas", tuple(float(s) for s in self.sigmas))

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def oks_sigmas(self) -> tuple[float, ...]:
        if self.sigmas is not None:
            return self.sigmas
        if self.names == COCO_BODY_NAMES:
            return COCO_BODY_SIGMAS
        return (DEFAULT_SIGMA,) * len(self.names)

    def flip_index(self) -> list[int]:
        """Permutation that maps keypoint i to its mirror image after a horizontal flip."""
        perm = list(range(len(self.names)))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def index(self, name: str) -> int:
        return self.names.index(name)

    def validate(self, source: str | None = None) -> None:
        """Raise :class:`DataError` if edges, flip pairs or sigmas name unknown keypoints, or a
        flip pair pairs a keypoint with itself."""
        k = len(self.names)
        if k == 0:
            raise DataError("the skeleton has no keypoints", source)
        if len(set(self.names)) != k:
            dup = sorted({n for n in self.names if self.names.count(n) > 1})
            raise DataError(f"duplicate keypoint names {dup}", source)
        for kind, pairs in (("edge", self.edges), ("flip pair", self.flip_pairs)):
            for a, b in pairs:
                if not (0 <= a < k and 0 <= b < k):
                    raise DataError(
                        f"{kind} ({a}, {b}) names a keypoint outside 0..{k - 1}", source
                    )
        for a, b in self.flip_pairs:
            if a == b:  # a typo for another index: the flip would leave its partner unswapped
                raise DataError(
                    f"flip pair ({a}, {b}) pairs keypoint {self.names[a]!r} with itself", source
                )
        if self.sigmas is not None and len(self.sigmas) != k:
            raise DataError(f"{len(self.sigmas)} OKS sigmas for {k} keypoints", source)

    @classmethod
    def coco_body(cls) -> Skeleton:
        return cls(COCO_BODY_NAMES, COCO_BODY_EDGES, guess_flip_pairs(COCO_BODY_NAMES))

    def to_dict(self) -> dict:
        return {
            "names": list(self.names),
            "edges": [list(e) for e in self.edges],
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "sigmas": None if self.sigmas is None else list(self.sigmas),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Skeleton:
        return cls(
            tuple(d["names"]),
            tuple(tuple(e) for e in d.get("edges", ())),
            tuple(tuple(p) for p in d.get("flip_pairs", ())),
            d.get("sigmas"),
        )


def guess_flip_pairs(names: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """Pair names that differ only by a left/right marker.

    Finds "left_eye"/"right_eye", "L_paw"/"R_paw", and the single-letter style of
    the MMPose animal sets ("eyeL"/"eyeR", "forelegL1"/"forelegR1"). Only pairs
    whose both names exist are returned, so "tail" is never paired with "tair".
    """
    index = {n: i for i, n in enumerate(names)}
    pairs: list[tuple[int, int]] = []
    paired: set[int] = set()
    for i, name in enumerate(names):
        if i in paired:
            continue
        j = _mirror_name(name, index)
        if j is not None and j != i and j not in paired:
            pairs.append((i, j))
            paired.update((i, j))
    return tuple(pairs)


def _mirror_name(name: str, index: dict[str, int]) -> int | None:
    for left, right in _LEFT_RIGHT:  # longest markers first
        start = name.find(left)
        while start >= 0:
            j = index.get(name[:start] + right + name[start + len(left) :])
            if j is not None:
                return j
            start = name.find(left, start + 1)
    return None
