"""``keypointer calibrate`` and ``keypointer synth --cameras``: the synthetic scene's board
clips calibrate back to the true cameras (within 1% of the box, under 0.5 px); bad input ends
with one message naming the file or option, exit 2, and nothing written."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers import cli, cli_captured, numbered_video

from keypointer.multiview.calibrate import Board
from keypointer.multiview.cameras import read_calibration
from keypointer.multiview.poses import read_pose3d_csv, read_poses_2d
from keypointer.multiview.synthetic import (
    BOX_SIZE,
    board_clip,
    camera_ring,
    distortion_maps,
    figure_motion,
    project_views,
    render_board,
    write_video,
)

BOARD_OPTIONS = ("--squares", "7x5", "--square-mm", "40", "--marker-mm", "30")


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """``synth --cameras 3``'s folder (40 figure frames; the board clips are whole)."""
    out = tmp_path_factory.mktemp("scene") / "scene"
    assert cli("synth", out, "--cameras", 3, "--frames", 40, "--seed", 0) == 0
    return out


def test_synth_cameras_writes_the_exact_truth(scene):
    truth = camera_ring(3, seed=0)
    found = read_calibration(scene / "calibration.toml")
    assert found.names == ["A", "B", "C"]
    for a, b in zip(found, truth, strict=True):
        np.testing.assert_array_equal(a.matrix, b.matrix)
        np.testing.assert_array_equal(a.dist, b.dist)
        np.testing.assert_array_equal(a.rvec, b.rvec)
    figure = figure_motion(40, 20, seed=0)
    poses = read_pose3d_csv(scene / "truth3d.csv")
    assert poses.keypoints == [f"kp{k}" for k in range(20)]
    np.testing.assert_allclose(poses.points, figure.points, atol=1e-6)
    uv, _ = project_views(truth, figure.points)
    for c, name in enumerate(truth.names):
        two = read_poses_2d(scene / "truth2d" / f"{name}.csv")
        np.testing.assert_allclose(two.points[:, 0], uv[c], atol=1e-6)  # one animal
        assert (two.scores[:, 0][np.isfinite(uv[c, ..., 0])] == 1).all()
    for folder in (scene, scene / "calibration"):
        assert sorted(p.name for p in folder.glob("*.mp4")) == ["A.mp4", "B.mp4", "C.mp4"]


def test_synth_cameras_never_writes_over_a_scene(scene, capsys):
    before = (scene / "truth3d.csv").read_bytes()
    result = cli_captured(capsys, "synth", scene, "--cameras", 3, "--frames", 5)
    assert result.code == 2 and "pass --overwrite" in result.err
    assert (scene / "truth3d.csv").read_bytes() == before


@pytest.mark.slow
def test_calibrates_the_synthetic_cameras_from_their_board_videos(scene, tmp_path, capsys):
    videos = sorted((scene / "calibration").glob("*.mp4"))
    out = tmp_path / "cal" / "calibration.toml"
    result = cli_captured(capsys, "calibrate", *videos, *BOARD_OPTIONS, "--out", out, "--quiet")
    assert result.code == 0, result.err
    truth = read_calibration(scene / "calibration.toml")
    found = read_calibration(out)
    # the calibration's world is camera A's frame: X_A = R_A X + t_A
    positions = (found.positions - truth[0].tvec) @ truth[0].rotation
    assert np.linalg.norm(positions - truth.positions, axis=1).max() < 0.01 * BOX_SIZE
    assert found.metadata["error"] < 0.5
    for name in "ABC":
        row = next(line for line in result.out.splitlines() if line.startswith(f"│ {name} "))
        error = float(row.split("│")[3])
        assert 0 < error < 0.5
    assert (tmp_path / "cal" / "calibration.detections.png").stat().st_size > 10_000
    assert (tmp_path / "cal" / "calibration.layout.png").stat().st_size > 10_000


@pytest.fixture
def blank_videos(tmp_path):
    """Two synchronised videos without a board."""
    return [numbered_video(tmp_path / f"{n}.mp4", frames=12) for n in "AB"]


