"""``keypointer predict`` on a video: smoothing, flags and the .h5, through the CLI."""

import csv

import pytest
from helpers import cli, noise_images, write_video

FRAMES = 24


def _video(path):
    return write_video(path, noise_images(FRAMES, (96, 80)), fps=25.0)


def test_smoothed_video_keeps_raw_values_and_flags(checkpoint, tmp_path):
    video = _video(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    args = ["predict", checkpoint, video, "--out", out, "--smooth", "kalman", "--no-draw"]
    assert cli(*args, "--quiet", "--device", "cpu") == 0
    with open(out / "clip.frames.csv", newline="") as f:
        rows = list(csv.reader(f))
    head = rows[0]
    assert head[:3] == ["frame", "time_s", "track"] and len(rows) == 1 + FRAMES
    for col in ("head_x", "head_x_raw", "head_low_score", "head_jump", "head_flip"):
        assert col in head
    assert float(rows[2][1]) == pytest.approx(1 / 25.0, abs=1e-3)
    assert {r[head.index("head_jump")] for r in rows[1:]} <= {"0", "1"}
    with open(out / "clip.csv", newline="") as f:
        dlc = list(csv.reader(f))
    assert [r[0] for r in dlc[:3]] == ["scorer", "bodyparts", "coords"] and len(dlc) == 3 + FRAMES


def test_h5_next_to_the_csv(checkpoint, tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("tables")
    video = _video(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    assert cli("predict", checkpoint, video, "--out", out, "--h5", "--no-draw", "--quiet") == 0
    df = pd.read_hdf(out / "clip.h5", "df_with_missing")
    assert df.shape == (FRAMES, 3 * 11)


@pytest.mark.parametrize(
    "flag", [["--smooth", "wobble"], ["--max-gap", "-1"], ["--max-instances", "0"]]
)
def test_bad_post_processing_options_exit_2_before_any_output(checkpoint, tmp_path, capsys, flag):
    video = _video(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    assert cli("predict", checkpoint, video, "--out", out, *flag) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert not out.exists()
