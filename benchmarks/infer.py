"""Inference benchmark: PyTorch eager against ONNX Runtime on the CPU, default model.

    .venv/bin/python benchmarks/infer.py            # prints a markdown table (~3 min, 2 cores)
    .venv/bin/python benchmarks/infer.py --write    # also replaces "## Inference" in RESULTS.md

The default config's model (regnetx_002 + FPN-lite heatmap head + DARK decoding, K = 17),
random weights (speed does not depend on them), at 128x128 (the default input) and 256x256,
batch 1 and 32. Eager: ``model.predict(x)`` (``torch.inference_mode``, fp32, normalised NCHW
input, decoding included). ONNX Runtime: the ``keypointer export`` graph (normalisation and
decoding inside), CPU execution provider, ``ORT_ENABLE_ALL``, ``intra_op_num_threads`` =
``--threads``. Both use ``--threads`` threads; with `OMP_WAIT_POLICY=PASSIVE` ORT's threads
do not spin either. Latency: minimum and median of ``--repeats`` timed calls (eager and ORT
interleaved) after warm-up calls; on a shared machine the minimum is the figure to compare;
images/s = batch / minimum latency.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from keypointer.malloc import tune_malloc

tune_malloc()  # first: before torch allocates; see keypointer/malloc.py

# isort: split
import numpy as np
import torch
from _results import RESULTS, write_section

from keypointer.config import Config
from keypointer.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from keypointer.export import OnnxModel, export_onnx
from keypointer.models.model import build_model
from keypointer.skeleton import Skeleton

NOTES = """\
Target (issue 5): ONNX Runtime >= 1.5x eager at batch 1. At batch 1 the model is small enough
that per-operator framework overhead dominates, which ONNX Runtime (one static graph, BatchNorm
and ReLU fused into the convolutions) removes. At batch 32 the work is compute-bound and the
two are about even. ORT's weak spot is the head's 4x4/2 deconvolution (ORT profile, 128 px,
batch 32: ConvTranspose ~25% of ORT's time; its CPU kernel is col2im-based). Rewriting it as
sub-pixel convolutions (exact) did not help ORT: a 3x3 conv to 4C channels + depth-to-space
does 2.25x the FLOPs, and four 2x2 phase convs + interleave ran 45% slower in all.

Shared machine: other jobs used both cores during these runs. libgomp's worker threads
spin-wait by default, so a 2-thread PyTorch forward stalls whenever another process holds a
core (batch 1: 1.6 s instead of 15 ms at worst); ONNX Runtime's own pool spins less harmfully.
The table is measured with `OMP_WAIT_POLICY=PASSIVE` (PyTorch) and ORT's spinning off,
which removes that stall for both; with the defaults ORT's speed-up read 7-14x at batch 1."""


def timed(fns: list[Callable[[], object]], warmup: int, repeats: int) -> list[tuple[float, float]]:
    """(median, min) seconds per call of each function, their calls interleaved so that all
    see the same machine load (this machine is shared: see the notes in the docstring)."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, t in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            t.append(time.perf_counter() - t0)
    return [(statistics.median(t), min(t)) for t in times]


def build(size: int, exporter: str, folder: Path) -> tuple[torch.nn.Module, OnnxModel, dict]:
    cfg = Config()
    cfg.model.input_size = (size, size)
    torch.manual_seed(0)
    model = build_model(cfg, 17, pretrained=False).eval()
    model.skeleton, model.config = Skeleton.coco_body(), cfg
    path = folder / f"model{size}-{exporter}.onnx"
    report = export_onnx(model, path, exporter=exporter)
    return model, path, report


def bench_size(size: int, batches: list[int], args: argparse.Namespace, folder: Path) -> list:
    model, path, report = build(size, args.exporter, folder)
    # Like for like: when PyTorch's OpenMP threads sleep instead of spinning, so do ORT's.
    passive = os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"
    session = OnnxModel(path, threads=args.threads, spin=False if passive else None)
    mean = np.array(IMAGENET_MEAN, np.float32).reshape(1, 3, 1, 1) * 255
    std = np.array(IMAGENET_STD, np.float32).reshape(1, 3, 1, 1) * 255
    rows = []
    for batch in batches:
        raw = np.random.default_rng(batch).uniform(0, 255, (batch, 3, size, size)).astype("f4")
        x = torch.from_numpy((raw - mean) / std)
        repeats = args.repeats if batch == 1 else max(3, args.repeats // 4)
        eager, ort = timed(
            [lambda x=x: model.predict(x), lambda raw=raw: session.run(raw)], args.warmup, repeats
        )
        rows.append((size, batch, eager, ort))
        print(
            f"  {size}px batch {batch}: eager {eager[0] * 1e3:.1f} ms, ORT {ort[0] * 1e3:.1f} ms "
            f"({eager[0] / ort[0]:.2f}x)",
            flush=True,
        )
    print(f"  export check: max {report['max_diff_px']:.1e} px ({report['exporter']} exporter)")
    return rows


def table(rows: list) -> str:
    lines = [
        "| input | batch | eager ms min (median) | ORT ms min (median) | eager img/s | ORT img/s "
        "| ORT speed-up min (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for size, batch, (em, en), (om, on) in rows:
        lines.append(
            f"| {size}x{size} | {batch} | {en * 1e3:.1f} ({em * 1e3:.1f}) | "
            f"{on * 1e3:.1f} ({om * 1e3:.1f}) | {batch / en:.0f} | {batch / on:.0f} | "
            f"{en / on:.2f}x ({em / om:.2f}x) |"
        )
    return "\n".join(lines)


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import onnxruntime

    return (
        f"{platform.processor() or platform.machine()}, {cores} cores, torch {torch.__version__}, "
        f"onnxruntime {onnxruntime.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=40, help="timed calls at batch 1")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--exporter", default="auto", choices=["auto", "dynamo", "torchscript"])
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            rows += bench_size(size, args.batches, args, Path(tmp))
    body = table(rows)
    print()
    print(body)
    if args.write:
        policy = os.environ.get("OMP_WAIT_POLICY", "default")
        head = (
            f"Machine: {machine()}, {args.threads} threads, OMP_WAIT_POLICY {policy}, "
            f"load average {load:.1f} at the start (other jobs running)."
        )
        command = "`OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/infer.py --write`"
        write_section("Inference", f"{head} Command: {command}.\n\n{body}\n\n{NOTES}")
        print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
