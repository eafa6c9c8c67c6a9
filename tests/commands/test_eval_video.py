"""``keypointer eval`` on a video with known tracks (keypointer/commands/eval_video.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from helpers import cli, cli_captured

from keypointer.commands.eval_video import eval_video_command, is_video_truth, score_video
from keypointer.data.synthetic_video import generate_video, load_truth
from keypointer.inference.runners import FramePrediction
from keypointer.inference.sources import Frame, Source
from keypointer.inference.tracks import PostProcess, VideoTable

IMAGE = np.zeros((4, 4, 3), np.uint8)  # the tables below never look at pixels


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Path:
    """A 60-frame clip of two figures that cross (its folder)."""
    out = tmp_path_factory.mktemp("pair")
    generate_video(out, num_frames=60, instances=2, seed=1, size=128)
    return out


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    """A 12-frame clip of one figure, 64 px like the test checkpoint's input."""
    out = tmp_path_factory.mktemp("single")
    generate_video(out, num_frames=12, instances=1, seed=0, size=64)
    return out


def table_from_truth(truth, noise=0.0, seed=0, drop=(), skip=()) -> VideoTable:
    """What a model that finds every figure would give: the truth's points plus Gaussian
    ``noise`` px, instances in a random order per frame; ``drop``: (frame, track) pairs left
    out; ``skip``: frames the video 'could not decode'."""
    rng = np.random.default_rng(seed)
    source = Source(Path("video.mp4"), "video")
    table = VideoTable(source.path, truth.fps)
    for f, number in enumerate(truth.frames):
        if number in skip:
            continue
        keep = [m for m in range(len(truth.tracks)) if (number, m) not in drop]
        kp = truth.keypoints[f, keep, :, :2] + rng.normal(
            0, noise, (len(keep), *truth.keypoints.shape[2:3], 2)
        )
        order = rng.permutation(len(keep))
        frame = Frame(source, IMAGE, int(number), truth.fps, float(truth.times[f]))
        scores = np.full(kp.shape[:2], 0.9)
        table.add(FramePrediction(frame, kp[order], scores, scores.mean(1)))
    return table


def test_perfect_shuffled_predictions_score_perfectly(pair):
    truth = load_truth(pair)
    metrics, curves = score_video(truth, table_from_truth(truth), PostProcess())
    raw = metrics["pose"]["raw"]
    assert raw["mean_px"] == 0 and raw["pck"] == 1 and raw["jitter_px"] == 0
    assert raw["oks"]["AP"] == 1 and metrics["pose"]["smoothed"] is None
    tracker = metrics["tracking"]["tracker"]
    assert tracker["mota"] == 1 and tracker["num_switches"] == 0 and tracker["idf1"] == 1
    assert metrics["tracked"] and metrics["predicted_tracks"] == 2
    base = metrics["tracking"]["nearest_centroid"]
    assert 0 < base["mota"] <= 1 and base["num_misses"] == 0
    assert curves.tracker.shape == (60, 2) and (curves.tracker >= 0).all()
    assert json.loads(json.dumps(metrics)) == metrics


def test_noisy_dropped_and_undecoded_frames(pair):
    truth = load_truth(pair)
    drop = {(30, 1), (31, 1)}
    table = table_from_truth(truth, noise=1.0, seed=2, drop=drop, skip={10})
    metrics, _ = score_video(truth, table, PostProcess(smooth="savgol", max_instances=2))
    raw, smoothed = metrics["pose"]["raw"], metrics["pose"]["smoothed"]
    assert metrics["num_frames"] == 60 and metrics["num_frames_predicted"] == 59
    # Gaussian noise of 1 px per axis: mean distance sqrt(pi / 2)
    assert raw["mean_px"] == pytest.approx(math.sqrt(math.pi / 2), rel=0.1)
    assert raw["missed_instances"] == 2 + 2  # two dropped, and both figures of frame 10
    assert smoothed["jitter_px"] < 0.6 * raw["jitter_px"]
    assert smoothed["missed_instances"] == 2  # the smoother filled the 2-frame gap, not frame 10
    common = metrics["pose"]["common_points"]
    assert common["raw"]["num_keypoints"] == common["smoothed"]["num_keypoints"]
    assert common["raw"]["num_keypoints"] == raw["num_keypoints"] < smoothed["num_keypoints"]
    assert common["smoothed"]["jitter_px"] < 0.6 * common["raw"]["jitter_px"]
    tracker = metrics["tracking"]["tracker"]
    assert tracker["num_misses"] == 4 and tracker["num_switches"] == 0
    assert tracker["mota"] == pytest.approx(1 - 4 / 120)


