"""A two-fly model through the video path on the held-out half, with stage times.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/flies_video.py RUN/best.pt look --every 10 \
        --out W/video

What ``keypointer predict clip.mp4 --max-instances 2`` runs (``Pipeline`` on the frames from
``--start`` on, then ``temporal.tracking.track``), scored against SLEAP's tracks as
``benchmarks/tracking_real.py`` scores them (``metrics.tracking.mot_metrics``), with timers
around the locator and each pose pass (crops counted), then located OKS AP on every
``--every``-th held-out frame (``eval``'s located metrics) with SLEAP's two long tracks as
the reference. MODE: ``look`` (the defaults: look again at the locator's next peaks), ``base``
(max_instances 2, no looking again), ``none`` (no max_instances), ``track`` (also where a
track was last seen, ``LOOK_AGAIN_FRAMES`` 5). Writes ``<out>_<mode>.json``.
"""

import argparse
import dataclasses
import json
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import tracking_real as TR  # benchmarks/ is the script's folder: on sys.path

from keypointer.commands.eval_located import located_metrics
from keypointer.data.formats import load_dataset
from keypointer.inference import pipeline as P
from keypointer.inference.sources import Source, iter_frames
from keypointer.inference.video import FrameRange
from keypointer.metrics.tracking import mot_metrics
from keypointer.temporal.tracking import track

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("mode", choices=["look", "base", "none", "track"])
ap.add_argument("--start", type=int, default=550)
ap.add_argument("--frames", type=int, default=None)
ap.add_argument("--every", type=int, default=5, help="located eval: every n-th held-out frame")
ap.add_argument("--out", required=True, help="output stem")
ap.add_argument("--skip-located", action="store_true")
ap.add_argument("--threshold", type=float, default=None, help="override the locator's threshold")
args = ap.parse_args()

mode = args.mode
if mode == "track":
    P.LOOK_AGAIN_FRAMES = 5
pipe = P.load_pipeline(args.model, max_instances=None if mode == "none" else 2)
pipe = pipe.with_options(look_again=mode in ("look", "track"))
if args.threshold is not None:
    pipe = dataclasses.replace(
        pipe, locator=dataclasses.replace(pipe.locator, threshold=args.threshold)
    )
print(pipe.describe(), "threshold", pipe.locator.threshold, "floor", pipe.locator.min_pose_score)

# ---- timers
T = defaultdict(float)
N = Counter()
state = {"phase": "first", "again": False}
_find, _run_crops = P.find_boxes, P.run_crops


def find_boxes(*a, **k):
    t = time.perf_counter()
    out = _find(*a, **k)
    T["locator"] += time.perf_counter() - t
    return out


def run_crops(runner, crops, *a, **k):
    t = time.perf_counter()
    out = _run_crops(runner, crops, *a, **k)
    key = ("again " if state["again"] else "") + state["phase"]
    T[key] += time.perf_counter() - t
    N[key] += len(crops)
    state["phase"] = "second"
    return out


_pose_pending, _add_found = P.Pipeline._pose_pending, P.Pipeline._add_found


def pose_pending(self, pending):
    state["phase"] = "first"
    yield from _pose_pending(self, pending)


def add_found(self, *a):
    state["again"] = True
    N["frames looked at again"] += 1
    try:
        return _add_found(self, *a)
    finally:
        state["again"] = False


P.find_boxes, P.run_crops = find_boxes, run_crops
P.Pipeline._pose_pending, P.Pipeline._add_found = pose_pending, add_found

video = TR.DATA / "json_format_v1" / "centered_pair_low_quality.mp4"
stop = None if args.frames is None else args.start + args.frames
rng = FrameRange(start=args.start, stop=stop)
src = [Source(video, "video")]
t0 = time.perf_counter()
nframes = sum(1 for _ in iter_frames(src, rng))
T["decode"] = time.perf_counter() - t0
t0 = time.perf_counter()
preds = list(pipe.run(iter_frames(src, rng)))
wall = time.perf_counter() - t0
kp = [p.keypoints for p in preds]
sc = [p.scores for p in preds]
times = np.array([p.frame.time for p in preds])
t0 = time.perf_counter()
ids = track(kp, sc, times, max_instances=2)
T["tracking"] = time.perf_counter() - t0

gt_ids, gt_kp = TR.truth(1100)
part = slice(args.start, stop)
m = mot_metrics(gt_ids[part], gt_kp[part], ids, kp)
objects = sum(len(i) for i in gt_ids[part])
counts = Counter(len(k) for k in kp)
res = {
    "mode": mode,
    "frames": nframes,
    "fps": nframes / wall,
    "ms_per_frame": 1e3 * wall / nframes,
    "found_per_frame": counts,
    "tracking": {
        "objects": objects,
        "missed_pct": 100 * m["num_misses"] / objects,
        "false_pos_pct": 100 * m["num_false_positives"] / objects,
        "switches": m["num_switches"],
        "mota": m["mota"],
        "idf1": m["idf1"],
    },
    "seconds": dict(T),
    "crops": dict(N),
}
print(json.dumps(res, indent=1, default=str))

if not args.skip_located:
    # located eval on held-out labelled frames: SLEAP's two long tracks (the flies) as truth
    kset = load_dataset(TR.SLP)
    cnt = Counter(i.track for s in kset.samples for i in s.instances if i.track)
    names = {n for n, c in cnt.items() if c >= 550}
    samples = [
        dataclasses.replace(s, instances=[i for i in s.instances if i.track in names])
        for s in kset.samples
        if s.frame >= args.start and (s.frame - args.start) % args.every == 0
    ]
    sub = dataclasses.replace(kset, samples=samples)
    lm = located_metrics(pipe, sub, quiet=True)
    res["located"] = {"samples": len(samples), **lm}
    print(json.dumps(res["located"], indent=1, default=str))
out = Path(f"{args.out}_{mode}.json")
out.write_text(json.dumps(res, indent=1, default=str))
