"""Several cameras from a trained model's 2D predictions: our triangulation against aniposelib's.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/multiview_model.py --work /tmp/mv
        # ~30 min on 2 busy cores: scenes, 10 min of training, predictions, triangulation
    .venv/bin/python benchmarks/multiview_model.py --work /tmp/mv   # again: cached, ~5 min

Stages (each cached in ``--work``, so a rerun only triangulates again):

1. Scenes: ``keypointer synth --cameras 3`` and ``--cameras 6`` (``write_scene``, seed 0,
   ``--frames`` frames at 30 fps, 640x480 videos with lens distortion, 20 keypoints).
2. Frames: every ``--every``-th of the first ``--train-frames`` frames of every camera's
   video (both scenes: one model), decoded from the video and saved as PNG, with a COCO file
   of the exact projections of the 3D truth and their boxes; every later frame as PNG with a
   detections file: the keypoints' extent, centre moved by up to 5% and size x0.9-1.1, as a
   detector gives it. The figure is ~45 px in a 640x480 frame, too small for a whole-frame
   model trained in minutes on a CPU (at 256x192: PCK 0.03 after 6 min), so the model is
   top-down.
3. Training: one model, ``keypointer.training.loop.train`` with a time budget (``--minutes``)
   on one thread, 96x96 crops, the default backbone and heatmap head, cosine schedule.
4. Predictions: every camera's held-out frames through ``load_pipeline(...).run`` with the
   boxes (what ``keypointer predict --boxes`` runs, without flip TTA: its default); 2D error
   per camera against the truth.
5. Triangulation of the same 2D predictions and scores: ours (``triangulate`` and its
   options: score weights, view selection, 3D smoothing, limbs learnt from the training
   labels triangulated, or from its own confident points) and aniposelib 0.8.0's default
   ``CameraGroup.triangulate`` (in its own venv, ``--peer``); both get the points scoring
   under 0.3 as missing and the same calibration (calibrated by us from a simulated board
   clip with 0.2 px corner noise, as benchmarks/multiview.py step 1; its world is camera A's
   frame). "corrupted": in 10% of the frames camera A's points are moved by 40-120 px (one
   offset per frame, scores kept: a confident wrong detection), as in
   benchmarks/multiview.py. 3D error = distance to the truth in mm (mean / median over the
   points both tools give).
6. Limbs on benchmarks/multiview.py's synthetic test bed, and their speed (CPU time).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from keypointer.malloc import tune_malloc

tune_malloc()  # first: before torch allocates; see keypointer/malloc.py

# isort: split
import cv2
import numpy as np
import torch

from keypointer.config import KEYPOINT_SCORE_THRESHOLD, Config
from keypointer.multiview.calibrate import Board, calibrate
from keypointer.multiview.cameras import CameraGroup, write_calibration
from keypointer.multiview.limbs import Limbs, learn_limbs
from keypointer.multiview.synthetic import (
    board_clip,
    camera_ring,
    figure_motion,
    project_views,
    write_scene,
)
from keypointer.multiview.triangulate import (
    Triangulation,
    confident,
    smooth_points,
    triangulate,
)

OUT = Path("multiview_model.md")  # the report; its figures go into RESULTS.md by hand
BOARD_FRAMES = {3: 100, 6: 150}
INPUT_SIZE = (96, 96)
FPS = 30.0

PEER_SCRIPT = r"""
import json, sys, time
import numpy as np
from aniposelib.cameras import CameraGroup

job = json.load(open(sys.argv[1]))
out = {}
cgroup = CameraGroup.load(job["calibration"])
for name, path in job["points"].items():
    pts = np.load(path)  # (C, N, 2), NaN where missing
    cgroup.triangulate(pts[:, :10])  # jax compiles on the first call: not timed
    t = time.perf_counter()
    np.save(path.replace(".npy", "_anipose.npy"), cgroup.triangulate(pts))
    out[name + "_s"] = time.perf_counter() - t
