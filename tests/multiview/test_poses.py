"""keypointer.multiview.poses and the 3D helpers around it: Anipose's pose_3d CSV round trip,
2D pose files that are not predictions named with the file and line, smoothing in 3D, and
board pictures only from the board's printed face."""

from __future__ import annotations

import numpy as np
import pytest

from keypointer.errors import DataError
from keypointer.multiview.calibrate import Board
from keypointer.multiview.poses import (
    Poses3D,
    read_pose3d_csv,
    read_poses_2d,
    write_pose3d_csv,
    write_poses_2d_csv,
)
from keypointer.multiview.synthetic import board_clip, camera_ring, distortion_maps, render_board
from keypointer.multiview.triangulate import smooth_points
from keypointer.temporal.smooth import smooth


def test_pose3d_csv_round_trip_keeps_values_and_gaps(tmp_path):
    rng = np.random.default_rng(0)
    points = rng.normal(scale=100, size=(5, 2, 3))
    points[1, 0] = np.nan
    ncams = np.array([[3, 2]] * 5)
    ncams[1, 0] = 0
    error = np.where(ncams >= 2, rng.uniform(0, 2, (5, 2)), np.nan)
    score = np.where(ncams >= 2, rng.uniform(0, 1, (5, 2)), np.nan)
    poses = Poses3D(["nose", "tail"], points, error, ncams, score)
    found = read_pose3d_csv(write_pose3d_csv(tmp_path / "p.csv", poses))
    assert found.keypoints == ["nose", "tail"]
    np.testing.assert_allclose(found.points, points, atol=1e-6)
    np.testing.assert_allclose(found.error, error, atol=1e-6)
    np.testing.assert_array_equal(found.ncams, ncams)
    assert (tmp_path / "p.csv").read_text().splitlines()[2].startswith(",,,,,")  # NaN: empty


def test_labels_without_likelihood_are_not_predictions(tmp_path):
    path = tmp_path / "CollectedData_me.csv"
    path.write_text("scorer,me,me\nbodyparts,nose,nose\ncoords,x,y\nimg0.png,1,2\n")
    with pytest.raises(DataError, match="'nose' needs x, y and likelihood columns"):
        read_poses_2d(path)
    path.write_text("frame,x,y\n0,1,2\n")
    with pytest.raises(DataError, match="header rows scorer, \\[individuals,\\] bodyparts"):
        read_poses_2d(path)
    other = tmp_path / "poses.txt"
    other.write_text("x")
    with pytest.raises(DataError, match="not a 2D pose file"):
        read_poses_2d(other)


def test_a_bad_cell_names_the_line(tmp_path):
    path = write_poses_2d_csv(tmp_path / "A.csv", ["nose"], np.ones((3, 1, 2)), np.ones((3, 1)))
    lines = path.read_text().splitlines()
    lines[4] = "1,1.0,oops,1.0"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"A.csv \(line 5\): a cell is not a number"):
        read_poses_2d(path)


def test_smoothing_in_3d_is_the_2d_smoother_per_coordinate():
    rng = np.random.default_rng(1)
    times = np.arange(200) / 30.0
    truth = 100 * np.sin(2 * np.pi * 0.5 * times)[:, None, None] * rng.uniform(0.5, 1, (1, 3, 3))
    noisy = truth + rng.normal(scale=2.0, size=truth.shape)
    scores = np.ones((200, 3))
    out = smooth_points(noisy, scores, times, "savgol")
    np.testing.assert_allclose(out[..., :2], smooth(noisy[..., :2], scores, times, "savgol"))
    assert np.abs(out - truth).mean() < 0.6 * np.abs(noisy - truth).mean()


def test_a_board_is_drawn_only_from_its_printed_face():
    group = camera_ring(2, seed=1)
    board = Board(squares=(7, 6), marker_length=None)
    clip = board_clip(group, board, 60, seed=2)
    seen = np.isfinite(clip.corners[..., 0]).any(-1)  # (C, F): the face towards the camera
    for c in range(2):
        maps = distortion_maps(group[c])
        for f in range(60):
            image = render_board(board, group[c], clip.rvecs[f], clip.tvecs[f], maps=maps)
            if not seen[c, f]:
                assert (image == 255).all()
    assert (~seen).sum() > 5
