"""Temporal smoothing benchmark: savgol, median and kalman against the raw predictions.

    .venv/bin/python benchmarks/smoothing.py                       # (a) synthetic tracks, ~3 min
    .venv/bin/python benchmarks/smoothing.py --libs /tmp/kvenv/lib/python3.11/site-packages
        # + kalman: ours against filterpy 2.0.0 and pykalman 0.11.2 (installed there, not ours)
    .venv/bin/python benchmarks/smoothing.py --train-model /tmp/clipmodel --skip-synthetic
        # a model for (b): demo settings on 1000 whole frames of synthetic clip seed 7, ~5-9 min
    .venv/bin/python benchmarks/smoothing.py --checkpoint best.pt  # + (b) the synthetic video

(a) ``synthetic_tracks`` (tests/helpers.py): sums of sinusoids (0.1-1.5 Hz, 10-40
px each), Gaussian noise 1.5 px / score, 0.5% one-frame spikes of 20-60 px, low-score
stretches; 20 s at 30 and 250 fps, 17 keypoints, seeds 0-2. (b) a model's predictions (flip
TTA) on ``keypointer.data.synthetic_video`` clips of seed 0, 128 px, against their truth
(points inside the image). Columns: mean and median error (px) on the frames with a raw value
scoring >= 0.3; mean error on the frames a filter filled (short low-score gaps); jitter = RMS
of the frame-to-frame displacement minus the truth's own (px/frame); lag = the shift in frames
that best aligns output and truth; time to smooth 10,000 frames x 17 keypoints (median of 3).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import synthetic_tracks, track_metrics  # the tests' known-truth tracks

from keypointer.temporal import smooth as sm
from keypointer.temporal.outliers import outlier_flags

FILTERS = ("raw",) + sm.METHODS
WINDOWS = (0.05, 0.1, 0.2, 0.3, 0.5)


def run(method: str, xy, scores, times, window=None) -> np.ndarray:
    if method == "raw":
        return np.where((scores >= 0.3)[..., None], xy, np.nan)
    return sm.smooth(xy, scores, times, method, window=window)


def evaluate(out, truth, scores, mask=None) -> dict[str, float]:
    """Metrics on frames with a raw value (and ``mask``), and the error on filled frames."""
    ok = scores >= 0.3 if mask is None else (scores >= 0.3) & mask
    m = track_metrics(np.where(ok[..., None], out, np.nan), truth)
    m["median"] = float(np.nanmedian(np.where(ok, np.linalg.norm(out - truth, axis=-1), np.nan)))
    filled = ~(scores >= 0.3) & (True if mask is None else mask) & np.isfinite(out).all(-1)
    dist = np.linalg.norm(out - truth, axis=-1)[filled]
    m["filled"] = float(dist.mean()) if dist.size else float("nan")
    return m


def timing(method: str, repeats: int = 3) -> float:
    truth, xy, scores, times = synthetic_tracks(num_frames=10_000, num_keypoints=17, seed=9)
    if method == "raw":
        return 0.0
    spent = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sm.smooth(xy, scores, times, method)
        spent.append(time.perf_counter() - t0)
    return statistics.median(spent)


def table(rows: list[tuple[str, dict]], extra: str = "") -> str:
    head = "| filter | mean error px | median error px | filled-gap error px | jitter px/frame |"
    out = [head + " lag frames |" + extra, "|" + "---|" * (6 + bool(extra))]
    for name, m in rows:
        cells = [f"{m[k]:.2f}" for k in ("error", "median", "filled", "jitter")] + [str(m["lag"])]
        if extra:
            cells.append(m.get("time", ""))
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def synthetic_section() -> str:
    parts = []
    times_s = {m: timing(m) for m in FILTERS}
    for fps in (30.0, 250.0):
        rows = []
        for method in FILTERS:
            ms = [evaluate(run(method, *_tracks(fps, s)[1:]), _tracks(fps, s)[0], _tracks(fps, s)[2])
                  for s in range(3)]  # fmt: skip
            m = {
                k: float(np.mean([x[k] for x in ms]))
                for k in ("error", "median", "filled", "jitter")
            }
            m["lag"] = max((x["lag"] for x in ms), key=abs)
            m["time"] = f"{times_s[method] * 1000:.0f}" if method != "raw" else "-"
            rows.append((method, m))
        parts.append(
            f"**{fps:.0f} fps** (20 s, 17 keypoints, mean of seeds 0-2; default windows)\n"
        )
        parts.append(table(rows, " ms for 10,000 x 17 |") + "\n")
    return "\n".join(parts)


_CACHE: dict = {}


def _tracks(fps: float, seed: int):
    key = (fps, seed)
    if key not in _CACHE:
        _CACHE[key] = synthetic_tracks(int(20 * fps), 17, fps=fps, seed=seed)
    return _CACHE[key]


def window_section() -> str:
    lines = ["| fps | filter | " + " | ".join(f"{w} s" for w in WINDOWS) + " |"]
    lines.append("|" + "---|" * (2 + len(WINDOWS)))
    for fps in (30.0, 250.0):
        for method in sm.METHODS:
            cells = []
            for w in WINDOWS:
                errs = [evaluate(run(method, *_tracks(fps, s)[1:], window=w), _tracks(fps, s)[0],
                                 _tracks(fps, s)[2])["error"] for s in range(3)]  # fmt: skip
                cells.append(f"{np.mean(errs):.2f}")
            lines.append(f"| {fps:.0f} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def kalman_libs_section(libs: str) -> str:
    """Ours against filterpy and pykalman: the same model, noise and missing points."""
    sys.path.append(libs)  # numpy/scipy stay ours (same versions there)
    truth, xy, scores, times = synthetic_tracks(num_frames=10_000, num_keypoints=17, seed=9)
    rows = ["| implementation | s for 10,000 x 17 | max diff from ours px | mean error px |",
            "|---|---|---|---|"]  # fmt: skip
    t0 = time.perf_counter()
    ours = sm.smooth(xy, scores, times, "kalman", max_gap=10**9)
    ours_s = time.perf_counter() - t0
    ok = scores >= 0.3
    err = lambda out: np.nanmean(np.where(ok, np.linalg.norm(out - truth, axis=-1), np.nan))  # noqa: E731
    rows.append(
        f"| ours (numpy, vectorised across keypoints) | {ours_s:.2f} | 0 | {err(ours):.3f} |"
    )
    for name, fn in (("filterpy", filterpy_smooth), ("pykalman", pykalman_smooth)):
        t0 = time.perf_counter()
        out = fn(xy, scores, times)
        spent = time.perf_counter() - t0
        diff = np.nanmax(np.abs(out - ours))
        rows.append(f"| {name} | {spent:.2f} | {diff:.2g} | {err(out):.3f} |")
    return "\n".join(rows)


def video_section(checkpoint: str, clips: list[tuple[float, int]]) -> str:
    parts = []
    for fps, frames in clips:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            truth, xy, scores, times, gap = predict_clip(checkpoint, tmp, fps, frames)
            spent = time.perf_counter() - t0
        inside = truth[..., 2] > 0
        rows = []
        for method in FILTERS:
            out = run(method, xy, scores, times)
            rows.append((method, evaluate(out, truth[..., :2], scores, inside)))
        parts.append(f"**{fps:.0f} fps, {frames} frames** (predicted in {spent:.0f} s)\n")
        parts.append(table(rows) + "\n")
        parts.append(flags_summary(xy, scores, times, truth, gap) + "\n")
    return "\n".join(parts)


def flags_summary(xy, scores, times, truth, gap) -> str:
    """How often a flagged point is badly off (error > 10% of the figure's size), vs the rest."""
    flags = outlier_flags(xy, scores, times, flip_gap=gap)
    inside = truth[..., 2] > 0
    pts = truth[..., :2]
    size = np.nanmax(pts, 1) - np.nanmin(pts, 1)
    bad = np.linalg.norm(xy - pts, axis=-1) > 0.1 * size.max(-1)[:, None]
    lines = ["| flag | points flagged | of them badly off | badly off among unflagged |",
             "|---|---|---|---|"]  # fmt: skip
    for name, f in flags.items():
        f = f & inside
        rest = inside & ~f
        share = bad[f].mean() if f.any() else float("nan")
        lines.append(f"| {name} | {f.sum()} | {share:.2f} | {bad[rest].mean():.3f} |")
    return "\n".join(lines)


# ---- kalman libraries: filterpy 2.0.0 and pykalman 0.11.2 (with --libs; not our dependencies)
# The model of smooth()'s kalman: constant velocity per keypoint (state x, y, vx, vy),
# measurement variance 1 / score^2, the same missing points (no value, score < 0.3, outliers),
# process noise and diffuse prior. pykalman's public KalmanFilter takes one observation
# covariance for all frames, so the per-frame one goes through its module functions _filter and
# _smooth, which take one per frame (pykalman >= 0.10).


def _model(xy, scores, times, min_score=0.3):
    dt = float(np.median(np.diff(times)))
    frames = sm._window_frames(sm.DEFAULT_WINDOW["kalman"], dt, "kalman")
    valid = np.isfinite(xy).all(-1) & (np.nan_to_num(scores, nan=-1) >= min_score)
    valid &= ~sm._outliers(xy, valid, min(frames, sm.OUTLIER_FRAMES))
    q = sm._process_noise(frames, dt)
    h = np.diff(times)
    eye = np.eye(2)
    fs = np.zeros((len(h), 4, 4))
    fs[:, :2, :2] = fs[:, 2:, 2:] = eye
    fs[:, :2, 2:] = h[:, None, None] * eye
    qs = np.zeros((len(h), 4, 4))
    qs[:, :2, :2] = (q * h**3 / 3)[:, None, None] * eye
    qs[:, :2, 2:] = qs[:, 2:, :2] = (q * h**2 / 2)[:, None, None] * eye
    qs[:, 2:, 2:] = (q * h)[:, None, None] * eye
    prior = np.diag([1e6, 1e6, 1e6 / dt**2, 1e6 / dt**2])
    r = 1.0 / np.clip(np.nan_to_num(scores), 1e-3, 1.0) ** 2
    return valid, fs, qs, prior, r


def filterpy_smooth(xy, scores, times) -> np.ndarray:
    from filterpy.kalman import KalmanFilter

    valid, fs, qs, prior, r = _model(xy, scores, times)
    out = np.full(xy.shape, np.nan)
    hmat = np.hstack([np.eye(2), np.zeros((2, 2))])
    for k in range(xy.shape[1]):
        kf = KalmanFilter(dim_x=4, dim_z=2)
        kf.x, kf.P, kf.H = np.zeros(4), prior.copy(), hmat
        zs = [xy[t, k] if valid[t, k] else None for t in range(len(xy))]
        rs = [r[t, k] * np.eye(2) for t in range(len(xy))]
        f_all = np.concatenate([np.eye(4)[None], fs])  # filterpy predicts before each update
        q_all = np.concatenate([np.zeros((1, 4, 4)), qs])
        means, covs, _, _ = kf.batch_filter(zs, Fs=list(f_all), Qs=list(q_all), Rs=rs)
        smoothed, _, _, _ = kf.rts_smoother(means, covs, Fs=list(f_all), Qs=list(q_all))
        out[:, k] = smoothed[:, :2]
    return _blank(out, valid)


def pykalman_smooth(xy, scores, times) -> np.ndarray:
    from pykalman.standard import _filter, _smooth

    valid, fs, qs, prior, r = _model(xy, scores, times)
    out = np.full(xy.shape, np.nan)
    hmat = np.hstack([np.eye(2), np.zeros((2, 2))])
    for k in range(xy.shape[1]):
        obs = np.ma.masked_array(np.nan_to_num(xy[:, k]), mask=~valid[:, k, None].repeat(2, 1))
        rk = r[:, k, None, None] * np.eye(2)
        pred_m, pred_c, _, filt_m, filt_c = _filter(
            fs, hmat, qs, rk, np.zeros(4), np.zeros(2), np.zeros(4), prior, obs
        )
        means, _, _ = _smooth(fs, filt_m, filt_c, pred_m, pred_c)
        out[:, k] = means[:, :2]
    return _blank(out, valid)


def _blank(out: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """NaN outside the frames smooth() covers (long gaps have no values there either)."""
    _, covered = sm._segments(valid, 10**9)
    out[~covered] = np.nan
    return out


def predict_clip(checkpoint: str, out: str, fps: float, frames: int, seed: int = 0):
    """A synthetic clip, the model's predictions on it (flip TTA) and its truth:
    (truth (T, K, 3), xy (T, K, 2), scores (T, K), times (T,), flip_gap (T, K) or None)."""
    from keypointer.data.synthetic_video import generate_video, load_truth
    from keypointer.inference.pipeline import load_pipeline
    from keypointer.inference.sources import collect_sources, iter_frames

    video = generate_video(out, num_frames=frames, instances=1, seed=seed, size=128, fps=fps)
    truth = load_truth(Path(out) / "truth.json").keypoints[:, 0]
    pipe = load_pipeline(checkpoint, flip=True)
    preds = list(pipe.run(iter_frames(collect_sources([video]))))
    number = np.array([p.frame.number for p in preds])
    xy = np.full((frames, truth.shape[1], 2), np.nan)
    scores = np.zeros((frames, truth.shape[1]))
    gap = np.full(scores.shape, np.nan)
    for n, p in zip(number, preds, strict=True):
        xy[n], scores[n] = p.keypoints[0], p.scores[0]
        if p.flip_gap is not None:
            gap[n] = p.flip_gap[0]
    times = np.arange(frames) / fps
    return truth, xy, scores, times, (gap if np.isfinite(gap).any() else None)


def train_on_clip(out: Path) -> Path:
    """The demo's settings on 1000 whole frames (every 3rd of 3000) of synthetic clip seed 7,
    written as a plain CSV without boxes, so the model sees whole frames as predict gives them."""
    import csv

    from keypointer.commands.demo import demo_config
    from keypointer.data import synthetic as syn
    from keypointer.data.synthetic_video import render_video
    from keypointer.training.loop import train
    from keypointer.viz import write_image

    data = Path(out) / "data"
    names = syn.NAMES  # left/right names: the CSV reader finds the flip pairs from them
    rows = []
    for i, (image, kp, _, _) in enumerate(render_video(3000, 1, seed=7, size=128, fps=30.0)):
        if i % 3 == 0:
            write_image(data / "images" / f"{i:06d}.png", image)
            cells = [c for x, y, v in kp[0] for c in ((x, y, int(v)) if v > 0 else ("", "", 0))]
            rows.append([f"images/{i:06d}.png", *cells])
    with open(data / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows([["image"] + [f"{n}_{c}" for n in names for c in "xyv"], *rows])
    cfg = demo_config(Path(out), quiet=True)
    cfg.data.path = str(data / "labels.csv")
    return train(cfg).best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--libs", help="site-packages holding filterpy and pykalman")
    parser.add_argument("--checkpoint", help="a model trained on keypointer synth images")
    parser.add_argument("--clips", default="30:1800,120:1800", help="fps:frames,...")
    parser.add_argument("--skip-synthetic", action="store_true", help="only the other parts")
    parser.add_argument("--train-model", metavar="DIR", help="train a model for (b) into DIR")
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}\n"
    )
    if not args.skip_synthetic:
        print("## (a) synthetic tracks\n\n" + synthetic_section() + "\n")
        print("mean error (px) by window, default windows above:\n\n" + window_section() + "\n")
    if args.libs:
        print("## kalman implementations\n\n" + kalman_libs_section(args.libs) + "\n")
    if args.train_model:
        t0 = time.perf_counter()
        args.checkpoint = str(train_on_clip(Path(args.train_model)))
        print(f"trained {args.checkpoint} in {(time.perf_counter() - t0) / 60:.1f} min\n")
    if args.checkpoint:
        clips = [(float(c.split(":")[0]), int(c.split(":")[1])) for c in args.clips.split(",")]
        print("## (b) synthetic video\n\n" + video_section(args.checkpoint, clips))


if __name__ == "__main__":
    main()
