"""Identity tracking benchmark: Kalman + Hungarian (keypointer.temporal.tracking) against the
frame-by-frame nearest-centroid baseline, on ground-truth tracks turned into noisy detections.

    .venv/bin/python benchmarks/tracking.py                       # markdown to stdout
    .venv/bin/python benchmarks/tracking.py --out results.md      # also write it to a file
    .venv/bin/python benchmarks/tracking.py --write               # replace "## Tracking" in RESULTS.md

Sources of true tracks (T, M, K, 2):

- ``video``: keypointer.data.synthetic_video's figures (the truth of ``render_video``, 256 px;
  no video file is written or decoded): they swing across the same space, cross and pass in
  front of each other, with bursts of fast motion; M = 2 and 3.
- ``lines``: M = 2 copies of one rigid pose crossing in an X at constant speed every 2 s
  (identical poses: only motion tells them apart at a crossing).

Detections made from them, per frame (sizes are sqrt of the true keypoint box area):
Gaussian jitter of 3% of the size per coordinate; hidden keypoints (v = 1) dropped with
probability 0.5 and points outside the image (v = 0) always; 5% of keypoints dropped at
random; 3% replaced by outliers within one size (score 0.1-0.4); instances missing for runs of
1-8 frames (a run starts with probability 2% per frame); where two instances overlap (centres
within half a size), with probability 0.2 half their keypoints trade places ("swapped
detections"); a false-positive instance in 1% of frames (a copy of one shifted by 1-2 sizes,
score 0.2-0.5); instance order shuffled every frame. Scores are 0.7-1 otherwise.

Metrics: keypointer.metrics.tracking.mot_metrics (CLEAR-MOT with OKS >= 0.5, sigma 0.05,
against the true keypoints with v > 0). ID switches are reported per 1,000 frames.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from _results import write_section

from keypointer.metrics.tracking import mot_metrics
from keypointer.temporal.tracking import nearest_centroid_ids, track

FPS = 30.0


def video_truth(seed: int, frames: int, instances: int) -> np.ndarray:
    """(T, M, K, 3) true keypoints of a synthetic_video clip (v = 0 outside the image)."""
    from keypointer.data.synthetic_video import render_video

    return np.stack([kp for _, kp, _, _ in render_video(frames, instances, seed, 256, FPS)])


def lines_truth(seed: int, frames: int) -> np.ndarray:
    """(T, 2, K, 3): one rigid random pose, two copies crossing in an X every 2 s."""
    rng = np.random.default_rng([seed, 7])
    pose = rng.uniform(-25, 25, (11, 2))
    t = np.arange(frames) / FPS
    x = 128 + 90 * np.sin(2 * math.pi * t / 4.0)  # 4 s period: two crossings
    y = 40 * np.sin(2 * math.pi * t / 4.0 + math.pi / 2)
    paths = np.stack([np.stack([x, 128 + y], 1), np.stack([x, 128 - y], 1)], 1)  # (T, 2, 2)
    kp = paths[:, :, None] + pose
    return np.concatenate([kp, np.full(kp.shape[:3] + (1,), 2.0)], axis=-1)


def _sizes(kp: np.ndarray) -> np.ndarray:
    span = np.nanmax(kp, axis=-2) - np.nanmin(kp, axis=-2)
    return np.sqrt(span[..., 0] * span[..., 1])


def detections(truth: np.ndarray, seed: int, hard: bool) -> tuple[list, list, list]:
    """Noisy, shuffled detections per frame: keypoints (M_t, K, 2), scores (M_t, K) and the
    true track of each (M_t,) (-1: a false positive)."""
    rng = np.random.default_rng([seed, 11])
    n, m, k = truth.shape[:3]
    xy, v = truth[..., :2].copy(), truth[..., 2]
    size = _sizes(xy)  # (T, M)
    xy += rng.normal(0, 0.03, xy.shape) * size[..., None, None]
    drop = (v == 0) | ((v == 1) & (rng.random(v.shape) < 0.5)) | (rng.random(v.shape) < 0.05)
    scores = rng.uniform(0.7, 1.0, v.shape)
    outlier = rng.random(v.shape) < 0.03
    centre = np.nanmean(truth[..., :2], axis=2, keepdims=True)
    jump = rng.uniform(-1, 1, xy.shape) * size[..., None, None]
    xy = np.where(outlier[..., None], centre + jump, xy)
    scores = np.where(outlier, rng.uniform(0.1, 0.4, v.shape), scores)
    xy[drop] = np.nan
    present = np.ones((n, m), bool)
    if hard:
        for j in range(m):  # runs of 1-8 missing frames
            for t in np.flatnonzero(rng.random(n) < 0.02):
                present[t : t + rng.integers(1, 9), j] = False
    kps, scs, sources = [], [], []
    for t in range(n):
        kp, sc = xy[t][present[t]], scores[t][present[t]]
        if hard:
            kp, sc = _swaps_and_false_positives(rng, kp, sc, size[t].mean())
        source = np.r_[np.flatnonzero(present[t]), np.full(len(kp) - present[t].sum(), -1)]
        order = rng.permutation(len(kp))
        kps.append(kp[order])
        scs.append(sc[order])
        sources.append(source[order])
    return kps, scs, sources


def _swaps_and_false_positives(rng, kp: np.ndarray, sc: np.ndarray, size: float):
    kp, sc = kp.copy(), sc.copy()
    centres = np.nanmean(kp, axis=1)
    for a in range(len(kp)):
        for b in range(a + 1, len(kp)):
            close = np.linalg.norm(centres[a] - centres[b]) < 0.5 * size
            if close and rng.random() < 0.2:
                mix = rng.random(kp.shape[1]) < 0.5
                kp[a, mix], kp[b, mix] = kp[b, mix].copy(), kp[a, mix].copy()
    if len(kp) and rng.random() < 0.01:
        j = rng.integers(len(kp))
        shift = (
            rng.uniform(1, 2) * size * np.array([math.cos(a := rng.uniform(0, 6.3)), math.sin(a)])
        )
        kp = np.concatenate([kp, kp[j : j + 1] + shift])
        sc = np.concatenate([sc, rng.uniform(0.2, 0.5, (1, kp.shape[1]))])
    return kp, sc


def evaluate(truth: np.ndarray, kps: list, scs: list, tracker, **kwargs) -> dict:
    """mot_metrics of one tracker on one clip, plus its time per frame."""
    start = time.perf_counter()
    ids = tracker(kps, scs, **kwargs)
    elapsed = time.perf_counter() - start
    gt_ids = [np.arange(truth.shape[1])] * len(truth)
    out = mot_metrics(gt_ids, list(truth), ids, kps, threshold=0.5)
    out["us_per_frame"] = 1e6 * elapsed / len(truth)
    return out


TRACKERS = {
    "nearest centroid": (nearest_centroid_ids, {}),
    "Kalman (centroid) + Hungarian": (track, {"motion": "centroid"}),
    "Kalman (keypoints) + Hungarian": (track, {"motion": "keypoints"}),
}


def run(args: argparse.Namespace) -> str:
    rows = []
    setups = [("lines", 2), ("video", 2), ("video", 3)]
    for source, m in setups:
        for hard in (False, True):
            totals: dict[str, dict] = {}
            for seed in range(args.seeds):
                truth = lines_truth(seed, args.frames) if source == "lines" else None
                truth = truth if truth is not None else video_truth(seed, args.frames, m)
                kps, scs, _ = detections(truth, seed, hard)
                for name, (fn, opts) in TRACKERS.items():
                    for cap in (None, m):
                        res = evaluate(truth, kps, scs, fn, max_instances=cap, **opts)
                        acc = totals.setdefault(f"{name}|{cap}", {})
                        for key, val in res.items():
                            acc[key] = acc.get(key, 0.0) + val
            for key, acc in totals.items():
                name, cap = key.split("|")
                frames = acc["num_frames"]
                objects = acc["num_objects"]
                errors = acc["num_misses"] + acc["num_switches"] + acc["num_false_positives"]
                rows.append(
                    (
                        f"{source} M={m}",
                        "all" if hard else "jitter",
                        name,
                        "-" if cap == "None" else cap,
                        1000 * acc["num_switches"] / frames,
                        1 - errors / objects,
                        2 * acc["idtp"] / (objects + acc["num_predictions"]),
                        acc["us_per_frame"] / args.seeds,
                    )
                )
            print(f"done {source} M={m} hard={hard}", file=sys.stderr, flush=True)
    return _table(rows)


def _table(rows: list) -> str:
    head = (
        "| truth | detections | tracker | max_instances | ID switches / 1000 frames | MOTA "
        "| IDF1 | us / frame |\n|---|---|---|---|---|---|---|---|"
    )
    lines = [
        f"| {a} | {b} | {c} | {d} | {e:.1f} | {f:.3f} | {g:.3f} | {h:.0f} |"
        for a, b, c, d, e, f, g, h in rows
    ]
    return head + "\n" + "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5, help="clips per setup")
    ap.add_argument("--frames", type=int, default=600, help="frames per clip (30 fps)")
    ap.add_argument("--out", type=Path, help="also write the markdown here")
    ap.add_argument("--write", action="store_true", help='replace "## Tracking" in RESULTS.md')
    args = ap.parse_args()
    start = time.time()
    table = run(args)
    command = (
        f"`.venv/bin/python benchmarks/tracking.py --seeds {args.seeds} --frames {args.frames}`"
    )
    body = (
        f"{args.seeds} clips of {args.frames} frames (30 fps) per row, seeds 0-{args.seeds - 1}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores shared with "
        f"other jobs; {time.time() - start:.0f} s in all. Command: {command}. "
        '"jitter": jitter, dropped and outlier keypoints, shuffled order; "all": also missing '
        "instances (1-8 frames), swapped keypoints between overlapping instances and false "
        "positives (see the script's docstring).\n\n" + table
    )
    print(body)
    if args.out:
        args.out.write_text("## Tracking\n\n" + body + "\n")
    if args.write:
        write_section("Tracking", body)


if __name__ == "__main__":
    main()
