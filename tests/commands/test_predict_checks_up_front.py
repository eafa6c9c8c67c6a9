"""``keypointer predict`` checks what can fail before any work: the h5 extra, frame ranges
that pick nothing, and says in its help how to install the extra."""

from __future__ import annotations

import re
import sys

import pytest
from helpers import cli, numbered_video

import keypointer.commands.predict as predict_module


@pytest.fixture
def no_model(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the check")

    monkeypatch.setattr(predict_module, "load_pipeline", refuse)


@pytest.mark.parametrize("missing", ["tables", "pandas"])
def test_h5_without_its_extra_fails_before_the_model_loads(
    checkpoint, tmp_path, capsys, monkeypatch, no_model, missing
):
    monkeypatch.setitem(sys.modules, missing, None)  # import fails as when not installed
    video = numbered_video(tmp_path / "clip.mp4", 10, fps=25.0)
    out = tmp_path / "out"
    assert cli("predict", checkpoint, video, "--out", out, "--h5", "--quiet") == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "Traceback" not in err
    assert "pip install 'keypointer[h5]'" in err and missing in err
    assert not out.exists()


@pytest.mark.parametrize(
    "pick, shown",
    [(["--start", "100"], "frames 100:"), (["--stop", "0"], "frames :0"),
     (["--start", "1s", "--stop", "10"], "frames 1s:10"), (["--start", "0.5s"], "frames 0.5s:")],
)  # fmt: skip
def test_a_range_that_picks_no_frame_is_an_error(
    checkpoint, tmp_path, capsys, no_model, pick, shown
):
    """12 frames at 25 fps (0.48 s): each range here picks none of them."""
    video = numbered_video(tmp_path / "clip.mp4", 12, fps=25.0)
    out = tmp_path / "out"
    assert cli("predict", checkpoint, video, "--out", out, *pick, "--quiet") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {video}: {shown}") and "Traceback" not in err
    assert "it has 12 frames" in err and "0.48 s at 25 frames/s" in err
    assert not out.exists()


def test_one_video_too_short_for_the_range_stops_the_whole_run(
    checkpoint, tmp_path, capsys, no_model
):
    long, short = (
        numbered_video(tmp_path / "long.mp4", 30, fps=25.0),
        numbered_video(tmp_path / "short.mp4", 12, fps=25.0),
    )
    out = tmp_path / "out"
    assert cli("predict", checkpoint, long, short, "--out", out, "--start", "20") == 2
    err = capsys.readouterr().err
    assert f"error: {short}: frames 20: picks no frame" in err and str(long) not in err
    assert not out.exists()  # nothing half-written, not even the long video's files


def test_a_range_inside_the_video_still_runs(checkpoint, tmp_path):
    video = numbered_video(tmp_path / "clip.mp4", 12, fps=25.0)
    out = tmp_path / "out"
    args = ["predict", checkpoint, video, "--out", out, "--start", "11", "--no-draw", "--quiet"]
    assert cli(*args, "--device", "cpu") == 0
    assert (out / "clip.frames.csv").read_text().splitlines()[1].startswith("11,")


def test_h5_help_names_the_extra_to_install(capsys, monkeypatch):
    """rich took ``[h5]`` for markup and printed "(needs keypointer)"."""
    monkeypatch.setenv("COLUMNS", "250")  # one line per option: nothing wrapped
    assert cli("predict", "--help") == 0
    help_text = re.sub(r"\s+", " ", capsys.readouterr().out)
    assert "pip install 'keypointer[h5]'" in help_text
    assert "--overwrite" in help_text
