"""Pictures of a calibration (where each camera saw the board's corners, where the cameras
stand) and of 3D poses (skeletons in 3D among the cameras, the reprojection error and views
used per keypoint over time). Matplotlib, a bare Figure: no pyplot, no window; Agg renders on
save.

Pose arrays are one animal's (F, K, ...) or several animals' (F, I, K, ...); each animal gets
one colour (:func:`keypointer.viz.track_colors`, as in the drawn videos).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from mpl_toolkits.mplot3d.art3d import Line3DCollection

from keypointer.files import atomic_path
from keypointer.multiview.cameras import CameraGroup
from keypointer.skeleton import Skeleton
from keypointer.viz import track_colors

PANEL_INCHES = 4.0
MAX_PANEL_COLUMNS = 3
POSE_FRAMES = 4  # frames drawn one a panel beside the scene (a 2 x 2 grid)
HEATMAP_ROW_INCHES = 0.16  # a keypoint's row in the quality figure's heat maps
MAX_ROW_LABELS = 40  # more rows than this: every n-th keypoint named
ERROR_CLIP_PERCENTILE = 99  # the error colour scale ends here, so one outlier does not grey all


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
    draw_cameras_3d(ax3d, group, axis)
    label_axes_3d(ax3d, unit)
    ax3d.set_box_aspect(None, zoom=0.85)  # room for the z label before the next panel
    ax3d.set_title(f"{len(group)} cameras (world: camera {group.names[0]}'s frame)")
    return fig


def draw_cameras_3d(ax: Axes, group: CameraGroup, axis: np.ndarray, color: str = "C3") -> None:
    """Each camera's centre (a dot), name and optical axis (an arrow ``axis``, (C, 3) in
    world units) on the 3D axes ``ax``."""
    pos = group.positions
    ax.scatter(*pos.T, color=color, s=30)
    ax.quiver(*pos.T, *axis.T, color=color)
    for p, name in zip(pos, group.names, strict=True):
        ax.text(*p, f" {name}", fontsize=9)


def label_axes_3d(ax: Axes, unit: str, fontsize: float | None = None) -> None:
    """x, y and z labels with ``unit`` on the 3D axes ``ax``."""
    ax.set_xlabel(f"x ({unit})", fontsize=fontsize)
    ax.set_ylabel(f"y ({unit})", fontsize=fontsize)
    ax.set_zlabel(f"z ({unit})", fontsize=fontsize)


# --------------------------------------------------------------------------- 3D poses


def as_animals(values: np.ndarray, trailing: int) -> np.ndarray:
    """One animal's (F, K, ...) array as (F, 1, K, ...); several animals' (F, I, K, ...) as
    they are. ``trailing``: the axes after K (1 for points' coordinates, 0 for per-point
    values such as the error)."""
    values = np.asarray(values)
    if values.ndim == 2 + trailing:
        return values[:, None]
    if values.ndim != 3 + trailing:
        raise ValueError(f"expected (F, K{', D' * trailing}) or (F, I, K, ...), got {values.shape}")
    return values


def animal_colors(n: int) -> list[tuple[float, float, float]]:
    """``n`` matplotlib RGB colours (0-1), one an animal: the drawn videos' track colours."""
    return [tuple(c / 255 for c in rgb) for rgb in track_colors(n)]


def named_edges(skeleton: Skeleton, keypoints: Sequence[str]) -> list[tuple[int, int]]:
    """``skeleton``'s edges as pairs of indices into ``keypoints`` (a pose file's order), by
    name; an edge with an end the file lacks is left out."""
    index = {name: i for i, name in enumerate(keypoints)}
    names = skeleton.names
    return [
        (index[names[a]], index[names[b]])
        for a, b in skeleton.edges
        if names[a] in index and names[b] in index
    ]


def pick_frames(points: np.ndarray, n: int = POSE_FRAMES) -> list[int]:
    """Up to ``n`` frames with a 3D point, evenly spread over those frames.

    Args:
        points: (F, I, K, 3) world points, NaN where none.
    """
    seen = np.flatnonzero(np.isfinite(points).all(-1).any(axis=(1, 2)))
    if not len(seen):
        return []
    return sorted({int(seen[round(i)]) for i in np.linspace(0, len(seen) - 1, n)})


def half_side(points: np.ndarray) -> float:
    """Half the longest side of the box around the finite rows of ``points`` (N, 3); 0 when
    there are none."""
    finite = points[np.isfinite(points).all(axis=1)]
    return float(np.ptp(finite, axis=0).max()) / 2 if len(finite) else 0.0


def cube_limits(ax: Axes, points: np.ndarray, half: float | None = None, zoom: float = 1.0) -> None:
    """Equal aspect on the 3D axes ``ax``: the same length on x, y and z, a cube centred on the
    finite rows of ``points`` (N, 3), of half side ``half`` (None: just around them);
    ``zoom`` below 1 leaves room for the axis labels of a small panel."""
    finite = points[np.isfinite(points).all(axis=1)]
    if not len(finite):
        return
    low, high = finite.min(axis=0), finite.max(axis=0)
    half = half_side(finite) if half is None else half
    centre, half = (low + high) / 2, max(half * 1.05, 1e-6)
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_zlim(centre[2] - half, centre[2] + half)
    ax.set_box_aspect((1, 1, 1), zoom=zoom)


