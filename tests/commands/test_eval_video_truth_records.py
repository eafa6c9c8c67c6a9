"""``keypointer eval`` on a video's truth file: records in any order are scored as the ordered
file is; a frame past the video's end, or a track listed twice for one frame, is refused with
one message naming the truth file and the record."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import cli

from keypointer.commands.eval_video import eval_video_command
from keypointer.data.synthetic_video import generate_video

RUN_FIELDS = ("checkpoint", "truth", "video", "seconds", "frames_per_second")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A 12-frame clip of two figures, 64 px like the test checkpoint's input."""
    out = tmp_path_factory.mktemp("clip")
    generate_video(out, num_frames=12, instances=2, seed=3, size=64)
    return out


def _variant(clip: Path, to: Path, edit) -> Path:
    """A copy of ``clip`` whose truth.json went through ``edit(data)``."""
    to.mkdir()
    shutil.copy(clip / "video.mp4", to / "video.mp4")
    data = json.loads((clip / "truth.json").read_text())
    edit(data)
    (to / "truth.json").write_text(json.dumps(data))
    return to


def _flat(value, key: str = "") -> dict:
    """Nested metrics as {"a.b.0": leaf}, the run's own fields (paths, timing) left out."""
    if isinstance(value, dict):
        items = ((f"{key}.{k}", v) for k, v in value.items() if k not in RUN_FIELDS)
    elif isinstance(value, list):
        items = ((f"{key}.{i}", v) for i, v in enumerate(value))
    else:
        return {key: value}
    return {k: v for sub, v0 in items for k, v in _flat(v0, sub).items()}


@pytest.mark.slow
def test_records_in_any_order_score_as_the_ordered_file(checkpoint, clip, tmp_path):
    def shuffle(data):
        frames = data["frames"][::-1]  # reverse order, and one frame's tracks in two records
        split = frames[3]
        frames[3] = {**split, "instances": split["instances"][:1]}
        frames.append({**split, "instances": split["instances"][1:]})
        data["frames"] = frames

    unordered = _variant(clip, tmp_path / "unordered", shuffle)
    args = {"smooth": "savgol", "max_instances": 2, "device": "cpu", "quiet": True}
    ordered = eval_video_command(checkpoint, clip, tmp_path / "a", **args)
    shuffled = eval_video_command(checkpoint, unordered, tmp_path / "b", **args)
    assert shuffled["num_frames"] == ordered["num_frames"] == 12
    assert shuffled["pose"]["raw"]["truth_instances"] == 24
    a, b = _flat(ordered), _flat(shuffled)
    assert a.keys() == b.keys() and len(a) > 50
    for key, value in a.items():
        if isinstance(value, float):
            assert b[key] == pytest.approx(value, abs=1e-6, nan_ok=True), key
        else:
            assert b[key] == value, key


def _refused(checkpoint, folder: Path, tmp_path: Path, capsys) -> str:
    out = tmp_path / "refused"
    assert cli("eval", checkpoint, "--data", folder, "--out", out, "--device", "cpu") == 2
    assert not out.exists()
    return capsys.readouterr().err


def test_a_frame_past_the_videos_end_is_refused(checkpoint, clip, tmp_path, capsys):
    def add_frame(data):
        extra = json.loads(json.dumps(data["frames"][-1]))
        extra["frame"], extra["time"] = 12, extra["time"] + 1 / data["fps"]
        data["frames"].append(extra)

    folder = _variant(clip, tmp_path / "late", add_frame)
    err = _refused(checkpoint, folder, tmp_path, capsys)
    track = json.loads((clip / "truth.json").read_text())["tracks"][0]
    assert f"truth.json (frame 12, track {track!r})" in err
    assert "past the end of video.mp4, which has 12 frames" in err
    assert "Traceback" not in err and err.count("error:") == 1


def test_a_track_listed_twice_for_one_frame_is_refused(checkpoint, clip, tmp_path, capsys):
    def duplicate(data):
        data["frames"].insert(6, json.loads(json.dumps(data["frames"][5])))  # frame 5 again

    folder = _variant(clip, tmp_path / "twice", duplicate)
    err = _refused(checkpoint, folder, tmp_path, capsys)
    track = json.loads((clip / "truth.json").read_text())["tracks"][0]
    assert f"truth.json (frame 5, track {track!r})" in err
    assert "listed twice for this frame (in records 5 and 6 of 'frames')" in err
    assert "Traceback" not in err and err.count("error:") == 1
