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
