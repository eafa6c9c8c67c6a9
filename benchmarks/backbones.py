"""Pick the default backbone: CPU training-step time and how well a short run trains.

    .venv/bin/python benchmarks/backbones.py          # speed + accuracy, ~4-6 min on 2 cores
    .venv/bin/python benchmarks/backbones.py --skip-accuracy --iters 6
    .venv/bin/python benchmarks/backbones.py --backbones resnet18 regnetx_002 --sizes 128

Speed: one training step (forward + backward + Adam) of backbone + heatmap head, batch 32,
min (median) of a few steps after a warm-up, fp32 vs bf16 autocast + channels_last.
Accuracy: train from scratch for a fixed number of steps on freshly drawn synthetic images
(coloured markers joined by lines on noise, 128x128, K=5), then report the mean error and
PCK@0.05 on 128 held-out images. Markdown tables are printed for RESULTS.md.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

from keypointer.malloc import tune_malloc

tune_malloc()  # first: before torch allocates; see keypointer/malloc.py

# isort: split
import cv2
import numpy as np
import torch
import torch.nn.functional as F

from keypointer.config import Config
from keypointer.models import HeatmapHead, build_model, probe_features

K = 5
COLOURS = [(255, 40, 40), (40, 255, 40), (40, 80, 255), (255, 255, 40), (255, 40, 255)]


class ArgmaxCodec:
    """Stand-in heatmap decoder (argmax, UDP mapping) so the benchmark needs no codec module."""

    def __init__(self, input_size: tuple[int, int]):
        self.input_size = input_size

    def decode(self, hm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, k, h, w = hm.shape
        score, idx = hm.reshape(n, k, -1).max(-1)
        x, y = (idx % w).float(), (idx // w).float()
        sx, sy = (self.input_size[0] - 1) / (w - 1), (self.input_size[1] - 1) / (h - 1)
        return torch.stack((x * sx, y * sy), -1), score


def make_model(backbone: str, size: int, out_indices=None, upsample="deconv"):
    cfg = Config()
    cfg.model.backbone = backbone
    cfg.model.input_size = (size, size)
    cfg.model.out_indices = out_indices
    model = build_model(cfg, K, codec=ArgmaxCodec((size, size)))
    if upsample != "deconv":  # not a config option: swap in the alternative head to compare
        specs = probe_features(model.backbone, (size, size))
        model.head = HeatmapHead(
            [f.channels for f in specs],
            [f.stride for f in specs],
            K,
            (size // 4, size // 4),
            channels=cfg.model.head_channels,
            upsample=upsample,
        )
    return model


def train_step(model, opt, images, target, bf16: bool) -> float:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(images)
    loss = F.mse_loss(out.float(), target)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def time_steps(model, size: int, batch: int, bf16: bool, iters: int, warmup: int = 1) -> str:
    """ "min (median)" step time in ms; the minimum is robust to other jobs on a shared CPU."""
    mf = torch.channels_last if bf16 else torch.contiguous_format
    model = model.to(memory_format=mf).train()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    images = torch.randn(batch, 3, size, size).contiguous(memory_format=mf)
    target = torch.rand(batch, K, size // 4, size // 4)
    times = []
    for i in range(warmup + iters):
        t = time.perf_counter()
        train_step(model, opt, images, target, bf16)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return f"{min(times) * 1000:.0f} ({statistics.median(times) * 1000:.0f})"


def draw_batch(rng: np.random.Generator, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 3, size, size) float32 and keypoints (n, K, 2) in pixels."""
    images = np.empty((n, size, size, 3), np.uint8)
    kps = np.empty((n, K, 2), np.float32)
    for i in range(n):
        img = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
        centre = rng.uniform(0.3, 0.7, 2) * size
        pts = centre + rng.normal(0, 0.18 * size, (K, 2))
        pts = np.clip(pts, 4, size - 5)
        for a, b in zip(pts[:-1], pts[1:], strict=True):
            cv2.line(
                img,
                tuple(int(v) for v in a * 16),
                tuple(int(v) for v in b * 16),
                (150, 150, 150),
                2,
                cv2.LINE_AA,
                shift=4,
            )
        for j, p in enumerate(pts):
            cv2.circle(
                img, tuple(int(v) for v in p * 16), 3 * 16, COLOURS[j], -1, cv2.LINE_AA, shift=4
            )
        images[i], kps[i] = img, pts
    x = images.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0
    return x, kps


def gaussian_targets(kps: np.ndarray, size: int, sigma: float = 2.0) -> torch.Tensor:
    hm = size // 4
    s = (hm - 1) / (size - 1)  # UDP: input px -> heatmap px
    grid = torch.arange(hm, dtype=torch.float32)
    k = torch.from_numpy(kps) * s
    gx = torch.exp(-((grid - k[..., 0:1]) ** 2) / (2 * sigma**2))
    gy = torch.exp(-((grid - k[..., 1:2]) ** 2) / (2 * sigma**2))
    return gy[..., :, None] * gx[..., None, :]


