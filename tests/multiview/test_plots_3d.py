"""keypointer.multiview.plots, the 3D poses: the skeleton figure (labelled axes in the world's
unit, equal aspect, the cameras, one colour an animal, an edge a line) and the quality figure
(error and views per keypoint over frames), inspected as Figure objects, and written as PNG."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_rgb

from keypointer.multiview.plots import (
    animal_colors,
    named_edges,
    pick_frames,
    pictures_paths,
    poses_figure,
    quality_figure,
    save_png,
)
from keypointer.multiview.synthetic import camera_ring
from keypointer.skeleton import Skeleton
from keypointer.viz import track_colors

EDGES = [(0, 1), (1, 2)]


def walk(frames: int = 6, animals: int | None = None) -> np.ndarray:
    """(F, 3, 3) or (F, I, 3, 3) points: a 3-keypoint chain moving along x, in mm."""
    chain = np.array([[0.0, 0.0, 0.0], [20.0, 0.0, 10.0], [40.0, 5.0, 0.0]])
    points = chain + np.arange(frames)[:, None, None] * np.array([10.0, 0.0, 0.0])
    if animals is None:
        return points
    return np.stack([points + [0.0, 60.0 * i, 0.0] for i in range(animals)], axis=1)


def ranges(ax) -> list[float]:
    return [np.ptp(ax.get_xlim3d()), np.ptp(ax.get_ylim3d()), np.ptp(ax.get_zlim3d())]


def segments(ax) -> list[np.ndarray]:
    """The line segments of the skeleton collections on 3D axes ``ax``."""
    return [s for c in ax.collections if hasattr(c, "_segments3d") for s in c._segments3d]


def test_poses_figure_labels_equal_aspect_and_cameras():
    group = camera_ring(3)
    fig = poses_figure(walk(), group, EDGES, unit="cm")
    scene, *close = fig.axes
    for ax in (scene, *close):
        assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_zlabel()) == ("x (cm)", "y (cm)", "z (cm)")
        np.testing.assert_allclose(ranges(ax), ranges(ax)[0], rtol=1e-9)
    texts = {t.get_text().strip() for t in scene.texts}
    assert set(group.names) <= texts
    # the scene holds the cameras: its cube is larger than the figure's walk
    assert ranges(scene)[0] > np.ptp(group.positions, axis=0).max()
    assert [ax.get_title() for ax in close] == ["frame 0", "frame 2", "frame 3", "frame 5"]
    assert "6 frames, 3 cameras" in scene.get_title()


def test_poses_figure_draws_an_edge_a_line_and_skips_missing_ends():
    points = walk()
    points[2, 2] = np.nan
    fig = poses_figure(points, edges=EDGES, frames=[1, 2])
    _, first, second = fig.axes  # two frames asked: two close-ups
    assert len(segments(first)) == 2 and len(segments(second)) == 1
    np.testing.assert_allclose(segments(first)[0], points[1, [0, 1]])


def test_poses_figure_gives_each_animal_its_colour():
    fig = poses_figure(walk(animals=2), edges=EDGES, animals=["mouse1", "mouse2"])
    colors = animal_colors(2)
    close = fig.axes[1]
    drawn = [tuple(c.get_color()[0][:3]) for c in close.collections if hasattr(c, "_segments3d")]
    np.testing.assert_allclose(drawn, colors)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert {"mouse1", "mouse2"} <= set(labels) and "camera" not in labels
    assert colors[0] != colors[1]


def test_poses_figure_without_points_still_draws_the_cameras():
    fig = poses_figure(np.full((4, 3, 3), np.nan), camera_ring(2))
    assert "no 3D point" in fig.axes[0].get_title()
    assert len(fig.axes) == 1


@pytest.mark.parametrize(
    "seen, expected", [(range(10), [0, 3, 6, 9]), (range(1, 3), [1, 2]), ((), [])]
)
def test_pick_frames_spreads_over_frames_with_points(seen, expected):
    points = np.full((10, 1, 2, 3), np.nan)
    points[list(seen), 0, 1] = 1.0
    assert pick_frames(points) == expected


def test_named_edges_follow_the_files_order_and_skip_missing():
    skeleton = Skeleton(("nose", "neck", "tail"), edges=((0, 1), (1, 2)))
    assert named_edges(skeleton, ["tail", "neck", "nose"]) == [(2, 1), (1, 0)]
    assert named_edges(skeleton, ["nose", "neck"]) == [(0, 1)]


def test_quality_figure_axes_and_values():
    error = np.array([[0.5, 1.0], [np.nan, 2.0], [0.7, 40.0]])  # (F=3, K=2) px
    views = np.array([[3, 2], [0, 3], [2, 3]])
    fig = quality_figure(error, views, ["nose", "tail"], cameras=4)
    ax_err, ax_views, ax_curve = fig.axes[:3]
    heat = ax_err.images[0].get_array()
    assert heat.shape == (2, 3)  # keypoints x frames
    assert heat.mask[0, 1] and heat[1, 2] == 40.0  # no point: masked (grey)
    np.testing.assert_array_equal(ax_views.images[0].get_array().filled(0), views.T)
    assert [t.get_text() for t in ax_err.get_yticklabels()] == ["nose", "tail"]
    assert ax_curve.get_ylabel() == "reprojection error (px)" and ax_curve.get_xlabel() == "frame"
    bars = {ax.get_ylabel() for ax in fig.axes[3:]}  # the colour bars
    assert bars == {"reprojection error (px)", "views used (cameras)"}
    median = ax_curve.lines[0].get_ydata()
    np.testing.assert_allclose(median, [0.75, 2.0, 20.35])
    assert ax_views.images[0].norm.vmax == 4.5  # the scale reaches the 4 cameras


def test_quality_figure_rows_of_several_animals():
    error = np.ones((5, 2, 3))
    fig = quality_figure(error, np.full((5, 2, 3), 2), ["a", "b", "c"], animals=["m1", "m2"])
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["m1 a", "m1 b", "m1 c", "m2 a", "m2 b", "m2 c"]


def test_pictures_are_named_after_the_3d_file(tmp_path):
    three_d, quality = pictures_paths(tmp_path / "points3d.csv")
    assert (three_d, quality) == (tmp_path / "points3d.3d.png", tmp_path / "points3d.quality.png")


@pytest.mark.parametrize("kind", ["3d", "quality"])
def test_pictures_are_written_as_png(tmp_path, kind):
    if kind == "3d":
        fig = poses_figure(walk(frames=2), camera_ring(2), EDGES)
    else:
        fig = quality_figure(np.ones((2, 3)), np.full((2, 3), 2), ["a", "b", "c"])
    path = save_png(fig, tmp_path / "p.png")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]  # no temporary file left


def test_animal_colors_are_the_track_colours():
    assert animal_colors(3) == [to_rgb(np.array(c) / 255) for c in track_colors(3)]
