"""``keypointer triangulate``: exact on the synthetic scene's true 2D keypoints, robust to a
camera that is wrong in some frames, smoother with --smooth; reads predict's / DeepLabCut's
CSV and .h5; matches files to cameras by name; refuses what it cannot do, with exit 2."""

from __future__ import annotations

import csv
import sys

import cv2
import numpy as np
import pytest
from helpers import cli, cli_captured

from keypointer.multiview.cameras import write_calibration
from keypointer.multiview.poses import (
    Poses3D,
    read_pose3d_csv,
    write_pose3d_csv,
    write_poses_2d_csv,
)
from keypointer.multiview.synthetic import (
    camera_ring,
    figure_motion,
    figures_motion,
    project_views,
    shuffled_views,
)

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


def triangulate(capsys, *args):
    """``keypointer triangulate ARGS`` in-process, without the pictures (2 s each; one test
    checks them) unless ARGS ask for them."""
    pictures = any(str(a).endswith("pictures") for a in args)
    return cli_captured(capsys, "triangulate", *args, *([] if pictures else ["--no-pictures"]))


def error_3d(path, truth) -> np.ndarray:
    """(F, K) distance (mm) of the written 3D points from the truth."""
    return np.linalg.norm(read_pose3d_csv(path).points - truth, axis=-1)


@pytest.mark.slow
def test_exact_on_the_synthetic_scene(tmp_path, capsys):
    scene = tmp_path / "scene"
    assert cli("synth", scene, "--cameras", 3, "--frames", 30) == 0
    out = tmp_path / "points3d.csv"
    files = sorted((scene / "truth2d").glob("*.csv"))
    args = (scene / "calibration.toml", *files, "--out", out, "--pictures", "--videos", scene)
    result = triangulate(capsys, *args)
    assert result.code == 0, result.err
    found, truth = read_pose3d_csv(out), read_pose3d_csv(scene / "truth3d.csv")
    assert found.keypoints == truth.keypoints
    np.testing.assert_allclose(found.points, truth.points, atol=1e-3)  # CSVs keep 6 decimals
    np.testing.assert_array_equal(found.ncams, truth.ncams)
    assert np.nanmax(found.error) < 1e-3 and "all keypoints: median reprojection error 0.00 px" in (
        result.out
    )
    # the pictures, and each camera's video (found in the folder by name) with reprojections
    drawn = [tmp_path / f"points3d.{p}" for p in ("3d.png", "quality.png")]
    drawn += [tmp_path / f"points3d.{c}.reprojection.mp4" for c in "ABC"]
    for path in drawn:
        assert path.stat().st_size > 1000 and f"wrote {path}" in result.out.replace("\n", "")
    capture = cv2.VideoCapture(str(drawn[-1]))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
    capture.release()
    # written files are never replaced without --overwrite; a wrong count of videos is refused
    before = {p: p.stat().st_mtime_ns for p in drawn}
    again = triangulate(capsys, *args)
    assert again.code == 2 and "--overwrite" in again.err
    assert {p: p.stat().st_mtime_ns for p in drawn} == before
    wrong = triangulate(capsys, *args[:-1], scene / "A.mp4", "--overwrite")
    assert wrong.code == 2 and "--videos gives 1 videos for 3 2D files" in wrong.err


def test_writes_anipose_pose_3d_columns(tmp_path, capsys):
    calibration, files, truth, _, scores = write_views(tmp_path, frames=10)
    out = tmp_path / "out" / "points3d.csv"
    assert triangulate(capsys, calibration, *files, "--out", out).code == 0
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
    assert triangulate(capsys, calibration, *files, "--out", out).code == 0
    error = error_3d(out, truth)
    # the wrong camera's frames are as good as the others: its views were left out
    assert np.median(error[wrong]) < 1.5 * np.median(error[~wrong])
    assert (read_pose3d_csv(out).ncams[wrong] == 3).mean() > 0.95


def test_smoothing_in_3d_lowers_the_error(tmp_path, capsys):
    calibration, files, truth, _, _ = write_views(tmp_path, frames=300, noise_px=2.0)
    raw, smooth = tmp_path / "raw.csv", tmp_path / "smooth.csv"
    assert triangulate(capsys, calibration, *files, "--out", raw).code == 0
    for method in ("savgol", "kalman"):
        options = ("--out", smooth, "--smooth", method, "--overwrite")
        assert triangulate(capsys, calibration, *files, *options).code == 0
        assert np.nanmean(error_3d(smooth, truth)) < 0.8 * np.nanmean(error_3d(raw, truth))


