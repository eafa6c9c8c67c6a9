"""keypointer.multiview.triangulate: exact on noise-free views, robust to a wrong camera, skips
missing and low-score views, weighs views by score, and does not depend on the world's units."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keypointer.config import KEYPOINT_SCORE_THRESHOLD
from keypointer.errors import KeypointerError
from keypointer.multiview.cameras import Camera, CameraGroup
from keypointer.multiview.synthetic import BOX_SIZE, camera_ring, figure_motion, project_views
from keypointer.multiview.triangulate import (
    SCORE_POWER,
    Scene,
    confident,
    residual_noise,
    triangulate,
)


def mean_error(points: np.ndarray, truth: np.ndarray) -> float:
    return float(np.nanmean(np.linalg.norm(points - truth, axis=-1)))


@pytest.mark.parametrize("n_cams", [2, 3, 6])
def test_exact_on_noise_free_views(n_cams):
    group = camera_ring(n_cams, seed=n_cams)
    figure = figure_motion(frames=50, keypoints=20, seed=1)
    uv, scores = project_views(group, figure.points)
    out = triangulate(group, uv, scores)
    assert out.points.shape == (50, 20, 3) and out.error.shape == out.views.shape == (50, 20)
    assert np.abs(out.points - figure.points).max() < 1e-6 * BOX_SIZE
    assert out.error.max() < 1e-6
    assert (out.views == n_cams).all() and out.used.all()


@pytest.mark.parametrize("n_cams, ambiguous", [(3, 0.1), (6, 0.0)])
def test_a_camera_wrong_in_some_frames_is_left_out(n_cams, ambiguous):
    """With 3 cameras a wrong point that lies near its epipolar line in one other camera agrees
    with that one as well as the right pair agree with each other: nothing in the frame tells
    them apart, so up to ``ambiguous`` of the wrong views may stay; with 6, none."""
    group = camera_ring(n_cams, seed=n_cams)
    figure = figure_motion(frames=300, keypoints=10, seed=2)
    clean, _ = project_views(group, figure.points)
    uv, scores = project_views(group, figure.points, noise_px=1.0, corrupt_camera=0, seed=3)
    wrong = np.linalg.norm(uv[0] - clean[0], axis=-1) > 30  # the corrupted frames' points
    assert 0.05 < wrong.any(axis=1).mean() < 0.15

    robust = triangulate(group, uv, scores)
    plain = triangulate(group, uv, scores, robust=False)
    good = ~wrong
    assert mean_error(robust.points, figure.points) < 0.5 * mean_error(plain.points, figure.points)
    error = np.linalg.norm(robust.points - figure.points, axis=-1)
    assert np.median(error[wrong]) < 2 * np.median(error[good])
    assert robust.used[0][wrong].mean() <= ambiguous  # the wrong views are dropped...
    assert robust.used[0][good].mean() > 0.98  # ...and the right ones kept
    assert (robust.views[wrong] == n_cams - 1).all()
    assert np.nanmax(robust.error[wrong]) < 10  # the reprojection error of the views used


def test_missing_and_low_score_views_are_skipped():
    group = camera_ring(3, seed=4)
    figure = figure_motion(frames=4, keypoints=3, seed=0)
    uv, scores = project_views(group, figure.points)
    uv[0, 0] = np.nan  # frame 0: camera 0 missing -> 2 views
    scores[1, 1, :2] = KEYPOINT_SCORE_THRESHOLD / 2  # frame 1, keypoints 0-1: camera 1 too low
    uv[0, 1, 0] = np.nan  # frame 1, keypoint 0: and camera 0 missing -> 1 view -> NaN
    uv[0, 2, 0] += 500  # frame 2, keypoint 0: camera 0 is 500 px off (a wrong detection)
    out = triangulate(group, uv, scores)
    assert (out.views[0] == 2).all() and not out.used[0, 0].any()
    assert out.views[1, 0] == 0 and np.isnan(out.points[1, 0]).all() and np.isnan(out.error[1, 0])
    assert out.views[1, 1] == 2 and out.views[1, 2] == 3
    assert out.views[2, 0] == 2
    ok = np.isfinite(out.points[..., 0])
    assert np.abs(out.points[ok] - figure.points[ok]).max() < 1e-6 * BOX_SIZE


def test_low_score_view_weighs_less():
    group = camera_ring(3, seed=7)
    figure = figure_motion(frames=20, keypoints=5, seed=3)
    uv, scores = project_views(group, figure.points)
    uv[2] += 4.0  # camera 2 is off by 4 px in x and y, and says it is unsure
    scores[2] = 0.35
    weighted = triangulate(group, uv, scores, robust=False)
    equal = triangulate(group, uv, None, robust=False)
    assert mean_error(weighted.points, figure.points) < 0.5 * mean_error(
        equal.points, figure.points
    )


def test_weights_suit_an_error_falling_as_score_to_the_power():
    """2D error of sd 0.3 px * score^-SCORE_POWER (as a trained heatmap model's): weights
    score^SCORE_POWER give a smaller 3D error than weights linear in the score."""
    group = camera_ring(4, seed=5)
    figure = figure_motion(frames=100, keypoints=10, seed=4)
    uv, _ = project_views(group, figure.points)
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.4, 1.0, size=uv.shape[:-1])
    uv = uv + rng.normal(size=uv.shape) * 0.3 * scores[..., None] ** -SCORE_POWER
    default = triangulate(group, uv, scores, robust=False, score_threshold=0.0)
    linear = triangulate(group, uv, scores ** (1 / SCORE_POWER), robust=False, score_threshold=0.0)
    assert mean_error(default.points, figure.points) < 0.97 * mean_error(
        linear.points, figure.points
    )


@settings(max_examples=15, deadline=None)
@given(scale=st.floats(1e-3, 1e3), seed=st.integers(0, 1000))
def test_result_does_not_depend_on_the_world_units(scale, seed):
    """Metres, millimetres or microns: the same points up to the unit (the world is rescaled
    internally, so the DLT stays well conditioned)."""
    group = camera_ring(3, seed=seed)
    figure = figure_motion(frames=10, keypoints=4, seed=seed)
    uv, scores = project_views(group, figure.points, noise_px=1.0, seed=seed)
    scaled = CameraGroup(
        [Camera(c.name, c.size, c.matrix, c.dist, c.rvec, c.tvec * scale) for c in group]
    )
    a = triangulate(group, uv, scores)
    b = triangulate(scaled, uv, scores)
    np.testing.assert_allclose(b.points, a.points * scale, rtol=0, atol=1e-6 * BOX_SIZE * scale)
    np.testing.assert_array_equal(a.views, b.views)


def test_wrong_camera_count_is_an_error():
    group = camera_ring(3)
    with pytest.raises(KeypointerError, match="2 cameras but the calibration has 3"):
        triangulate(group, np.zeros((2, 5, 4, 2)))
    with pytest.raises(KeypointerError, match="scores are"):
        triangulate(group, np.zeros((3, 5, 4, 2)), np.ones((3, 5, 3)))


@pytest.mark.parametrize("n_cams", [2, 3, 6])
def test_residual_noise_recovers_the_2d_noise(n_cams):
    """Gaussian 2D noise of sd 1.5 px (all scores 1): the reprojection residuals, which the
    triangulation shrinks by its 3 degrees of freedom, give back 1.5 px."""
    group = camera_ring(n_cams, seed=n_cams)
    figure = figure_motion(frames=200, keypoints=10, seed=1)
    uv, _ = project_views(group, figure.points)
    uv = uv + np.random.default_rng(0).normal(scale=1.5, size=uv.shape)
    out = triangulate(group, uv, robust=False)
    scene = Scene.of(group)
    xy = np.nan_to_num(group.undistort(uv).reshape(n_cams, -1, 2))
    fw = np.broadcast_to(scene.focal[:, None, :], xy.shape)
    y = (out.points.reshape(-1, 3) - scene.centre) / scene.scale
    r, _ = scene.residuals(y, xy, fw)
    noise = residual_noise(r, out.used.reshape(n_cams, -1))
    assert noise == pytest.approx(1.5, rel=0.1)  # lens distortion: undistorted px are not px
    assert residual_noise(r, np.zeros_like(out.used.reshape(n_cams, -1))) == 0.0


def test_confident_points_are_those_under_their_keypoints_median_error():
    error = np.array([[1.0, 5.0], [2.0, 1.0], [3.0, np.nan], [9.0, 2.0]])
    views = np.array([[3, 3], [3, 2], [3, 0], [1, 3]])
    assert confident(error, views).tolist() == [
        [True, False],
        [True, True],
        [False, False],
        [False, True],
    ]
