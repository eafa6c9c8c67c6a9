"""Streaming video prediction against the same model on frames already in memory; memory growth.

    .venv/bin/python benchmarks/video.py              # prints the figures (~20 min, 2 cores)
    .venv/bin/python benchmarks/video.py --write      # and a markdown section at the end

The video is lp-mirror-mouse's ``videos/test_vid.mp4`` (994 frames of 396x406, H.264, 250 fps).
The model is the one ``keypointer train`` builds for lp-mirror-mouse on a CPU: the default
config (regnetx_002, FPN-lite heatmap head, DARK decoding) with the recipe's input size
(``keypointer.training.recipe.plan`` on the data: 192x192), K = 17, random weights (speed does
not depend on them), saved as a checkpoint, and its ONNX export.

- **in memory**: every frame decoded into a list first (not timed), then
  ``pipeline.predict(frames[i : i + batch])`` batch after batch: letterbox crops, the
  model, keypoints mapped back to the frames. The pipeline is the one ``predict`` loads.
- **streaming**: ``predict_command(model, [video], out, draw=False)``, timed whole: loading
  the model, reading the video (in a background thread), predicting, writing the JSON and
  CSV files; and the frames/s of its own last line, counted from the first frame (without
  loading the model). The ratio of the whole call to in memory is a lower bound.

Each is timed ``--repeats`` times, interleaved (this machine is shared). Reported: the best
run of each and their ratio; the median of the per-run ratios (a streaming run and the
in-memory run just before it see about the same load); the best CPU time of each (all
threads of the process: what streaming costs on top, whatever the other jobs do). Memory:
``predict_command`` on a 1,000-frame and a 10,000-frame video (the clip looped, written as
mp4v into a temporary folder), each in a fresh subprocess; the growth of the
most resident memory while predicting (sampled every 20 ms) between the two says what is
kept per frame. The process's peak (ru_maxrss) is shown too, but it includes importing this
script's export and training modules. Decoding: the
clip decoded to RGB arrays by OpenCV and, when it is installed, by PyAV (not a dependency).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from keypointer.malloc import tune_malloc

tune_malloc()  # first: before torch allocates; see keypointer/malloc.py

# isort: split
import cv2
import numpy as np
import torch

import keypointer.commands.predict as predict_module
from keypointer.checkpoint import save_checkpoint
from keypointer.commands.predict import predict_command
from keypointer.config import load_config
from keypointer.export import OnnxModel, export_onnx
from keypointer.inference.pipeline import Pipeline, load_pipeline
from keypointer.inference.video import iter_video
from keypointer.models.model import build_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "lp-mirror-mouse"
VIDEO = DATA / "videos" / "test_vid.mp4"


def recipe_model(folder: Path, input_size: tuple[int, int] | None) -> tuple[Path, Path, tuple]:
    """The default model for lp-mirror-mouse (input size from the recipe), as a checkpoint
    and as ONNX; returns (checkpoint, onnx, input size)."""
    from keypointer.training.loaders import split_data
    from keypointer.training.recipe import plan

    cfg = load_config(None, [f"data.path={DATA}"])
    train_set, _ = split_data(cfg)
    if input_size is None:
        plan(cfg, train_set, "cpu")
    else:
        cfg.model.input_size = input_size
    torch.manual_seed(0)
    model = build_model(cfg, train_set.skeleton.num_keypoints, pretrained=False).eval()
    model.skeleton, model.config = train_set.skeleton, cfg
    checkpoint = folder / "best.pt"
    state = {"config": cfg.to_dict(), "skeleton": train_set.skeleton.to_dict()}
    save_checkpoint({**state, "model": model.state_dict()}, checkpoint)
    onnx = folder / "best.onnx"
    export_onnx(model, onnx, exporter="torchscript")
    return checkpoint, onnx, tuple(cfg.model.input_size)


def make_runner(path: Path, threads: int, **options) -> Pipeline:
    """What ``predict`` loads for ``path``, with ``threads`` intra-op threads for ORT (torch's
    are set globally)."""
    if path.suffix == ".onnx":
        return Pipeline(OnnxModel(path, threads=threads), source=str(path), **options)
    return load_pipeline(path, "cpu", **options)


def timed(fn, *args) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all threads) of ``fn(*args)``."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, t0 = usage.ru_utime + usage.ru_stime, time.perf_counter()
    fn(*args)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter() - t0, usage.ru_utime + usage.ru_stime - cpu0


def in_memory(runner, frames: list, batch: int) -> None:
    """Predict the decoded ``frames``, ``batch`` at a time."""
    for i in range(0, len(frames), batch):
        runner.predict(frames[i : i + batch])


def streaming(path: Path, video: Path, out: Path, batch: int, said: list[float]) -> None:
    """One whole ``predict_command`` on ``video``; appends the frames/s its last line says
    (counted from the first frame: without loading the model) to ``said``."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
        predict_command(path, [video], out, batch_size=batch, draw=False, device="cpu")
    said.append(float(re.search(r"([\d.]+) frames/s", printed.getvalue()).group(1)))


