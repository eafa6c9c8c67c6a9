"""Training from video-frame labels against the same frames saved as PNG files.

    .venv/bin/python benchmarks/video_labels.py                  # ~2 min on 2 cores
    .venv/bin/python benchmarks/video_labels.py --frames 300 --repeats 2

Data: SLEAP's two-fly sample (../shared/data/sleap-samples: centered_pair_predictions.slp,
whose labels point into centered_pair_low_quality.mp4, 384x384, 1100 frames, two flies each).
``keypointer convert`` writes the same frames as PNG files with a COCO file, so both sides
hold the same pixels and instances.

Measured: the pose model's training dataset (top-down crops, augmentation, heatmap targets)
through ``make_loader`` as training uses it (shuffled, batch 16, 0 workers as on 2 cores),
samples per second, median of ``--repeats`` passes, video and PNG passes interleaved (the
machine is shared). Three sides: the PNG files; the video with its frames decoded once into
memory when the dataset is built (``keypointer.data.frames.cache_frames``; the decode pass is
timed apart); and the video read frame by frame (the cache disabled: what training did
before). Prints markdown and writes it to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from keypointer.malloc import tune_malloc

tune_malloc()  # first: before torch allocates; see keypointer/malloc.py

# isort: split
import torch

from keypointer.codecs import HeatmapCodec
from keypointer.config import AugmentConfig, LoaderConfig
from keypointer.data import frames
from keypointer.data.dataset import KeypointDataset, make_loader
from keypointer.data.formats import convert, load_dataset
from keypointer.data.types import KeypointSet

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "sleap-samples"
SLP = SHARED / "hdf5_format_v1" / "centered_pair_predictions.slp"
INPUT = (192, 192)  # the crop the pose model sees (W, H)
BATCH = 16


def dataset(kset: KeypointSet) -> KeypointDataset:
    codec = HeatmapCodec(INPUT, (INPUT[0] // 4, INPUT[1] // 4), 2.0)
    return KeypointDataset(kset, codec, INPUT, AugmentConfig(rotation=180.0, flip=0.5))


def samples_per_s(ds: KeypointDataset, batches: int, epoch: int) -> float:
    """Samples/s of ``batches`` shuffled training batches (collate included)."""
    loader = make_loader(ds, LoaderConfig(batch_size=BATCH, num_workers=0), train=True)
    ds.set_epoch(epoch)
    loader.sampler.set_epoch(epoch)
    started, n = time.perf_counter(), 0
    for i, batch in enumerate(loader):
        n += len(batch["image"])
        if i + 1 >= batches:
            break
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=1100, help="labelled frames used")
    parser.add_argument("--batches", type=int, default=40, help="batches per pass")
    parser.add_argument("--repeats", type=int, default=3, help="passes per side")
    parser.add_argument("--out", type=Path, default=Path("/tmp/kp19/results/video_labels.md"))
    args = parser.parse_args()
    if not SLP.is_file():
        raise SystemExit(f"{SLP} is absent (../shared/data/sleap-samples)")
    torch.set_num_threads(1)  # one loader's work, as on a busy 2-core machine

    with tempfile.TemporaryDirectory() as tmp:
        # The PNG side: the same frames and instances, through keypointer convert.
        png_all = load_dataset(convert(SLP, Path(tmp) / "coco.json", to="coco"))
        video_all = load_dataset(SLP)
        step = max(1, len(video_all) // args.frames)
        chosen = range(0, len(video_all), step)[: args.frames]
        video_set, png_set = video_all.subset(chosen), png_all.subset(chosen)
        for a, b in zip(video_set.samples, png_set.samples, strict=True):
            assert len(a.instances) == len(b.instances) and a.frame is not None

        frames.clear_frame_cache()
        started = time.perf_counter()
        cached = dataset(video_set)  # decodes the labelled frames once
        decode_s = time.perf_counter() - started
        png = dataset(png_set)
        # Before: a copy of the video (another file, so not in the cache), no cache budget.
        copy = Path(tmp) / "copy.mp4"
        shutil.copyfile(video_set.samples[0].image, copy)
        before = load_dataset(SLP).subset(chosen)
        for s in before.samples:
            s.image = copy
        budget, frames.CACHE_BYTES = frames.CACHE_BYTES, 0
        per_frame = dataset(before)
        frames.CACHE_BYTES = budget

        figures: dict[str, list[float]] = {"png": [], "video": [], "per_frame": []}
        for r in range(args.repeats):
            for name, ds in (("png", png), ("video", cached), ("per_frame", per_frame)):
                figures[name].append(samples_per_s(ds, args.batches, epoch=r))
    med = {k: statistics.median(v) for k, v in figures.items()}
    lines = [
        "## Video-frame labels vs PNG files (benchmarks/video_labels.py)",
        "",
        f"{SLP.name}: {len(video_set)} frames, {video_set.num_instances} instances, 384x384; "
        f"pose dataset {INPUT[0]}x{INPUT[1]}, batch {BATCH}, 0 workers, 1 torch thread; "
        f"median of {args.repeats} passes of {args.batches} batches; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared).",
        "",
        "| source | samples/s | vs PNG |",
        "|---|---|---|",
        f"| PNG files + COCO | {med['png']:.1f} | 1.00x |",
        f"| video, frames decoded once (cache) | {med['video']:.1f} | "
        f"{med['video'] / med['png']:.2f}x |",
        f"| video, frame by frame (before) | {med['per_frame']:.1f} | "
        f"{med['per_frame'] / med['png']:.2f}x |",
        "",
        f"Decode pass when the dataset is built: {decode_s:.1f} s for {len(video_set)} frames "
        f"({frames.cached_bytes() / 1e6:.0f} MB held).",
        "",
        "Passes: "
        + "; ".join(f"{k} " + ", ".join(f"{v:.1f}" for v in vs) for k, vs in figures.items()),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
