"""Helpers several test modules share (importable as ``helpers``: pytest puts ``tests/`` on
``sys.path`` for its conftest.py)."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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


def exit_code(stop: SystemExit) -> int:
    """The process exit status ``sys.exit(code)`` gives: None is 0, a message is 1."""
    if stop.code is None or isinstance(stop.code, int):
        return int(stop.code or 0)
    return 1


def cli(*args: object) -> int:
    """Run ``keypointer ARGS...`` in this process; its exit code (0 when it returned)."""
    from keypointer.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as stop:
        return exit_code(stop)
    return 0


@dataclass
class CliResult:
    """What a ``keypointer`` command left: exit code, stdout, stderr."""

    code: int
    out: str
    err: str


def cli_captured(capsys, *args: object) -> CliResult:
    """:func:`cli` with what it printed (pytest's ``capsys``; earlier output is dropped)."""
    capsys.readouterr()
    code = cli(*args)
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


def cli_subprocess(*args: object, timeout: float = 300, cwd: Path | None = None) -> CliResult:
    """Run ``python -m keypointer ARGS...`` as a user would (its own process)."""
    proc = subprocess.run(
        [sys.executable, "-m", "keypointer", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def write_video(
    path: Path,
    images: Sequence[np.ndarray],
    fps: float = 10.0,
    fourcc: str = "mp4v",
    api: int = cv2.CAP_ANY,
) -> Path:
    """A video of ``images`` (BGR, all of one size), its folder made. ``api`` picks OpenCV's
    writer (``cv2.CAP_OPENCV_MJPEG`` keeps odd sizes, FFmpeg's cuts them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), api, cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} here"
    for image in images:
        writer.write(image)
    writer.release()
    return path


def noise_images(frames: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """``frames`` images of uniform random pixels, ``size`` (width, height): no two alike."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (size[1], size[0], 3), np.uint8) for _ in range(frames)]


def numbered_video(
    path: Path,
    frames: int = 20,
    fourcc: str = "mp4v",
    fps: float = 10.0,
    size: tuple[int, int] = (64, 48),
) -> Path:
    """A small video whose frame i is grey level 10 i (mod 256) with the number i drawn on it
    (tells frames apart when read back); its folder is made."""
    images = []
    for i in range(frames):
        image = np.full((size[1], size[0], 3), (10 * i) % 256, np.uint8)
        cv2.putText(image, str(i), (4, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2)
        images.append(image)
    return write_video(path, images, fps, fourcc)


def frame_count(path: Path) -> int:
    """How many frames OpenCV grabs from a video, read to the end."""
    cap = cv2.VideoCapture(str(path))
    count = 0
    while cap.grab():
        count += 1
    cap.release()
    return count


def decoded_frames(path: Path, limit: int | None = None) -> list[np.ndarray]:
    """Every frame of a video (the first ``limit``) as plain ``cv2.VideoCapture.read`` gives
    it (RGB): the reference that streaming readers are compared with."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while limit is None or len(frames) < limit:
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


# The smallest training that still runs the whole pipeline: 64 px inputs, batches of 4, no
# loader workers (starting them costs more than the steps), no held-out images, one epoch.
TINY_TRAINING = (
    "model.input_size=[64,64]",
    "loader.batch_size=4",
    "loader.num_workers=0",
    "data.val_fraction=0",
    "train.epochs=1",
)
# ... and the smallest locator, trained for two steps (labels with crowds).
TINY_LOCATOR = (
    "locator.backbone=mobilenetv3_small_050",
    "locator.input_size=64",
    "locator.channels=16",
    "locator.batch_size=4",
    "locator.steps=2",
)


def tiny_overrides(data: Path, root: Path, *extra: str, **train: object) -> list[str]:
    """``--set`` items of a quiet TINY_TRAINING run on ``data`` whose folder goes under
    ``root``; ``extra`` items (e.g. TINY_LOCATOR) and ``train.KEY=VALUE`` for each keyword
    come last, so they win."""
    return [
        f"data.path={data}",
        f"run.root={root}",
        "run.quiet=true",
        *TINY_TRAINING,
        *extra,
        *(f"train.{key}={value}" for key, value in train.items()),
    ]


def tiny_config(data: Path, root: Path, *extra: str, **train: object):
    """The Config of :func:`tiny_overrides`, e.g. ``tiny_config(data, tmp_path, epochs=2)``."""
    from keypointer.config import load_config

    return load_config(None, tiny_overrides(data, root, *extra, **train))


def set_options(overrides: Iterable[str]) -> list[str]:
    """``["--set", item, ...]``: overrides as ``keypointer train`` command-line options."""
    return [arg for item in overrides for arg in ("--set", item)]


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    """The rows of a run folder's metrics.csv (one per epoch), values as written."""
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def run_folders(root: Path) -> list[Path]:
    """Every run folder (``<root>/<name>/<time>/``) under ``root``."""
    return [p for p in root.glob("*/*") if p.is_dir()] if root.exists() else []


def synthetic_tracks(
    num_frames: int = 900,
    num_keypoints: int = 6,
    fps: float = 30.0,
    seed: int = 0,
    noise_px: float = 1.5,
    spike_rate: float = 0.005,
    low_rate: float = 0.01,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(truth (T, K, 2), measured (T, K, 2), scores (T, K), times (T,)).

    Truth: per keypoint and axis, three sinusoids of 0.1 to 1.5 Hz, 10 to 40 px each. Measured:
    truth + Gaussian noise of std ``noise_px`` / score (scores 0.6 to 1); ``spike_rate`` of the
    points jump 20 to 60 px away for one frame (scores stay high, as a confident
    mislocalisation does); low-score stretches of 1 to 20 frames start at ``low_rate`` per
    frame, with scores 0.05 to 0.25 and 10 px noise."""
    rng = np.random.default_rng(seed)
    t, k = num_frames, num_keypoints
    times = np.arange(t) / fps
    freq = rng.uniform(0.1, 1.5, (3, k, 2))
    amp = rng.uniform(10, 40, (3, k, 2))
    phase = rng.uniform(0, 2 * np.pi, (3, k, 2))
    waves = amp * np.sin(2 * np.pi * freq * times[:, None, None, None] + phase)
    truth = 200 + waves.sum(1)
    scores = rng.uniform(0.6, 1.0, (t, k))
    noise_std = noise_px / scores
    for j in range(k):
        for s in np.flatnonzero(rng.random(t) < low_rate):
            stop = s + rng.integers(1, 21)
            scores[s:stop, j] = rng.uniform(0.05, 0.25, len(scores[s:stop, j]))
            noise_std[s:stop, j] = 10.0
    xy = truth + rng.normal(0, 1, truth.shape) * noise_std[..., None]
    spikes = rng.random((t, k)) < spike_rate
    angle = rng.uniform(0, 2 * np.pi, spikes.sum())
    xy[spikes] += rng.uniform(20, 60, spikes.sum())[:, None] * np.stack(
        [np.cos(angle), np.sin(angle)], -1
    )
    return truth, xy, scores, times


def track_metrics(est: np.ndarray, truth: np.ndarray, max_shift: int = 5) -> dict[str, float]:
    """Mean error (px), jitter (RMS of the frame-to-frame displacement minus the truth's own,
    px per frame) and lag (the shift in frames, est[t] vs truth[t - lag], of least mean error)
    over the frames where ``est`` has values."""
    err = np.linalg.norm(est - truth, axis=-1)
    step = np.diff(est, axis=0) - np.diff(truth, axis=0)
    jitter = np.sqrt(np.nanmean(np.sum(step**2, axis=-1)))
    t = len(est)
    shifts = range(-max_shift, max_shift + 1)
    errs = [
        np.nanmean(
            np.linalg.norm(
                est[max_shift : t - max_shift] - truth[max_shift - s : t - max_shift - s], axis=-1
            )
        )
        for s in shifts
    ]
    return {
        "error": float(np.nanmean(err)),
        "jitter": float(jitter),
        "lag": int(list(shifts)[int(np.argmin(errs))]),
        "covered": float(np.isfinite(err).mean()),
    }