def train_eval(model, size: int, steps: int, batch: int, bf16: bool, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    mf = torch.channels_last if bf16 else torch.contiguous_format
    model = model.to(memory_format=mf)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(steps * 0.8)], 0.1)
    t0 = time.perf_counter()
    model.train()
    for _ in range(steps):
        x, kps = draw_batch(rng, batch, size)
        images = torch.from_numpy(x).contiguous(memory_format=mf)
        train_step(model, opt, images, gaussian_targets(kps, size) * 10, bf16)
        sched.step()
    train_s = time.perf_counter() - t0
    x, kps = draw_batch(np.random.default_rng(12345), 128, size)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        pred, _ = model.predict(torch.from_numpy(x).contiguous(memory_format=mf))
    err = (pred.float() - torch.from_numpy(kps)).norm(dim=-1)
    return {
        "err": float(err.mean()),
        "pck": float((err < 0.05 * size).float().mean()),
        "train_s": train_s,
    }


def speed_table(backbones, sizes, batch, iters) -> None:
    print(f"\n### Training step, batch {batch}, ms: min (median) of {iters}\n")
    cols = [f"{s}px fp32 | {s}px bf16+CL" for s in sizes]
    print("| backbone | params M | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|---|" * len(sizes))
    for name in backbones:
        cells = []
        for size in sizes:
            for bf16 in (False, True):
                torch.manual_seed(0)
                model = make_model(name, size)
                cells.append(time_steps(model, size, batch, bf16, iters))
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"| {name} | {params:.1f} | " + " | ".join(cells) + " |", flush=True)


def head_table(backbone, size, batch, iters) -> None:
    print(f"\n### Heatmap head variants ({backbone}, {size}px, batch {batch}, bf16+CL), ms\n")
    print("| head | params M | step ms: min (median) |")
    print("|---|---|---|")
    variants = {
        "stride 32 only, 3 deconv stages": dict(out_indices=(-1,)),
        "stride 32 only, 3 bilinear+conv stages": dict(out_indices=(-1,), upsample="bilinear"),
        "FPN-lite 8/16/32, 1 deconv stage (default)": dict(),
        "FPN-lite 8/16/32, 1 bilinear+conv stage": dict(upsample="bilinear"),
    }
    for label, kw in variants.items():
        torch.manual_seed(0)
        model = make_model(backbone, size, **kw)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        ms = time_steps(model, size, batch, True, iters)
        print(f"| {label} | {params:.1f} | {ms} |", flush=True)


def accuracy_table(runs, size, steps, batch, bf16, seed=0) -> None:
    prec = "bf16+CL" if bf16 else "fp32"
    print(
        f"\n### Short training from scratch: synthetic {size}px, K={K}, {steps} steps of "
        f"batch {batch}, Adam 1e-3, {prec}, seed {seed}; 128 held-out images\n"
    )
    print("| backbone | head | mean error px | PCK@0.05 | train s |")
    print("|---|---|---|---|---|")
    for name, label, kw in runs:
        torch.manual_seed(seed)
        model = make_model(name, size, **kw)
        r = train_eval(model, size, steps, batch, bf16, seed)
        print(
            f"| {name} | {label} | {r['err']:.2f} | {r['pck']:.2f} | {r['train_s']:.0f} |",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--backbones", nargs="+", default=["resnet18", "mobilenetv3_large_100", "regnetx_002"]
    )
    ap.add_argument("--sizes", nargs="+", type=int, default=[128, 256])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--iters", type=int, default=4)
    ap.add_argument("--steps", type=int, default=100, help="accuracy-run training steps")
    ap.add_argument("--acc-batch", type=int, default=16)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--skip-ablation", action="store_true", help="no stride-32-only accuracy run")
    ap.add_argument("--seed", type=int, default=0, help="accuracy-run seed (init and data)")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    t0 = time.perf_counter()
    if not args.skip_speed:
        speed_table(args.backbones, args.sizes, args.batch, args.iters)
        head_table(args.backbones[0], min(args.sizes), args.batch, args.iters)
    if not args.skip_accuracy:
        runs = [(b, "FPN-lite 8/16/32", {}) for b in args.backbones]
        if not args.skip_ablation:
            runs.insert(1, (args.backbones[0], "stride 32 only", dict(out_indices=(-1,))))
        accuracy_table(runs, 128, args.steps, args.acc_batch, True, args.seed)
    print(f"\ntotal {math.ceil(time.perf_counter() - t0)} s")


if __name__ == "__main__":
    main()
