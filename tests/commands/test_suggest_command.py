"""``keypointer suggest``: frames written in each format, read back by ``keypointer check``,
the model's format by default, bad input in one line with exit code 2."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import cli, decoded_frames, write_video

from keypointer import load
from keypointer.commands.suggest import suggest_command, trained_format
from keypointer.data.formats import load_dataset
from keypointer.data.images import read_image

NUM_FRAMES = 30


@pytest.fixture(scope="module")
def video(synth, tmp_path_factory) -> Path:
    """30 frames of 64x64 at 10 fps: the eight synthetic images, over and over."""
    images = sorted((synth.parent / "images").glob("*.png"))
    frames = [cv2.imread(str(images[i % len(images)])) for i in range(NUM_FRAMES)]
    return write_video(tmp_path_factory.mktemp("video") / "clip.avi", frames, fourcc="MJPG")


@pytest.mark.parametrize("fmt", ["dlc", "coco", "yolo", "csv"])
def test_each_format_holds_the_frames_and_predictions_and_checks(
    fmt, checkpoint, video, tmp_path, capsys
):
    out = tmp_path / "suggested"
    result = suggest_command(
        checkpoint, [video], out, num=3, format=fmt, flip=False, min_gap=5, threshold=0.0,
        quiet=True,
    )  # fmt: skip
    labels = result["labels"]
    assert cli("check", labels) == 0, capsys.readouterr().err
    kset = load_dataset(labels)
    assert len(kset.samples) == 3
    numbers = sorted(n for _, n in result["frames"])
    assert all(b - a >= 5 for a, b in zip(numbers, numbers[1:], strict=False))
    frames = decoded_frames(video)
    # Each label is the model's prediction for its frame, and each image is that frame.
    predictor = load(checkpoint)  # the plain Python API as reference
    for sample in kset.samples:
        number = int(sample.image.stem.rsplit("img", 1)[1])
        assert number in numbers
        image = read_image(sample.image)
        np.testing.assert_array_equal(image, frames[number])  # PNG: lossless
        kp, _ = predictor.predict(image)
        inst = sample.instances[0]
        h, w = image.shape[:2]
        inside = (kp[:, 0] >= -0.5) & (kp[:, 0] < w - 0.5) & (kp[:, 1] >= -0.5)
        inside &= kp[:, 1] < h - 0.5
        # threshold 0: every point in the frame labelled; one off the frame never is
        np.testing.assert_array_equal(inst.keypoints[:, 2], np.where(inside, 2.0, 0.0))
        # suggest predicts in batches of 16, the API one image at a time: float32 kernels of
        # another batch size differ in the last bits, and subpixel decoding magnifies that to
        # ~1e-3 px on some CPUs. 0.02 px holds on every machine and still catches a wrong
        # frame or a shifted point.
        np.testing.assert_allclose(inst.keypoints[inside, :2], kp[inside], atol=0.02)
    if fmt == "dlc":
        folder = out / "labeled-data" / "clip"
        assert sorted(p.name for p in folder.glob("*.png")) == [f"img{n:02d}.png" for n in numbers]
        assert (folder / "CollectedData_keypointer.csv").is_file()


def test_low_scores_are_left_unlabelled_and_the_table_says_why(checkpoint, video, tmp_path, capsys):
    probe = suggest_command(
        checkpoint, [video], tmp_path / "probe", num=2, format="coco", flip=False, quiet=True,
        threshold=0.0,
    )  # fmt: skip
    # A threshold between the model's scores: some points labelled, some not.
    predictor = load(checkpoint)
    frame = decoded_frames(video)[probe["frames"][0][1]]
    _, frame_scores = predictor.predict(frame)
    ranked = np.sort(frame_scores)  # between two scores, not on one (batches differ ~1e-6)
    threshold = float(ranked[len(ranked) // 2 - 1 : len(ranked) // 2 + 1].mean())
    out = tmp_path / "out"
    code = cli(
        "suggest", checkpoint, video, "--out", out, "--num", 2, "--format", "csv",
        "--no-flip", "--threshold", threshold, "--min-gap", 3,
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "frames to label" in printed and "low score" in printed
    assert f"keypointer check {out / 'labels.csv'}" in printed.replace("\n", "")
    kset = load_dataset(out / "labels.csv")
    for sample in kset.samples:
        number = int(sample.image.stem.rsplit("img", 1)[1])
        image = decoded_frames(video)[number]
        kp, s = predictor.predict(image)
        labelled = sample.instances[0].keypoints[:, 2] > 0
        h, w = image.shape[:2]
        inside = (kp[:, 0] >= -0.5) & (kp[:, 0] < w - 0.5) & (kp[:, 1] >= -0.5)
        inside &= kp[:, 1] < h - 0.5  # a point off the frame is never written labelled
        edge = np.minimum.reduce([kp[:, 0] + 0.5, w - 0.5 - kp[:, 0], kp[:, 1] + 0.5,
                                  h - 0.5 - kp[:, 1]])  # fmt: skip
        sure = (np.abs(s - threshold) > 1e-4) & (np.abs(edge) > 0.05)  # not on a boundary
        np.testing.assert_array_equal(labelled[sure], ((s >= threshold) & inside)[sure])
        assert str(number) in printed


def test_the_default_format_is_the_models(checkpoint, video, tmp_path):
    result = suggest_command(checkpoint, [video], tmp_path / "o", num=1, flip=False, quiet=True)
    assert result["format"] == "coco"  # the fixture's model was trained on COCO JSON
    assert result["labels"] == tmp_path / "o" / "annotations.json"


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"format": "yolo", "path": "x.json"}, "yolo"),
        ({"format": None, "path": "/elsewhere/labels.json"}, "coco"),
        ({"format": None, "path": "/elsewhere/data.yaml"}, "yolo"),
        ({"format": None, "path": "/elsewhere/points.csv"}, "csv"),
        ({"format": None, "path": "/elsewhere/CollectedData_me.csv"}, "dlc"),
        ({"format": None, "path": "/elsewhere/project"}, "dlc"),
        ({"format": None, "path": None}, "dlc"),
        ({"format": "sleap", "path": "/elsewhere/labels.slp"}, "dlc"),
    ],
)
def test_trained_format_reads_the_config(data, expected):
    assert trained_format({"data": data}) == expected
    assert trained_format(None) == "dlc"


def test_two_videos_each_keep_their_frames_and_a_repeated_one_counts_once(
    checkpoint, video, tmp_path
):
    other = tmp_path / "other" / "clip.avi"  # the same stem in another folder
    other.parent.mkdir()
    other.write_bytes(video.read_bytes())
    result = suggest_command(
        checkpoint, [video, other, video], tmp_path / "o", num=6, format="dlc", flip=False,
        min_gap=5, threshold=0.0, quiet=True, scorer="me",
    )  # fmt: skip
    sources = {path for path, _ in result["frames"]}
    assert sources == {str(video), str(other)}
    folders = sorted(p.name for p in (tmp_path / "o" / "labeled-data").iterdir())
    assert folders == ["clip", "clip_2"]
    assert (tmp_path / "o" / "labeled-data" / "clip_2" / "CollectedData_me.csv").is_file()
    kset = load_dataset(tmp_path / "o")
    assert len(kset.samples) == 6


def test_a_failed_run_leaves_nothing(checkpoint, video, tmp_path, monkeypatch):
    import keypointer.commands.suggest as cmd

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(cmd, "write_labels", broken)
    out = tmp_path / "new" / "out"
    with pytest.raises(OSError):
        suggest_command(checkpoint, [video], out, num=2, format="dlc", flip=False, quiet=True)
    assert not (tmp_path / "new").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(OSError):
        suggest_command(checkpoint, [video], empty, num=2, format="dlc", flip=False, quiet=True)
    assert empty.is_dir() and not any(empty.iterdir())


def _bad(capsys, *args) -> str:
    code = cli("suggest", *args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error")]
    assert len(lines) == 1, err
    return lines[0]


def test_bad_input_is_one_line_and_exit_2(checkpoint, video, synth, tmp_path, capsys):
    out = tmp_path / "out"
    assert "checkpoint not found" in _bad(capsys, tmp_path / "no.pt", video, "--out", out)
    assert "no such file" in _bad(capsys, checkpoint, tmp_path / "no.mp4", "--out", out)
    assert "--num" in _bad(capsys, checkpoint, video, "--out", out, "--num", 0)
    assert "--min-gap" in _bad(capsys, checkpoint, video, "--out", out, "--min-gap", -1)
    assert "unknown format" in _bad(capsys, checkpoint, video, "--out", out, "--format", "x")
    assert "--scorer" in _bad(capsys, checkpoint, video, "--out", out, "--scorer", "a/b")
    image = sorted((synth.parent / "images").glob("*.png"))[0]
    assert "videos" in _bad(capsys, checkpoint, image, "--out", out)
    assert "no videos" in _bad(capsys, checkpoint, image.parent, "--out", out)
    assert not out.exists()  # nothing made for a run that could not start
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert "is a file" in _bad(capsys, checkpoint, video, "--out", a_file)
    assert "it is a file" in _bad(capsys, checkpoint, video, "--out", a_file / "sub")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    assert "not empty" in _bad(capsys, checkpoint, video, "--out", full)
    assert (full / "keep.txt").read_text() == "mine"


def test_unwritable_out_is_refused(checkpoint, video, tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("running as root: permissions are not enforced")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert "permission denied" in _bad(capsys, checkpoint, video, "--out", locked / "o")
    finally:
        locked.chmod(0o700)
