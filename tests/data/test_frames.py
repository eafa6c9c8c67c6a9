"""Frames of videos as images: exact frames in any order, from any thread; clear errors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import decoded_frames, noise_images, write_video

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
