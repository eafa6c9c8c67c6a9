"""Identity tracking on a real video: SLEAP's two-fly clip, detections from a keypointer model.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tracking_real.py --work /tmp/kp-flies \
        --minutes 10 --threads 1 [--write]

Data: ``../shared/data/sleap-samples/hdf5_format_v1/centered_pair_predictions.slp``, SLEAP's
predictions with tracks of two flies that touch and cross, on
``json_format_v1/centered_pair_low_quality.mp4`` (1100 frames, 384 x 384). SLEAP's tracks are
the reference: they are a tracker's output, not proofread truth, so an identity swap of
SLEAP's counts against every method alike; read the counts as agreement with SLEAP.

1. Train a keypointer model (``keypointer train --time MINUTES``: two instances per frame, so
   a locator and a pose model) on every ``--every``-th frame before ``--split``.
2. Predict every frame of the video: located instances, untracked (cached in ``--work``).
3. Track them with each tracker setting and score against SLEAP's tracks
   (keypointer.metrics.tracking.mot_metrics, OKS >= 0.5): settings are compared on the frames
   before ``--split`` (the tuning half) and reported on the frames after it (held out, and not
   seen in training either).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from _results import write_section

from keypointer.metrics.tracking import mot_metrics
from keypointer.temporal.tracking import TrackerSettings, nearest_centroid_ids, track

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sleap-samples"
SLP = DATA / "hdf5_format_v1" / "centered_pair_predictions.slp"
SWEEP = {
    "motion": ("centroid", "keypoints"),
    "accel": (1.0, 2.0, 4.0, 8.0),
    "inlier": (0.1, 0.15, 0.3),
    "kappa": (0.15, 0.2, 0.3),
}


def train(work: Path, minutes: float, split: int, every: int, threads: int) -> Path:
    """Write the training frames as their own .slp (sleap-io) and train on them."""
    import sleap_io as sio

    labels = sio.load_slp(str(SLP))
    kept = [
        lf for lf in labels.labeled_frames if lf.frame_idx < split and lf.frame_idx % every == 0
    ]
    subset = sio.Labels(labeled_frames=kept, videos=labels.videos, skeletons=labels.skeletons,
                        tracks=labels.tracks)  # fmt: skip
    path = work / "train.slp"
    subset.save(str(path))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run([sys.executable, "-m", "keypointer", "train", "--data", str(path), "--time",
                    str(minutes), "--set", f"run.root={work / 'runs'}", "--set", "run.name=flies",
                    "--set", f"data.images={DATA}"],
                   check=True, env=env, cwd=ROOT)  # fmt: skip
    return max((work / "runs" / "flies").iterdir())


def detect(run_dir: Path, video: Path, cache: Path) -> tuple[list, list, np.ndarray, float]:
    """Per frame (M_t, K, 2) keypoints and (M_t, K) scores of the located instances, the
    frames' times (T,) s, and the seconds per frame; cached in ``cache`` (npz)."""
    if cache.exists():
        z = np.load(cache, allow_pickle=True)
        return list(z["keypoints"]), list(z["scores"]), z["times"], float(z["seconds"])
    from keypointer.inference.pipeline import load_pipeline
    from keypointer.inference.sources import Source, iter_frames

    pipe = load_pipeline(run_dir / "best.pt")
    began = time.perf_counter()
    preds = list(pipe.run(iter_frames([Source(video, "video")])))
    seconds = (time.perf_counter() - began) / len(preds)
    kp = np.empty(len(preds), object)
    sc = np.empty(len(preds), object)
    for t, p in enumerate(preds):
        kp[t], sc[t] = p.keypoints, p.scores
    times = np.array([p.frame.time for p in preds], np.float64)
    np.savez(cache, keypoints=kp, scores=sc, times=times, seconds=seconds)
    return list(kp), list(sc), times, seconds


def truth(frames: int) -> tuple[list, list]:
    """SLEAP's track ids (M_t,) and keypoints (M_t, K, 3) of every frame of the video: its
    two tracks that last the whole clip (the flies). Its 25 others live 1-25 frames: extra
    instances, which count as no animal here."""
    from keypointer.data.formats import load_dataset

    kset = load_dataset(SLP)
    counts = Counter(i.track for s in kset.samples for i in s.instances if i.track)
    names = sorted(name for name, n in counts.items() if n >= 0.5 * frames)
    k = kset.skeleton.num_keypoints
    ids = [np.zeros(0, int) for _ in range(frames)]
    kps = [np.zeros((0, k, 3)) for _ in range(frames)]
    for s in kset.samples:
        kept = [i for i in s.instances if i.track in names]
        ids[s.frame] = np.array([names.index(i.track) for i in kept], int)
        kps[s.frame] = np.array([i.keypoints for i in kept]).reshape(-1, k, 3)
    return ids, kps


def score(gt: tuple, kp: list, ids: list, part: slice) -> dict[str, float]:
    m = mot_metrics(gt[0][part], gt[1][part], ids[part], kp[part])
    return {"switches": m["num_switches"], "mota": m["mota"], "idf1": m["idf1"]}


