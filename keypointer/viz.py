"""Drawing keypoints on images (OpenCV) and plotting curves (matplotlib, Agg, no windows).

Images are RGB uint8 (H, W, 3) arrays; keypoints are (K, 2) x, y in image
pixels with pixel centres at integers (OpenCV's convention too). Files are
written through :func:`write_image`, which also handles non-ASCII paths.

Plots: training curves, the PCK curve and per-keypoint errors of ``eval``, and, for ``eval``
on a video truth, the error and identities over time (:func:`plot_video_eval`) and the frames
of ID switches (:func:`switch_tile`).
"""

from __future__ import annotations

import colorsys
import csv
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import numpy.typing as npt

from keypointer.config import KEYPOINT_SCORE_THRESHOLD
from keypointer.data.synthetic_truth import VideoTruth
from keypointer.metrics.arrays import JsonValue
from keypointer.metrics.video import VideoCurves
from keypointer.skeleton import Skeleton

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_SHIFT = 4  # cv2 fixed-point fraction bits: 1/16 px positions
_SCALE = 1 << _SHIFT
# Columns of a metrics CSV that are bookkeeping, not curves.
_NOT_CURVES = {"epoch", "step", "iteration", "lr", "time", "seconds", "elapsed", "wall_s"}


def keypoint_colors(k: int) -> list[tuple[int, int, int]]:
    """``k`` RGB colours of evenly spaced hues, full saturation (red first)."""
    return [
        tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(i / max(k, 1), 1.0, 1.0))
        for i in range(k)
    ]


def track_colors(n: int) -> list[tuple[int, int, int]]:
    """``n`` RGB colours for tracks, one per identity, told apart at a glance: hues spaced by
    the golden angle, so track 5 never looks like track 4 however many there are."""
    return [
        tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.85, 1.0))
        for i in range(n)
    ]


def ring_points(
    image: np.ndarray,
    points: npt.ArrayLike,
    color: tuple[int, int, int] = (255, 0, 0),
    radius: int = 0,
) -> np.ndarray:
    """A copy of RGB ``image`` with a hollow ring around each (x, y) of ``points`` (N, 2)
    (NaN rows skipped): how drawn predictions mark flagged points."""
    out = np.array(image, dtype=np.uint8, copy=True)
    radius = radius or max(4, round(max(out.shape[:2]) / 80))
    for p in np.asarray(points, dtype=np.float64).reshape(-1, 2):
        if np.isfinite(p).all():
            cv2.circle(out, _fixed(p), radius * _SCALE, color, 1, cv2.LINE_AA, _SHIFT)
    return out


def write_image(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an RGB (H, W, 3) or grey (H, W) uint8 image; the suffix picks the format.

    ``cv2.imwrite`` cannot open non-ASCII paths on Windows, so the image is
    encoded in memory and written by numpy.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.asarray(rgb)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(path.suffix or ".png", image)
    if not ok:
        raise ValueError(f"OpenCV cannot encode an image as {path.suffix!r}: {path}")
    buffer.tofile(str(path))
    return path


def _fixed(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]) * _SCALE)), int(round(float(p[1]) * _SCALE))


