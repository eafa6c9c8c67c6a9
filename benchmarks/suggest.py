"""Frame suggestion benchmark: are the frames ``keypointer suggest`` picks the ones the model
gets wrong?

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/suggest.py      # ~9 min on 2 busy cores
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/suggest.py --work /tmp/sg   # keeps and reuses
                                                                 # the model and predictions

A model is trained briefly (``--minutes``, one thread) on 60 images from ``keypointer synth``
(256 px, like the video), then predicts every frame of ``--videos`` synthetic videos
(:mod:`keypointer.data.synthetic_video`: exact truth, rare poses, fast bursts, occluders). For
each way of picking frames, the figure is the mean true error (px, against the truth, over the
points inside the image) of the picked frames, next to that of random picks (``--draws`` draws
of ``--num`` frames: "x random"), and the mean percentile of the picked frames' errors among
all frames (50 = random on average, 100 = the worst frames). Diversity ("pose spread"): mean
distance between the picked frames' true poses, normalised for position and size
(:func:`keypointer.inference.suggest.normalised_poses`; random picks give the baseline). Ways:
``suggest``'s defaults (k-means on frame thumbnails, k = picks, the most uncertain frame of
each cluster), k-means on predicted poses instead, softer spreading, none, the defaults with
the flip gap's rank added to the uncertainty or without the flip gap at all, with
``--no-flip``, and the frames with the largest true error 1 s apart (the best possible). A summary averages over the videos, 10/20/40 picks and k-means
seeds. Then ``keypointer suggest`` itself runs on video 0 (timed) and ``keypointer check``
reads its output.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from keypointer.data.synthetic_video import generate_video, load_truth
from keypointer.inference.pipeline import load_pipeline
from keypointer.inference.sources import collect_sources, iter_frames
from keypointer.inference.suggest import (
    VideoTrack,
    collect_tracks,
    default_gap,
    normalised_poses,
    pick_frames,
    suggest_frames,
)

ROOT = Path(__file__).resolve().parents[1]
KEYPOINTER = [sys.executable, "-m", "keypointer"]
NUMS = (10, 20, 40)  # picks per video in the summary
KMEANS_SEEDS = 5  # k-means seeds per case in the summary
NO_FLIP = "defaults with --no-flip (other predictions, no flip term)"


def model(work: Path, minutes: float) -> tuple[Path, float]:
    """best.pt of a short run on 60 synthetic images (made once per work folder), and the
    minutes the training took (0 when reused)."""
    data = work / "synth"
    if not (data / "annotations.json").is_file():
        run([*KEYPOINTER, "synth", data, "--num-images", 60, "--seed", 1, "--size", 256])
    found = sorted((work / "runs").glob("*/*/best.pt"))
    took = work / "train_minutes.txt"
    if found:
        return found[-1], float(took.read_text()) if took.is_file() else float("nan")
    start = time.perf_counter()
    run([*KEYPOINTER, "train", "--data", data / "annotations.json", "--time", minutes,
         "--quiet", "--set", f"run.root={work / 'runs'}"])  # fmt: skip
    took.write_text(f"{(time.perf_counter() - start) / 60:.2f}")
    return sorted((work / "runs").glob("*/*/best.pt"))[-1], float(took.read_text())


def run(cmd: list) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True)


def predict(best: Path, video: Path, flip: bool = True) -> tuple[VideoTrack, tuple, float]:
    """The video's track as ``keypointer suggest`` collects it, its keypoint names and the
    seconds predicting took; cached beside the video per model and ``flip``."""
    cache = video.parent / f"predictions-{best.stat().st_mtime_ns}-{int(flip)}-v3.npz"
    if cache.is_file():  # the same model on the same video: predicted before
        z = np.load(cache)
        gap = z["flip_gap"] if z["flip_gap"].size else None
        track = VideoTrack(video, float(z["fps"]), tuple(z["size"]), z["numbers"], z["times"],
                           z["keypoints"], z["scores"], gap, z["thumbs"])  # fmt: skip
        return track, tuple(str(n) for n in z["names"]), float(z["seconds"])
    start = time.perf_counter()
    pipe = load_pipeline(best, flip=flip)
    frames = iter_frames(collect_sources([video]))
    (t,) = collect_tracks(pipe.run(frames))
    np.savez(cache, fps=t.fps, size=t.size, numbers=t.numbers, times=t.times,
             keypoints=t.keypoints, scores=t.scores, thumbs=t.thumbs, names=pipe.skeleton.names,
             flip_gap=t.flip_gap if t.flip_gap is not None else np.zeros(0),
             seconds=time.perf_counter() - start)  # fmt: skip
    return t, pipe.skeleton.names, time.perf_counter() - start


def true_errors(track, truth) -> tuple[np.ndarray, np.ndarray]:
    """(T,) mean px error over the points inside the image, and (T, 2K) normalised true poses."""
    kp = truth.keypoints[track.numbers, 0]  # one figure
    inside = kp[..., 2] > 0
    dist = np.linalg.norm(track.keypoints - kp[..., :2], axis=-1)
    err = np.where(inside, dist, 0).sum(1) / np.maximum(inside.sum(1), 1)
    return err, normalised_poses(np.nan_to_num(kp[..., :2]), inside.astype(float), 0.5)


def spread(poses: np.ndarray, picks: list[int]) -> float:
    p = poses[picks]
    d = np.linalg.norm(p[:, None] - p[None], axis=-1)
    return float(d[np.triu_indices(len(p), 1)].mean()) if len(p) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="Folder to keep data, model and videos.")
    parser.add_argument("--minutes", type=float, default=3.0, help="Training time.")
    parser.add_argument("--frames", type=int, default=1800, help="Video length (30 fps).")
    parser.add_argument("--num", type=int, default=20, help="Frames to pick (main table).")
    parser.add_argument("--draws", type=int, default=1000, help="Random draws.")
    parser.add_argument("--videos", type=int, default=2, help="Synthetic videos (seeds 0..).")
    parser.add_argument("--out", type=Path, default=Path("/work/notes/results_suggest.md"))
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="suggest-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    best, trained = model(work, args.minutes)
    cases: dict[bool, list] = {True: [], False: []}  # flip TTA on / off
    predict_s = 0.0
    for seed in range(args.videos):
        clip = work / (f"clip{args.frames}" if seed == 0 else f"clip{args.frames}-{seed}")
        if not (clip / "video.mp4").is_file():
            generate_video(clip, num_frames=args.frames, seed=seed, size=256, fps=30.0)
        truth = load_truth(clip / "truth.json")
        for flip in (True, False):
            track, names, seconds = predict(best, clip / "video.mp4", flip)
            predict_s += seconds
            err, poses = true_errors(track, truth)
            cases[flip].append((track, names, err, poses, truth.fast[:, 0]))
    table = compare(cases[True][0], cases[False][0], args.num, args.draws)
    summary = summarise(cases[True], cases[False])
    cases = cases[True]
    cli = command(best, work / f"clip{args.frames}" / "video.mp4", work, args.num, cases[0][2])
    report(args, table, summary, cli, cases[0][2], trained, predict_s, len(cases[0][2]))


def ways(track: VideoTrack, names, num: int, seed: int = 0) -> dict[str, list[int]]:
    """Frame indices each way of picking chooses."""

    def picks(**kw) -> list[int]:
        return [p.index for p in suggest_frames([track], names, num, seed=seed, **kw)]

    return {
        "suggest (defaults: k-means on thumbnails, one per cluster)": picks(),
        "k-means on normalised poses instead": picks(features="pose"),
        "one per cluster softened (decay 0.9)": picks(decay=0.9),
        "no spreading (most uncertain, 1 s apart)": picks(decay=1.0),
        "defaults plus the flip gap's rank in the uncertainty": picks(flip_rank=True),
        "defaults without the flip gap (no flip flags)": [
            p.index for p in suggest_frames([replace(track, flip_gap=None)], names, num, seed=seed)
        ],
    }


def compare(case, plain, num: int, draws: int) -> list[tuple]:
    """Table rows (way, mean error, x random, error percentile, pose spread, fast share);
    ``plain``: the same video predicted without flip TTA."""
    track, names, err, poses, fast = case
    n = len(err)
    chosen = ways(track, names, num)
    chosen["largest true error, 1 s apart (best possible)"] = pick_frames(
        err, np.zeros(n), [0] * n, track.numbers, num, default_gap(track.fps)
    )
    ranks = err.argsort().argsort() / max(n - 1, 1) * 100  # percentile of each frame's error
    rng = np.random.default_rng(0)
    picks = [rng.choice(n, num, replace=False) for _ in range(draws)]
    rand = np.array([err[d].mean() for d in picks])
    rows = [("random frames (mean of draws)", float(rand.mean()), 1.0, 50.0,
             float(np.mean([spread(poses, list(d)) for d in picks[:200]])),
             float(np.mean([fast[track.numbers][d].mean() for d in picks])))]  # fmt: skip
    for name, idx in chosen.items():
        mean = float(err[idx].mean())
        rows.append((name, mean, mean / rand.mean(), float(ranks[idx].mean()),
                     spread(poses, idx), float(fast[track.numbers][idx].mean())))  # fmt: skip
    p_track, _, p_err, _, _ = plain
    idx = [p.index for p in suggest_frames([p_track], names, num)]
    rng = np.random.default_rng(0)
    p_rand = np.mean([p_err[rng.choice(n, num, replace=False)].mean() for _ in range(draws)])
    p_ranks = p_err.argsort().argsort() / max(n - 1, 1) * 100
    rows.append((NO_FLIP, float(p_err[idx].mean()), float(p_err[idx].mean() / p_rand),
                 float(p_ranks[idx].mean()), spread(poses, idx),
                 float(fast[track.numbers][idx].mean())))  # fmt: skip
    rows.append((f"share of random draws with a mean error at or above suggest's: "
                 f"{(rand >= rows[1][1]).mean():.3f}; random draws' mean error, 5th-95th "
                 f"percentile: {np.percentile(rand, 5):.2f}-{np.percentile(rand, 95):.2f} px",))  # fmt: skip
    return rows


def summarise(cases, plain_cases) -> dict[str, tuple[float, float]]:
    """Way -> (mean x random, mean pose spread) over the videos, NUMS and KMEANS_SEEDS;
    ``plain_cases``: the videos predicted without flip TTA (the defaults only)."""
    acc: dict[str, list[tuple[float, float]]] = {}
    for flip, group in ((True, cases), (False, plain_cases)):
        for track, names, err, poses, _ in group:
            rng = np.random.default_rng(0)
            for num in NUMS:
                rand = np.mean([err[rng.choice(len(err), num, replace=False)].mean()
                                for _ in range(500)])  # fmt: skip
                for seed in range(KMEANS_SEEDS):
                    chosen = ways(track, names, num, seed) if flip else {
                        NO_FLIP: [p.index for p in suggest_frames([track], names, num, seed=seed)]
                    }  # fmt: skip
                    for name, idx in chosen.items():
                        ratio = err[idx].mean() / rand
                        acc.setdefault(name, []).append((ratio, spread(poses, idx)))
    return {k: tuple(np.mean(v, 0)) for k, v in acc.items()}


def command(best: Path, video: Path, work: Path, num: int, err: np.ndarray) -> dict:
    """``keypointer suggest`` on the video (timed), then ``keypointer check`` on its output."""
    out = work / f"suggested-{os.getpid()}"
    start = time.perf_counter()
    r = subprocess.run([*KEYPOINTER, "suggest", str(best), str(video), "--num", str(num),
                        "--out", str(out), "--format", "dlc", "--quiet"],
                       capture_output=True, text=True)  # fmt: skip
    seconds = time.perf_counter() - start
    if r.returncode:
        raise SystemExit(f"keypointer suggest failed: {r.stderr}")
    check = subprocess.run([*KEYPOINTER, "check", str(out)], capture_output=True, text=True)
    pngs = sorted((out / "labeled-data" / "video").glob("img*.png"))
    numbers = [int(p.stem[3:]) for p in pngs]
    return {"seconds": seconds, "check": check.returncode, "frames": len(pngs),
            "error": float(err[numbers].mean())}  # fmt: skip


def report(args, rows, summary, cli, err, trained, predict_s, frames) -> None:
    lines = [
        "## Frame suggestion (`keypointer suggest`)",
        "",
        f"Command: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/suggest.py --minutes "
        f"{args.minutes:g} --frames {args.frames} --num {args.num} --draws {args.draws} "
        f"--videos {args.videos}`. Machine: 2-core AMD EPYC (AVX512-BF16), no GPU, shared with "
        f"other jobs. Model: `keypointer train --time {args.minutes:g}` on 60 synthetic 256 px "
        f"images, one thread ({trained:.1f} min). Videos: "
        f"synthetic, {frames} frames of 256 px at 30 fps, seeds 0..{args.videos - 1}, each "
        f"predicted with flip TTA (the default) and without; {predict_s:.0f} s for all these "
        f"prediction passes. Video 0's frame errors with flip TTA: mean "
        f"{err.mean():.2f} px, median {np.median(err):.2f} px.",
        "",
        f"Video 0, {args.num} frames. Pose spread: mean distance between the picked frames' "
        "true poses, normalised for position and size. Fast: share of picks in bursts of fast "
        "motion.",
        "",
        "| picked by | mean true error (px) | x random | error percentile | pose spread | fast |",
        "|---|---|---|---|---|---|",
    ]
    notes = []
    for row in rows:
        if len(row) == 1:
            notes.append(row[0])
            continue
        name, mean, ratio, pct, div, fast = row
        lines.append(f"| {name} | {mean:.2f} | {ratio:.2f} | {pct:.0f} | {div:.2f} | {fast:.2f} |")
    lines += ["", "; ".join(notes) + ".", ""]
    lines += [
        f"Mean over {args.videos} videos x {len(NUMS)} sizes ({', '.join(map(str, NUMS))} "
        f"frames) x {KMEANS_SEEDS} k-means seeds:",
        "",
        "| picked by | x random | pose spread |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | {r:.2f} | {d:.2f} |" for k, (r, d) in summary.items()]
    lines += [
        "",
        f"`keypointer suggest` on video 0 (dlc output, defaults, {args.num} frames): "
        f"{cli['seconds']:.0f} s end to end, {cli['frames']} frames written, their mean true "
        f"error {cli['error']:.2f} px; `keypointer check` on its output: exit code "
        f"{cli['check']}.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