def test_end_to_end_on_a_single_figure_clip(checkpoint, single, tmp_path):
    out = tmp_path / "ev"
    metrics = eval_video_command(checkpoint, single, out, smooth="kalman", device="cpu", quiet=True)
    assert json.loads((out / "eval.json").read_text()) == metrics
    assert (out / "error_over_time.png").stat().st_size > 0
    assert not list(out.glob(".*.tmp"))
    raw = metrics["pose"]["raw"]
    for key in ("mean_px", "rmse_px", "pck", "jitter_px", "excess_motion_px"):
        assert math.isfinite(raw[key]), key
    assert raw["truth_instances"] == 12 and len(raw["per_keypoint"]) == 11
    for name in ("tracker", "nearest_centroid"):
        mot = metrics["tracking"][name]
        assert all(math.isfinite(mot[k]) for k in ("mota", "num_switches", "num_misses")), name
    assert metrics["num_frames_predicted"] == 12 and metrics["tracked"] is False


def test_cli_evaluates_a_truth_file_and_exits_0(checkpoint, single, tmp_path, capsys):
    out = tmp_path / "cli"
    options = ["--device", "cpu", "--smooth", "savgol", "--batch-size", "5"]
    assert cli("eval", checkpoint, "--data", single / "truth.json", "--out", out, *options) == 0
    shown = capsys.readouterr().out
    assert "ID switches" in shown and "jitter px/frame" in shown
    assert json.loads((out / "eval.json").read_text())["smooth"] == "savgol"


def _fails(argv: list[str], capsys) -> str:
    result = cli_captured(capsys, *argv)
    assert result.code == 2
    err = result.err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1, err
    return err


def _copy_clip(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in ("video.mp4", "truth.json"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def test_bad_inputs_exit_2_with_one_line(checkpoint, single, tmp_path, capsys):
    ck = str(checkpoint)
    no_truth = tmp_path / "no_truth"
    no_truth.mkdir()
    (no_truth / "video.mp4").write_bytes((single / "video.mp4").read_bytes())
    assert "no truth file" in _fails(["eval", ck, "--data", str(no_truth)], capsys)
    missing = str(tmp_path / "gone" / "truth.json")
    assert "no truth file" in _fails(["eval", ck, "--data", missing], capsys)

    renamed = _copy_clip(single, tmp_path / "renamed")
    data = json.loads((renamed / "truth.json").read_text())
    data["keypoints"] = [f"other{j}" for j in range(len(data["keypoints"]))]
    (renamed / "truth.json").write_text(json.dumps(data))
    assert "differ from the model" in _fails(["eval", ck, "--data", str(renamed)], capsys)

    broken = _copy_clip(single, tmp_path / "broken")
    (broken / "video.mp4").write_bytes(b"not a video at all" * 100)
    out = tmp_path / "broken_out"
    assert "video" in _fails(["eval", ck, "--data", str(broken), "--out", str(out)], capsys)
    assert not out.exists()  # nothing half-written

    other_size = _copy_clip(single, tmp_path / "other_size")
    generate_video(tmp_path / "big", num_frames=3, instances=1, seed=0, size=80)
    (other_size / "video.mp4").write_bytes((tmp_path / "big" / "video.mp4").read_bytes())
    assert "80x80" in _fails(["eval", ck, "--data", str(other_size)], capsys)

    assert "--smooth" in _fails(["eval", ck, "--data", str(single), "--smooth", "wobble"], capsys)
    assert "--pcutoff" in _fails(["eval", ck, "--data", str(single), "--pcutoff", "0.5"], capsys)


def test_is_video_truth(single, synth, tmp_path):
    assert is_video_truth(single) and is_video_truth(single / "truth.json")
    assert is_video_truth(tmp_path / "x" / "truth.json")  # missing: still the video path
    assert not is_video_truth(synth)  # a COCO file
    assert not is_video_truth(tmp_path)
    moved = tmp_path / "labels_of_clip.json"
    moved.write_text((single / "truth.json").read_text())
    assert is_video_truth(moved)


def test_switch_frames_are_drawn_and_plotted(pair, tmp_path):
    from keypointer.commands.eval_video import switch_gallery
    from keypointer.viz import plot_video_eval

    truth = load_truth(pair)
    metrics, curves = score_video(truth, table_from_truth(truth), PostProcess(smooth="median"))
    tracking = metrics["tracking"]
    tracking["tracker"]["switch_frames"] = [20, 20, 45]
    plot = plot_video_eval(curves, truth, tracking, "clip", tmp_path / "plot.png")
    assert plot.stat().st_size > 0
    switches = [20, 20, 45]
    path = switch_gallery(pair / "video.mp4", truth, curves.points, switches, tmp_path / "s.png")
    from keypointer.data.images import read_image

    assert read_image(path).shape == (384, 2 * 384, 3)  # frames 20 and 45, enlarged 3x
