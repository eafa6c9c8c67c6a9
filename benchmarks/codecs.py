"""Heatmap codec benchmark: encode speed against the seed notes' loop, decode accuracy.

    .venv/bin/python benchmarks/codecs.py            # prints markdown tables (~1 min on 2 cores)
    .venv/bin/python benchmarks/codecs.py --write    # also replaces "## Codecs" in RESULTS.md

Encode: microseconds per sample for K = 17 keypoints, heatmap 64x48 (h x w), sigma 2, batch 64:
ours, a faithful re-implementation of the seed notes' per-keypoint loop (the baseline), and
the floor, the time to fill an array of the same size. Median of repeats (time.perf_counter).

Decode: heatmap-pixel error (Euclidean) of refine = none / quarter / dark on exact targets and
with white Gaussian noise of 5% of the peak, for centres in the interior and within 2 px of
the border, plus a classic DARK (MMPose-style: cv2 Gaussian blur, Newton step, argmax within
2 px of the edge) for comparison.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

from keypointer.malloc import tune_malloc

tune_malloc()  # first: before torch allocates; see keypointer/malloc.py

# isort: split
import cv2
import numpy as np
import torch
from _results import RESULTS, write_section

from keypointer.codecs import HeatmapCodec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "codecs"))
from seed_notes import notes_gauss_heatmap  # the seed notes' code, kept as a test fixture

N, K, W, H, SIGMA = 64, 17, 48, 64, 2  # heatmap 64x48 (h x w), COCO's 256x192 input
INPUT = (192, 256)
NOTES = """\
Targets (issue "Foundation"): encode >= 100x faster than the seed notes' per-keypoint loop and
within 3x of the floor; noiseless DARK < 0.01 heatmap px everywhere; noisy DARK <= 0.06.
Our "dark" is a Newton step on the log of a smoothed heatmap whose smoothing never crosses
the border (Gaussian-weighted sums across each axis, then a weighted parabola fit along it,
one-sided at the edge), so it is exact for a Gaussian up to the border, whatever its width.
With noise, a map cut by the border holds less of the Gaussian, hence the larger border
error. (Side experiment, same data: a full 2-D maximum-likelihood fit that is told the true
sigma gets 0.050 interior / 0.063 border, near the noise bound, but fitting with a fixed
sigma is biased by up to 0.4 px at the border when the predicted width differs.)"""


def seed_encode(uv: np.ndarray) -> np.ndarray:
    """The baseline: one notes heatmap per keypoint, (N, K, 2) heatmap px -> (N, K, H, W)."""
    out = np.zeros((uv.shape[0], uv.shape[1], H, W), dtype=np.float32)
    for n in range(uv.shape[0]):
        for k in range(uv.shape[1]):
            cx, cy = (int(round(c)) for c in uv[n, k])
            out[n, k] = notes_gauss_heatmap(W, H, cx, cy, SIGMA)
    return out


def median_seconds(*fns, repeats: int, warmup: int = 2) -> list[float]:
    """Median wall time of each function; interleaved so that they share the machine's load."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times, strict=True):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return [statistics.median(ts) for ts in times]


def bench_encode() -> list[str]:
    codec = HeatmapCodec(INPUT, (W, H), SIGMA)
    g = torch.Generator().manual_seed(0)
    uv = torch.rand(N, K, 2, generator=g) * torch.tensor([W - 1.0, H - 1.0])
    kp, vis = uv / torch.tensor(codec.scale), torch.ones(N, K, dtype=torch.bool)
    seed = median_seconds(lambda: seed_encode(uv.numpy()), repeats=3, warmup=1)[0] / N * 1e6
    rows = [
        "| encode (batch 64, K=17, 64x48, sigma 2) | threads | us / sample | ratio |",
        "|---|---:|---:|---:|",
    ]
    threads = torch.get_num_threads()
    for t in sorted({threads, 1}, reverse=True):
        torch.set_num_threads(t)
        ours, floor = median_seconds(
            lambda: codec.encode(kp, vis), lambda: torch.full((N, K, H, W), 1.0), repeats=100
        )
        ours, floor = ours / N * 1e6, floor / N * 1e6
        rows += [
            f"| ours (`HeatmapCodec.encode`) | {t} | {ours:.1f} | seed = {seed / ours:.0f}x ours |",
            f"| floor: fill the same array | {t} | {floor:.1f} | ours = {ours / floor:.1f}x |",
        ]
    torch.set_num_threads(threads)
    return rows + [f"| seed notes' loop (baseline, Python) | 1 | {seed:.0f} | |"]


