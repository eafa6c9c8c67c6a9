"""keypointer.multiview.limbs and triangulate(limbs=...): lengths and spreads learnt right, rigid
pairs chosen, exact views left alone, noisy views pulled towards the true limb lengths."""

from __future__ import annotations

import numpy as np
import pytest

from keypointer.errors import KeypointerError
from keypointer.multiview.cameras import CameraGroup
from keypointer.multiview.limbs import (
    MAD_TO_SD,
    MIN_SPREAD,
    Limbs,
    learn_limbs,
    limb_lengths,
    rigid_pairs,
)
from keypointer.multiview.synthetic import BOX_SIZE, camera_ring, figure_motion, project_views
from keypointer.multiview.triangulate import confident, triangulate


def mean_error(points: np.ndarray, truth: np.ndarray) -> float:
    return float(np.nanmean(np.linalg.norm(points - truth, axis=-1)))


def scene(frames: int = 120, keypoints: int = 10, noise_px: float = 2.0, seed: int = 0):
    group = camera_ring(3, seed=3)
    figure = figure_motion(frames=frames, keypoints=keypoints, seed=seed)
    uv, scores = project_views(group, figure.points, noise_px=noise_px, seed=seed + 1)
    return group, figure, uv, scores


def test_lengths_and_spreads_are_learnt():
    rng = np.random.default_rng(0)
    points = np.zeros((200, 3, 3))
    points[:, 1, 0] = 10.0  # keypoints 0-1: rigid, 10 long
    points[:, 2, 1] = rng.normal(20.0, 2.0, 200)  # keypoints 0-2: 20 long, sd 2
    limbs = learn_limbs(points, [[0, 1], [0, 2]])
    assert limbs.lengths == pytest.approx([10.0, 20.0], abs=0.3)
    assert limbs.spread[0] == pytest.approx(MIN_SPREAD * 10.0)  # the floor
    assert limbs.spread[1] == pytest.approx(2.0, rel=0.2)


def test_limbs_with_too_few_frames_are_left_out():
    points = np.zeros((30, 3, 3))
    points[:, 1, 0], points[:, 2, 1] = 10.0, 5.0
    points[5:, 2] = np.nan  # keypoint 2 in 5 frames only
    limbs = learn_limbs(points, [[0, 1], [1, 2]], min_frames=10)
    assert limbs.edges.tolist() == [[0, 1]]
    valid = np.ones((30, 3), dtype=bool)
    valid[:25, 1] = False  # keypoint 1 trusted in 5 frames only
    assert len(learn_limbs(points, [[0, 1]], valid=valid).edges) == 0


def test_rigid_pairs_hold_the_rigid_part_and_reach_every_keypoint():
    """Keypoints 0-3 are one rigid body moving about; 4 wanders: the rigid body's 6 pairs are
    chosen, keypoint 4 only by the one tree edge that reaches it."""
    rng = np.random.default_rng(1)
    body = rng.normal(size=(4, 3)) * 30
    frames = 300
    angle = np.linspace(0, 6, frames)
    c, s = np.cos(angle), np.sin(angle)
    rot = np.zeros((frames, 3, 3))
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = c, -s, s, c, 1
    points = np.empty((frames, 5, 3))
    points[:, :4] = np.einsum("fij,kj->fki", rot, body) + rng.normal(size=(frames, 1, 3)) * 50
    points[:, 4] = points[:, 0] + rng.normal(size=(frames, 3)) * 40
    pairs = {tuple(p) for p in rigid_pairs(points).tolist()}
    assert {(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)} <= pairs
    assert len(pairs) == 7 and sum(4 in p for p in pairs) == 1


@pytest.mark.parametrize("n_cams", [2, 3])
def test_exact_views_are_not_moved(n_cams):
    """The figure's limbs stretch (its lengths are not the medians), yet with exact 2D points
    the estimated noise is 0 and the prior has no weight."""
    group = camera_ring(n_cams, seed=n_cams)
    figure = figure_motion(frames=40, keypoints=8, seed=1)
    uv, scores = project_views(group, figure.points)
    limbs = learn_limbs(figure.points)
    assert (limb_lengths(figure.points, limbs.edges) != limbs.lengths).any()
    out = triangulate(group, uv, scores, limbs=limbs)
    assert np.abs(out.points - figure.points).max() < 1e-6 * BOX_SIZE
    assert out.error.max() < 1e-6


