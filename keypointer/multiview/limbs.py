"""Limb lengths learnt from 3D points, as a soft prior for triangulation.

A limb is a pair of keypoints whose distance barely changes (a bone). :func:`learn_limbs`
takes the median length of each limb over confident frames (of triangulated labels, or of
the confidently triangulated predictions themselves) and its spread (a robust standard
deviation: a stretchy limb, a keypoint on soft tissue, gets a loose prior). Without given
limbs it picks them (:func:`rigid_pairs`): every keypoint pair whose distance varies by at most
2% (robust sd over median), and the spanning tree of the pairs whose distance varies least,
so that every keypoint is held by at least one limb. These are limbs in a wide sense: any two
points on one rigid part (head, pelvis) hold each other, as bones do.

:func:`keypointer.multiview.triangulate.triangulate` (``limbs=``) then solves each frame's
points together, with the reprojection error and, per limb, ``((length - median) /
spread)^2`` scaled to the reprojection noise (so exact 2D points are left where they are).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse.csgraph import minimum_spanning_tree

from keypointer.errors import KeypointerError

MIN_FRAMES = 10
"""A limb needs this many frames with both keypoints to learn its length."""
MIN_SPREAD = 0.01
"""Floor of a limb's spread, as a share of its length: a perfectly rigid limb in the labels
would otherwise be a hard constraint that a slightly wrong calibration cannot meet."""
MAX_RELATIVE_SPREAD = 0.02
"""Chosen limbs: keypoint pairs whose distance's robust sd is at most this share of it (near
rigid: bones). A pair that swings (hip to ankle) has no one length to be held to: a prior
around its median pulls every pose towards the middle one, which cost accuracy on a figure
with rigid bones at 0.1 (benchmarks/RESULTS.md, "Several cameras, third step")."""
MAD_TO_SD = 1.4826  # median absolute deviation -> standard deviation of a Gaussian


@dataclass(frozen=True)
class Limbs:
    """Keypoint pairs with a known length.

    Attributes:
        edges: (E, 2) keypoint indices.
        lengths: (E,) median lengths, in the world's units.
        spread: (E,) robust standard deviations of the lengths (same units), > 0.
    """

    edges: np.ndarray
    lengths: np.ndarray
    spread: np.ndarray

    def __post_init__(self) -> None:
        edges = np.asarray(self.edges, dtype=np.int64).reshape(-1, 2)
        lengths = np.asarray(self.lengths, dtype=np.float64).reshape(-1)
        spread = np.asarray(self.spread, dtype=np.float64).reshape(-1)
        if not len(edges) == len(lengths) == len(spread):
            raise KeypointerError(
                f"limbs: {len(edges)} edges, {len(lengths)} lengths, {len(spread)} spreads"
            )
        if not (np.isfinite(lengths).all() and (lengths > 0).all() and (spread > 0).all()):
            raise KeypointerError("limbs: lengths must be positive and spreads above 0")
        if (edges[:, 0] == edges[:, 1]).any() or (edges < 0).any():
            raise KeypointerError("limbs: an edge joins a keypoint to itself or has index < 0")
        if len(np.unique(np.sort(edges, axis=1), axis=0)) < len(edges):
            raise KeypointerError("limbs: a keypoint pair is given twice")
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "lengths", lengths)
        object.__setattr__(self, "spread", spread)


def limb_lengths(points: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(F, K, 3) points and (E, 2) edges -> (F, E) lengths (NaN where a keypoint is NaN)."""
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    return np.linalg.norm(points[:, edges[:, 0]] - points[:, edges[:, 1]], axis=-1)


def learn_limbs(
    points: np.ndarray,
    edges: np.ndarray | None = None,
    valid: np.ndarray | None = None,
    min_frames: int = MIN_FRAMES,
) -> Limbs:
    """Median length and robust spread of each limb over the frames where both ends are valid.

    Args:
        points: (F, K, 3) 3D points (triangulated labels or predictions), NaN where missing.
        edges: (E, 2) keypoint pairs; None: chosen (the module docstring).
        valid: (F, K) which points to learn from (e.g. low reprojection error); None: all
            finite ones.
        min_frames: frames with both ends valid that a limb needs; a given limb with fewer is
            left out, as is a chosen pair.

    Returns:
        The :class:`Limbs` (edges in the order given, those left out dropped).
    """
    points = np.asarray(points, dtype=np.float64)
    ok = np.isfinite(points).all(-1)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    points = np.where(ok[..., None], points, np.nan)
    if edges is None:
        edges = rigid_pairs(points, min_frames=min_frames)
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    if edges.size and (edges.max() >= points.shape[1]):
        raise KeypointerError(
            f"limbs: edge index {edges.max()} but the points have {points.shape[1]} keypoints"
        )
    lengths = limb_lengths(points, edges)
    enough = np.isfinite(lengths).sum(axis=0) >= min_frames
    lengths = lengths[:, enough]
    median = np.nanmedian(lengths, axis=0) if lengths.size else np.zeros(0)
    mad = np.nanmedian(np.abs(lengths - median), axis=0) if lengths.size else np.zeros(0)
    spread = np.maximum(MAD_TO_SD * mad, MIN_SPREAD * median)
    keep = median > 0
    return Limbs(edges[enough][keep], median[keep], spread[keep])


def rigid_pairs(
    points: np.ndarray, max_spread: float = MAX_RELATIVE_SPREAD, min_frames: int = MIN_FRAMES
) -> np.ndarray:
    """(E, 2) keypoint pairs (first index the smaller, sorted) whose distance varies little:
    those whose relative spread (robust sd / median) is at most ``max_spread``, and the
    minimum spanning tree over all pairs weighted by it (so that every keypoint seen often
    enough is in a limb). Pairs seen together in fewer than ``min_frames`` frames are not
    candidates.

    Args:
        points: (F, K, 3), NaN where missing.
    """
    n_kp = points.shape[1]
    i, j = np.triu_indices(n_kp, k=1)
    d = np.linalg.norm(points[:, i] - points[:, j], axis=-1)  # (F, P)
    seen = np.isfinite(d).sum(axis=0)
    usable = seen >= min_frames
    rel = np.full(len(i), np.inf)
    if usable.any():
        median = np.nanmedian(d[:, usable], axis=0)
        mad = np.nanmedian(np.abs(d[:, usable] - median), axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel[usable] = np.where(median > 0, MAD_TO_SD * mad / median, np.inf)
    usable &= np.isfinite(rel)
    weights = np.zeros((n_kp, n_kp))
    # the spanning tree reads (near) zero weights as no edge; + 1 for all: the same tree
    weights[i[usable], j[usable]] = 1.0 + rel[usable]
    tree = minimum_spanning_tree(weights).tocoo()
    chosen = usable & (rel <= max_spread)
    pair = np.zeros((n_kp, n_kp), dtype=np.int64)
    pair[i, j] = np.arange(len(i))
    chosen[pair[np.minimum(tree.row, tree.col), np.maximum(tree.row, tree.col)]] = True
    return np.stack([i[chosen], j[chosen]], axis=1)
