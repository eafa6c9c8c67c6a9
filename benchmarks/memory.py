"""Memory over a long run: resident memory per epoch of ``keypointer.train`` on synthetic data.

    .venv/bin/python benchmarks/memory.py                  # 20 epochs, ~2 min on 2 cores
    .venv/bin/python benchmarks/memory.py --epochs 6 --images 16 --size 64 --json

Trains in this process while a background thread samples the resident set size (VmRSS of
this process and of its children, such as DataLoader workers) every 20 ms. Each sample is
put in the epoch that is running: one more than the number of "epoch N: ..." lines that
training has printed (the last thing it does in an epoch, after validation, checkpoints,
metrics.csv and curves.png), counted on their way to stderr. Epoch 1 holds the first-time
allocations (optimizer state, the first validation, checkpoint and plot). ``growth`` is the peak of
the last epoch over the peak of epoch 1, minus one; ``growth_from_2`` the same over epoch 2;
``worst`` the highest later epoch over epoch 1; ``slope`` a least-squares fit of the
per-epoch peaks from epoch 2 on, in MiB per epoch. A leak shows as a steady slope.
Prints markdown for benchmarks/RESULTS.md, or JSON with --json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

from keypointer.malloc import tune_malloc

tune_malloc()  # first: before torch allocates; see keypointer/malloc.py

# isort: split
import numpy as np
import torch

from keypointer.config import load_config
from keypointer.data.synthetic import generate
from keypointer.training.loop import train

MIB = 1024 * 1024


def rss_bytes(pid: int | str = "self") -> int:
    """VmRSS of one process, 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def children(pid: int | str = "self") -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found + [g for c in found for g in children(c)]


def total_rss() -> int:
    return rss_bytes() + sum(rss_bytes(c) for c in children())


class EpochCounter(io.TextIOBase):
    """A stderr that passes everything on and counts the "epoch N: ..." lines going by."""

    def __init__(self, stream):
        self.stream, self.done = stream, 0

    def write(self, text: str) -> int:
        self.done += len(re.findall(r"^epoch \d+: ", text, re.MULTILINE))
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


class Sampler(threading.Thread):
    """Samples total_rss() every ``interval`` s into ``peaks[epoch]``, the running epoch."""

    def __init__(self, counter: EpochCounter, interval: float = 0.02):
        super().__init__(daemon=True)
        self.counter, self.interval = counter, interval
        self.peaks: dict[int, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            e, rss = self.counter.done + 1, total_rss()
            self.peaks[e] = max(self.peaks.get(e, 0), rss)
            time.sleep(self.interval)


def measure(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        data = generate(Path(tmp) / "data", num_images=args.images, seed=0, size=args.size)
        root = Path(tmp) / "runs"
        cfg = load_config(None, [
            f"data.path={data}", "data.val_fraction=0.25", f"run.root={root}", "run.quiet=true",
            f"model.input_size=[{args.input}, {args.input}]", f"train.epochs={args.epochs}",
            f"loader.batch_size={args.batch}", f"loader.num_workers={args.workers}",
        ])  # fmt: skip
        counter = EpochCounter(sys.stderr)
        sampler = Sampler(counter)
        start_rss = total_rss()
        t0 = time.perf_counter()
        sampler.start()
        with contextlib.redirect_stderr(counter):
            run = train(cfg)
        sampler.stop.set()
        sampler.join()
        seconds = time.perf_counter() - t0
    # The last samples can fall after the last epoch's line (epoch N + 1): they are epoch N.
    peaks = dict(sampler.peaks)
    if args.epochs + 1 in peaks:
        peaks[args.epochs] = max(peaks.get(args.epochs, 0), peaks.pop(args.epochs + 1))
    per_epoch = [peaks.get(e, 0) / MIB for e in range(1, args.epochs + 1)]
    first, later = per_epoch[0], per_epoch[1:] or per_epoch
    slope = float(np.polyfit(np.arange(len(later)), later, 1)[0]) if len(later) > 1 else 0.0
    return {
        "epochs": args.epochs,
        "seconds": round(seconds, 1),
        "start_mib": round(start_rss / MIB, 1),
        "per_epoch_peak_mib": [round(v, 1) for v in per_epoch],
        "growth": per_epoch[-1] / first - 1,
        "growth_from_2": per_epoch[-1] / later[0] - 1,
        "worst": max(later) / first - 1,
        "slope_mib_per_epoch": slope,
        "final_loss": run.metrics[-1]["train_loss"],
    }


def markdown(r: dict, args: argparse.Namespace) -> str:
    peaks = r["per_epoch_peak_mib"]
    lines = [
        f"`benchmarks/memory.py` ({args.epochs} epochs; {args.images} synthetic images of "
        f"{args.size} px, input {args.input}, batch {args.batch}, {args.workers} workers, "
        f"regnetx_002 heatmap, CPU). Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {r['seconds']} s.",
        "",
        "| epoch | " + " | ".join(str(e) for e in range(1, len(peaks) + 1)) + " |",
        "|---|" + "---:|" * len(peaks),
        "| peak RSS MiB | " + " | ".join(f"{v:.0f}" for v in peaks) + " |",
        "",
        f"RSS before training {r['start_mib']:.0f} MiB. Last epoch vs epoch 1: "
        f"**{100 * r['growth']:+.2f}%**; vs epoch 2: {100 * r['growth_from_2']:+.2f}%; highest "
        f"later epoch vs epoch 1: {100 * r['worst']:+.2f}%; trend from epoch 2 on: "
        f"{r['slope_mib_per_epoch']:+.2f} MiB/epoch.",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--size", type=int, default=128, help="synthetic image side, px")
    p.add_argument("--input", type=int, default=128, help="model input side, px")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    args = p.parse_args()
    result = measure(args)
    print(json.dumps(result) if args.json else markdown(result, args))


if __name__ == "__main__":
    main()
