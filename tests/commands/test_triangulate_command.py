"""``keypointer triangulate``: exact on the synthetic scene's true 2D keypoints, robust to a
camera that is wrong in some frames, smoother with --smooth; reads predict's / DeepLabCut's
CSV and .h5; matches files to cameras by name; refuses what it cannot do, with exit 2."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from helpers import cli, cli_captured

from keypointer.multiview.cameras import write_calibration
from keypointer.multiview.poses import read_pose3d_csv, write_poses_2d_csv
from keypointer.multiview.synthetic import camera_ring, figure_motion, project_views

KEYPOINTS = [f"kp{k}" for k in range(8)]


def write_views(folder, n_cams=3, frames=120, seed=0, stems=None, **noise):
    """calibration.toml and one DeepLabCut CSV per camera of a figure seen by ``n_cams``
    cameras (``noise``: :func:`project_views`' options); returns (calibration, files, truth
    (F, K, 3), pixels (C, F, K, 2), scores (C, F, K))."""
    group = camera_ring(n_cams, seed=seed)
    figure = figure_motion(frames, len(KEYPOINTS), seed=seed)
    uv, scores = project_views(group, figure.points, seed=seed, **noise)
    calibration = write_calibration(group, folder / "calibration.toml")
    stems = stems or group.names
    files = [
        write_poses_2d_csv(folder / f"{stem}.csv", KEYPOINTS, uv[c], scores[c])
        for c, stem in enumerate(stems)
    ]
    return calibration, files, figure.points, uv, scores


def error_3d(path, truth) -> np.ndarray:
    """(F, K) distance (mm) of the written 3D points from the truth."""
    return np.linalg.norm(read_pose3d_csv(path).points - truth, axis=-1)


@pytest.mark.slow
def test_exact_on_the_synthetic_scene(tmp_path, capsys):
    scene = tmp_path / "scene"
    assert cli("synth", scene, "--cameras", 3, "--frames", 30) == 0
    out = tmp_path / "points3d.csv"
    files = sorted((scene / "truth2d").glob("*.csv"))
    result = cli_captured(capsys, "triangulate", scene / "calibration.toml", *files, "--out", out)
    assert result.code == 0, result.err
    found, truth = read_pose3d_csv(out), read_pose3d_csv(scene / "truth3d.csv")
    assert found.keypoints == truth.keypoints
    np.testing.assert_allclose(found.points, truth.points, atol=1e-3)  # CSVs keep 6 decimals
    np.testing.assert_array_equal(found.ncams, truth.ncams)
    assert np.nanmax(found.error) < 1e-3 and "all keypoints: median reprojection error 0.00 px" in (
        result.out
    )


def test_writes_anipose_pose_3d_columns(tmp_path, capsys):
    calibration, files, truth, _, scores = write_views(tmp_path, frames=10)
    out = tmp_path / "out" / "points3d.csv"
    assert cli_captured(capsys, "triangulate", calibration, *files, "--out", out).code == 0
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    per_kp = [f"{k}_{p}" for k in KEYPOINTS for p in ("x", "y", "z", "error", "ncams", "score")]
    tail = [f"M_{i}{j}" for i in range(3) for j in range(3)] + ["center_0", "center_1", "center_2"]
    assert rows[0] == per_kp + tail + ["fnum"]
    assert [r[-1] for r in rows[1:]] == [str(i) for i in range(10)]
    assert [float(v) for v in rows[1][-13:-4]] == np.eye(3).ravel().tolist()
    np.testing.assert_allclose(error_3d(out, truth), 0, atol=1e-3)


def test_a_camera_wrong_in_some_frames_is_left_out(tmp_path, capsys):
    calibration, files, truth, uv, _ = write_views(
        tmp_path, n_cams=4, frames=300, noise_px=1.0, corrupt_camera=1, corrupt_share=0.1
    )
    clean, _ = project_views(camera_ring(4, seed=0), truth)
    wrong = np.linalg.norm(uv[1] - clean[1], axis=-1).min(axis=1) > 30  # (F,) corrupted frames
    assert 20 < wrong.sum() < 45
    out = tmp_path / "points3d.csv"
    assert cli_captured(capsys, "triangulate", calibration, *files, "--out", out).code == 0
    error = error_3d(out, truth)
    # the wrong camera's frames are as good as the others: its views were left out
    assert np.median(error[wrong]) < 1.5 * np.median(error[~wrong])
    assert (read_pose3d_csv(out).ncams[wrong] == 3).mean() > 0.95


def test_smoothing_in_3d_lowers_the_error(tmp_path, capsys):
    calibration, files, truth, _, _ = write_views(tmp_path, frames=300, noise_px=2.0)
    raw, smooth = tmp_path / "raw.csv", tmp_path / "smooth.csv"
    assert cli_captured(capsys, "triangulate", calibration, *files, "--out", raw).code == 0
    for method in ("savgol", "kalman"):
        options = ("--out", smooth, "--smooth", method, "--overwrite")
        assert cli_captured(capsys, "triangulate", calibration, *files, *options).code == 0
        assert np.nanmean(error_3d(smooth, truth)) < 0.8 * np.nanmean(error_3d(raw, truth))


def test_score_is_the_least_of_the_views_used(tmp_path, capsys):
    calibration, files, _, _, scores = write_views(tmp_path, frames=20, noise_px=0.5)
    out = tmp_path / "points3d.csv"
    assert cli_captured(capsys, "triangulate", calibration, *files, "--out", out).code == 0
    found = read_pose3d_csv(out)
    every_view = (found.ncams == 3) & np.isfinite(found.score)
    np.testing.assert_allclose(found.score[every_view], scores.min(axis=0)[every_view], atol=1e-6)


def test_files_are_matched_to_cameras_by_name(tmp_path, capsys):
    stems = ["day1-camA", "BDLC_resnet50_shuffle1", "day1_cameraC"]
    calibration, files, truth, _, _ = write_views(tmp_path, frames=10, stems=stems)
    out = tmp_path / "points3d.csv"
    # any order: each file names its camera
    result = cli_captured(capsys, "triangulate", calibration, *files[::-1], "--out", out)
    assert result.code == 0, result.err
    assert f"camera B: {files[1]}" in result.out
    np.testing.assert_allclose(error_3d(out, truth), 0, atol=1e-3)
    renamed = files[0].rename(tmp_path / "left.csv")
    out.unlink()
    result = cli_captured(capsys, "triangulate", calibration, renamed, *files[1:], "--out", out)
    assert result.code == 2 and "left.csv names no camera of the calibration (A, B, C)" in (
        result.err
    )
    options = ("--out", out, "--names", "A,B,C")
    result = cli_captured(capsys, "triangulate", calibration, renamed, *files[1:], *options)
    assert result.code == 0, result.err
    options = ("--out", tmp_path / "other.csv", "--names", "A,D")
    result = cli_captured(capsys, "triangulate", calibration, renamed, files[1], *options)
    assert result.code == 2 and "no camera 'D' in the calibration" in result.err


def test_reads_predict_multi_animal_layout_and_h5(tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("tables")
    calibration, files, truth, uv, scores = write_views(tmp_path, frames=6)
    # camera A as predict writes a tracked video: an individuals row, a frame spelled NaN
    cols = [("keypointer", "track0", k, c) for k in KEYPOINTS for c in ("x", "y", "likelihood")]
    with open(files[0], "w", newline="") as f:
        writer = csv.writer(f)
        for level, name in enumerate(["scorer", "individuals", "bodyparts", "coords"]):
            writer.writerow([name] + [c[level] for c in cols])
        for i in range(6):
            values = np.concatenate([uv[0, i], scores[0, i, :, None]], axis=1).ravel()
            writer.writerow([i] + (["NaN"] * len(values) if i == 2 else list(values)))
    # camera B as DeepLabCut's .h5
    frame = pd.DataFrame(
        np.concatenate([uv[1], scores[1][..., None]], axis=-1).reshape(6, -1),
        columns=pd.MultiIndex.from_tuples(
            [("dlc", k, c) for k in KEYPOINTS for c in ("x", "y", "likelihood")],
            names=["scorer", "bodyparts", "coords"],
        ),
    )
    h5 = tmp_path / "B.h5"
    frame.to_hdf(h5, key="df_with_missing", mode="w")
    out = tmp_path / "points3d.csv"
    result = cli_captured(capsys, "triangulate", calibration, files[0], h5, files[2], "--out", out)
    assert result.code == 0, result.err
    found = read_pose3d_csv(out)
    np.testing.assert_array_equal(found.ncams[2], 2)  # frame 2: camera A has no points
    np.testing.assert_allclose(error_3d(out, truth), 0, atol=1e-3)


def test_several_animals_are_refused_clearly(tmp_path, capsys):
    calibration, files, _, _, _ = write_views(tmp_path, frames=3)
    cols = [
        (f"mouse{m}", k, c) for m in (1, 2) for k in KEYPOINTS for c in ("x", "y", "likelihood")
    ]
    with open(files[0], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["scorer"] + ["s"] * len(cols))
        for level, name in enumerate(["individuals", "bodyparts", "coords"]):
            writer.writerow([name] + [c[level] for c in cols])
        for i in range(3):
            writer.writerow([i] + ["1.0"] * len(cols))
    out = tmp_path / "points3d.csv"
    result = cli_captured(capsys, "triangulate", calibration, *files, "--out", out)
    assert result.code == 2 and not out.exists()
    assert f"{files[0]}: holds several animals (mouse1, mouse2)" in result.err
    assert "not supported yet" in result.err


def test_bad_input_is_named_and_nothing_is_written(tmp_path, capsys):
    calibration, files, _, uv, scores = write_views(tmp_path, frames=3)
    out = tmp_path / "new" / "points3d.csv"
    write_poses_2d_csv(files[2], KEYPOINTS[:-1], uv[2, :, :-1], scores[2, :, :-1])
    result = cli_captured(capsys, "triangulate", calibration, *files, "--out", out)
    assert result.code == 2 and f"{files[2]}: its keypoints differ" in result.err
    assert "missing kp7" in result.err
    result = cli_captured(capsys, "triangulate", calibration, files[0], "--out", out)
    assert result.code == 2 and "needs 2 cameras' files or more" in result.err
    result = cli_captured(
        capsys, "triangulate", calibration, *files[:2], "--out", out, "--smooth", "mean"
    )
    assert result.code == 2 and "--smooth must be one of savgol, median, kalman" in result.err
    result = cli_captured(
        capsys, "triangulate", calibration, *files[:2], "--out", calibration, "--overwrite"
    )
    assert result.code == 2 and "refusing to overwrite an input file" in result.err
    assert not out.parent.exists()
    existing = tmp_path / "mine.csv"
    existing.write_text("mine")
    result = cli_captured(capsys, "triangulate", calibration, *files[:2], "--out", existing)
    assert result.code == 2 and "pass --overwrite" in result.err and existing.read_text() == "mine"
