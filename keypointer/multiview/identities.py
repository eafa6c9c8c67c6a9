"""Several animals seen by several cameras: which animal is which in every view, and over time.

Each camera's 2D file holds, per frame, its own list of animals (instances) in its own order:
a 2D tracker's identities are not shared between cameras, and a detector's order is arbitrary.
Two steps make 3D animals of them:

1. :func:`match_views`, per frame: which instance of each camera is which 3D animal. The cost
   of pairing instance i of camera c with instance j of camera d is the score-weighted mean,
   over their keypoints, of the symmetric epipolar distance in pixels (through the lens model:
   points are undistorted first). Camera by camera, the instances are assigned (Hungarian,
   :func:`keypointer.metrics.tracking.min_cost_matching`) to the animals the cameras before
   made, at the mean cost over those animals' views; pairs above ``max_px`` are not allowed
   and an instance left over starts an animal, so an animal missing in some views (even in
   the first) is still found. Cameras go in order of how many instances they see, most first.
2. :func:`track_animals`, over frames: the triangulated 3D animals of frame f are assigned to
   the tracks of frame f - 1 (their last seen pose) by mean 3D distance (Hungarian), so each
   animal keeps its index in every frame.

Why not all cameras jointly: with 3 cameras or more, choosing one instance per camera for
every animal at once is a multi-dimensional assignment (NP-hard); exhaustive search costs
(animals!)^(cameras - 1) per frame. Camera by camera, each later camera is matched against
every view already in an animal (the mean of several epipolar distances, each from another
direction), which removes the ambiguity of a single pair of views, where two animals lying
along one epipolar line cost alike; a wrong view that still gets in is left out by the robust
triangulation after (:func:`keypointer.multiview.triangulate.triangulate`).

Why not :class:`keypointer.temporal.tracking.Tracker` for step 2: it tracks 2D poses in
image pixels with sizes from the keypoint box; in 3D the animals' distances are in world
units and the animals are far apart compared with their motion in one frame, so the nearest
last pose decides and a filter buys nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from keypointer.config import KEYPOINT_SCORE_THRESHOLD
from keypointer.metrics.tracking import min_cost_matching
from keypointer.multiview.cameras import CameraGroup

MAX_EPIPOLAR_PX = 25.0
"""Two views are of one animal only if their keypoints' mean epipolar distance is under this
(pixels): a right pair's distance is the 2D keypoint error (a few pixels), a wrong pair's is
about the animals' distance apart in the image."""
CHUNK_FRAMES = 1000  # frames matched at once: bounds the (F, I, I, K, 3) cost arrays' memory


def epipolar_costs(
    group: CameraGroup,
    points: Sequence[np.ndarray],
    scores: Sequence[np.ndarray],
    min_score: float = KEYPOINT_SCORE_THRESHOLD,
) -> dict[tuple[int, int], np.ndarray]:
    """Per pair of cameras c < d, the cost of every pair of their instances in every frame.

    Args:
        group: the C cameras, in the order of ``points``.
        points: per camera (F, I_c, K, 2) pixels, NaN where missing.
        scores: per camera (F, I_c, K) scores; points under ``min_score`` do not count.
        min_score: see ``scores``.

    Returns:
        {(c, d): (F, I_c, I_d) score-weighted mean symmetric epipolar distance in pixels over
        the keypoints both have; inf where they share none}.
    """
    rays, weights = [], []
    for cam, p, s in zip(group, points, scores, strict=True):
        xy = cam.undistort(np.asarray(p, dtype=np.float64))
        ok = np.isfinite(xy).all(-1) & (np.nan_to_num(s, nan=0.0) >= min_score)
        rays.append(
            np.concatenate([np.where(ok[..., None], xy, 0.0), np.ones(ok.shape)[..., None]], -1)
        )
        weights.append(np.where(ok, np.nan_to_num(s, nan=0.0), 0.0))
    extrinsics = group.extrinsics
    focal = group.focals.mean(axis=1)  # normalised distances -> pixels
    costs = {}
    for c in range(len(group)):
        for d in range(c + 1, len(group)):
            rot = extrinsics[d, :, :3] @ extrinsics[c, :, :3].T
            t = extrinsics[d, :, 3] - rot @ extrinsics[c, :, 3]
            essential = cross_matrix(t) @ rot  # x_d' E x_c = 0
            a = rays[c][:, :, None]  # (F, I_c, 1, K, 3)
            b = rays[d][:, None, :]  # (F, 1, I_d, K, 3)
            line_d = a @ essential.T  # epipolar lines in d of c's points
            line_c = b @ essential  # and in c of d's
            residual = np.abs((line_d * b).sum(-1))
            dist = focal[d] * residual / np.maximum(np.hypot(line_d[..., 0], line_d[..., 1]), 1e-12)
            dist += (
                focal[c] * residual / np.maximum(np.hypot(line_c[..., 0], line_c[..., 1]), 1e-12)
            )
            w = np.minimum(weights[c][:, :, None], weights[d][:, None, :])
            total = w.sum(-1)
            with np.errstate(invalid="ignore", divide="ignore"):
                costs[c, d] = np.where(total > 0, (w * dist / 2).sum(-1) / total, np.inf)
    return costs


