"""Frames still to label (``suggest`` with a model unsure of every point) are a normal state of
a labelling project: each format's output passes ``keypointer check`` with a warning and
merges into a project, while training still refuses a dataset with nothing labelled."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import pytest
from helpers import cli, write_video

from keypointer.commands.merge import merge_command
from keypointer.commands.suggest import shortfall_message, suggest_command
from keypointer.data.check import NOTHING_LABELLED, validate
from keypointer.data.formats import load_dataset
from keypointer.errors import DataError


@pytest.fixture(scope="module")
def video(synth, tmp_path_factory) -> Path:
    """12 frames of 64x64 at 10 fps: the synthetic images, over and over."""
    images = sorted((synth.parent / "images").glob("*.png"))
    frames = [cv2.imread(str(images[i % len(images)])) for i in range(12)]
    return write_video(tmp_path_factory.mktemp("video") / "video.avi", frames, fourcc="MJPG")


@pytest.mark.parametrize("fmt", ["dlc", "coco", "yolo", "csv"])
def test_unsure_suggestions_check_with_a_warning_and_merge(
    fmt, checkpoint, video, synth, tmp_path, capsys
):
    out = tmp_path / "next"
    result = suggest_command(
        checkpoint, [video], out, num=2, format=fmt, flip=False, min_gap=3, threshold=1e9,
        quiet=True,
    )  # fmt: skip
    labels = result["labels"]
    kset = load_dataset(labels)
    assert len(kset.samples) == 2  # both frames are listed, nothing labelled in them
    assert not any(i.labelled.any() for s in kset.samples for i in s.instances)
    capsys.readouterr()
    assert cli("check", labels) == 0, capsys.readouterr().err
    printed = " ".join(capsys.readouterr().out.split())
    assert "warning no instance has a labelled keypoint yet" in printed
    # Training (and evaluation) still refuse it.
    with pytest.raises(DataError, match="nothing to train on"):
        validate(kset, check_images=False)
    # The suggestions merge into the project: 8 labelled images + 2 to label.
    merged = tmp_path / "merged.json"
    counts = merge_command(synth, labels, merged, quiet=True)
    assert (counts["replaced"], counts["added"], counts["images"]) == (0, 2, 10)
    back = load_dataset(merged)
    assert len(back.samples) == 10
    assert sum(any(i.labelled.any() for i in s.instances) for s in back.samples) == 8
    assert cli("check", merged) == 0


def test_check_report_of_nothing_labelled_is_a_warning(synth):
    kset = load_dataset(synth)
    for s in kset.samples:
        for inst in s.instances:
            inst.keypoints[:, 2] = 0
    report = validate(kset, check_images=False, require_labels=False)
    assert report.num_instances == 0 and report.num_images == 8
    assert report.warnings == [NOTHING_LABELLED]
    assert set(report.labelled.values()) == {0}


def test_min_gap_advice_only_where_a_lower_gap_gives_more(checkpoint, video, tmp_path, caplog):
    # --min-gap 0: every one of the 12 frames is picked; the videos hold no more.
    with caplog.at_level(logging.WARNING, logger="keypointer"):
        suggest_command(
            checkpoint, [video], tmp_path / "o", num=20, format="csv", flip=False, min_gap=0,
            quiet=True,
        )  # fmt: skip
    assert "only 12 frames picked: the videos hold no more frames" in caplog.text
    assert "lower --min-gap" not in caplog.text
    assert shortfall_message(4, 20, 12, 3) == (
        "only 4 frames lie --min-gap 3 frames apart; lower --min-gap for more"
    )
    assert "one second (--min-gap)" in shortfall_message(2, 20, 12, None)
    assert shortfall_message(20, 20, 300, 0) is None
