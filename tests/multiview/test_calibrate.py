"""keypointer.multiview.calibrate: recovers synthetic cameras from board views (exact without
noise; within 1% of the box and under 0.5 px with 0.2 px of noise), finds a rendered ChArUco
board, refits against a detector's heavy-tailed corner errors, and names what is wrong with bad
input."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import numbered_video

from keypointer.errors import DataError, KeypointerError
from keypointer.multiview.calibrate import (
    MIN_BOARD_VIEWS,
    MIN_CORNERS,
    Board,
    calibrate,
    compose,
    detect_videos,
    levenberg_marquardt,
    refit_tail,
    relative_pose,
    spread_out,
)
from keypointer.multiview.cameras import CameraGroup
from keypointer.multiview.synthetic import BOX_SIZE, board_clip, camera_ring, render_board


def positions_in_truth_frame(found: CameraGroup, truth: CameraGroup) -> np.ndarray:
    """(C, 3) found camera centres in the truth's world: the calibration's world is camera 0's
    frame, X_cam0 = R0 X + t0."""
    return (found.positions - truth[0].tvec) @ truth[0].rotation


@pytest.mark.parametrize("n_cams, frames", [(3, 60), (6, 100)])
def test_recovers_cameras_from_noisy_board_views(n_cams, frames):
    truth = camera_ring(n_cams, seed=n_cams)
    board = Board()
    clip = board_clip(truth, board, frames, noise_px=0.2, seed=1)
    result = calibrate(clip.corners, board, [c.size for c in truth], truth.names)

    error = np.linalg.norm(positions_in_truth_frame(result.group, truth) - truth.positions, axis=1)
    assert error.max() < 0.01 * BOX_SIZE
    seen = np.isfinite(clip.corners[..., 0])
    detections = ((seen.sum(-1) >= MIN_CORNERS) & spread_out(seen, clip.object_points, 40.0)).sum(
        -1
    )
    assert [r.name for r in result.cameras] == truth.names
    for report, n in zip(result.cameras, detections, strict=True):
        # 0.2 px per axis: the mean distance of a good fit is ~0.25 px (0.2 sqrt(pi / 2))
        assert 0.15 < report.error_px < 0.35
        assert report.detections == report.frames_used == n
    assert result.group.metadata == {"adjusted": True, "error": result.error_px}
    for found, cam in zip(result.group, truth, strict=True):
        np.testing.assert_allclose(found.matrix, cam.matrix, rtol=0.01, atol=2.0)


def test_exact_on_noise_free_board_views():
    truth = camera_ring(3, seed=11)
    board = Board()
    clip = board_clip(truth, board, 40, seed=2)
    result = calibrate(clip.corners, board, [c.size for c in truth], truth.names)
    error = np.linalg.norm(positions_in_truth_frame(result.group, truth) - truth.positions, axis=1)
    assert error.max() < 1e-6 * BOX_SIZE
    assert result.error_px < 1e-5
    for found, cam in zip(result.group, truth, strict=True):
        np.testing.assert_allclose(found.matrix, cam.matrix, atol=1e-5)
        np.testing.assert_allclose(found.dist, cam.dist, atol=1e-7)
    # the board's poses too (frame 0 is seen: its pose in camera 0's world)
    seen = np.isfinite(result.board_poses[:, 0])
    assert seen.sum() >= 30


def test_known_intrinsics_are_kept():
    truth = camera_ring(3, seed=12)
    board = Board()
    clip = board_clip(truth, board, 40, noise_px=0.2, seed=3)
    result = calibrate(
        clip.corners,
        board,
        [c.size for c in truth],
        truth.names,
        intrinsics=truth,
        optimise_intrinsics=False,
    )
    for found, cam in zip(result.group, truth, strict=True):
        np.testing.assert_array_equal(found.matrix, cam.matrix)
        np.testing.assert_array_equal(found.dist, cam.dist)
    error = np.linalg.norm(positions_in_truth_frame(result.group, truth) - truth.positions, axis=1)
    assert error.max() < 0.005 * BOX_SIZE


def clip_corners(n_cams: int = 3, frames: int = 80) -> tuple[np.ndarray, CameraGroup]:
    truth = camera_ring(n_cams, seed=21)
    return board_clip(truth, Board(), frames, seed=4).corners, truth


def test_too_few_board_views_names_the_camera():
    corners, truth = clip_corners()
    visible = np.isfinite(corners[1, ..., 0])
    seen = np.flatnonzero(
        (visible.sum(-1) >= MIN_CORNERS) & spread_out(visible, Board().object_points(), 40.0)
    )
    corners[1, seen[MIN_BOARD_VIEWS - 1 :]] = np.nan
    with pytest.raises(
        DataError, match=f"camera B sees the board .* in {MIN_BOARD_VIEWS - 1} frames"
    ):
        calibrate(corners, Board(), [c.size for c in truth], truth.names)


def test_cameras_that_never_see_the_board_together_are_named():
    corners, truth = clip_corners(frames=120)
    half = corners.shape[1] // 2
    corners[2, :half] = np.nan  # C sees the board only in the second half...
    corners[:2, half:] = np.nan  # ...A and B only in the first
    with pytest.raises(DataError, match=r"\{A, B\} \| \{C\}"):
        calibrate(corners, Board(), [c.size for c in truth], truth.names)


def test_different_frame_counts_are_named():
    corners, truth = clip_corners()
    per_camera = [corners[0], corners[1, :-3], corners[2]]
    with pytest.raises(DataError, match="differ in frame count: A 80, B 77, C 80"):
        calibrate(per_camera, Board(), [c.size for c in truth], truth.names)


def test_finds_a_rendered_charuco_board():
    truth = camera_ring(2, seed=1)
    board = Board()
    clip = board_clip(truth, board, 6, close_ups=1.0, seed=5)
    found = 0
    for c in range(2):
        for f in range(6):
            if np.isfinite(clip.corners[c, f, :, 0]).sum() < len(clip.object_points):
                continue  # a close-up of the other camera
            image = render_board(board, truth[c], clip.rvecs[f], clip.tvecs[f])
            detected = board.detect(image)
            ok = np.isfinite(detected[:, 0])
            if ok.sum() < MIN_CORNERS:
                continue
            found += 1
            error = np.linalg.norm(detected[ok] - clip.corners[c, f, ok], axis=1)
            # pixels averaged over their area, as a sensor does: one sample a pixel drew
            # staircase edges and put the corners ~0.25 px off
            assert np.median(error) < 0.12 and error.max() < 1.0
    assert found >= 3


def test_checkerboard_corners_keep_one_order_whatever_the_pose():
    truth = camera_ring(2, seed=1)
    board = Board(squares=(7, 6), marker_length=None)
    clip = board_clip(truth, board, 30, close_ups=1.0, seed=6)
    found = 0
    for c in range(2):
        for f in range(30):
            if not np.isfinite(clip.corners[c, f]).all():
                continue
            detected = board.detect(render_board(board, truth[c], clip.rvecs[f], clip.tvecs[f]))
            if np.isnan(detected).all():
                continue
            found += 1
            # point for point: numbered from the same end as the board's object points
            assert np.median(np.linalg.norm(detected - clip.corners[c, f], axis=1)) < 1.0
            # and numbered from the other end, the check says so
            grey = render_board(board, truth[c], clip.rvecs[f], clip.tvecs[f])
            assert board.black_corner_first(grey, detected)
            assert not board.black_corner_first(grey, detected[::-1])
    assert found >= 4
    assert np.isnan(board.detect(np.full((480, 640), 255, np.uint8))).all()


def test_symmetric_checkerboard_is_refused():
    with pytest.raises(KeypointerError, match="7x5 checkerboard looks the same turned"):
        Board(squares=(7, 5), marker_length=None)


def test_videos_of_different_lengths_are_refused(tmp_path):
    a = numbered_video(tmp_path / "A.mp4", frames=5)
    b = numbered_video(tmp_path / "B.mp4", frames=4)
    with pytest.raises(DataError, match="differ in length: A.mp4 5 frames .*, B.mp4 4 frames"):
        detect_videos([a, b], Board())
    c = numbered_video(tmp_path / "C.mp4", frames=5, fps=25.0)
    with pytest.raises(DataError, match="differ in frame rate"):
        detect_videos([a, c], Board())


def test_board_videos_give_corners_per_camera_and_frame(tmp_path):
    out = detect_videos(
        [
            numbered_video(tmp_path / "A.mp4", frames=4),
            numbered_video(tmp_path / "B.mp4", frames=4),
        ],
        Board(),
        every=2,
    )
    assert out.corners.shape == (2, 2, 24, 2) and np.isnan(out.corners).all()  # no board in them
    assert out.names == ["A", "B"] and out.sizes == [(64, 48), (64, 48)] and out.fps == 10.0


def test_relative_pose_ignores_flipped_board_poses():
    rng = np.random.default_rng(0)
    true = np.concatenate([rng.normal(scale=0.5, size=3), rng.normal(scale=300, size=3)])
    poses = np.zeros((2, 20, 6))
    poses[0] = np.column_stack([rng.normal(scale=0.4, size=(20, 3)), rng.normal(size=(20, 3))])
    poses[1] = [compose(true, p) for p in poses[0]]
    poses[1, [3, 7, 11], :3] = rng.normal(scale=2.0, size=(3, 3))  # three bad poses
    poses[1, [3, 7, 11], 3:] += 500
    found = relative_pose(poses, 0, 1, np.ones(20, dtype=bool))
    np.testing.assert_allclose(found, true, atol=1e-9)


def test_corners_on_one_line_are_no_detection():
    board = Board()  # 6 x 4 inner corners
    obj = board.object_points()
    row = np.zeros(24, dtype=bool)
    row[6:12] = True  # one whole row: 6 corners, collinear
    diagonal = np.zeros(24, dtype=bool)
    diagonal[[0, 7, 14, 21]] = True
    two_rows = np.zeros(24, dtype=bool)
    two_rows[6:9] = two_rows[12:15] = True
    found = spread_out(np.stack([row, diagonal, two_rows]), obj, board.square_length)
    assert found.tolist() == [False, False, True]


def mean_problem(errors: np.ndarray):
    """A least-squares problem each (N, 2) residual of which depends on x[0] (its x) and
    x[1] (its y): x - observed, observed = (0, 0) + ``errors``; the answer is (0, 0)."""
    cols = np.tile([0, 1], (len(errors), 1))
    return (lambda x: x[None, :] - errors), cols


def test_refit_tail_follows_the_bulk_of_heavy_tailed_corners():
    rng = np.random.default_rng(0)
    errors = rng.normal(scale=0.05, size=(400, 2))
    errors[:60] += [0.8, 0.0]  # 15% of the corners 0.8 px off, one way: a tail
    residuals, cols = mean_problem(errors)
    first = levenberg_marquardt(residuals, np.ones(2), cols)  # Huber at 1 px: least squares
    assert abs(first[0]) > 0.1
    refit = refit_tail(residuals, first, cols)
    assert abs(refit[0]) < 0.25 * abs(first[0]) and abs(refit[1]) < 0.02


def test_refit_tail_keeps_a_gaussian_fit():
    errors = np.random.default_rng(1).normal(scale=0.2, size=(400, 2))
    residuals, cols = mean_problem(errors)
    first = levenberg_marquardt(residuals, np.ones(2), cols)
    np.testing.assert_allclose(first, errors.mean(axis=0), atol=1e-6)
    assert refit_tail(residuals, first, cols) is first