json.dump(out, open(job["result"], "w"))
"""


def make_scenes(work: Path, frames: int) -> dict[int, Path]:
    scenes = {}
    for n in (3, 6):
        folder = work / f"scene{n}"
        if not (folder / "scene.json").is_file():
            t = time.perf_counter()
            write_scene(folder, n, frames=frames, seed=0, fps=FPS)
            print(f"scene {n}: rendered in {time.perf_counter() - t:.0f} s", flush=True)
        scenes[n] = folder
    return scenes


def truth_views(n: int, frames: int) -> tuple[CameraGroup, np.ndarray, np.ndarray, np.ndarray]:
    """The scene's true cameras, exact 2D points (C, F, K, 2), 3D truth (F, K, 3), edges."""
    group = camera_ring(n, seed=0)
    figure = figure_motion(frames, 20, seed=0)
    uv, _ = project_views(group, figure.points)
    return group, uv, figure.points, figure.edges


def figure_box(uv: np.ndarray, rng: np.random.Generator | None = None) -> list[float]:
    """COCO box (x, y, w, h) of (K, 2) points; with ``rng``, as a detector gives it: its
    centre moved by up to 5% and its size scaled by 0.9-1.1."""
    ok = np.isfinite(uv).all(-1)
    low, high = uv[ok].min(axis=0), uv[ok].max(axis=0)
    centre, size = (low + high) / 2, high - low + 2.0
    if rng is not None:
        centre = centre + rng.uniform(-0.05, 0.05, 2) * size
        size = size * rng.uniform(0.9, 1.1)
    return [*(centre - size / 2).tolist(), *size.tolist()]


def write_frames(work: Path, scenes: dict[int, Path], frames: int, train: int, every: int) -> Path:
    """PNG frames decoded from the videos: every ``every``-th of the first ``train`` frames
    with a COCO file of their exact 2D points and boxes (training), and every later frame
    with a detections file (boxes as a detector gives them) for predicting."""
    labels = work / "labels" / "annotations.json"
    if labels.is_file():
        return labels
    images, annotations, detections = [], [], []
    rng = np.random.default_rng(5)
    for n, folder in scenes.items():
        group, uv, _, edges = truth_views(n, frames)
        for c, cam in enumerate(group):
            cap = cv2.VideoCapture(str(folder / f"{cam.name}.mp4"))
            for f in range(frames):
                ok, image = cap.read()
                if not ok:
                    raise SystemExit(f"{folder / cam.name}.mp4 ends at frame {f}")
                if f < train and f % every:
                    continue
                part = "images" if f < train else f"test{n}/{cam.name}"
                name = f"{part}/s{n}_{cam.name}_{f:05d}.png"
                (labels.parent / part).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(labels.parent / name), image)
                if f >= train:
                    detections.append({"image_id": name, "bbox": figure_box(uv[c, f], rng)})
                    continue
                ok = np.isfinite(uv[c, f]).all(-1)
                keypoints = np.concatenate([np.nan_to_num(uv[c, f]), 2.0 * ok[:, None]], axis=1)
                images.append({"id": len(images), "file_name": name, "width": 640, "height": 480})
                annotations.append(
                    {
                        "id": len(annotations),
                        "image_id": len(images) - 1,
                        "category_id": 1,
                        "keypoints": keypoints.ravel().tolist(),
                        "num_keypoints": int(ok.sum()),
                        "bbox": figure_box(uv[c, f]),
                        "area": 1.0,
                        "iscrowd": 0,
                    }
                )
            cap.release()
    categories = [
        {
            "id": 1,
            "name": "figure",
            "keypoints": [f"kp{k}" for k in range(uv.shape[2])],
            "skeleton": (edges + 1).tolist(),
        }
    ]
    coco = {"images": images, "annotations": annotations, "categories": categories}
    (labels.parent / "detections.json").write_text(json.dumps(detections))
    labels.write_text(json.dumps(coco))
    print(f"labels: {len(images)} training images, {len(detections)} test frames", flush=True)
    return labels


def train_model(work: Path, labels: Path, minutes: float) -> tuple[Path, dict]:
    from keypointer.training.loop import train

    done = work / "model.json"
    if done.is_file():
        info = json.loads(done.read_text())
        return Path(info["checkpoint"]), info
    cfg = Config()
    cfg.data.path = str(labels)
    cfg.data.val_fraction = 0.1
    cfg.model.input_size = INPUT_SIZE
    cfg.train.recipe = False
    cfg.train.time = minutes
    cfg.train.epochs = 30
    cfg.train.schedule = "cosine"
    cfg.train.warmup_epochs = 0.3
    cfg.loader.batch_size = 16
    cfg.train.device = "cpu"
    cfg.run.name = "multiview"
    cfg.run.root = str(work / "runs")
    cfg.run.quiet = True
    t = time.perf_counter()
    run = train(cfg)
    info = {
        "checkpoint": str(run.best),
        "minutes": (time.perf_counter() - t) / 60,
        "epochs": len(run.metrics),
        "last": {k: v for k, v in run.metrics[-1].items() if isinstance(v, int | float)}
        if run.metrics
        else {},
    }
    done.write_text(json.dumps(info, indent=1))
    return run.best, info