def test_limbs_from_reference_poses_lower_the_error(tmp_path, capsys):
    calibration, files, truth, _, _ = write_views(tmp_path, frames=60, noise_px=2.0)
    # the reference: later frames of the same figure (its rigid limbs keep their lengths)
    later = figure_motion(200, len(KEYPOINTS), seed=0).points[60:]
    reference = Poses3D(KEYPOINTS, later, *[np.zeros(later.shape[:2])] * 3)
    limbs = write_pose3d_csv(tmp_path / "labels3d.csv", reference)
    raw, prior = tmp_path / "raw.csv", tmp_path / "limbs.csv"
    assert triangulate(capsys, calibration, *files, "--out", raw).code == 0
    result = triangulate(capsys, calibration, *files, "--out", prior, "--limbs", limbs)
    assert result.code == 0, result.err
    assert "limb prior: " in result.out and f"pairs from {limbs}" in result.out.replace("\n", "")
    assert np.nanmean(error_3d(prior, truth)) < 0.98 * np.nanmean(error_3d(raw, truth))
    # a reference sharing no keypoint names is refused, naming it; nothing is written
    other = Poses3D(["a", "b"], later[:, :2], *[np.zeros((len(later), 2))] * 3)
    write_pose3d_csv(tmp_path / "other.csv", other)
    refused = tmp_path / "refused.csv"
    bad = triangulate(
        capsys, calibration, *files, "--out", refused, "--limbs", tmp_path / "other.csv"
    )
    assert bad.code == 2 and "other.csv" in bad.err and "shares 0 keypoint" in bad.err
    assert not refused.exists()


def test_score_is_the_least_of_the_views_used(tmp_path, capsys):
    calibration, files, _, _, scores = write_views(tmp_path, frames=20, noise_px=0.5)
    out = tmp_path / "points3d.csv"
    assert triangulate(capsys, calibration, *files, "--out", out).code == 0
    found = read_pose3d_csv(out)
    every_view = (found.ncams == 3) & np.isfinite(found.score)
    np.testing.assert_allclose(found.score[every_view], scores.min(axis=0)[every_view], atol=1e-6)


def test_files_are_matched_to_cameras_by_name(tmp_path, capsys):
    stems = ["day1-camA", "BDLC_resnet50_shuffle1", "day1_cameraC"]
    calibration, files, truth, _, _ = write_views(tmp_path, frames=10, stems=stems)
    out = tmp_path / "points3d.csv"
    # any order: each file names its camera
    result = triangulate(capsys, calibration, *files[::-1], "--out", out)
    assert result.code == 0, result.err
    assert f"camera B: {files[1]}" in result.out
    np.testing.assert_allclose(error_3d(out, truth), 0, atol=1e-3)
    renamed = files[0].rename(tmp_path / "left.csv")
    out.unlink()
    result = triangulate(capsys, calibration, renamed, *files[1:], "--out", out)
    assert result.code == 2 and "left.csv names no camera of the calibration (A, B, C)" in (
        result.err
    )
    options = ("--out", out, "--names", "A,B,C")
    result = triangulate(capsys, calibration, renamed, *files[1:], *options)
    assert result.code == 0, result.err
    options = ("--out", tmp_path / "other.csv", "--names", "A,D")
    result = triangulate(capsys, calibration, renamed, files[1], *options)
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
    result = triangulate(capsys, calibration, files[0], h5, files[2], "--out", out)
    assert result.code == 0, result.err
    found = read_pose3d_csv(out)
    np.testing.assert_array_equal(found.ncams[2], 2)  # frame 2: camera A has no points
    np.testing.assert_allclose(error_3d(out, truth), 0, atol=1e-3)