@pytest.mark.parametrize(
    "options, message",
    [
        (("--squares", "7x5", "--square-mm", "40"), "ChArUco board needs --marker-mm"),
        (("--squares", "7by5", "--square-mm", "40", "--marker-mm", "30"), "--squares must be"),
        (("--squares", "7x5", "--square-mm", "40", "--marker-mm", "50"), "under --square-mm"),
        (
            ("--board", "checkerboard", "--squares", "7x5", "--square-mm", "40"),
            "looks the same turned",
        ),
        ((*BOARD_OPTIONS, "--dict", "DICT_9X9"), "not an ArUco dictionary"),
        ((*BOARD_OPTIONS, "--board", "circles"), "--board must be one of"),
        ((*BOARD_OPTIONS, "--names", "A,A"), "camera names repeat"),
        ((*BOARD_OPTIONS, "--names", "A,B,C"), "3 names for 2 videos"),
    ],
)
def test_bad_options_are_named_before_any_work(blank_videos, tmp_path, capsys, options, message):
    out = tmp_path / "new" / "calibration.toml"
    result = cli_captured(capsys, "calibrate", *blank_videos, *options, "--out", out)
    assert result.code == 2 and message in result.err
    assert not out.parent.exists()


def test_no_board_in_the_videos_names_the_camera_and_writes_nothing(blank_videos, tmp_path, capsys):
    out = tmp_path / "new" / "calibration.toml"
    result = cli_captured(capsys, "calibrate", *blank_videos, *BOARD_OPTIONS, "--out", out)
    assert (
        result.code == 2
        and "camera A sees the board (6+ corners, not on one line) in 0 frames" in result.err
    )
    assert "Traceback" not in result.err and not out.parent.exists()


def test_bad_videos_are_named(blank_videos, tmp_path, capsys):
    out = tmp_path / "calibration.toml"
    short = numbered_video(tmp_path / "short" / "C.mp4", frames=7)
    result = cli_captured(capsys, "calibrate", *blank_videos, short, *BOARD_OPTIONS, "--out", out)
    assert result.code == 2 and "differ in length" in result.err and "C.mp4 7 frames" in result.err
    missing = tmp_path / "D.mp4"
    result = cli_captured(capsys, "calibrate", *blank_videos, missing, *BOARD_OPTIONS, "--out", out)
    assert result.code == 2 and f"{missing}: no such video" in result.err
    result = cli_captured(capsys, "calibrate", blank_videos[0], *BOARD_OPTIONS, "--out", out)
    assert result.code == 2 and "needs 2 videos or more" in result.err
    assert not out.exists()


def test_never_writes_over_a_file_or_an_input(blank_videos, tmp_path, capsys):
    out = tmp_path / "calibration.toml"
    out.write_text("mine")
    result = cli_captured(capsys, "calibrate", *blank_videos, *BOARD_OPTIONS, "--out", out)
    assert result.code == 2 and "pass --overwrite" in result.err and out.read_text() == "mine"
    picture = tmp_path / "c.layout.png"  # the layout picture of c.toml
    picture.write_text("mine")
    result = cli_captured(
        capsys, "calibrate", *blank_videos, *BOARD_OPTIONS, "--out", tmp_path / "c.toml"
    )
    assert result.code == 2 and f"{picture}: the output file exists" in result.err
    assert not (tmp_path / "c.toml").exists()
    result = cli_captured(
        capsys, "calibrate", *blank_videos, *BOARD_OPTIONS, "--out", blank_videos[0], "--overwrite"
    )
    assert result.code == 2 and "refusing to overwrite an input file" in result.err


@pytest.mark.slow
def test_calibrates_from_checkerboard_videos(tmp_path, capsys):
    truth = camera_ring(3, seed=0)
    board = Board(squares=(7, 6), marker_length=None)
    clip = board_clip(truth, board, 60, seed=1)
    videos = []
    for cam in truth:
        maps = distortion_maps(cam)
        frames = (
            cv2.cvtColor(render_board(board, cam, r, t, 4.0, maps), cv2.COLOR_GRAY2BGR)
            for r, t in zip(clip.rvecs, clip.tvecs, strict=True)
        )
        videos.append(write_video(tmp_path / f"{cam.name}.mp4", frames, 30.0, cam.size))
    out = tmp_path / "calibration.toml"
    options = ("--board", "checkerboard", "--squares", "7x6", "--square-mm", "40", "--quiet")
    result = cli_captured(capsys, "calibrate", *videos, *options, "--out", out)
    assert result.code == 0, result.err
    found = read_calibration(out)
    positions = (found.positions - truth[0].tvec) @ truth[0].rotation
    assert np.linalg.norm(positions - truth.positions, axis=1).max() < 0.01 * BOX_SIZE
    assert found.metadata["error"] < 0.5