def motion(gt: tuple) -> str:
    """How hard the clip is for a tracker: how close the two flies come, in sizes (sqrt of the
    keypoint box area), and how fast they move, in pixels per frame."""
    kps = [k[np.argsort(i)] for i, k in zip(*gt, strict=True)]  # (2, K, 3) each, by track
    seen = [np.where(k[..., 2:] > 0, k[..., :2], np.nan) for k in kps]
    centres = np.array([np.nanmean(s, axis=1) for s in seen])  # (T, 2, 2)
    sizes = np.array([np.sqrt(np.prod(np.nanmax(s, 1) - np.nanmin(s, 1), -1)) for s in seen])
    apart = np.linalg.norm(centres[:, 0] - centres[:, 1], axis=-1) / sizes.mean(1)
    speed = np.linalg.norm(np.diff(centres, axis=0), axis=-1)
    return (
        f"The flies are {np.median(sizes):.0f} px (median size); their centres come "
        f"{apart.min():.2f} sizes apart at the closest (median {np.median(apart):.2f}); "
        f"they move {np.median(speed):.2f} px per frame (median), {np.percentile(speed, 99):.1f} "
        f"(99th percentile), {speed.max():.1f} at most."
    )


def compare(gt: tuple, kp: list, sc: list, times: np.ndarray, split: int) -> list[dict]:
    """The baseline, and every setting of :data:`SWEEP` (and the default with max_instances 2),
    each tracked over the whole video and scored on both halves."""
    halves = (slice(0, split), slice(split, None))
    runs = [("nearest centroid", None, nearest_centroid_ids(kp, sc, times))]
    for values in itertools.product(*SWEEP.values()):
        options = dict(zip(SWEEP, values, strict=True))
        runs.append((options, None, track(kp, sc, times, **options)))
    runs.append(("default", 2, track(kp, sc, times, max_instances=2)))
    return [{"tracker": name, "max_instances": limit,
             **{h: score(gt, kp, ids, part) for h, part in zip(("tune", "test"), halves, strict=True)}}
            for name, limit, ids in runs]  # fmt: skip


def table_rows(rows: list[dict], stride: int, fps: float, held_out: int) -> list[str]:
    """The baseline, the default tracker (alone and with max_instances 2) and the setting
    with the fewest switches on the tuning half (ties: the best IDF1)."""
    default = {f: getattr(TrackerSettings(), f) for f in SWEEP}
    swept = [r for r in rows if isinstance(r["tracker"], dict)]
    best = min(swept, key=lambda r: (r["tune"]["switches"], -r["tune"]["idf1"]))
    picked = [("nearest centroid", rows[0]), ("default", next(r for r in swept if
              r["tracker"] == default)), ("default, max_instances 2", rows[-1]),
              ("best on tuning: " + ", ".join(f"{k} {v}" for k, v in best["tracker"].items()),
               best)]  # fmt: skip
    out = []
    for name, r in picked:
        t = r["test"]
        out.append(f"| {stride} ({fps:.2g} fps) | {name} | {r['tune']['switches']:.0f} | "
                   f"{t['switches']:.0f} ({1000 * t['switches'] / held_out:.1f}) | "
                   f"{t['mota']:.3f} | {t['idf1']:.3f} |")  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--split", type=int, default=550)
    ap.add_argument("--every", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--run", type=Path, default=None, help="use this run; do not train")
    ap.add_argument("--strides", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="kp-flies-"))
    work.mkdir(parents=True, exist_ok=True)
    run_dir = args.run or train(work, args.minutes, args.split, args.every, args.threads)
    video = DATA / "json_format_v1" / "centered_pair_low_quality.mp4"
    kp, sc, times, seconds = detect(run_dir, video, work / "detections.npz")
    gt = truth(len(kp))
    lines = ["| every n-th frame | tracker | tuning half: ID switches | held-out half: ID "
             "switches (per 1000 frames) | MOTA | IDF1 |", "|---|---|---|---|---|---|"]  # fmt: skip
    results = {}
    for stride in args.strides:
        pick = slice(None, None, stride)
        sub = (gt[0][pick], gt[1][pick]), kp[pick], sc[pick], times[pick]
        split = -(-args.split // stride)
        rows = compare(*sub, split)
        results[stride] = rows
        fps = 1.0 / float(np.median(np.diff(times[pick])))
        lines += table_rows(rows, stride, fps, len(sub[1]) - split)
    (work / "sweep.json").write_text(json.dumps(results, indent=1, default=str))
    body = "\n".join(lines)
    found = sum(len(k) for k in kp) / len(kp)
    print(f"{len(kp)} frames, {found:.2f} instances per frame found, {1e3 * seconds:.0f} ms/frame")
    print(motion(gt))
    print(body)
    if args.write:
        machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, no GPU"
        command = " ".join(["benchmarks/tracking_real.py", *sys.argv[1:]])
        write_section("Tracking on a real video", f"Machine: {machine}. Command: `{command}`. "
                      f"{found:.2f} instances per frame found, {1e3 * seconds:.0f} ms/frame. "
                      f"{motion(gt)}\n\n{body}")  # fmt: skip


if __name__ == "__main__":
    main()
