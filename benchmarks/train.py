"""Training-step throughput: keypointer's engine against a bare loop written as the seed notes write it.

Same model (the default config's, 256x256, batch 32), same batches already in
memory. Prints samples/s, the ratio, page faults per step, and the share of the
CPU's measured convolution peak. Run: ``.venv/bin/python benchmarks/train.py``.

With ``--compare-malloc`` it runs itself twice in subprocesses, with and without
keypointer's malloc tuning (see keypointer/malloc.py), and prints both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from keypointer.malloc import tune_malloc

tune_malloc()  # first: before torch allocates; see keypointer/malloc.py

# isort: split
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from keypointer.config import Config
from keypointer.device import make_autocast, resolve_amp
from keypointer.models.model import build_model
from keypointer.models.registry import make_codec, make_loss
from keypointer.training import distributed as dist
from keypointer.training.loop import train_one_epoch
from keypointer.training.optim import LRShape
from keypointer.training.progress import TrainProgress
from keypointer.training.schedule import Schedule
from keypointer.training.state import TrainState

K = 17


def make_batches(cfg: Config, n: int, codec) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    w, h = cfg.model.input_size
    b = cfg.loader.batch_size
    batches = []
    for _ in range(n):
        kps = torch.rand(b, K, 2, generator=g) * torch.tensor([w - 1, h - 1])
        vis = torch.ones(b, K, dtype=torch.bool)
        target, weights = codec.encode(kps, vis)
        image = torch.randn(b, 3, h, w, generator=g)
        if cfg.train.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        batches.append({"image": image, "target": target, "weights": weights})
    return batches


def bare_loop(model, batches, optimizer, autocast) -> list[float]:
    """The seed notes' loop: forward, F.mse_loss, zero_grad, backward, step."""
    times = []
    for batch in batches:
        t0 = time.perf_counter()
        with autocast:
            out = model(batch["image"])
        loss = F.mse_loss(out.float(), batch["target"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - t0)
    return times


class _Timed(list):
    """A 'loader' of in-memory batches that records the time between batches (= one step)."""

    def __iter__(self):
        self.times = []
        t0 = time.perf_counter()
        for b in list.__iter__(self):
            yield b
            t1 = time.perf_counter()
            self.times.append(t1 - t0)
            t0 = t1


def engine_loop(model, batches, optimizer, cfg, autocast) -> list[float]:
    loader = _Timed(batches)
    sched = torch.optim.lr_scheduler.ConstantLR(optimizer, 1.0, total_iters=0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    progress = TrainProgress(len(batches), quiet=True, enabled=False)
    loss_fn = make_loss(cfg, reduction="keypoint_sum")
    device = torch.device("cpu")
    data = SimpleNamespace(train_loader=loader, loss_fn=loss_fn)  # only what the loop reads
    schedule = Schedule(LRShape(cfg.train, len(batches), len(batches)))  # every batch once
    state = TrainState(
        cfg=cfg, device=device, info=dist.DistInfo(), data=data, model=model, wrapped=model,
        optimizer=optimizer, scheduler=sched, scaler=scaler, ema=None, autocast=autocast,
        schedule=schedule, progress=progress, run_dir=Path("."),
    )  # fmt: skip
    train_one_epoch(state, 0)
    return loader.times


def conv_peak_gflops(channels_last: bool, dtype: torch.dtype | None) -> float:
    """Forward+backward FLOP/s of a large 3x3 convolution: the CPU's practical peak."""
    conv = torch.nn.Conv2d(128, 128, 3, padding=1)
    x = torch.randn(32, 128, 64, 64, requires_grad=True)
    if channels_last:
        conv = conv.to(memory_format=torch.channels_last)
        x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    flops = 3 * 2 * 128 * 128 * 9 * 32 * 64 * 64  # forward + two backward convolutions
    times = []
    for _ in range(4):
        t0 = time.perf_counter()
        with make_autocast(torch.device("cpu"), dtype):
            y = conv(x)
        y.float().sum().backward()
        times.append(time.perf_counter() - t0)
    return flops / min(times[1:]) / 1e9


def step_flops(model, batch, autocast) -> float:
    with FlopCounterMode(display=False) as counter:
        with autocast:
            out = model(batch["image"])
        out.float().sum().backward()
    return float(counter.get_total_flops())


def measure(args) -> dict:
    cfg = Config()
    cfg.model.input_size = (args.size, args.size)
    cfg.loader.batch_size = args.batch
    cfg.train.amp = args.amp
    cfg.train.device = "cpu"
    dtype = resolve_amp(cfg.train.amp, torch.device("cpu"))
    autocast = make_autocast(torch.device("cpu"), dtype)
    codec = make_codec(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, K, codec)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    batches = make_batches(cfg, args.steps, codec)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    bare_loop(model, batches[:2], opt, autocast)  # warm-up: allocator and oneDNN caches
    out = {
        "size": args.size,
        "batch": args.batch,
        "amp": args.amp,
        "threads": torch.get_num_threads(),
    }
    fault0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    bare, ours = [], []
    for _ in range(args.rounds):  # interleaved, so load changes hit both alike
        bare += bare_loop(model, batches, opt, autocast)
        ours += engine_loop(model, batches, opt, cfg, autocast)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - fault0
    out["bare_s"] = statistics.median(bare)
    out["engine_s"] = statistics.median(ours)
    out["faults_per_step"] = faults / (len(bare) + len(ours))
    out["step_gflop"] = step_flops(model, batches[0], autocast) / 1e9
    out["peak_gflops"] = conv_peak_gflops(cfg.train.channels_last, dtype)
    return out


def report(r: dict, label: str) -> None:
    bs = r["batch"]
    ratio = r["engine_s"] / r["bare_s"]
    achieved = r["step_gflop"] / r["engine_s"]
    print(
        f"| {label} | {r['amp']} | {bs / r['bare_s']:.1f} | {bs / r['engine_s']:.1f} | "
        f"{(ratio - 1) * 100:+.1f}% | {r['faults_per_step']:.0f} | "
        f"{achieved:.0f} / {r['peak_gflops']:.0f} ({achieved / r['peak_gflops'] * 100:.0f}%) |"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--amp", default="off", choices=["off", "bf16"])
    p.add_argument(
        "--json", action="store_true", help="print one JSON line (used by --compare-malloc)"
    )
    p.add_argument("--compare-malloc", action="store_true")
    args = p.parse_args()
    if args.json:
        print(json.dumps(measure(args)))
        return
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if "model name" in ln), "?"
    )
    print(
        f"machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {platform.python_version()}"
    )
    print(
        f"default model {Config().model.backbone}, {args.size}x{args.size}, batch {args.batch}, K={K}\n"
    )
    print(
        "| malloc | amp | bare samples/s | engine samples/s | engine vs bare | page faults/step | GFLOP/s achieved / conv peak |"
    )
    print("|---|---|---|---|---|---|---|")
    variants = [("tuned (keypointer)", {})]
    if args.compare_malloc:
        variants.insert(0, ("glibc default", {"KEYPOINTER_NO_MALLOC_TUNING": "1"}))
    for label, env in variants:
        cmd = [sys.executable, __file__, "--json", f"--size={args.size}", f"--batch={args.batch}"]
        cmd += [f"--steps={args.steps}", f"--rounds={args.rounds}", f"--amp={args.amp}"]
        line = subprocess.run(
            cmd, env={**os.environ, **env}, capture_output=True, text=True, check=True
        )
        report(json.loads(line.stdout.strip().splitlines()[-1]), label)


if __name__ == "__main__":
    main()