def write_animals(folder, frames=30, seed=0):
    """calibration.toml and one multi-animal DeepLabCut CSV per camera of 2 figures seen by 3
    cameras, the animals in a random order in each camera and frame, each camera naming them
    its own way; figure 1 unseen by camera A in frames 10-19, and camera C with a third,
    spurious animal in frames 0-4. Returns (calibration, files, truth (F, 2, K, 3), pixels
    (C, F, 2, K, 2), scores (C, F, 2, K))."""
    group = camera_ring(3, seed=seed)
    figures = figures_motion(2, frames, len(KEYPOINTS), seed=seed)
    uv, scores, which = shuffled_views(group, figures, noise_px=0.5, seed=seed)
    gone = which[0] == 1
    gone[:10] = gone[20:] = False
    uv[0][gone], scores[0][gone] = np.nan, 0.0
    calibration = write_calibration(group, folder / "calibration.toml")
    files = []
    for c, name in enumerate(group.names):
        xy, sc = uv[c], scores[c]
        if name == "C":
            ghost = np.full((frames, 1, len(KEYPOINTS), 2), np.nan)
            ghost[:5] = np.random.default_rng(seed).uniform(0, 400, (5, 1, len(KEYPOINTS), 2))
            xy = np.concatenate([xy, ghost], axis=1)
            sc = np.concatenate([sc, np.isfinite(ghost[..., 0]) * 0.9], axis=1)
        animals = [f"{name}{i}" for i in range(xy.shape[1])]
        files.append(write_poses_2d_csv(folder / f"{name}.csv", KEYPOINTS, xy, sc, "s", animals))
    return calibration, files, np.stack([f.points for f in figures], axis=1), uv, scores


def animals_error(paths, truth) -> np.ndarray:
    """(A, F, K) distance of each written animal from the figure it is nearest in frame 0."""
    errors = []
    for path in paths:
        points = read_pose3d_csv(path).points
        figure = np.argmin(np.nanmean(np.linalg.norm(points[0] - truth[0], axis=-1), axis=-1))
        errors.append(np.linalg.norm(points - truth[:, figure], axis=-1))
    return np.stack(errors)


def test_several_animals_are_matched_tracked_and_written_one_csv_each(tmp_path, capsys):
    calibration, files, truth, _, _ = write_animals(tmp_path)
    out = tmp_path / "out" / "points3d.csv"
    result = triangulate(capsys, calibration, *files, "--out", out, "--animals", 2)
    assert result.code == 0, result.err
    paths = [tmp_path / "out" / f"points3d_animal{a}.csv" for a in range(2)]
    assert sorted((tmp_path / "out").iterdir()) == paths and not out.exists()
    for a, path in enumerate(paths):
        assert f"wrote {path} (animal{a}, 30 frames, 8 keypoints)" in result.out
    error = animals_error(paths, truth)
    # both animals, each the same figure in every frame: no identity switch
    assert np.isfinite(error).all() and error.max() < 10 and np.median(error) < 2
    ncams = np.stack([read_pose3d_csv(p).ncams for p in paths])
    # the animal camera A lost in frames 10-19 was made from the 2 other views
    assert sorted(ncams[:, 10:20].max(axis=(1, 2)).tolist()) == [2, 3]
    assert (ncams[:, :10] == 3).all()


