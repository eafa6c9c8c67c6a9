"""Drawing and plotting: pixels where the keypoints are, PNGs that decode."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from keypointer.skeleton import Skeleton
from keypointer.viz import (
    curves_figure,
    draw_keypoints,
    keypoint_colors,
    plot_curves,
    plot_pck_curve,
    plot_per_keypoint,
    save_gallery,
    write_image,
)

SKELETON = Skeleton(("a", "b", "c"), edges=((0, 1), (1, 2)))


def _read_rgb(path) -> np.ndarray:
    bgr = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), cv2.IMREAD_COLOR)
    assert bgr is not None, f"{path} does not decode"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _assert_nontrivial_png(path, min_size=(100, 100)):
    image = _read_rgb(path)
    assert image.shape[0] >= min_size[0] and image.shape[1] >= min_size[1]
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 10  # more than a blank canvas
    assert image.std() > 5


def test_keypoint_colors_are_distinct_rgb_tuples():
    colors = keypoint_colors(17)
    assert len(colors) == 17 and len(set(colors)) == 17
    assert colors[0] == (255, 0, 0)
    assert all(len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c) for c in colors)


def test_draw_keypoints_colours_keypoints_and_leaves_input_untouched():
    image = np.zeros((64, 80, 3), np.uint8)
    keypoints = np.array([[10.0, 12.0], [40.0, 30.0], [60.0, 50.0]])
    out = draw_keypoints(image, keypoints, SKELETON, radius=3)
    assert not image.any()  # input untouched
    assert out.shape == image.shape and out.dtype == np.uint8
    colors = keypoint_colors(3)
    for (x, y), color in zip(keypoints.astype(int), colors, strict=True):
        assert tuple(out[y, x]) == color
    # the edge a-b is drawn in a's colour (red): its midpoint is red only
    mid = out[21, 25]
    assert mid[0] > 0 and mid[1] == 0 and mid[2] == 0


def test_keypoints_below_threshold_and_their_edges_are_not_drawn():
    image = np.zeros((64, 80, 3), np.uint8)
    keypoints = np.array([[10.0, 12.0], [40.0, 30.0], [60.0, 50.0]])
    out = draw_keypoints(image, keypoints, SKELETON, scores=[0.9, 0.1, 0.2], threshold=0.3)
    ys, xs = np.nonzero(out.any(axis=2))
    assert len(xs) > 0
    # only keypoint a is drawn: every changed pixel is within its radius
    assert np.hypot(xs - 10, ys - 12).max() <= 4
    assert not out[30, 40].any() and not out[50, 60].any()


def test_sub_pixel_positions_shift_the_drawn_disc():
    image = np.zeros((40, 40, 3), np.uint8)
    out = draw_keypoints(image, [[20.5, 15.25]], radius=6)[..., 0].astype(float)
    ys, xs = np.mgrid[:40, :40]
    cx, cy = (out * xs).sum() / out.sum(), (out * ys).sum() / out.sum()
    assert cx == pytest.approx(20.5, abs=0.1) and cy == pytest.approx(15.25, abs=0.1)


def test_ground_truth_is_a_hollow_circle_in_the_keypoint_colour():
    image = np.full((64, 64, 3), 255, np.uint8)
    out = draw_keypoints(image, [[10.0, 10.0]], gt=[[40.0, 40.0]], radius=4)
    assert tuple(out[40, 40]) == (255, 255, 255)  # the centre stays empty
    ring = np.abs(out.astype(int) - 255).sum(axis=2) > 0
    ring[:25, :25] = False  # ignore the prediction
    ys, xs = np.nonzero(ring)
    assert len(xs) > 20 and np.hypot(xs - 40, ys - 40).min() >= 4
    assert out[ys, xs, 0].min() >= 250 - 1  # red stays high: drawn in red (255, 0, 0)


def test_draw_keypoints_skips_nan_and_accepts_grey_images():
    grey = np.zeros((32, 32), np.uint8)
    out = draw_keypoints(grey, [[np.nan, np.nan], [16.0, 16.0]])
    assert out.shape == (32, 32, 3)
    assert tuple(out[16, 16]) == keypoint_colors(2)[1]
    with pytest.raises(ValueError, match="RGB"):
        draw_keypoints(np.zeros((8, 8, 4), np.uint8), [[1.0, 1.0]])


def test_write_image_handles_non_ascii_paths_and_keeps_rgb_order(tmp_path):
    image = np.zeros((8, 10, 3), np.uint8)
    image[..., 0] = 200  # red
    path = write_image(tmp_path / "bilder ü" / "图像.png", image)
    np.testing.assert_array_equal(_read_rgb(path), image)


def test_save_gallery_tiles_images_in_a_grid(tmp_path):
    images = [np.full((20 + i, 30, 3), 40 * i, np.uint8) for i in range(5)]
    path = save_gallery(images, tmp_path / "gallery.png", cols=2)
    grid = _read_rgb(path)
    assert grid.shape == (3 * 24, 2 * 30, 3)
    assert (grid[24 : 24 + 22, 30:60] == 120).all()  # image 3 at row 1, column 1
    assert not grid[24 * 2 :, 30:].any()  # the empty last cell


def test_plot_curves_from_csv_with_missing_validation(tmp_path):
    csv_path = tmp_path / "metrics.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, ["epoch", "lr", "train_loss", "val_loss", "val_pck"])
        writer.writeheader()
        for epoch in range(1, 11):
            val = epoch % 2 == 0
            writer.writerow(
                {
                    "epoch": epoch,
                    "lr": 1e-3,
                    "train_loss": 1 / epoch,
                    "val_loss": 1.2 / epoch if val else "",
                    "val_pck": 1 - 1 / (epoch + 1) if val else "",
                }
            )
    out = plot_curves(csv_path, tmp_path / "curves.png")
    _assert_nontrivial_png(out, (300, 900))
    rows = [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.3}]
    _assert_nontrivial_png(plot_curves(rows, tmp_path / "rows.png"))


def _run_history(epochs=12, val_every=2):
    """Rows as training writes them: validation every ``val_every`` epochs."""
    rows = []
    for e in range(1, epochs + 1):
        val = e % val_every == 0
        rows.append({
            "epoch": e, "train_loss": 2e-3 / e, "lr": 1e-3, "seconds": 20.0,
            "samples_per_s": 60.0 + e, "val_pck": 1 - 1 / (e + 1) if val else "",
            "val_mean_px": 10.0 / e if val else "",
        })  # fmt: skip
    return rows


def test_curves_give_each_quantity_its_own_axis_with_units(tmp_path):
    """Issue 9: PCK (0-1) must not share an axis with pixel errors or ~60 samples/s."""
    fig = curves_figure(_run_history())
    panels = {ax.get_title(): ax for ax in fig.axes}
    assert len(fig.axes) == 4
    lines = {title: [ln.get_label() for ln in ax.get_lines()] for title, ax in panels.items()}
    assert lines == {
        "loss": ["train_loss"],
        "validation PCK": ["val_pck"],
        "validation error": ["val_mean_px"],
        "training throughput": ["samples_per_s"],
    }
    ylabels = {title: ax.get_ylabel() for title, ax in panels.items()}
    assert "0-1" in ylabels["validation PCK"] and "(px)" in ylabels["validation error"]
    assert ylabels["training throughput"] == "samples/s" and "loss" in ylabels["loss"]
    assert panels["validation PCK"].get_ylim() == pytest.approx((0, 1.02))
    assert all(ax.get_xlabel() == "epoch" for ax in fig.axes)
    _assert_nontrivial_png(plot_curves(_run_history(), tmp_path / "curves.png"), (700, 1100))


def test_curves_draw_only_panels_with_data():
    fig = curves_figure([{"epoch": 1, "train_loss": 0.5, "val_pck": ""}])
    assert [ax.get_title() for ax in fig.axes] == ["loss"]
    fig = curves_figure([{"epoch": 1, "loss": 0.5, "val_pck": 0.4, "custom": 3.0}])
    assert [ax.get_title() for ax in fig.axes] == ["loss", "validation PCK", "other"]


def test_plot_pck_curve_and_per_keypoint_bars(tmp_path):
    alphas = np.linspace(0, 0.2, 41)
    _assert_nontrivial_png(
        plot_pck_curve(alphas, np.minimum(1, alphas * 8), tmp_path / "pck.png", 0.8)
    )
    names = [f"kp{i}" for i in range(8)]
    errors = np.array([1.0, 2.5, np.nan, 4.0, 0.5, 3.0, 2.0, 1.5])
    _assert_nontrivial_png(plot_per_keypoint(names, errors, tmp_path / "per_kp.png"))