def cross_matrix(v: np.ndarray) -> np.ndarray:
    """(3, 3) matrix of ``v x``."""
    return np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])


def match_views(
    group: CameraGroup,
    points: Sequence[np.ndarray],
    scores: Sequence[np.ndarray],
    animals: int,
    *,
    min_score: float = KEYPOINT_SCORE_THRESHOLD,
    max_px: float = MAX_EPIPOLAR_PX,
) -> np.ndarray:
    """Which instance of each camera is which animal, per frame (step 1 of the module doc).

    Args:
        group: the C cameras, in the order of ``points``.
        points: per camera (F, I_c, K, 2) pixels, NaN where missing (the cameras may see
            different numbers of instances).
        scores: per camera (F, I_c, K) scores.
        animals: at most this many animals per frame (A); with more candidates the ones seen
            by more views (then at the lower cost) are kept.
        min_score: keypoints scoring under this do not count.
        max_px: views further apart than this (mean epipolar distance, pixels) are not paired.

    Returns:
        (C, F, A) the instance of camera c that is animal a in frame f, -1 where none. An
        animal is seen by 2 views or more; animals fill the slots from 0 in each frame, in
        no particular order (:func:`track_animals` orders them over time).
    """
    n_cams = len(group)
    n_frames = len(points[0])
    out = np.full((n_cams, n_frames, animals), -1, dtype=np.int64)
    for start in range(0, n_frames, CHUNK_FRAMES):
        s = slice(start, start + CHUNK_FRAMES)
        chunk_points, chunk_scores = [p[s] for p in points], [c[s] for c in scores]
        costs = epipolar_costs(group, chunk_points, chunk_scores, min_score)
        # per frame the work is a few tiny matrices: nested lists beat numpy's per-call cost
        pair_costs = {}
        for (c, d), cost in costs.items():
            pair_costs[c, d] = cost.tolist()
            pair_costs[d, c] = cost.transpose(0, 2, 1).tolist()
        present = [
            (np.isfinite(p).all(-1) & (np.nan_to_num(sc, nan=0.0) >= min_score)).any(-1).tolist()
            for p, sc in zip(chunk_points, chunk_scores, strict=True)
        ]  # per camera (F, I_c): the instance has a usable keypoint
        for f in range(len(present[0])):
            seen = [[i for i, p in enumerate(present[c][f]) if p] for c in range(n_cams)]
            frame_costs = {pair: cost[f] for pair, cost in pair_costs.items()}
            for slot, views in enumerate(match_frame(seen, frame_costs, max_px)[:animals]):
                for c, i in views.items():
                    out[c, start + f, slot] = i
    return out


def match_frame(
    seen: list[list[int]], costs: dict[tuple[int, int], list[list[float]]], max_px: float
) -> list[dict[int, int]]:
    """One frame's animals (step 1 of the module doc).

    Args:
        seen: per camera, its instances present in the frame.
        costs: {(c, d): (I_c, I_d) nested lists} the pair costs (:func:`epipolar_costs`).
        max_px: pairs costing more are not allowed.

    Returns:
        The animals seen by 2 views or more, each {camera: instance}, the most views first
        (ties: the lower mean pair cost).
    """
    found: list[dict[int, int]] = []  # per candidate animal: camera -> instance
    spent: list[float] = []  # the candidate's summed pair costs
    for c in sorted(range(len(seen)), key=lambda c: -len(seen[c])):
        if not seen[c]:
            continue
        cost = np.full((len(found), len(seen[c])), np.inf)
        for a, views in enumerate(found):
            for j, inst in enumerate(seen[c]):
                pair = [costs[v, c][i][inst] for v, i in views.items()]
                pair = [p for p in pair if p < np.inf]
                if pair and sum(pair) / len(pair) <= max_px:
                    cost[a, j] = sum(pair) / len(pair)
        rows, cols = min_cost_matching(cost) if found else ([], [])
        for a, j in zip(rows, cols, strict=True):
            found[a][c] = seen[c][j]
            spent[a] += float(cost[a, j])
        for j in sorted(set(range(len(seen[c]))) - set(np.asarray(cols).tolist())):
            found.append({c: seen[c][j]})
            spent.append(0.0)
    kept = [a for a in range(len(found)) if len(found[a]) >= 2]
    kept.sort(key=lambda a: (-len(found[a]), spent[a] / (len(found[a]) - 1)))
    return [found[a] for a in kept]