def test_several_animals_in_h5_as_movement_reads_it(tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("tables")
    calibration, files, truth, _, _ = write_animals(tmp_path, frames=6)
    out = tmp_path / "p.csv"
    result = triangulate(capsys, calibration, *files, "--out", out, "--h5")
    assert result.code == 0, result.err
    assert f"wrote {tmp_path / 'p.h5'} (3 animals, 6 frames, 8 keypoints)" in result.out
    frame = pd.read_hdf(tmp_path / "p.h5", key="df_with_missing")
    assert list(frame.columns.names) == ["scorer", "individuals", "bodyparts", "coords"]
    assert frame.columns.get_level_values("individuals").unique().tolist() == [
        "animal0",
        "animal1",
        "animal2",  # camera C's 3 individuals: room for 3 animals, the third never seen
    ]
    assert frame.columns.get_level_values("coords").unique().tolist() == [
        "x",
        "y",
        "z",
        "likelihood",
    ]
    # as movement reads it: (frames, individuals, keypoints, coords), likelihood = confidence
    values = frame.to_numpy().reshape(6, 3, len(KEYPOINTS), 4)
    for a in range(3):
        csv_poses = read_pose3d_csv(tmp_path / f"p_animal{a}.csv")
        np.testing.assert_allclose(values[:, a, :, :3], csv_poses.points, atol=1e-5)
        np.testing.assert_allclose(values[:, a, :, 3], csv_poses.score, atol=1e-5)
    assert np.isnan(values[:, 2]).all()


def test_a_failed_write_leaves_no_file(tmp_path, capsys, monkeypatch):
    calibration, files, _, _, _ = write_animals(tmp_path, frames=6)
    monkeypatch.setitem(sys.modules, "pandas", None)  # the .h5, written last, fails
    out = tmp_path / "new" / "p.csv"
    result = triangulate(capsys, calibration, *files, "--out", out, "--h5")
    assert result.code == 2 and "writing .h5 needs pandas and tables" in result.err
    assert not out.parent.exists()


def test_sleap_files_in(tmp_path, capsys):
    sio = pytest.importorskip("sleap_io")
    calibration, files, truth, uv, scores = write_animals(tmp_path, frames=6)
    skeleton = sio.Skeleton(list(KEYPOINTS))  # sleap-io turns the list into Nodes in place
    video = sio.Video("B.mp4", open_backend=False)
    frames = [
        sio.LabeledFrame(
            video,
            f,
            [
                sio.PredictedInstance.from_numpy(
                    uv[1, f, i], skeleton, point_scores=scores[1, f, i]
                )
                for i in range(2)
            ],
        )
        for f in range(5)
    ]
    slp = tmp_path / "B.predictions.slp"
    sio.save_slp(sio.Labels(frames, videos=[video], skeletons=[skeleton]), str(slp), verbose=False)
    out = tmp_path / "p.csv"
    inputs = (files[0], slp, files[2])
    result = triangulate(capsys, calibration, *inputs, "--out", out, "--animals", 2)
    assert result.code == 0, result.err
    assert f"camera B: {slp}" in result.out
    error = animals_error([tmp_path / f"p_animal{a}.csv" for a in range(2)], truth)
    assert np.isfinite(error).all() and error.max() < 10


def test_unique_body_parts_are_left_out_and_said(tmp_path, capsys):
    calibration, files, truth, uv, scores = write_views(tmp_path, frames=3)
    # camera A from DeepLabCut's multi-animal project: one animal, and a unique body part
    cols = [("mouse1", k, c) for k in KEYPOINTS for c in ("x", "y", "likelihood")]
    cols += [("single", "corner", c) for c in ("x", "y", "likelihood")]
    with open(files[0], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["scorer"] + ["s"] * len(cols))
        for level, name in enumerate(["individuals", "bodyparts", "coords"]):
            writer.writerow([name] + [c[level] for c in cols])
        for i in range(3):
            values = np.concatenate([uv[0, i], scores[0, i, :, None]], axis=1).ravel()
            writer.writerow([i] + list(values) + [5.0, 5.0, 1.0])
    out = tmp_path / "points3d.csv"
    result = triangulate(capsys, calibration, *files, "--out", out)
    assert result.code == 0, result.err
    assert "left out DeepLabCut's unique body parts (no animal's): corner" in result.out
    np.testing.assert_allclose(error_3d(out, truth), 0, atol=1e-3)


def test_bad_input_is_named_and_nothing_is_written(tmp_path, capsys):
    calibration, files, _, uv, scores = write_views(tmp_path, frames=3)
    out = tmp_path / "new" / "points3d.csv"
    write_poses_2d_csv(files[2], KEYPOINTS[:-1], uv[2, :, :-1], scores[2, :, :-1])
    result = triangulate(capsys, calibration, *files, "--out", out)
    assert result.code == 2 and f"{files[2]}: its keypoints differ" in result.err
    assert "missing kp7" in result.err
    result = triangulate(capsys, calibration, files[0], "--out", out)
    assert result.code == 2 and "needs 2 cameras' files or more" in result.err
    result = triangulate(capsys, calibration, *files[:2], "--out", out, "--smooth", "mean")
    assert result.code == 2 and "--smooth must be one of savgol, median, kalman" in result.err
    result = triangulate(capsys, calibration, *files[:2], "--out", calibration, "--overwrite")
    assert result.code == 2 and "refusing to overwrite an input file" in result.err
    assert not out.parent.exists()
    existing = tmp_path / "mine.csv"
    existing.write_text("mine")
    result = triangulate(capsys, calibration, *files[:2], "--out", existing)
    assert result.code == 2 and "pass --overwrite" in result.err and existing.read_text() == "mine"