def draw_skeleton_3d(
    ax: Axes,
    points: np.ndarray,
    edges: Sequence[tuple[int, int]],
    color: tuple[float, float, float],
    size: float = 12,
) -> None:
    """One animal's keypoints (K, 3) as dots and its ``edges`` as lines on the 3D axes ``ax``;
    NaN points, and edges with a NaN end, are left out."""
    ok = np.isfinite(points).all(axis=1)
    segments = [points[[a, b]] for a, b in edges if ok[a] and ok[b]]
    if segments:
        ax.add_collection3d(Line3DCollection(segments, colors=[color], linewidths=1.5))
    if ok.any():
        ax.scatter(*points[ok].T, color=color, s=size, depthshade=False)


def poses_figure(
    points: np.ndarray,
    group: CameraGroup | None = None,
    edges: Sequence[tuple[int, int]] = (),
    *,
    frames: Sequence[int] | None = None,
    animals: Sequence[str] | None = None,
    unit: str = "mm",
    vertical_axis: str = "z",
) -> Figure:
    """The 3D poses: on the left the scene (the cameras, each animal's skeleton in the picked
    frames and the path of its mean keypoint over all frames), on the right a close-up of
    each picked frame (centred on its points, the same scale in all). Equal aspect
    everywhere; one colour an animal.

    Args:
        points: (F, K, 3) or, several animals, (F, I, K, 3) world points; NaN where none.
        group: the cameras, drawn in the scene (None: none).
        edges: keypoint index pairs joined by a line (:func:`named_edges` maps a
            :class:`~keypointer.skeleton.Skeleton`'s); none: dots only.
        frames: the (at most 4) frames of the close-ups; None: :func:`pick_frames`.
        animals: the I animals' names, for the legend.
        unit: the world's unit (the calibration's), for the axis labels.
        vertical_axis: the world axis drawn upwards ("x", "y" or "z").

    Returns:
        The Figure: the scene's axes first, then one 3D axes a close-up (none without points).
    """
    pts = as_animals(np.asarray(points, dtype=np.float64), 1)
    n_animals = pts.shape[1]
    picked = list(frames) if frames is not None else pick_frames(pts)
    picked = picked[:POSE_FRAMES]
    colors = animal_colors(n_animals)
    fig = Figure(figsize=(PANEL_INCHES * 3.2, PANEL_INCHES * 1.9), layout="constrained")
    grid = fig.add_gridspec(2, 4)
    scene = fig.add_subplot(grid[:, :2], projection="3d")
    # only as many close-ups as frames: a hidden 3D axes breaks the constrained layout
    close = [fig.add_subplot(grid[i // 2, 2 + i % 2], projection="3d") for i in range(len(picked))]
    for ax in (scene, *close):
        ax.view_init(elev=25, azim=-60, vertical_axis=vertical_axis)
    extent = [pts[picked].reshape(-1, 3)]
    for i, color in enumerate(colors):
        with warnings.catch_warnings():  # frames without a point: NaN, not a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            path = np.nanmean(pts[:, i], axis=1)
        scene.plot(*path.T, color=color, lw=0.8, alpha=0.5)
        extent.append(path)
        for f in picked:
            draw_skeleton_3d(scene, pts[f, i], edges, color, size=6)
    handles = [Line2D([], [], color="0.5", lw=0.8, label="path of the mean keypoint")]
    if group is not None:
        pos = group.positions
        every = np.concatenate([pos, *extent])
        every = every[np.isfinite(every).all(axis=1)]
        spread = float(np.ptp(every, axis=0).max())
        axis = np.stack([c.rotation[2] for c in group]) * 0.1 * spread
        draw_cameras_3d(scene, group, axis, color="k")  # red is the first animal's
        extent.append(pos)
        handles.append(Line2D([], [], color="k", marker="o", ls="", label="camera"))
    if n_animals > 1 or animals:
        names = list(animals) if animals else [f"animal {i}" for i in range(n_animals)]
        handles += [
            Line2D([], [], color=c, marker="o", label=n) for c, n in zip(colors, names, strict=True)
        ]
    cube_limits(scene, np.concatenate(extent))
    label_axes_3d(scene, unit)
    scene.legend(handles=handles, loc="upper left", fontsize=8)
    cameras = f", {len(group)} cameras" if group is not None else ""
    shown = ", ".join(map(str, picked)) if picked else "none (no 3D point)"
    scene.set_title(f"{len(pts)} frames{cameras}; skeletons of frames {shown}")
    half = max((half_side(pts[f].reshape(-1, 3)) for f in picked), default=0.0)
    for ax, f in zip(close, picked, strict=True):
        for i, color in enumerate(colors):
            draw_skeleton_3d(ax, pts[f, i], edges, color)
        cube_limits(ax, pts[f].reshape(-1, 3), half, zoom=0.85)
        label_axes_3d(ax, unit, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_title(f"frame {f}", fontsize=10)
    return fig


def quality_figure(
    error: np.ndarray,
    views: np.ndarray,
    keypoints: Sequence[str],
    *,
    animals: Sequence[str] | None = None,
    cameras: int | None = None,
) -> Figure:
    """How good each 3D point is, over time: the reprojection error of every keypoint in every
    frame (a heat map, px), the views each came from (a heat map, cameras) and the median and
    90th percentile error over the keypoints of each frame (px). Grey: no 3D point.

    Args:
        error: (F, K) or (F, I, K) mean reprojection error, px, over the views used; NaN where
            no point.
        views: (F, K) or (F, I, K) views used (below 2: no point).
        keypoints: the K names.
        animals: the I animals' names (rows are then "animal keypoint").
        cameras: how many cameras there are (the top of the views' scale); None: the most
            views used.

    Returns:
        The Figure: error heat map, views heat map, error curves (sharing the frame axis).
    """
    err = as_animals(np.asarray(error, dtype=np.float64), 0)
    used = as_animals(np.asarray(views), 0)
    n_frames, n_animals, k = err.shape
    if n_animals > 1 or animals:
        who = list(animals) if animals else [f"animal {i}" for i in range(n_animals)]
        rows = [f"{a} {kp}" for a in who for kp in keypoints]
    else:
        rows = list(keypoints)
    point = used >= 2
    err = np.where(point, err, np.nan).reshape(n_frames, -1).T  # (I * K, F)
    count = np.where(point, used, np.nan).reshape(n_frames, -1).T.astype(np.float64)
    top = max(int(cameras or 0), int(np.nanmax(count, initial=2)))
    heat = max(1.2, HEATMAP_ROW_INCHES * len(rows))
    fig = Figure(figsize=(PANEL_INCHES * 2.5, 2 * heat + 3), layout="constrained")
    ax_err, ax_views, ax_curve = fig.subplots(3, 1, sharex=True, height_ratios=[heat, heat, 2.0])
    extent = (-0.5, n_frames - 0.5, len(rows) - 0.5, -0.5)
    finite = err[np.isfinite(err)]
    vmax = max(float(np.percentile(finite, ERROR_CLIP_PERCENTILE)) if finite.size else 1.0, 1e-3)
    cmap = colormaps["viridis"].with_extremes(bad="0.85")
    shown = ax_err.imshow(
        err, aspect="auto", interpolation="nearest", extent=extent, cmap=cmap, vmin=0, vmax=vmax
    )
    fig.colorbar(shown, ax=ax_err, label="reprojection error (px)", extend="max")
    steps = colormaps["cividis"].resampled(top - 1).with_extremes(bad="0.85")
    shown = ax_views.imshow(
        count,
        aspect="auto",
        interpolation="nearest",
        extent=extent,
        cmap=steps,
        vmin=1.5,
        vmax=top + 0.5,
    )
    fig.colorbar(shown, ax=ax_views, label="views used (cameras)", ticks=range(2, top + 1))
    every = -(-len(rows) // MAX_ROW_LABELS)
    for ax in (ax_err, ax_views):
        ax.set_yticks(range(0, len(rows), every), rows[::every], fontsize=7)
    ax_err.set_ylabel("keypoint")
    ax_views.set_ylabel("keypoint")
    median = f"{np.median(finite):.2f} px" if finite.size else "-"
    ax_err.set_title(f"reprojection error per keypoint (median {median}; grey: no 3D point)")
    ax_views.set_title("views each 3D point came from")
    with warnings.catch_warnings():  # frames without a point: NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        curves = np.nanpercentile(err, [50, 90], axis=0)
    x = np.arange(n_frames)
    ax_curve.plot(x, curves[0], color="C0", lw=1, label="median over keypoints")
    ax_curve.plot(x, curves[1], color="C1", lw=1, ls="--", label="90th percentile")
    ax_curve.set_ylim(bottom=0)
    ax_curve.set_ylabel("reprojection error (px)")
    ax_curve.set_xlabel("frame")
    ax_curve.grid(alpha=0.3)
    ax_curve.legend(fontsize=8, loc="upper right")
    return fig


def pictures_paths(out: str | Path) -> tuple[Path, Path]:
    """Where the pictures of the 3D poses written to ``out`` go: ``<out stem>.3d.png`` (the
    :func:`poses_figure`) and ``<out stem>.quality.png`` (the :func:`quality_figure`)."""
    out = Path(out)
    return out.with_name(f"{out.stem}.3d.png"), out.with_name(f"{out.stem}.quality.png")


def save_png(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` to the PNG ``path`` atomically (a failure leaves no half-written file)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path