def finite_mean(values: np.ndarray, axis: int) -> np.ndarray:
    """The mean of the finite ``values`` along ``axis``; inf where there are none."""
    ok = np.isfinite(values)
    count = ok.sum(axis)
    total = np.where(ok, values, 0.0).sum(axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.inf)


def gather(
    points: Sequence[np.ndarray], scores: Sequence[np.ndarray], views: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each animal's 2D keypoints in every camera.

    Args:
        points: per camera (F, I_c, K, 2) pixels.
        scores: per camera (F, I_c, K).
        views: (C, F, A) instance indices, -1 where none (:func:`match_views`).

    Returns:
        (C, F, A, K, 2) pixels (NaN where the camera has no view of the animal) and
        (C, F, A, K) scores (0 there).
    """
    n_cams, n_frames, n_animals = views.shape
    n_kp = points[0].shape[2]
    xy = np.full((n_cams, n_frames, n_animals, n_kp, 2), np.nan)
    sc = np.zeros((n_cams, n_frames, n_animals, n_kp))
    frames = np.arange(n_frames)[:, None]
    for c in range(n_cams):
        has = views[c] >= 0
        if not points[c].shape[1]:
            continue
        index = np.where(has, views[c], 0)
        xy[c] = np.where(has[..., None, None], points[c][frames, index], np.nan)
        sc[c] = np.where(has[..., None], scores[c][frames, index], 0.0)
    return xy, sc


def track_animals(points: np.ndarray) -> np.ndarray:
    """Who is who over time: the order of each frame's 3D animals that keeps them in place
    (step 2 of the module doc).

    Args:
        points: (F, A, K, 3) 3D keypoints of each frame's animals in any order; NaN where
            none (an animal with no finite keypoint is absent).

    Returns:
        (F, A) ``order``: ``points[f, order[f, a]]`` is animal ``a`` in frame f (slots of
        absent animals fill the rest, so each row is a permutation).
    """
    n_frames, n_animals = points.shape[:2]
    order = np.tile(np.arange(n_animals), (n_frames, 1))
    last = np.full(points.shape[1:], np.nan)  # (A, K, 3) each track's last seen keypoints
    for f in range(n_frames):
        here = [i for i in range(n_animals) if np.isfinite(points[f, i]).any()]
        if not here:
            continue
        gap = np.linalg.norm(last[:, None] - points[f, here][None], axis=-1)  # (A, n, K)
        cost = finite_mean(gap, axis=-1)  # inf: a new track, or no keypoint shared
        tracks, cols = min_cost_matching(cost)
        pairs = dict(zip(cols.tolist(), tracks.tolist(), strict=True))
        # animals seen for the first time take the tracks never seen, then the others
        free = sorted(
            set(range(n_animals)) - set(pairs.values()),
            key=lambda t: (np.isfinite(last[t]).any(), t),
        )
        for j in range(len(here)):
            if j not in pairs:
                pairs[j] = free.pop(0)
        row = np.full(n_animals, -1)
        for j, t in pairs.items():
            row[t] = here[j]
            seen = np.isfinite(points[f, here[j]]).all(-1)
            last[t, seen] = points[f, here[j], seen]
        rest = [i for i in range(n_animals) if i not in row]
        row[row < 0] = rest
        order[f] = row
    return order


def reorder(values: np.ndarray, order: np.ndarray, cameras: bool = False) -> np.ndarray:
    """(F, A, ...) ``values`` with each frame's animals in ``order`` (:func:`track_animals`);
    ``cameras``: ``values`` has a leading camera axis, (C, F, A, ...)."""
    frames = np.arange(order.shape[0])[:, None]
    return values[:, frames, order] if cameras else values[frames, order]