def test_noisy_views_come_closer_to_the_true_lengths_and_points():
    group, figure, uv, scores = scene()
    limbs = learn_limbs(figure_motion(frames=400, keypoints=10, seed=0).points)
    plain = triangulate(group, uv, scores)
    held = triangulate(group, uv, scores, limbs=limbs)
    true = limb_lengths(figure.points, limbs.edges)

    def length_error(points):
        return float(np.nanmean(np.abs(limb_lengths(points, limbs.edges) - true)))

    assert length_error(held.points) < 0.7 * length_error(plain.points)
    assert mean_error(held.points, figure.points) < 0.9 * mean_error(plain.points, figure.points)
    assert (held.views == plain.views).all() and (held.used == plain.used).all()


def test_limbs_learnt_from_confident_points_help_on_independent_noise():
    group, figure, uv, scores = scene(frames=200)
    plain = triangulate(group, uv, scores)
    limbs = learn_limbs(plain.points, valid=confident(plain.error, plain.views))
    own = triangulate(group, uv, scores, limbs=limbs)
    assert mean_error(own.points, figure.points) < 0.97 * mean_error(plain.points, figure.points)


def test_zero_noise_leaves_noisy_points_alone_and_missing_points_stay_missing():
    group, figure, uv, scores = scene(frames=20)
    uv[:, 3, 2] = np.nan  # keypoint 2 of frame 3: in no camera
    limbs = learn_limbs(figure.points)
    plain = triangulate(group, uv, scores)
    still = triangulate(group, uv, scores, limbs=limbs, limb_noise=0.0)
    assert np.allclose(still.points, plain.points, atol=1e-6 * BOX_SIZE, equal_nan=True)
    held = triangulate(group, uv, scores, limbs=limbs)
    assert np.isnan(held.points[3, 2]).all() and np.isfinite(np.delete(held.points[3], 2, 0)).all()
    assert not np.allclose(held.points[3], plain.points[3], equal_nan=True)


def test_result_scales_with_the_world_units():
    group, figure, uv, scores = scene(frames=30, keypoints=6)
    limbs = learn_limbs(figure.points)
    out = triangulate(group, uv, scores, limbs=limbs).points
    scale = 1e-3
    metres = CameraGroup(
        [type(c)(c.name, c.size, c.matrix, c.dist, c.rvec, c.tvec * scale) for c in group]
    )
    small = Limbs(limbs.edges, limbs.lengths * scale, limbs.spread * scale)
    assert np.allclose(triangulate(metres, uv, scores, limbs=small).points, out * scale, atol=1e-7)


@pytest.mark.parametrize(
    "edges, lengths, spread",
    [([[0, 0]], [1.0], [0.1]), ([[0, 1], [1, 0]], [1.0, 1.0], [0.1, 0.1]), ([[0, 1]], [0], [1])],
)
def test_bad_limbs_are_refused(edges, lengths, spread):
    with pytest.raises(KeypointerError):
        Limbs(edges, lengths, spread)


def test_a_limb_past_the_keypoints_is_an_error():
    group, figure, uv, scores = scene(frames=5, keypoints=4)
    with pytest.raises(KeypointerError, match="keypoint 7"):
        triangulate(group, uv, scores, limbs=Limbs([[0, 7]], [1.0], [0.1]))


def test_mad_to_sd():
    x = np.random.default_rng(0).normal(size=200_000)
    assert MAD_TO_SD * np.median(np.abs(x - np.median(x))) == pytest.approx(1.0, abs=0.01)


def test_no_points_no_limbs():
    limbs = learn_limbs(np.full((20, 4, 3), np.nan))
    assert limbs.edges.shape == (0, 2) and limbs.lengths.shape == limbs.spread.shape == (0,)
    group, figure, uv, scores = scene(frames=5, keypoints=4)
    held = triangulate(group, uv, scores, limbs=limbs)
    assert np.array_equal(held.points, triangulate(group, uv, scores).points)