def classic_dark(heatmaps: np.ndarray, kernel: int = 11) -> np.ndarray:
    """MMPose's refine_keypoints_dark on (M, H, W): blur, log, Newton; argmax near the edge."""
    m, h, w = heatmaps.shape
    flat = heatmaps.reshape(m, -1).argmax(-1)
    xy = np.stack([flat % w, flat // w], -1).astype(np.float64)
    for i in range(m):
        peak = heatmaps[i].max()
        hm = cv2.GaussianBlur(heatmaps[i].astype(np.float64), (kernel, kernel), 0)
        hm *= peak / max(hm.max(), 1e-12)
        hm = np.log(np.maximum(hm, 1e-10))
        x, y = int(xy[i, 0]), int(xy[i, 1])
        if 1 < x < w - 2 and 1 < y < h - 2:
            dx = 0.5 * (hm[y, x + 1] - hm[y, x - 1])
            dy = 0.5 * (hm[y + 1, x] - hm[y - 1, x])
            dxx = 0.25 * (hm[y, x + 2] - 2 * hm[y, x] + hm[y, x - 2])
            dxy = 0.25 * (hm[y + 1, x + 1] - hm[y - 1, x + 1] - hm[y + 1, x - 1] + hm[y - 1, x - 1])
            dyy = 0.25 * (hm[y + 2, x] - 2 * hm[y, x] + hm[y - 2, x])
            hess = np.array([[dxx, dxy], [dxy, dyy]])
            if abs(np.linalg.det(hess)) > 1e-12:
                xy[i] -= np.linalg.solve(hess, [dx, dy])
    return xy


def _centres(count: int, border: bool, g: torch.Generator) -> torch.Tensor:
    """(count, 2) heatmap-pixel centres: interior (>= 2 px from every edge) or within 2 px."""
    size = torch.tensor([W - 1.0, H - 1.0])
    if not border:
        return 2 + torch.rand(count, 2, generator=g) * (size - 4)
    uv = torch.rand(count, 2, generator=g) * size
    axis = torch.randint(0, 2, (count,), generator=g)
    edge = torch.rand(count, generator=g) * 2
    far = torch.rand(count, generator=g) < 0.5
    uv[torch.arange(count), axis] = torch.where(far, size[axis] - edge, edge)
    return uv


def bench_decode(count: int = 4000) -> list[str]:
    g = torch.Generator().manual_seed(1)
    rows = [
        "| decode error (heatmap px) | noise | interior mean | interior max "
        "| border (< 2 px) mean | border max |",
        "|---|---|---:|---:|---:|---:|",
    ]
    codecs = {r: HeatmapCodec(INPUT, (W, H), SIGMA, refine=r) for r in ("none", "quarter", "dark")}
    scale = torch.tensor(codecs["dark"].scale)
    cases = {}
    for border in (False, True):
        uv = _centres(count, border, g)
        clean = codecs["dark"].encode((uv / scale).unsqueeze(1), None)[0]
        noisy = clean + 0.05 * torch.randn(clean.shape, generator=g)
        cases[border] = (uv, {"none": clean, "5% of peak": noisy})
    for noise in ("none", "5% of peak"):
        for name in ("none", "quarter", "dark", "classic DARK (MMPose-style)"):
            cells = []
            for border in (False, True):
                uv, maps = cases[border]
                if name.startswith("classic"):
                    est = torch.from_numpy(classic_dark(maps[noise][:, 0].numpy())).float()
                else:
                    est = codecs[name].decode(maps[noise])[0][:, 0] * scale
                err = (est - uv).norm(dim=-1)
                cells += [f"{err.mean():.4f}", f"{err.max():.4f}"]
            rows.append(f"| {name} | {noise} | " + " | ".join(cells) + " |")
    # Classic DARK's trouble is its blur mixing in the border: far from it, it is exact too.
    deep = 6 + torch.rand(count, 2, generator=g) * torch.tensor([W - 13.0, H - 13.0])
    maps = codecs["dark"].encode((deep / scale).unsqueeze(1), None)[0][:, 0].numpy()
    err = (torch.from_numpy(classic_dark(maps)).float() - deep).norm(dim=-1)
    rows.append(
        f"\nClassic DARK with every centre >= 6 px from the edges, noiseless: mean "
        f"{err.mean():.4f}, max {err.max():.4f} heatmap px."
    )
    return rows


def bench_decode_speed() -> list[str]:
    g = torch.Generator().manual_seed(2)
    rows = ["| decode speed (batch 64, K=17, 64x48) | us / sample |", "|---|---:|"]
    uv = torch.rand(N, K, 2, generator=g) * torch.tensor([W - 1.0, H - 1.0])
    for refine in ("none", "quarter", "dark"):
        codec = HeatmapCodec(INPUT, (W, H), SIGMA, refine=refine)
        maps = codec.encode(uv / torch.tensor(codec.scale), None)[0]
        t = median_seconds(lambda c=codec, m=maps: c.decode(m), repeats=20)[0]
        rows.append(f"| {refine} | {t / N * 1e6:.1f} |")
    return rows


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        text = Path("/proc/cpuinfo").read_text()
        cpu = re.search(r"^model name\s*:\s*(.+)$", text, re.M).group(1).strip()
    except (OSError, AttributeError):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), numpy {np.__version__}, Python "
        f"{platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    parts = [
        f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/codecs.py --write`. "
        "Medians of repeated runs (`time.perf_counter`); the 2 cores were shared with other "
        "jobs, so expect some +-30% noise on the timings.",
        NOTES,
        "\n".join(bench_encode()),
        "\n".join(bench_decode()),
        "\n".join(bench_decode_speed()),
    ]
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    parts[0] += f" Load average (1 min) at the end of the run: {load}."
    body = "\n\n".join(parts)
    print(body)
    if args.write:
        write_section("Codecs", body)
        print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