def predict(work: Path, checkpoint: Path, scenes: dict[int, Path], start: int) -> dict[int, Path]:
    """(C, F, K, 2) predictions and (C, F, K) scores of the held-out frames, per scene."""
    from keypointer.inference.pipeline import load_pipeline
    from keypointer.inference.sources import collect_sources, iter_frames, load_detections

    out = {}
    pipe = None
    for n, folder in scenes.items():
        path = work / f"predictions{n}.npz"
        out[n] = path
        if path.is_file():
            continue
        pipe = pipe or load_pipeline(checkpoint, "cpu")
        names = json.loads((folder / "scene.json").read_text())["cameras"]
        total = json.loads((folder / "scene.json").read_text())["frames"]
        xy = np.full((len(names), total - start, 20, 2), np.nan)
        scores = np.zeros(xy.shape[:-1])
        t = time.perf_counter()
        for c, name in enumerate(names):
            sources = collect_sources([work / "labels" / f"test{n}" / name])
            boxes = load_detections(work / "labels" / "detections.json", sources)
            for p in pipe.run(iter_frames(sources), boxes):
                f = int(p.frame.source.path.stem.rsplit("_", 1)[1]) - start
                xy[c, f], scores[c, f] = p.keypoints[0], p.scores[0]
        seconds = time.perf_counter() - t
        print(f"predicted scene {n} in {seconds:.0f} s", flush=True)
        np.savez(path, xy=xy, scores=scores, seconds=seconds)
    return out


def calibrated(n: int) -> tuple[CameraGroup, CameraGroup]:
    """(truth, ours calibrated from a simulated board clip, world = camera A's frame)."""
    truth = camera_ring(n, seed=0)
    board = Board()
    clip = board_clip(truth, board, BOARD_FRAMES[n], noise_px=0.2, seed=1)
    result = calibrate(clip.corners, board, [c.size for c in truth], truth.names)
    return truth, result.group


def corrupt(xy: np.ndarray, share: float = 0.1, seed: int = 8) -> np.ndarray:
    """Camera 0's points moved by 40-120 px in ``share`` of the frames (one offset a frame)."""
    rng = np.random.default_rng(seed)
    n_frames = xy.shape[1]
    frames = rng.random(n_frames) < share
    angle = rng.uniform(0, 2 * np.pi, n_frames)
    length = rng.uniform(40.0, 120.0, n_frames)
    offset = np.stack([np.cos(angle), np.sin(angle)], axis=1) * length[:, None]
    out = xy.copy()
    out[0, frames] += offset[frames, None, :]
    return out


