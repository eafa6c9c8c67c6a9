"""keypointer.multiview.poses and the 3D helpers around it: Anipose's pose_3d CSV round trip,
2D pose files that are not predictions named with the file and line, smoothing in 3D, and
board pictures only from the board's printed face."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keypointer.errors import DataError
from keypointer.multiview.calibrate import Board
from keypointer.multiview.poses import (
    Poses3D,
    read_pose3d_csv,
    read_poses_2d,
    write_pose3d_csv,
    write_pose3d_h5,
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


@settings(max_examples=20, deadline=None)
@given(
    animals=st.integers(1, 3),
    frames=st.integers(1, 4),
    keypoints=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_multi_animal_csv_round_trip(tmp_path_factory, animals, frames, keypoints, seed):
    rng = np.random.default_rng(seed)
    points = np.round(rng.uniform(-50, 700, (frames, animals, keypoints, 2)), 3)
    scores = np.round(rng.uniform(0, 1, (frames, animals, keypoints)), 3)
    gone = rng.random((frames, animals, keypoints)) < 0.3
    gone[0, :, 0] = False  # every animal has a point somewhere: none is dropped
    points[gone], scores[gone] = np.nan, 0.0
    names = [f"m{a}" for a in range(animals)]
    kps = [f"k{k}" for k in range(keypoints)]
    path = tmp_path_factory.mktemp("p") / "A.csv"
    found = read_poses_2d(write_poses_2d_csv(path, kps, points, scores, individuals=names))
    assert found.individuals == names and found.keypoints == kps
    np.testing.assert_allclose(found.points, points, atol=1e-6)
    np.testing.assert_allclose(found.scores, scores, atol=1e-6)
    np.testing.assert_array_equal(found.frames, np.arange(frames))


def test_reads_deeplabcut_multi_animal_h5(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("tables")
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 1, (4, 2, 3, 3))  # frames, animals, keypoints, (x, y, likelihood)
    columns = pd.MultiIndex.from_tuples(
        [
            ("dlc", a, k, c)
            for a in ("m1", "m2")
            for k in ("a", "b", "c")
            for c in ("x", "y", "likelihood")
        ],
        names=["scorer", "individuals", "bodyparts", "coords"],
    )
    pd.DataFrame(values.reshape(4, -1), columns=columns).to_hdf(tmp_path / "A.h5", key="df")
    found = read_poses_2d(tmp_path / "A.h5")
    assert found.individuals == ["m1", "m2"] and found.keypoints == ["a", "b", "c"]
    np.testing.assert_allclose(found.points, values[..., :2])
    np.testing.assert_allclose(found.scores, values[..., 2])


def test_individuals_never_seen_are_dropped_and_unlike_ones_refused(tmp_path):
    points = np.ones((2, 3, 1, 2))
    points[:, 1] = np.nan
    path = write_poses_2d_csv(
        tmp_path / "A.csv", ["nose"], points, np.ones((2, 3, 1)), individuals=["a", "b", "c"]
    )
    found = read_poses_2d(path)
    assert found.individuals == ["a", "c"] and found.points.shape == (2, 2, 1, 2)
    one = read_poses_2d(
        write_poses_2d_csv(tmp_path / "B.csv", ["nose"], points[:, 0], np.ones((2, 1)))
    )
    assert one.individuals == [""] and one.points.shape == (2, 1, 1, 2)  # single-animal: I = 1
    path.write_text(
        "scorer,s,s,s,s,s,s\nindividuals,a,a,a,b,b,b\nbodyparts,nose,nose,nose,tail,tail,tail\n"
        "coords,x,y,likelihood,x,y,likelihood\n0,1,1,1,1,1,1\n"
    )
    with pytest.raises(DataError, match="individuals 'a' and 'b' have different body parts"):
        read_poses_2d(path)


@pytest.mark.slow  # sleap-io takes ~1-3 s to load the 1,100 frames
def test_reads_a_sleap_predictions_file():
    pytest.importorskip("sleap_io")
    path = Path("/work/shared/data/sleap-samples/hdf5_format_v1/centered_pair_predictions.slp")
    if not path.is_file():
        pytest.skip("the SLEAP sample is not here")
    poses = read_poses_2d(path)
    assert len(poses.keypoints) == 24 and poses.keypoints[:2] == ["head", "neck"]
    # 2 flies, and up to 3 false detections in a few frames: room for the most in a frame
    assert poses.points.shape == (1100, 5, 24, 2) and poses.individuals[-1] == "instance4"
    per_frame = np.isfinite(poses.points[..., 0]).any(-1).sum(-1)
    assert np.bincount(per_frame).argmax() == 2 and per_frame.min() == 2
    np.testing.assert_array_equal(poses.frames, np.arange(1100))
    seen = np.isfinite(poses.points[..., 0])
    assert seen[:, :2].mean() > 0.9 and (poses.scores[~seen] == 0).all()
    assert 0.5 < np.median(poses.scores[seen]) <= 1.5  # SLEAP's point scores, not all 1
    np.testing.assert_allclose(poses.points[0, 0, 0], [201.0, 186.0])  # the file's first point


def test_a_missing_sleap_io_or_a_bad_file_is_a_data_error(tmp_path, monkeypatch):
    bad = tmp_path / "A.slp"
    bad.write_text("not hdf5")
    if importlib.util.find_spec("sleap_io") is not None:
        with pytest.raises(DataError, match="A.slp: not a readable SLEAP file"):
            read_poses_2d(bad)
    monkeypatch.setitem(sys.modules, "sleap_io", None)
    with pytest.raises(DataError, match="needs sleap-io: pip install 'keypointer\\[sleap\\]'"):
        read_poses_2d(bad)


def test_h5_needs_pandas_said_clearly(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    poses = Poses3D(
        ["a"], np.zeros((1, 1, 3)), np.zeros((1, 1)), np.ones((1, 1), int), np.ones((1, 1))
    )
    with pytest.raises(DataError, match="needs pandas and tables"):
        write_pose3d_h5(tmp_path / "p.h5", {"animal0": poses})
    assert not (tmp_path / "p.h5").exists()


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
