"""Helpers several test modules share (importable as ``helpers``: pytest puts ``tests/`` on
``sys.path`` for its conftest.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


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
