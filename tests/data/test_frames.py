"""Frames of videos as images: exact frames in any order, from any thread; clear errors."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import decoded_frames, noise_images, numbered_video, write_video

from keypointer.data import frames
from keypointer.data.check import SAME_IMAGE, validate
from keypointer.data.frames import read_frame, video_info
from keypointer.data.types import Instance, KeypointSet, Sample
from keypointer.errors import DataError
from keypointer.skeleton import Skeleton


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    """A 90-frame MPEG-4 video (frames between key frames) and its frames decoded in order."""
    images = noise_images(90, (48, 32))
    for i, image in enumerate(images):
        cv2.putText(image, str(i), (2, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    path = write_video(tmp_path_factory.mktemp("video") / "clip.mp4", images, fps=25)
    frames = decoded_frames(path)
    assert len(frames) == 90
    return path, frames


def test_any_order_gives_the_frames_decoded_in_order(video):
    path, frames = video
    order = np.random.default_rng(1).permutation(90).tolist() + [5, 6, 7, 60, 89, 0]
    for i in order:
        np.testing.assert_array_equal(read_frame(path, i), frames[i])
    assert video_info(path) == (48, 32, 90)


def test_threads_each_read_the_right_frames(video):
    path, frames = video
    order = list(range(90)) * 2
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda i: read_frame(path, i), order))
    for i, image in zip(order, got, strict=True):
        np.testing.assert_array_equal(image, frames[i])


def test_bad_frames_and_files_name_the_file(video, tmp_path):
    path, _ = video
    for index, message in ((90, "cannot decode frame 90"), (-1, "does not exist")):
        with pytest.raises(DataError, match=message) as err:
            read_frame(path, index)
        assert err.value.file == str(path)
    np.testing.assert_array_equal(read_frame(path, 3), video[1][3])  # still usable after
    with pytest.raises(DataError, match="video file not found"):
        read_frame(tmp_path / "none.mp4", 0)
    (tmp_path / "junk.mp4").write_bytes(b"not a video" * 10)
    with pytest.raises(DataError, match="cannot"):
        read_frame(tmp_path / "junk.mp4", 0)
    assert video_info(tmp_path / "junk.mp4") is None


def test_samples_of_one_video_differ_by_frame(video):
    path, frames = video
    kp = np.array([[10.0, 10, 2], [20, 20, 2]])
    samples = [
        Sample(path, 0, 0, [Instance(kp)], i, f"frame {f}", frame=f)
        for i, f in enumerate((4, 9, 4))
    ]
    np.testing.assert_array_equal(samples[1].read(), frames[9])
    report = validate(KeypointSet(Skeleton(("a", "b")), samples, path))
    assert report.counts == {SAME_IMAGE: 1}  # the third lists frame 4 again; 9 is another
    assert "frame 4 is also listed as frame 4" in report.warnings[0]
    assert report.image_sizes == (48, 32, 48, 32)
    assert [s.frame for s in report.cleaned.samples] == [4, 9, 4]


def test_locator_items_read_video_frames(video, tmp_path):
    """The locator's whole-image items decode a video's frame as the pose dataset does
    (SLEAP labels point into videos); they once opened the video as an image file."""
    from keypointer.codecs.centers import CenterCodec
    from keypointer.data.whole_images import WholeImageDataset

    path, frames = video
    kp = np.array([[10.0, 10, 2], [20, 20, 2]])
    png = tmp_path / "frame9.png"
    cv2.imwrite(str(png), cv2.cvtColor(frames[9], cv2.COLOR_RGB2BGR))
    sk, codec = Skeleton(("a", "b")), CenterCodec((64, 64), 4)
    from_video = WholeImageDataset(
        KeypointSet(sk, [Sample(path, 48, 32, [Instance(kp)], frame=9)]), codec
    )
    from_png = WholeImageDataset(KeypointSet(sk, [Sample(png, 48, 32, [Instance(kp)])]), codec)
    a, b = from_video[0], from_png[0]
    assert torch.equal(a["image"], b["image"]) and a["image"].abs().sum() > 0


# --------------------------------------------------------------------------- the frame cache


@pytest.fixture
def empty_cache():
    frames.clear_frame_cache()
    yield
    frames.clear_frame_cache()


def _pose_set(path: Path, numbers: list[int]) -> KeypointSet:
    kp = np.array([[10.0, 10, 2], [30, 20, 2]])
    samples = [Sample(path, 48, 32, [Instance(kp)], i, frame=f) for i, f in enumerate(numbers)]
    return KeypointSet(Skeleton(("a", "b")), samples, path)


def test_cached_frames_are_the_decoded_pixels_and_decoded_once(video, empty_cache):
    path, decoded = video
    numbers = [70, 3, 40, 3, 89, 0, 41]  # unsorted, a repeat
    assert frames.cache_frames([(path, n) for n in numbers]) == 6
    assert frames.cached_bytes() == 6 * 48 * 32 * 3
    assert frames.cache_frames([(str(path), n) for n in numbers]) == 0  # nothing decoded again
    for n in numbers:
        got = read_frame(path, n)
        np.testing.assert_array_equal(got, decoded[n])
        got[:] = 0  # a caller may write its copy; the cache keeps the frame
    np.testing.assert_array_equal(read_frame(path, 70), decoded[70])
    np.testing.assert_array_equal(read_frame(path, 5), decoded[5])  # not cached: decoded


def test_an_edited_video_is_decoded_again(tmp_path, empty_cache):
    path = numbered_video(tmp_path / "clip.mp4", frames=10)
    frames.cache_frames([(path, 4)])
    before = read_frame(path, 4)
    images = [np.full((48, 64, 3), 200 - 10 * i, np.uint8) for i in range(10)]
    write_video(path, images)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # coarse clocks
    after = read_frame(path, 4)
    np.testing.assert_array_equal(after, decoded_frames(path)[4])
    assert not np.array_equal(before, after)


def test_frames_over_the_budget_are_read_from_the_video_with_one_warning(
    video, empty_cache, caplog, monkeypatch
):
    path, decoded = video
    monkeypatch.setattr(frames, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="keypointer"):
        assert frames.cache_frames([(path, n) for n in range(10)], budget_bytes=10_000) == 0
        assert frames.cache_frames([(path, n) for n in range(10)], budget_bytes=10_000) == 0
    warnings = [r.getMessage() for r in caplog.records if "frame cache" in r.getMessage()]
    assert len(warnings) == 1 and "clip.mp4" in warnings[0]
    assert frames.cached_bytes() == 0
    np.testing.assert_array_equal(read_frame(path, 7), decoded[7])


def test_loader_workers_take_the_frames_the_dataset_decoded(video, empty_cache, monkeypatch):
    """The datasets decode their frames when built; forked workers then open no video."""
    from keypointer.codecs.centers import CenterCodec
    from keypointer.codecs.heatmap import HeatmapCodec
    from keypointer.config import LoaderConfig
    from keypointer.data.dataset import KeypointDataset, make_loader
    from keypointer.data.whole_images import WholeImageDataset

    path, _ = video
    kset = _pose_set(path, [60, 2, 33, 88, 2, 17])
    pose = KeypointDataset(kset, HeatmapCodec((48, 32), (12, 8)), (48, 32), train=False)
    located = WholeImageDataset(kset, CenterCodec((64, 64), 4))
    assert frames.cached_bytes() == 5 * 48 * 32 * 3  # frame 2 twice, decoded once

    def no_video(*args, **kwargs):
        raise AssertionError("a video was opened after the frames were cached")

    for dataset in (pose, located):
        expected = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
        with monkeypatch.context() as patch:
            patch.setattr(cv2, "VideoCapture", no_video)
            loader = make_loader(dataset, LoaderConfig(batch_size=4, num_workers=2), train=False)
            got = torch.cat([batch["image"] for batch in loader])
        assert torch.equal(got, expected) and expected.abs().sum() > 0
    assert not pose.bad_images


def test_sleap_sample_frames_from_the_cache_match_the_video(shared_data, empty_cache):
    pytest.importorskip("sleap_io")
    from keypointer.data.dataset import cache_video_frames
    from keypointer.data.formats import load_dataset

    kset = load_dataset(shared_data / "sleap-samples/hdf5_format_v1/centered_pair_predictions.slp")
    part = kset.subset(range(0, 400, 7))
    assert cache_video_frames(part) == len(part)
    reference = decoded_frames(part.samples[0].image, limit=400)
    for sample in part.samples:
        np.testing.assert_array_equal(sample.read(), reference[sample.frame])
