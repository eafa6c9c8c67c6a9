"""The locator on synthetic crowds: train it time-boxed on one thread, then report held-out box
recall and precision at IoU 0.5, mean IoU of the matched boxes, and its time per frame next to
the pose model's (the recipe's model for these figures, one crop per instance).

    .venv/bin/python benchmarks/locator.py --minutes 4 --out /tmp/locator-bench \
        [--set locator.backbone=lcnet_050] [--markdown /work/notes/results_locator.md]

Data: ``keypointer.data.synthetic.generate(..., size=256, instances=(1, 4))`` (400 training,
100 held-out images, their own seeds). The pose model's time is the untrained model of the
recipe's settings (time does not depend on the weights) on each held-out frame's instances,
batched per frame, so the share ``locator / (locator + pose)`` is per frame of a real crowd.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

from keypointer.malloc import tune_malloc

tune_malloc()  # first: before torch allocates; see keypointer/malloc.py

# isort: split
import numpy as np
import torch

from keypointer.config import apply_override, from_dict
from keypointer.data import synthetic
from keypointer.data.formats import load_dataset
from keypointer.data.images import read_image
from keypointer.data.transforms import to_chw_normalized, warp_image
from keypointer.data.whole_images import instance_boxes, letterbox
from keypointer.inference.crops import make_crops
from keypointer.models.model import build_model
from keypointer.training import recipe
from keypointer.training.locator import train_locator
from keypointer.training.progress import TrainProgress


def make_data(out: Path, n_train: int, n_test: int) -> tuple:
    """(train, test, "generated" | "reused"): the sets, written under ``out`` unless there."""
    sets, how = [], "reused"
    for name, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        path = out / name / "annotations.json"
        if not path.exists():
            synthetic.generate(out / name, n, seed=seed, size=256, instances=(1, 4))
            how = "generated"
        sets.append(load_dataset(str(path)))
    return (*sets, how)


def per_frame_ms(fn, frames: list, repeats: int = 3) -> float:
    """Median over frames of the fastest of ``repeats`` calls, ms."""
    times = []
    for frame in frames:
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(frame)
            best = min(best, time.perf_counter() - t0)
        times.append(best)
    return 1000 * statistics.median(times)


@torch.inference_mode()
def timings(locator, pose, test_set, n_frames: int) -> dict[str, float]:
    """Per frame, batch = one frame: locator (letterbox + model + decode) and pose (crops of
    the frame's true boxes + model + decode)."""
    locator.eval()
    pose.eval()
    samples = test_set.samples[:n_frames]
    frames = [(read_image(s.image), instance_boxes(s)) for s in samples]

    def run_locator(frame):
        image = frame[0]
        m = letterbox(image.shape[1], image.shape[0], locator.input_size)
        x = torch.from_numpy(to_chw_normalized(warp_image(image, m, locator.input_size)))
        locator.decode_topk(locator(x[None]))

    def run_pose(frame):
        crops, _ = make_crops(frame[0], pose.codec.input_size, list(frame[1]))
        x = torch.from_numpy(np.stack([to_chw_normalized(c) for c in crops]))
        pose.codec.decode(pose(x))

    for frame in frames[:3]:  # warm-up
        run_locator(frame)
        run_pose(frame)
    loc = per_frame_ms(run_locator, frames)
    pos = per_frame_ms(run_pose, frames)
    return {"locator_ms": loc, "pose_ms": pos, "share": loc / (loc + pos)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="locator training budget")
    parser.add_argument("--steps", type=int, help="train this many steps instead of --minutes")
    parser.add_argument("--out", type=Path, default=Path("/tmp/locator-bench"))
    parser.add_argument("--train-images", type=int, default=400)
    parser.add_argument("--test-images", type=int, default=100)
    parser.add_argument("--frames", type=int, default=50, help="held-out frames timed")
    parser.add_argument("--set", action="append", default=[], help="config override, key=value")
    parser.add_argument("--markdown", type=Path, help="append the results section here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    t0 = time.perf_counter()
    train_set, test_set, how = make_data(args.out, args.train_images, args.test_images)
    data_s = f"{how} in {time.perf_counter() - t0:.0f} s"
    d: dict = {}
    for item in args.set:
        apply_override(d, item)
    cfg = from_dict(d)
    progress = TrainProgress(1, quiet=True)
    torch.manual_seed(cfg.train.seed)
    budget = None if args.steps else args.minutes * 60
    model, metrics = train_locator(
        train_set, test_set, cfg, time_budget_s=budget, steps=args.steps, progress=progress
    )
    held_out = metrics  # train_locator validated on the held-out set, once, at the end
    pose_cfg = from_dict(d)
    recipe.plan(pose_cfg, train_set, "cpu")
    pose = build_model(pose_cfg, train_set.skeleton.num_keypoints, pretrained=False)
    times = timings(model, pose, test_set, args.frames)
    report = section(
        args, cfg, pose_cfg, model, metrics, held_out, times, data_s, train_set, test_set
    )
    print(report)
    if args.markdown:
        with open(args.markdown, "a", encoding="utf-8") as f:
            f.write("\n" + report + "\n")


def section(
    args, cfg, pose_cfg, model, metrics, held_out, times, data_s, train_set, test_set
) -> str:
    lc = cfg.locator
    w, h = model.input_size
    length = f"--steps {args.steps}" if args.steps else f"--minutes {args.minutes:g}"
    cores = len(os.sched_getaffinity(0))
    sets = " ".join(f"--set {s}" for s in args.set)
    per_image = test_set.num_instances / max(len(test_set), 1)
    rows = [
        ("held-out box recall @ IoU 0.5", f"{held_out['val_recall']:.3f}"),
        ("held-out precision @ IoU 0.5", f"{held_out['val_precision']:.3f}"),
        ("mean IoU of matched boxes", f"{held_out['val_mean_iou']:.3f}"),
        ("instances found / present / predicted",
         f"{held_out['val_matched']:.0f} / {held_out['val_instances']:.0f} / {held_out['val_predicted']:.0f}"),
        ("training: steps, seconds (budget)",
         f"{metrics['steps']:.0f} steps, {metrics['seconds']:.0f} s "
         f"({f'{args.steps} steps' if args.steps else f'{args.minutes * 60:.0f} s'})"),
        ("locator per frame (letterbox + model + decode, batch 1)", f"{times['locator_ms']:.1f} ms"),
        (f"pose model per frame ({per_image:.2f} crops of {list(pose_cfg.model.input_size)} px, batched)",
         f"{times['pose_ms']:.1f} ms"),
        ("locator share of a frame's time (target <= 0.30)", f"{times['share']:.2f}"),
    ]  # fmt: skip
    table = "\n".join(["| what | figure |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows])
    return (
        f"### Locator: {lc.backbone}, {w}x{h} input"
        f"{' (from the data)' if lc.input_size is None else ''}, stride {lc.stride}, "
        f"{lc.channels} channels\n\n"
        f"Command: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/locator.py {length} {sets}`. "
        f"Load average before the run: {args.load}. Machine: {platform.processor() or platform.machine()}, {cores} cores (2-core AMD "
        f"EPYC VM, AVX512-BF16, no GPU), one torch thread, shared with other jobs. Data: synthetic "
        f"crowds, 1-4 figures per 256 px image, {len(train_set)} training images "
        f"({train_set.num_instances} figures), {len(test_set)} held-out ({test_set.num_instances}); "
        f"{data_s}. Locator: batch {lc.batch_size}, Adam {lc.lr:g}, cosine, "
        f"threshold {lc.score_threshold}, amp {cfg.train.amp}.\n\n{table}\n"
    )


if __name__ == "__main__":
    main()
