"""The drawn video keeps the input video's size, odd sides included (OpenCV's FFmpeg writer
cuts odd sizes: 33x17 became 32x16; odd sizes go to Motion JPEG .avi instead), and its
frame rate."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import cli, write_video

FRAMES = 6


def odd_video(path: Path, size: tuple[int, int], fps: float = 10.0) -> Path:
    """An odd-sized input: OpenCV's own Motion JPEG writer is the one that keeps odd sides."""
    images = [np.full((size[1], size[0], 3), 30 * i, np.uint8) for i in range(FRAMES)]
    return write_video(path, images, fps, "MJPG", api=cv2.CAP_OPENCV_MJPEG)


def header(path: Path) -> tuple[int, int, int, float]:
    """(width, height, frames read, fps) as cv2 reads the file back."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    sizes, frames = set(), 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        sizes.add(bgr.shape[:2])
        frames += 1
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    assert len(sizes) == 1
    ((height, width),) = sizes
    return width, height, frames, fps


@pytest.mark.parametrize("size", [(33, 17), (64, 17), (33, 48)])
def test_drawn_video_of_an_odd_sized_input_keeps_its_size(checkpoint, tmp_path, size):
    video = odd_video(tmp_path / "clip.avi", size)
    assert header(video)[:3] == (*size, FRAMES)
    out = tmp_path / "out"
    assert cli("predict", checkpoint, video, "--out", out, "--device", "cpu", "--quiet") == 0
    width, height, frames, fps = header(out / "drawn" / "clip.avi")
    assert (width, height, frames) == (*size, FRAMES)
    assert fps == pytest.approx(10.0, rel=1e-3)


@pytest.mark.parametrize("fps", [7.5, 30000 / 1001, 25.0])
def test_odd_sized_drawn_video_keeps_a_fractional_frame_rate(tmp_path, fps):
    """OpenCV's Motion JPEG writer stores whole frames per second (7.5 became 8)."""
    from keypointer.inference.video import DrawnVideo, drawn_suffix

    path = tmp_path / f"drawn{drawn_suffix(33, 17)}"
    video = DrawnVideo(path, fps, (33, 17))
    for i in range(FRAMES):
        video.write(i, np.full((17, 33, 3), 40 * i, np.uint8))
    assert video.close() == path and path.suffix == ".avi"
    width, height, frames, read_fps = header(path)
    assert (width, height, frames) == (33, 17, FRAMES)
    assert read_fps == pytest.approx(fps, rel=1e-4)


def test_even_sizes_stay_mpeg4():
    from keypointer.inference.video import drawn_suffix

    assert drawn_suffix(64, 48) == ".mp4" and drawn_suffix(33, 48) == ".avi"