def error_mm(points: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> tuple:
    e = np.linalg.norm(points - truth, axis=-1)
    if mask is not None:
        e = np.where(mask, e, np.nan)
    return float(np.nanmean(e)), float(np.nanmedian(e)), float(np.isfinite(e).mean())


def run_peer(peer: Path, work: Path, cal: Path, inputs: dict[str, np.ndarray]) -> dict:
    job = {"calibration": str(cal), "points": {}, "result": str(work / "peer.json")}
    for name, xy in inputs.items():
        path = work / f"peer_{name}.npy"
        np.save(path, xy.reshape(xy.shape[0], -1, 2))
        job["points"][name] = str(path)
    (work / "peer_job.json").write_text(json.dumps(job))
    (work / "peer.py").write_text(PEER_SCRIPT)
    subprocess.run([str(peer), str(work / "peer.py"), str(work / "peer_job.json")], check=True)
    times = json.loads((work / "peer.json").read_text())
    return {
        name: (np.load(path.replace(".npy", "_anipose.npy")), times[name + "_s"])
        for name, path in job["points"].items()
    }


Variant = Callable[[CameraGroup, np.ndarray, np.ndarray], np.ndarray]


def variants(from_labels: Limbs, skeleton: Limbs) -> dict[str, Variant]:
    """Our options, each (group, xy, scores) -> (F, K, 3)."""

    def smoothed(method: str, **kw) -> Variant:
        def run(group, xy, scores):
            tri = triangulate(group, xy, scores, **kw)
            t = np.arange(tri.points.shape[0]) / FPS
            return smooth_points(tri.points, least_score(scores, tri), t, method)

        return run

    def own_limbs(group, xy, scores):
        tri = triangulate(group, xy, scores)
        limbs = learn_limbs(tri.points, valid=confident(tri.error, tri.views))
        return triangulate(group, xy, scores, limbs=limbs).points

    def plain(**kw) -> Variant:
        return lambda g, xy, s: triangulate(g, xy, s, **kw).points

    out: dict[str, Variant] = {
        "ours, defaults": plain(),
        "ours, no score weights": lambda g, xy, s: triangulate(g, xy, (s >= 0.3) * 1.0).points,
        # the weight is score^SCORE_POWER (2): score^1, as before, through the square root
        "ours, weights = score (linear)": lambda g, xy, s: plain(score_threshold=0.3**0.5)(
            g, xy, np.sqrt(s)
        ),
        "ours, not robust": plain(robust=False),
    }
    for threshold in (5.0, 20.0):
        out[f"ours, error_threshold {threshold:g} px"] = plain(error_threshold=threshold)
    for method in ("savgol", "median", "kalman"):
        out[f"ours + 3D {method}"] = smoothed(method)
    out["ours + limbs: skeleton's edges, lengths from labels"] = plain(limbs=skeleton)
    out["ours + limbs from labels (pairs chosen)"] = plain(limbs=from_labels)
    out["ours + limbs from its own confident points"] = own_limbs
    out["ours + limbs from labels + 3D savgol"] = smoothed("savgol", limbs=from_labels)
    out["ours + limbs from labels + 3D kalman"] = smoothed("kalman", limbs=from_labels)
    return out


def least_score(scores: np.ndarray, tri: Triangulation) -> np.ndarray:
    used = np.where(tri.used, scores, np.inf).min(axis=0)
    return np.where(tri.views >= 2, used, np.nan)


def evaluate(work: Path, preds: dict[int, Path], frames: int, start: int, peer: Path | None):
    rows, twod, speed = [], [], {}
    for n, path in preds.items():
        data = np.load(path)
        xy, scores = data["xy"], data["scores"]
        true_group, group = calibrated(n)
        _, uv, truth, edges = truth_views(n, frames)
        err2d = np.linalg.norm(xy - uv[:, start:], axis=-1)
        for c, name in enumerate(true_group.names):
            e = err2d[c][np.isfinite(err2d[c])]
            twod.append(
                f"| {n} | {name} | {e.mean():.2f} | {np.median(e):.2f} | "
                f"{np.percentile(e, 95):.1f} | {(e > 20).mean() * 100:.1f}% | {scores[c].mean():.2f} |"
            )
        # the calibration's world is camera A's frame
        target = truth[start:] @ true_group[0].rotation.T + true_group[0].tvec
        # limbs from the training labels: exact 2D points of the training frames, triangulated
        train_tri = triangulate(group, uv[:, :start], None)
        from_labels = learn_limbs(train_tri.points)
        skeleton = learn_limbs(train_tri.points, edges)
        inputs = {"clean": xy, "corrupted": corrupt(xy)}
        cal = write_calibration(group, work / f"calibration{n}.toml")
        missing = {k: np.where((scores >= KEYPOINT_SCORE_THRESHOLD)[..., None], v, np.nan)
                   for k, v in inputs.items()}  # fmt: skip
        theirs = run_peer(peer, work, cal, missing) if peer else {}
        for case, pts in inputs.items():
            base = None
            if case in theirs:
                base = theirs[case][0].reshape(target.shape)
                both = np.isfinite(base).all(-1)
                rows.append((n, case, "aniposelib triangulate (default)", error_mm(base, target)))
                speed[f"aniposelib, {n} cameras, {case}"] = target.shape[0] / theirs[case][1]
            for name, fn in variants(from_labels, skeleton).items():
                t = time.perf_counter()
                ours = fn(group, pts, scores)
                seconds = time.perf_counter() - t
                mask = both if base is not None else None
                rows.append((n, case, name, error_mm(ours, target, mask)))
                if n == 3 and case == "clean":
                    speed[name] = target.shape[0] / seconds
                print(n, case, name, rows[-1][-1], flush=True)
    return rows, twod, speed


def synthetic_section() -> list[str]:
    """Limbs on benchmarks/multiview.py's test bed (3 cameras, 2,000 frames, 2 px / score
    noise), true cameras: limbs learnt from the first 1,000 frames' 3D truth, errors on the
    last 1,000; and the speed of each option, CPU seconds (the machine is shared)."""
    group = camera_ring(3, seed=3)
    figure = figure_motion(2000, 20, seed=7)
    truth = figure.points[1000:]
    options = {
        "defaults": {},
        "limbs: the figure's tree, lengths from truth": {
            "limbs": learn_limbs(figure.points[:1000], figure.edges)
        },
        "limbs: pairs chosen from truth": {"limbs": learn_limbs(figure.points[:1000])},
    }
    lines = [
        "| option | clean | corrupted | occlusions | CPU frames/s (3 cameras x 20 keypoints) |",
        "|---|---|---|---|---|",
    ]
    cases = {"clean": {}, "corrupted": {"corrupt_camera": 0}, "occlusions": {"occluded_share": 0.1}}
    views = {
        k: project_views(group, figure.points, noise_px=2.0, seed=8, **kw)
        for k, kw in cases.items()
    }
    for name, kw in options.items():
        cells = []
        for uv, scores in views.values():
            points = triangulate(group, uv, scores, **kw).points[1000:]
            cells.append("{:.2f} / {:.2f}".format(*error_mm(points, truth)[:2]))
        uv, scores = views["clean"]
        spent = []
        for _ in range(3):
            t = time.process_time()
            triangulate(group, uv, scores, **kw)
            spent.append(time.process_time() - t)
        cells.append(f"{len(uv[0]) / statistics.median(spent):,.0f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/mv"))
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--train-frames", type=int, default=600)
    parser.add_argument("--every", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--peer", default="/work/peers/anipose/bin/python")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    peer = Path(args.peer) if args.peer and Path(args.peer).exists() else None
    args.work.mkdir(parents=True, exist_ok=True)
    scenes = make_scenes(args.work, args.frames)
    labels = write_frames(args.work, scenes, args.frames, args.train_frames, args.every)
    checkpoint, info = train_model(args.work, labels, args.minutes)
    print(f"model: {info}", flush=True)
    preds = predict(args.work, checkpoint, scenes, args.train_frames)
    rows, twod, speed = evaluate(args.work, preds, args.frames, args.train_frames, peer)
    report = [
        f"Machine: {platform.processor() or platform.machine()}, 1 torch thread; numpy "
        f"{np.__version__}. Script: benchmarks/multiview_model.py (its docstring: the set-up).",
        "",
        "Model: {} epochs, {} steps in {:.1f} min (1 thread); validation PCK {:.2f}, mean "
        "error {:.2f} px".format(
            info["epochs"],
            info["last"].get("step"),
            info["minutes"],
            info["last"].get("val_pck", float("nan")),
            info["last"].get("val_mean_px", float("nan")),
        ),
        "",
        "2D error of the model's predictions on the held-out frames (px):",
        "",
        "| cameras | camera | mean | median | 95th pct | over 20 px | mean score |",
        "|---|---|---|---|---|---|---|",
        *twod,
        "",
        "3D error (mm, mean / median; share of points given) against the truth:",
        "",
        "| cameras | inputs | method | 3D error mean / median (mm) | points |",
        "|---|---|---|---|---|",
    ]
    for n, case, name, (mean, median, share) in rows:
        report.append(f"| {n} | {case} | {name} | {mean:.2f} / {median:.2f} | {share:.3f} |")
    report += ["", "Speed (3 cameras, held-out frames, wall-clock frames/s, shared machine):", ""]
    report += [f"- {k}: {v:,.0f}" for k, v in speed.items()]
    report += [
        "",
        "Limbs on benchmarks/multiview.py's synthetic test bed (true cameras; 3D error mm, "
        "mean / median, last 1,000 of 2,000 frames; limbs from the first 1,000):",
        "",
        *synthetic_section(),
    ]
    text = "\n".join(report) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