def speed(models: dict, args: argparse.Namespace, folder: Path) -> list[tuple]:
    """Per model: (name, in-memory frames/s, streaming frames/s, their CPU ms per frame)."""
    frames = [f.image for f in iter_video(VIDEO)]
    n, rows = len(frames), []
    for name, path in models.items():
        runner = make_runner(path, args.threads)
        # predict_command loads its runner itself; give ORT the same thread count.
        predict_module.load_pipeline = lambda p, device, t=args.threads, **o: make_runner(
            Path(p), t, **o
        )
        in_memory(runner, frames[: 2 * args.batch], args.batch)  # warm-up
        best = np.full((2, 2), np.inf)  # (in memory, streaming) x (wall, CPU)
        said: list[float] = []
        pairs = []  # per run: streaming / in memory, whole call and own line
        for r in range(args.repeats):
            a = timed(in_memory, runner, frames, args.batch)
            b = timed(streaming, path, VIDEO, folder / f"o-{name}-{r}", args.batch, said)
            best = np.minimum(best, [a, b])
            pairs.append((a[0] / b[0], said[-1] * a[0] / n))
            print(
                f"  {name} run {r}: in memory {n / a[0]:.1f} frames/s ({a[1] / n * 1e3:.1f} "
                f"CPU ms/frame), streaming {n / b[0]:.1f} frames/s ({b[1] / n * 1e3:.1f}; "
                f"its own line: {said[-1]:.1f} frames/s)",
                flush=True,
            )
        median = np.median(pairs, axis=0)
        rows.append((name, n / best[0, 0], n / best[1, 0], max(said), *median,
                     *(best[:, 1] / n * 1e3)))  # fmt: skip
    return rows


def decoding(repeats: int) -> list[tuple[str, float]]:
    """Frames/s of decoding the clip to RGB arrays: OpenCV, and PyAV when it is installed
    (it is not a dependency: ``pip install av`` to measure it)."""
    rows = []

    def opencv(convert: bool) -> int:
        cap, n = cv2.VideoCapture(str(VIDEO)), 0
        while cap.grab():
            if convert:
                cv2.cvtColor(cap.retrieve()[1], cv2.COLOR_BGR2RGB)
            n += 1
        return n

    def pyav(thread_type: str, fmt: str) -> int:
        import av

        n = 0
        with av.open(str(VIDEO)) as container:
            stream = container.streams.video[0]
            stream.thread_type = thread_type
            for frame in container.decode(stream):
                if fmt == "rgb24":
                    frame.to_ndarray(format="rgb24")
                else:  # FFmpeg's own YUV -> RGB is the slow part; OpenCV's is faster
                    cv2.cvtColor(frame.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2RGB_I420)
                n += 1
        return n

    cases = [("OpenCV read (grab + retrieve) + BGR->RGB", lambda: opencv(True)),
             ("OpenCV grab only (decode, no conversion)", lambda: opencv(False))]  # fmt: skip
    try:
        import av

        for tt in ("AUTO", "SLICE"):
            cases.append((f"PyAV {av.__version__} {tt} threads, to_ndarray rgb24",
                          lambda tt=tt: pyav(tt, "rgb24")))  # fmt: skip
            cases.append((f"PyAV {av.__version__} {tt} threads, yuv420p + OpenCV YUV->RGB",
                          lambda tt=tt: pyav(tt, "yuv")))  # fmt: skip
    except ImportError:
        print("  PyAV is not installed: only OpenCV measured")
    best = [float("inf")] * len(cases)
    for _ in range(repeats):  # interleaved: all see the same load
        for i, (_, fn) in enumerate(cases):
            t0 = time.perf_counter()
            n = fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    for (name, _), seconds in zip(cases, best, strict=True):
        rows.append((name, n / seconds))
        print(f"  {name}: {n / seconds:.0f} frames/s", flush=True)
    return rows


def looped_video(path: Path, frames: int) -> Path:
    """``frames`` frames of the clip, looped, as mp4v."""
    cap = cv2.VideoCapture(str(VIDEO))
    clip = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        clip.append(bgr)
    h, w = clip[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 250, (w, h))
    for i in range(frames):
        writer.write(clip[i % len(clip)])
    writer.release()
    return path