def draw_keypoints(
    image: np.ndarray,
    keypoints: npt.ArrayLike,
    skeleton: Skeleton | None = None,
    scores: npt.ArrayLike | None = None,
    threshold: float = KEYPOINT_SCORE_THRESHOLD,
    gt: npt.ArrayLike | None = None,
    radius: int | None = None,
    color: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """A copy of ``image`` with the skeleton's edges and the keypoints drawn on it.

    Args:
        image: RGB (H, W, 3) uint8 (or grey (H, W)); left untouched.
        keypoints: (K, 2) predicted x, y; drawn as filled circles in
            :func:`keypoint_colors`. NaN rows are skipped.
        skeleton: edges to draw (each in the colour of its first keypoint).
        scores: (K,) keypoint scores; keypoints below ``threshold`` (and their
            edges) are not drawn.
        gt: (K, 2) ground truth, drawn as hollow circles around the predictions
            in the same colours; NaN rows (unlabelled) are skipped.
        radius: circle radius in pixels; default grows with the image size.
        color: one colour for every edge and point (a track's colour), instead of one per
            keypoint.
    """
    out = np.array(image, dtype=np.uint8, copy=True)
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    if out.ndim != 3 or out.shape[2] != 3:
        raise ValueError(f"expected an RGB (H, W, 3) image, got {out.shape}")
    kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    k = len(kp)
    shown = np.isfinite(kp).all(axis=1)
    if scores is not None:
        shown &= np.asarray(scores, dtype=np.float64).reshape(k) >= threshold
    colors = keypoint_colors(k) if color is None else [tuple(color)] * k
    if radius is None:
        radius = max(2, round(max(out.shape[:2]) / 160))
    thickness = max(1, radius // 2)
    for a, b in skeleton.edges if skeleton is not None else ():
        if shown[a] and shown[b]:
            cv2.line(out, _fixed(kp[a]), _fixed(kp[b]), colors[a], thickness, cv2.LINE_AA, _SHIFT)
    if gt is not None:
        g = np.asarray(gt, dtype=np.float64).reshape(k, 2)
        for j in np.flatnonzero(np.isfinite(g).all(axis=1)):
            r = (radius + thickness + 1) * _SCALE
            cv2.circle(out, _fixed(g[j]), r, colors[j], thickness, cv2.LINE_AA, _SHIFT)
    for j in np.flatnonzero(shown):
        cv2.circle(out, _fixed(kp[j]), radius * _SCALE, colors[j], -1, cv2.LINE_AA, _SHIFT)
    return out


def save_gallery(images: Sequence[np.ndarray], path: str | Path, cols: int = 4) -> Path:
    """Tile RGB images into a grid (cells as large as the largest image, black padding)."""
    if not images:
        raise ValueError("save_gallery needs at least one image")
    tiles = [np.repeat(im[..., None], 3, 2) if im.ndim == 2 else im for im in images]
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    cols = max(1, min(cols, len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    grid = np.zeros((rows * h, cols * w, 3), dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        grid[r * h : r * h + tile.shape[0], c * w : c * w + tile.shape[1]] = tile
    return write_image(path, grid)


def _figure(
    ncols: int = 1, size: tuple[float, float] = (6.0, 4.0), rows: int = 1
) -> tuple[Figure, np.ndarray]:
    """A figure of ``rows`` x ``ncols`` panels of ``size`` inches; its axes, flat, row-major."""
    # A bare Figure (no pyplot): no global state, no window, rendered by Agg on savefig.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * ncols, size[1] * rows), layout="constrained")
    return fig, fig.subplots(rows, ncols, squeeze=False).ravel()


def _save(fig: Figure, out_png: str | Path) -> Path:
    path = Path(out_png)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def _read_rows(source: str | Path | Iterable[dict]) -> list[dict]:
    if isinstance(source, str | Path):
        with open(source, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    return [dict(r) for r in source]


def _column(rows: list[dict], key: str) -> np.ndarray:
    """Float column; empty cells (e.g. epochs without validation) become NaN."""
    values = []
    for row in rows:
        v = row.get(key)
        try:
            values.append(float(v) if v not in (None, "") else math.nan)
        except (TypeError, ValueError):
            values.append(math.nan)
    return np.asarray(values)


# Panels of plot_curves, in order: (title, y-axis label, does a column belong here).
# One quantity (and unit) per panel, so PCK in [0, 1] is not flattened by ~60 samples/s.
_PANELS: tuple[tuple[str, str, Callable[[str], bool]], ...] = (
    ("loss", "loss (mean per labelled keypoint)", lambda n: "loss" in n),
    ("validation PCK", "PCK (fraction of keypoints, 0-1)", lambda n: "pck" in n or "auc" in n),
    ("validation error", "error (px)", lambda n: "px" in n.split("_")),
    ("training throughput", "samples/s", lambda n: n.endswith("per_s")),
    ("other", "value", lambda n: True),
)


def curves_figure(metrics: str | Path | Iterable[dict]) -> Figure:
    """Training curves from a metrics CSV (or its rows as dicts), one row per epoch.

    One panel per kind of quantity, each with its own y axis and unit (see ``_PANELS``):
    losses, PCK (0 to 1), pixel errors, throughput (samples/s), anything else; only panels
    with data are drawn, two to a row. Bookkeeping columns (epoch, lr, time) are left out.
    The x axis is the "epoch" column, else the row number. Returns a matplotlib Figure.
    """
    from matplotlib.ticker import MaxNLocator

    rows = _read_rows(metrics)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    x = _column(rows, "epoch") if "epoch" in keys else np.arange(1, len(rows) + 1, dtype=float)
    curves = {k: _column(rows, k) for k in keys if k.lower() not in _NOT_CURVES}
    curves = {k: v for k, v in curves.items() if np.isfinite(v).any()}
    groups: dict[int, list[str]] = {}
    for name in curves:
        i = next(i for i, (_, _, belongs) in enumerate(_PANELS) if belongs(name.lower()))
        groups.setdefault(i, []).append(name)
    panels = sorted(groups) or [0]  # an empty loss panel when there is nothing to draw
    ncols = min(2, len(panels))
    fig, axes = _figure(ncols, rows=math.ceil(len(panels) / ncols))
    for ax in axes[len(panels) :]:
        ax.remove()  # the empty cell of an odd panel count
    for ax, i in zip(axes, panels, strict=False):
        title, ylabel, _ = _PANELS[i]
        for name in groups.get(i, []):
            ok = np.isfinite(curves[name])
            ax.plot(x[ok], curves[name][ok], marker="o", markersize=3, label=name)
        if title == "validation PCK":
            ax.set_ylim(0, 1.02)
        ax.set(title=title, xlabel="epoch", ylabel=ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize="small")
    return fig


def plot_curves(metrics: str | Path | Iterable[dict], out_png: str | Path) -> Path:
    """Draw :func:`curves_figure` of ``metrics`` to ``out_png``; returns its path."""
    return _save(curves_figure(metrics), out_png)


def plot_pck_curve(
    alphas: npt.ArrayLike, values: npt.ArrayLike, out_png: str | Path, auc: float | None = None
) -> Path:
    """PCK against alpha, with the AUC in the title when given."""
    fig, (ax,) = _figure()
    ax.plot(np.asarray(alphas), np.asarray(values), marker=".")
    ax.set_xlabel("alpha (fraction of the normaliser)")
    ax.set_ylabel("PCK")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title("PCK curve" if auc is None else f"PCK curve, AUC = {auc:.3f}")
    return _save(fig, out_png)


def plot_per_keypoint(
    names: Sequence[str],
    errors: npt.ArrayLike,
    out_png: str | Path,
    xlabel: str = "mean error (px)",
) -> Path:
    """Horizontal bar per keypoint (first name on top); NaN bars are left empty."""
    values = np.asarray(errors, dtype=np.float64).reshape(len(names))
    fig, (ax,) = _figure(size=(6.0, max(2.5, 0.28 * len(names) + 1)))
    y = np.arange(len(names))
    colors = [tuple(c / 255 for c in rgb) for rgb in keypoint_colors(len(names))]
    ax.barh(y, np.nan_to_num(values, nan=0.0), color=colors, edgecolor="black", linewidth=0.5)
    ax.set_yticks(y, labels=list(names), fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, out_png)


def plot_video_eval(
    curves: VideoCurves,
    truth: VideoTruth,
    tracking: Mapping[str, Mapping[str, JsonValue]],
    title: str,
    path: str | Path,
) -> Path:
    """Three panels over time (s): each truth track's mean keypoint error (px; raw solid,
    smoothed dashed), and the track id paired with it by the tracker and by the
    nearest-centroid baseline (``tracking``: their metrics, with ``switch_frames`` and
    ``num_switches``), ID switches as dotted lines; ``title`` heads the error panel."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(9, 8), layout="constrained")
    ax_err, *ax_ids = fig.subplots(3, 1, sharex=True)
    times = truth.times
    colors = [tuple(c / 255 for c in rgb) for rgb in track_colors(len(truth.tracks))]
    for m, name in enumerate(truth.tracks):
        ax_err.plot(times, curves.raw.error[:, m], color=colors[m], lw=1, label=f"{name} raw")
        if curves.smoothed is not None:
            ax_err.plot(
                times,
                curves.smoothed.error[:, m],
                color=colors[m],
                lw=1,
                ls="--",
                label=f"{name} smoothed",
            )
    ax_err.set_ylabel("mean keypoint error (px)")
    ax_err.set_title(title, fontsize=9)
    ax_err.legend(fontsize=7, loc="upper right")
    methods = (("tracker", "tracker", curves.tracker),)
    methods += (("nearest_centroid", "nearest centroid", curves.nearest_centroid),)
    for ax, (key, label, paired) in zip(ax_ids, methods, strict=True):
        ids = np.where(paired >= 0, paired, np.nan)
        for m, name in enumerate(truth.tracks):
            ax.step(times, ids[:, m], where="post", color=colors[m], lw=1.2, label=name)
        switches = tracking[key]["switch_frames"]
        for f in sorted(set(switches if isinstance(switches, list) else [])):
            ax.axvline(times[np.searchsorted(truth.frames, f)], color="0.4", lw=0.7, ls=":")
        n = tracking[key]["num_switches"]
        ax.set_title(f"{label}: {n:g} ID switches (dotted lines)", fontsize=9)
        ax.set_ylabel(f"track id ({label})")
        top = max(1, int(np.nanmax(ids, initial=0)) + 1)
        ax.set_ylim(-0.5, top - 0.5)
        if top <= 12:
            ax.set_yticks(range(top))
        else:
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7, loc="upper right")
    ax_ids[-1].set_xlabel("time (s)")
    return _save(fig, path)


def switch_tile(
    image: np.ndarray,
    truth: np.ndarray,
    tracks: np.ndarray,
    skeleton: Skeleton,
    label: str,
    side: int = 320,
) -> np.ndarray:
    """One frame of an ID switch: each track's points (N, K, 2) ``tracks`` in its track
    colour, the truth's labelled points (M, K, 3) x, y, v ``truth`` as white rings, and
    ``label`` written in. A frame smaller than ``side`` px is enlarged by a whole factor first,
    so that the marks stay apart."""
    s = max(1, -(-side // max(image.shape[:2])))
    view = cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_NEAREST)
    # Pixel centres are at integers: x -> (x + 0.5) * s - 0.5.
    labelled = truth[..., 2] > 0
    view = ring_points(view, (truth[..., :2][labelled] + 0.5) * s - 0.5, (255, 255, 255))
    colors = track_colors(len(tracks))
    for n, kp in enumerate((tracks + 0.5) * s - 0.5):
        view = draw_keypoints(view, kp, skeleton, color=colors[n])
    corner = (4, view.shape[0] - 6)
    cv2.putText(view, label, corner, cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
    return view
