"""The split by video or time (keypointer/data/split.py), and what train and check say of it."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import keypointer.commands.check as check_module
import keypointer.training.loaders as loaders
from keypointer.commands.check import check_command
from keypointer.config import load_config
from keypointer.data.split import (
    GAP_FRAMES,
    FrameRef,
    VideoTiming,
    clustering_warning,
    frame_ref,
    frame_refs,
    nearest_frames,
    plan_split,
    random_split,
    separate_plan,
    split_summary,
    split_warnings,
)
from keypointer.data.types import Instance, KeypointSet, Sample
from keypointer.errors import ConfigError
from keypointer.skeleton import Skeleton

VIDEO = "/data/v0.mp4"


def kset_of(paths: list[Path], frames: list[int | None] | None = None) -> KeypointSet:
    """One instance per image, nothing read from disk."""
    frames = frames or [None] * len(paths)
    inst = Instance(np.array([[4.0, 4.0, 2], [8.0, 8.0, 2]]))
    samples = [
        Sample(p, 16, 16, [inst], i, f"r{i}", f)
        for i, (p, f) in enumerate(zip(paths, frames, strict=True))
    ]
    return KeypointSet(Skeleton(("a", "b")), samples)


def refs_of(frames: list[int], video: str = VIDEO) -> list[FrameRef]:
    return [FrameRef(video, f) for f in frames]


# --------------------------------------------------------------------------- frame identity


@pytest.mark.parametrize(
    ("image", "frame", "expected"),
    [
        ("/p/labeled-data/mouse1/img0123.png", None, ("/p/labeled-data/mouse1", 123)),
        ("/p/images/mouse1_img042.png", None, ("/p/images/mouse1", 42)),
        ("/p/frames/clip/img000007.png", None, ("/p/frames/clip", 7)),
        ("/p/clip.mp4", 9, ("/p/clip.mp4", 9)),
        ("/p/labeled-data/img01.png", None, None),  # no video folder: index, not frame
        ("/p/images/img0001.jpg", None, None),  # a COCO-style name says nothing of time
        ("/p/images/000000397133.jpg", None, None),
    ],
)
def test_frame_ref_reads_videos_and_frames_from_layouts(image, frame, expected):
    ref = frame_ref(Sample(Path(image), frame=frame))
    assert (None if ref is None else (ref.video, ref.frame)) == expected


# --------------------------------------------------------------------------- the split


@st.composite
def video_frames(draw):
    n_videos = draw(st.integers(1, 4))
    n = draw(st.integers(2, 60))
    videos = draw(st.lists(st.integers(0, n_videos - 1), min_size=n, max_size=n))
    frames = draw(st.lists(st.integers(0, 400), min_size=n, max_size=n))
    return [FrameRef(f"/v{v}.mp4", f) for v, f in zip(videos, frames, strict=True)]


@settings(max_examples=40, deadline=None)
@given(
    refs=video_frames(),
    mode=st.sampled_from(["auto", "time", "video"]),
    fraction=st.floats(0.05, 0.5),
    seed=st.integers(0, 5),
)
def test_split_partitions_images_and_keeps_validation_clear_of_training(refs, mode, fraction, seed):
    if mode == "video" and len({r.video for r in refs}) < 2:
        with pytest.raises(ConfigError, match="two videos or more"):
            plan_split(refs, mode, fraction, seed)
        return
    plan = plan_split(refs, mode, fraction, seed)
    sides = plan.train + plan.val + plan.dropped
    assert sorted(sides) == list(range(len(refs)))  # each image on exactly one side (or none)
    assert plan.train and plan.val
    train = [refs[i] for i in plan.train]
    val = [refs[i] for i in plan.val]
    d = nearest_frames(train, val)
    np.testing.assert_array_equal(plan.distances, d)
    if plan.mode == "video":
        assert not {r.video for r in train} & {r.video for r in val}
    else:
        assert plan.mode == "time"
        assert d.min() > plan.gap  # no validation frame within the gap of a training frame
        # only frames within the gap are left out
        dropped = [refs[i] for i in plan.dropped]
        assert (nearest_frames(val, dropped) <= GAP_FRAMES).all()


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 80), fraction=st.floats(0.01, 0.9), seed=st.integers(0, 2**31))
def test_random_split_is_keypoint_set_split(n, fraction, seed):
    kset = kset_of([Path(f"/p/images/{i:04d}.jpg") for i in range(n)])
    train, val = kset.split(fraction, seed)
    for mode in ("random", "auto"):  # not frames of videos: auto is random, as before
        plan = plan_split(frame_refs(kset), mode, fraction, seed)
        assert plan.mode == "random"
        assert [kset.samples[i] for i in plan.train] == train.samples
        assert [kset.samples[i] for i in plan.val] == val.samples
    assert random_split(n, fraction, seed) == (plan.train, plan.val)


def test_dense_frames_of_one_video_hold_out_the_last_block_with_the_gap():
    plan = plan_split(
        refs_of(list(range(550))), "auto", 0.1, timings={VIDEO: VideoTiming(1100, 15.0)}
    )
    assert plan.mode == "time"
    assert plan.val == list(range(495, 550))
    assert plan.dropped == list(range(495 - GAP_FRAMES, 495))
    assert plan.gap == GAP_FRAMES
    assert plan.distances.min() == GAP_FRAMES + 1
    assert plan.seconds.min() == pytest.approx((GAP_FRAMES + 1) / 15.0)
    summary = split_summary(plan)
    assert "validation split: time" in summary
    assert "at least 31 frames (2.1 s)" in summary
    assert split_warnings(plan) == []


def test_several_videos_are_held_out_whole():
    refs = [FrameRef(f"/v{v}.mp4", f) for v in range(10) for f in range(0, 100, 10)]
    plan = plan_split(refs, "auto", 0.2, seed=3)
    assert plan.mode == "video"
    assert len(plan.val) == 20  # two whole videos of ten frames
    assert np.isinf(plan.distances).all()
    assert "from a video not trained on" in split_summary(plan)


def test_time_and_video_modes_refuse_images_not_from_videos():
    refs = [FrameRef(VIDEO, 1), None]
    with pytest.raises(ConfigError, match="b.jpg does not say its video"):
        plan_split(refs, "time", names=["a.jpg", "b.jpg"])


# --------------------------------------------------------------------------- warnings


def test_random_split_of_neighbouring_frames_warns():
    plan = plan_split(refs_of(list(range(200))), "random", 0.1)
    [line] = split_warnings(plan)
    assert "next to training frames (median 1 frame apart)" in line
    assert "data.split=time" in line and "keypointer suggest" in line


def test_separate_validation_labels_from_neighbouring_frames_warn():
    plan = separate_plan(refs_of([0, 2, 4]), refs_of([1, 3]), "the validation labels v.slp")
    assert plan.distances.tolist() == [1.0, 1.0]
    assert "other stretches" in split_warnings(plan)[0]
    assert separate_plan(refs_of([0]), [None], "x").distances is None


@pytest.mark.parametrize(
    ("frames", "timings", "clustered"),
    [
        (range(0, 100, 20), {VIDEO: VideoTiming(1000)}, "90% of them lie within 8%"),
        (range(0, 1000, 50), {VIDEO: VideoTiming(1000)}, None),  # spread over the video
        (range(0, 40), {}, "runs of neighbouring frames (median 1 frame"),  # length unknown
        (range(0, 4000, 200), {}, None),
    ],
)
def test_clustering_warning(frames, timings, clustered):
    line = clustering_warning(refs_of(list(frames)), timings)
    if clustered is None:
        assert line is None
    else:
        assert clustered in line and "keypointer suggest" in line
    assert clustering_warning([None, None]) is None  # not frames of videos: nothing to say
    assert clustering_warning(refs_of([0, 1, 2, 3])) is None  # too few to say


# --------------------------------------------------------------------------- train and check


def dlc_frames(png, root: Path, frames: list[int]) -> KeypointSet:
    paths = [png(root / "labeled-data" / "vid" / f"img{f:04d}.png", 16, 16) for f in frames]
    return kset_of(paths)


def test_split_data_prints_the_split_and_warns(png, tmp_path, monkeypatch, capsys, caplog):
    kset = dlc_frames(png, tmp_path, list(range(40)))
    monkeypatch.setattr(loaders, "read_checked", lambda *a, **k: kset)
    cfg = load_config(None, [f"data.path={tmp_path}", "data.format=dlc"])
    with caplog.at_level(logging.WARNING, logger="keypointer"):
        train, val = loaders.split_data(cfg, say=True)
    err = " ".join(capsys.readouterr().err.split())
    assert "validation split: time" in err
    assert [s.image.name for s in val.samples] == [
        "img0036.png",
        "img0037.png",
        "img0038.png",
        "img0039.png",
    ]
    assert len(train) == 33  # 40 - 4 validation - 3 in the gap (a tenth of 36 at most)
    assert "runs of neighbouring frames" in caplog.text
    cfg = load_config(None, [f"data.path={tmp_path}", "data.format=dlc", "data.split=random"])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="keypointer"):
        train, val = loaders.split_data(cfg)
    assert (train.samples, val.samples) == tuple(s.samples for s in kset.split(0.1, 0))
    assert "validation frames sit next to training frames" in caplog.text


def test_check_says_when_labels_are_clustered(png, tmp_path, monkeypatch):
    kset = dlc_frames(png, tmp_path, list(range(12)))
    monkeypatch.setattr(check_module, "load_dataset", lambda *a, **k: kset)
    report = check_command(tmp_path, format="dlc")
    assert any("clustered in time" in w for w in report.warnings)
    spread = dlc_frames(png, tmp_path / "b", list(range(0, 1200, 100)))
    monkeypatch.setattr(check_module, "load_dataset", lambda *a, **k: spread)
    report = check_command(tmp_path, format="dlc")
    assert not any("clustered" in w for w in report.warnings)
