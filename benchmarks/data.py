"""Data loading throughput: decode + augment + encode, against decoding alone.

    .venv/bin/python benchmarks/data.py                 # ~1 min on 2 cores
    .venv/bin/python benchmarks/data.py --images 128 --repeats 2

640x480 JPEG images (quality 90, textured like photos, one boxed instance of the 17 COCO body
keypoints each) are cropped to 256x256 with 64x64 heatmap targets. Figures are samples per
second, best (median) of 5 passes, for: decoding alone (the floor every loader pays); the
dataset's items in one process with one torch and one OpenCV thread, exactly what one
DataLoader worker does; and make_loader with 0 and 2 workers (batch 32, collate included;
the 2 workers persist across passes). A per-stage breakdown shows where an item's time goes.
Prints markdown for benchmarks/RESULTS.md.
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
from typing import TypeVar

from keypointer.malloc import tune_malloc

tune_malloc()  # first: before torch allocates; see keypointer/malloc.py

# isort: split
import cv2
import numpy as np
import torch

from keypointer.codecs import HeatmapCodec
from keypointer.config import AugmentConfig, LoaderConfig
from keypointer.data import transforms as T
from keypointer.data.dataset import KeypointDataset, make_loader
from keypointer.data.images import read_image
from keypointer.data.types import Instance, KeypointSet, Sample
from keypointer.skeleton import Skeleton

WIDTH, HEIGHT, INPUT, HEATMAP = 640, 480, (256, 256), (64, 64)
R = TypeVar("R")


def make_dataset(root: Path, n: int, seed: int = 0) -> KeypointSet:
    """n photo-like JPEGs with one person-sized box and 17 keypoints (a few unlabelled) each."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        small = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        img = cv2.resize(small, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
        img = cv2.add(img, rng.integers(0, 40, img.shape, dtype=np.uint8))  # fine texture
        for _ in range(6):
            c = tuple(int(v) for v in rng.integers(0, 256, 3))
            p = tuple(int(v) for v in rng.integers(0, (WIDTH, HEIGHT)))
            cv2.circle(img, p, int(rng.integers(10, 80)), c, -1, cv2.LINE_AA)
        path = root / f"{i:05d}.jpg"
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        w, h = rng.uniform(120, 360), rng.uniform(160, 420)
        x, y = rng.uniform(0, WIDTH - w), rng.uniform(0, HEIGHT - h)
        kps = np.column_stack(
            [
                rng.uniform(x, x + w, 17),
                rng.uniform(y, y + h, 17),
                rng.choice([0, 1, 2], 17, p=[0.1, 0.1, 0.8]),
            ]
        )
        samples.append(Sample(path, WIDTH, HEIGHT, [Instance(kps, bbox=(x, y, w, h))], id=i))
    return KeypointSet(Skeleton.coco_body(), samples, root)


