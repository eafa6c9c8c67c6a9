"""Pictures of a calibration: where each camera saw the board's corners, and where the
cameras stand (matplotlib, a bare Figure: no pyplot, no window; Agg renders on save)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from keypointer.files import atomic_path
from keypointer.multiview.cameras import CameraGroup

PANEL_INCHES = 4.0
MAX_PANEL_COLUMNS = 3


def detections_figure(
    corners: np.ndarray, names: Sequence[str], sizes: Sequence[tuple[int, int]]
) -> Figure:
    """One panel per camera: every board corner it detected, over its image, coloured by
    frame (gaps show where the board never was: the lens distortion there is a guess).

    Args:
        corners: (C, F, M, 2) pixels, NaN where not seen.
        names: the C camera names; sizes: their (width, height).
    """
    n = len(names)
    cols = min(n, MAX_PANEL_COLUMNS)
    rows = -(-n // cols)
    fig = Figure(figsize=(PANEL_INCHES * cols, PANEL_INCHES * 0.85 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    frames = np.broadcast_to(np.arange(corners.shape[1])[:, None], corners.shape[1:3])
    scatter = None
    for c, (ax, name, (w, h)) in enumerate(zip(axes, names, sizes, strict=False)):
        seen = np.isfinite(corners[c]).all(-1)
        views = int(seen.any(-1).sum())
        scatter = ax.scatter(
            corners[c][seen][:, 0],
            corners[c][seen][:, 1],
            c=frames[seen],
            s=2,
            cmap="viridis",
            vmin=0,
            vmax=max(corners.shape[1] - 1, 1),
        )
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)  # image rows go down
        ax.set_aspect("equal")
        ax.set_title(f"{name}: {int(seen.sum())} corners in {views} frames")
        ax.set_xlabel("x (px)")
        ax.set_ylabel("y (px)")
    for ax in axes[n:]:
        ax.set_visible(False)
    if scatter is not None:
        fig.colorbar(scatter, ax=list(axes[:n]), label="frame", shrink=0.8)
    return fig


def layout_figure(
    group: CameraGroup, board_centres: np.ndarray | None = None, unit: str = "mm"
) -> Figure:
    """The cameras in 3D (world = the first camera's frame): each camera's centre, name and
    viewing direction, and the board's centre in every frame it was seen in; views from
    above and from the side beside a 3D view.

    Args:
        group: the calibrated cameras.
        board_centres: (F, 3) board centres in world coordinates (NaN rows skipped).
        unit: the world's unit, for the axis labels.
    """
    fig = Figure(figsize=(PANEL_INCHES * 3, PANEL_INCHES), layout="constrained")
    ax3d = fig.add_subplot(1, 3, 1, projection="3d")
    top = fig.add_subplot(1, 3, 2)
    side = fig.add_subplot(1, 3, 3)
    pos = group.positions
    spread = float(np.linalg.norm(pos - pos.mean(axis=0), axis=1).mean()) or 1.0
    axis = np.stack([c.rotation[2] for c in group]) * 0.3 * spread  # optical axes
    boards = None
    if board_centres is not None:
        boards = board_centres[np.isfinite(board_centres).all(axis=1)]
    panels = ((top, (0, 1), "from above"), (side, (0, 2), "from the side"))
    for ax, (i, j), title in panels:
        if boards is not None and len(boards):
            ax.scatter(boards[:, i], boards[:, j], s=4, c="0.6", label="board")
        ax.scatter(pos[:, i], pos[:, j], c="C3", s=30, label="camera")
        for p, a, name in zip(pos, axis, group.names, strict=True):
            ax.annotate(
                "",
                xy=(p[i] + a[i], p[j] + a[j]),
                xytext=(p[i], p[j]),
                arrowprops={"arrowstyle": "->", "color": "C3"},
            )
            ax.text(p[i], p[j], f" {name}", fontsize=9)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel(f"{'xyz'[i]} ({unit})")
        ax.set_ylabel(f"{'xyz'[j]} ({unit})")
        ax.set_title(title)
    top.legend(loc="best", fontsize=8)
    if boards is not None and len(boards):
        ax3d.scatter(*boards.T, s=3, c="0.6")
    ax3d.scatter(*pos.T, c="C3", s=30)
    ax3d.quiver(*pos.T, *axis.T, color="C3")
    for p, name in zip(pos, group.names, strict=True):
        ax3d.text(*p, f" {name}", fontsize=9)
    ax3d.set_xlabel(f"x ({unit})")
    ax3d.set_ylabel(f"y ({unit})")
    ax3d.set_zlabel(f"z ({unit})")
    ax3d.set_title(f"{len(group)} cameras (world: camera {group.names[0]}'s frame)")
    return fig


def save_png(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` to the PNG ``path`` atomically (a failure leaves no half-written file)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path
