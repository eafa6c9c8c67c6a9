"""Helpers several test modules share (importable as ``helpers``: pytest puts ``tests/`` on
``sys.path`` for its conftest.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

# The same model's keypoints computed two ways (a batch of 1 against one of N, ONNX Runtime
# against PyTorch, another CPU's kernels) differ by float32 rounding: up to ~1e-3 px after
# heatmap decoding (0.00115 px measured between batches of 1 and 16 on one machine). These
# leave ~10x room and still catch a real error (a keypoint off by a pixel, flipped, shifted).
KP_ATOL_PX = 0.01
SCORE_ATOL = 1e-3


class FakeClock:
    """Stands in for ``time.perf_counter`` (``monkeypatch.setattr(time, "perf_counter",
    clock)``): time passes only where a test moves it on, so a time budget's arithmetic is
    tested the same on a fast, a slow or a loaded machine."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def ticking(self, fn, seconds: float):
        """``fn`` that moves the clock on by ``seconds`` each call (e.g. a training step)."""

        def timed(*args, **kwargs):
            self.now += seconds
            return fn(*args, **kwargs)

        return timed


def cli(*args: object) -> int:
    """Run ``keypointer ARGS...`` in this process; its exit code (0 when it returned)."""
    from keypointer.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exit:
        return int(exit.code or 0)
    return 0


def numbered_video(
    path: Path,
    frames: int = 20,
    fourcc: str = "mp4v",
    fps: float = 10.0,
    size: tuple[int, int] = (64, 48),
) -> Path:
    """A small video whose frame i is grey level 10 i (mod 256) with the number i drawn on it
    (tells frames apart when read back); its folder is made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} here"
    for i in range(frames):
        image = np.full((size[1], size[0], 3), (10 * i) % 256, np.uint8)
        cv2.putText(image, str(i), (4, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2)
        writer.write(image)
    writer.release()
    return path


def frame_count(path: Path) -> int:
    """How many frames OpenCV grabs from a video, read to the end."""
    cap = cv2.VideoCapture(str(path))
    count = 0
    while cap.grab():
        count += 1
    cap.release()
    return count


def decoded_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a video as plain ``cv2.VideoCapture.read`` gives it (RGB): the
    reference that streaming readers are compared with."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def tiny_locator_config(**locator):
    """A default Config with the smallest locator that trains in seconds (float32: the same
    numbers on every CPU), ``locator`` fields set on top."""
    from keypointer.config import Config

    cfg = Config()
    cfg.locator.backbone = "mobilenetv3_small_050"
    cfg.locator.input_size = 128
    cfg.locator.channels = 16
    cfg.locator.batch_size = 4
    cfg.train.amp = "off"
    for k, v in locator.items():
        setattr(cfg.locator, k, v)
    return cfg