def best_median(fn: Callable[[], int], repeats: int) -> tuple[float, float]:
    """Run ``fn`` (which returns how many samples it made) and give samples/s: best, median."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - start))
    return max(rates), statistics.median(rates)


def decode_all(kset: KeypointSet) -> int:
    for s in kset.samples:
        read_image(s.image)
    return len(kset.samples)


def items(ds: KeypointDataset) -> int:
    for i in range(len(ds)):
        ds[i]
    return len(ds)


def loader_pass(loader) -> int:
    n = 0
    for batch in loader:
        n += len(batch["index"])
    return n


def stage_times(ds: KeypointDataset, aug: AugmentConfig, n: int) -> dict[str, float]:
    """Mean ms per item of each stage, redone step by step as KeypointDataset does them."""
    t = dict.fromkeys(["decode", "warp", "colour jitter", "normalise", "encode"], 0.0)
    codec = ds.codec
    for i in range(n):
        sample, inst = ds.entry(i)
        rng = np.random.default_rng([0, 0, i])
        t0 = time.perf_counter()
        img = read_image(sample.image)
        t1 = time.perf_counter()
        m = ds._affine(img.shape, inst, inst.keypoints[:, :2], inst.keypoints[:, 2] > 0, rng)[0]
        crop = T.warp_image(img, m, INPUT)
        pts = T.apply_affine(inst.keypoints[:, :2], T.invert_affine(m)).astype(np.float32)
        t2 = time.perf_counter()
        crop = T.color_jitter(crop, rng, aug.brightness, aug.contrast, aug.saturation, aug.hue)
        t3 = time.perf_counter()
        torch.from_numpy(T.to_chw_normalized(crop))
        t4 = time.perf_counter()
        codec.encode(pts[None], inst.keypoints[None, :, 2] > 0)
        t5 = time.perf_counter()
        for key, dt in zip(t, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            t[key] += dt * 1000 / n
    return t


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor() or model
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{model}, {cores} cores, torch {torch.__version__.split('+')[0]}, OpenCV "
        f"{cv2.__version__}, load average {load:.1f} at the start"
    )


def single_threaded(fn: Callable[[], R]) -> Callable[[], R]:
    """Run as a DataLoader worker does: one torch thread (the loader's setting), no OpenCV pool."""

    def run() -> R:
        threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
        torch.set_num_threads(1)
        cv2.setNumThreads(0)
        try:
            return fn()
        finally:
            torch.set_num_threads(threads)
            cv2.setNumThreads(cv_threads)

    return run


def measure(kset: KeypointSet, batch: int, repeats: int) -> list[tuple[str, str, float, float]]:
    codec = HeatmapCodec(INPUT, HEATMAP, sigma=2.0)
    val = KeypointDataset(kset, codec, INPUT)
    train = KeypointDataset(kset, codec, INPUT, AugmentConfig())
    full = KeypointDataset(kset, codec, INPUT, AugmentConfig(half_body=0.3, erase=0.3))
    decode_all(kset)  # warm the page cache: the floor should not measure the disk
    floor = single_threaded(lambda: decode_all(kset))
    rows = [("decode only (the floor)", "1 process", *best_median(floor, repeats))]
    for name, ds in (
        ("items: validation (no augmentation)", val),
        ("items: train, default augmentation", train),
        ("items: train, + half-body 0.3, erase 0.3", full),
    ):
        rate = best_median(single_threaded(lambda ds=ds: items(ds)), repeats)
        rows.append((name, "1 process (= one worker)", *rate))
    for workers in (0, 2):
        cfg = LoaderConfig(batch_size=batch, num_workers=workers, persistent_workers=True)
        loader = make_loader(train, cfg, train=True, seed=0)
        loader_pass(loader)  # start the workers and warm up
        rate = best_median(lambda loader=loader: loader_pass(loader), repeats)
        rows.append((f"make_loader: train default, batch {batch}", f"{workers} workers", *rate))
        del loader
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    print(f"Machine: {machine()}\n")
    with tempfile.TemporaryDirectory() as tmp:
        kset = make_dataset(Path(tmp), args.images)
        rows = measure(kset, args.batch, args.repeats)
        train = KeypointDataset(
            kset, HeatmapCodec(INPUT, HEATMAP, sigma=2.0), INPUT, AugmentConfig()
        )
        n = min(args.images, 128)
        stages = single_threaded(lambda: stage_times(train, AugmentConfig(), n))()
    print("| path | where | samples/s best | samples/s median | ms/sample (best) |")
    print("|---|---|---|---|---|")
    for name, where, best, med in rows:
        print(f"| {name} | {where} | {best:.0f} | {med:.0f} | {1000 / best:.2f} |")
    print("\n| stage (train, default augmentation, one thread) | ms/item |")
    print("|---|---|")
    for key, ms in stages.items():
        print(f"| {key} | {ms:.2f} |")
    print(f"| total | {sum(stages.values()):.2f} |")


if __name__ == "__main__":
    main()
