"""keypointer.multiview.synthetic: the test bed is what it says (figure in the box, cameras
looking at it, noise and corruption of the asked size, boards seen from their face)."""

from __future__ import annotations

import cv2
import numpy as np

from keypointer.multiview.calibrate import Board
from keypointer.multiview.synthetic import (
    BOX_SIZE,
    board_clip,
    camera_ring,
    figure_motion,
    project_views,
)


def test_figure_stays_in_the_box_and_keeps_its_bones():
    figure = figure_motion(frames=300, keypoints=20, seed=3)
    assert figure.points.shape == (300, 20, 3)
    assert np.abs(figure.points).max() <= BOX_SIZE / 2
    assert figure.edges.shape == (19, 2) and (figure.edges[:, 0] < figure.edges[:, 1]).all()
    bones = np.linalg.norm(
        figure.points[:, figure.edges[:, 0]] - figure.points[:, figure.edges[:, 1]], axis=-1
    )
    assert 0.02 * BOX_SIZE < bones.mean() < 0.1 * BOX_SIZE
    assert np.ptp(bones, axis=0).max() < 1e-9 * BOX_SIZE  # rigid bones, as an animal's
    i, j = np.triu_indices(20, k=1)
    pairs = np.linalg.norm(figure.points[:, i] - figure.points[:, j], axis=-1)
    assert np.ptp(pairs, axis=0).max() > 0.02 * BOX_SIZE  # yet the bones swing
    assert np.ptp(figure.points[:, 0, :2], axis=0).min() > 0.2 * BOX_SIZE  # it moves about
    np.testing.assert_array_equal(figure.points, figure_motion(300, 20, seed=3).points)


def test_cameras_look_at_the_box_from_around_it():
    group = camera_ring(6, seed=0)
    centres = group.project(np.zeros(3))  # the box centre lands near each image's centre
    for cam, uv in zip(group, centres, strict=True):
        assert np.linalg.norm(uv - np.array(cam.size) / 2) < 0.1 * cam.size[1]
        assert cam.dist[0] < 0  # barrel distortion
    azimuths = np.sort(np.arctan2(group.positions[:, 1], group.positions[:, 0]))
    assert np.diff(azimuths).min() > np.radians(30)


def test_views_have_the_asked_noise_and_corruption():
    group = camera_ring(3, seed=1)
    figure = figure_motion(frames=400, keypoints=10, seed=1)
    clean, scores = project_views(group, figure.points)
    assert np.isfinite(clean).all() and (scores == 1).all()
    noisy, scores = project_views(group, figure.points, noise_px=2.0, seed=2)
    per_axis = (noisy - clean) * scores[..., None] / 2.0  # noise of 2 / score px per axis
    assert abs(per_axis.std() - 1) < 0.02 and (0.4 <= scores).all() and (scores <= 1).all()
    bad, _ = project_views(group, figure.points, corrupt_camera=1, corrupt_share=0.1, seed=4)
    moved = np.linalg.norm(bad - clean, axis=-1)
    assert (moved[[0, 2]] == 0).all()
    frames = (moved[1] > 0).all(axis=1)
    assert 0.07 < frames.mean() < 0.13 and (moved[1][frames] >= 40).all()
    hidden, scores = project_views(group, figure.points, occluded_share=0.2, seed=5)
    moved = np.linalg.norm(hidden - clean, axis=-1)
    assert abs((moved > 0).mean() - 0.2) < 0.02
    assert ((moved >= 20) & (moved <= 60))[moved > 0].all()
    assert ((scores >= 0.3) & (scores <= 0.5))[moved > 0].all() and (scores[moved == 0] == 1).all()


def test_board_is_seen_only_from_its_face():
    group = camera_ring(4, seed=2)
    board = Board()
    clip = board_clip(group, board, 60, seed=3)
    assert clip.corners.shape == (4, 60, 24, 2)
    seen = np.isfinite(clip.corners[..., 0]).any(-1)
    assert 0.2 < seen.mean() < 0.9 and (seen.sum(0) >= 2).sum() > 10
    for f in range(60):
        rot = cv2.Rodrigues(clip.rvecs[f])[0]
        face = -rot[:, 2]
        centre = rot @ clip.object_points.mean(0) + clip.tvecs[f]
        for c in range(4):
            if seen[c, f]:
                assert face @ (group[c].position - centre) > 0