def child_rss(model: Path, video: Path, out: Path, args: argparse.Namespace) -> list[float]:
    """MB resident in a fresh process predicting ``video``: before, the most while predicting
    (sampled every 20 ms), the process's peak (ru_maxrss)."""
    cmd = [sys.executable, __file__, "--child", str(model), str(video), str(out)]
    cmd += ["--threads", str(args.threads), "--batch", str(args.batch)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return [float(v) for v in proc.stdout.strip().splitlines()[-1].split()]


def memory(models: dict, args: argparse.Namespace, folder: Path) -> list[tuple]:
    short = looped_video(folder / "short.mp4", 1000)
    long = looped_video(folder / "long.mp4", 10000)
    rows = []
    for name, path in models.items():
        a = child_rss(path, short, folder / f"mem-{name}-short", args)
        b = child_rss(path, long, folder / f"mem-{name}-long", args)
        print(
            f"  {name}: resident before / most while predicting / process peak: "
            f"1,000 frames {a[0]:.0f} / {a[1]:.0f} / {a[2]:.0f} MB, "
            f"10,000 frames {b[0]:.0f} / {b[1]:.0f} / {b[2]:.0f} MB",
            flush=True,
        )
        rows.append((name, a, b))
    return rows


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(argv: list[str], args: argparse.Namespace) -> None:
    model, video, out = map(Path, argv)
    predict_module.load_pipeline = lambda p, device, **o: make_runner(Path(p), args.threads, **o)
    before, most, done = resident_mb(), [0.0], threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            most[0] = max(most[0], resident_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with contextlib.redirect_stdout(io.StringIO()):
        predict_command(model, [video], out, batch_size=args.batch, draw=False, device="cpu")
    done.set()
    sampler.join()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{before:.1f} {max(most[0], resident_mb()):.1f} {peak:.1f}")


def markdown(rows: list, mem: list, decoders: list, head: str) -> str:
    lines = [
        head,
        "",
        "| model | in memory frames/s | streaming frames/s, whole call (predict's own line) "
        "| ratio of the bests, whole call (own line) "
        "| median ratio of adjacent runs, whole call (own line) "
        "| CPU ms/frame in memory | CPU ms/frame streaming |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, a, b, own, med_b, med_own, cpu_a, cpu_b in rows:
        lines.append(
            f"| {name} | {a:.1f} | {b:.1f} ({own:.1f}) | {b / a:.3f} ({own / a:.3f}) "
            f"| {med_b:.3f} ({med_own:.3f}) | {cpu_a:.1f} | {cpu_b:.1f} |"
        )
    lines += [
        "",
        "| model | resident MB: before / most while predicting / process peak, 1,000 frames "
        "| same, 10,000 frames | growth of the most while predicting |",
        "|---|---|---|---|",
    ]
    for name, a, b in mem:
        lines.append(
            f"| {name} | {a[0]:.0f} / {a[1]:.0f} / {a[2]:.0f} | {b[0]:.0f} / {b[1]:.0f} / "
            f"{b[2]:.0f} | {b[1] - a[1]:+.1f} MB |"
        )
    lines += ["", "| decoding the clip to RGB arrays (best run) | frames/s |", "|---|---|"]
    lines += [f"| {name} | {fps:.0f} |" for name, fps in decoders]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parser.add_argument("--threads", type=int, default=cores)
    parser.add_argument("--batch", type=int, default=16, help="predict's default batch")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each; the best counts")
    parser.add_argument("--input-size", type=int, nargs=2, default=None, help="skip the recipe")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--write", action="store_true", help="print a markdown section")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        return child(args.child, args)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"start: {uptime}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        checkpoint, onnx, size = recipe_model(folder, args.input_size)
        models = {"checkpoint": checkpoint, "onnx": onnx}
        decoders = decoding(args.repeats)
        rows = speed(models, args, folder)
        mem = [] if args.no_memory else memory(models, args, folder)
    end = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"end: {end}")
    head = (
        f"Machine: {platform.processor() or platform.machine()}, {cores} cores, "
        f"{args.threads} threads, torch {torch.__version__}, OpenCV {cv2.__version__}; "
        f"model input {size[0]}x{size[1]}, batch {args.batch}. Load at the start: "
        f"`{uptime}`; at the end: `{end}`. Command: "
        f"`OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')} .venv/bin/python "
        f"benchmarks/video.py {' '.join(sys.argv[1:])}`."
    )
    if args.write:
        print()
        print(markdown(rows, mem, decoders, head))


if __name__ == "__main__":
    main()
