"""keypointer.metrics.video: predictions made from known tracks give known answers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keypointer.data.synthetic_video import render_video
from keypointer.metrics.video import (
    match_poses,
    pose_metrics,
    same_points,
    scale_areas,
    tracking_metrics,
    tracks_array,
    truth_points,
)

T, M, K = 60, 2, 11
SIGMAS = [0.05] * K
NAMES = [f"p{j}" for j in range(K)]


@pytest.fixture(scope="module")
def clip() -> tuple[np.ndarray, np.ndarray]:
    """Truth (T, M, K, 3) and boxes (T, M, 4) of two synthetic figures that cross."""
    frames = list(render_video(T, instances=M, seed=3, size=128))
    return np.stack([f[1] for f in frames]), np.stack([f[2] for f in frames])


def poses(truth: np.ndarray, pred: np.ndarray, boxes: np.ndarray) -> dict:
    scores = np.ones(pred.shape[:3])
    return pose_metrics(truth, boxes, pred, scores, scores[..., 0], NAMES, SIGMAS).metrics


def test_perfect_predictions_score_perfectly(clip):
    truth, boxes = clip
    pred = truth[..., :2].copy()
    p = poses(truth, pred, boxes)
    assert p["mean_px"] == 0 and p["median_px"] == 0 and p["rmse_px"] == 0 and p["pck"] == 1
    assert p["jitter_px"] == 0 and p["excess_motion_px"] == 0 and p["truth_motion_px"] > 0
    assert p["oks"]["AP"] == 1 and p["missed_instances"] == p["extra_instances"] == 0
    assert p["num_keypoints"] == int((truth[..., 2] > 0).sum())
    assert [r["mean_px"] for r in p["per_track"]] == [0.0, 0.0]
    t = tracking_metrics(truth, boxes, pred, SIGMAS)
    assert t["mota"] == 1 and t["idf1"] == 1 and t["num_switches"] == 0
    assert t["num_misses"] == t["num_false_positives"] == t["num_fragmentations"] == 0
    assert t["switch_frames"] == [] and t["switches_per_1000_frames"] == 0


@pytest.mark.parametrize("at", [1, 25, 59])
def test_a_swap_at_frame_t_is_two_switches_there(clip, at):
    truth, boxes = clip
    pred = truth[..., :2].copy()
    pred[at:] = pred[at:, ::-1]  # the two predicted tracks trade identities from frame `at`
    t = tracking_metrics(truth, boxes, pred, SIGMAS, frames=np.arange(T) + 100)
    assert t["num_switches"] == 2 and t["switch_frames"] == [100 + at, 100 + at]
    assert t["switches_per_1000_frames"] == pytest.approx(2000 / T)
    assert t["mota"] == pytest.approx(1 - 2 / (M * T))
    assert t["idf1"] == pytest.approx(max(at, T - at) / T)  # best one-to-one: the longer part
    assert poses(truth, pred, boxes)["mean_px"] == 0  # pose accuracy ignores identities


def test_swap_and_swap_back_is_four_switches(clip):
    truth, boxes = clip
    pred = truth[..., :2].copy()
    pred[20:40] = pred[20:40, ::-1]
    t = tracking_metrics(truth, boxes, pred, SIGMAS)
    assert t["num_switches"] == 4 and t["switch_frames"] == [20, 20, 40, 40]
    assert t["idf1"] == pytest.approx(40 / 60)


def test_shuffled_columns_change_nothing_but_ids(clip):
    truth, boxes = clip
    pred = truth[..., :2] + np.random.default_rng(0).normal(0, 1.5, truth[..., :2].shape)
    order = np.random.default_rng(1).permuted(np.tile(np.arange(M), (T, 1)), axis=1)
    shuffled = np.take_along_axis(pred, order[..., None, None], axis=1)
    a, b = poses(truth, pred, boxes), poses(truth, shuffled, boxes)
    # COCOeval ranks predictions of equal score in the order given: AP may move a hair.
    assert a.pop("oks")["AP"] == pytest.approx(b.pop("oks")["AP"], abs=1e-3)
    assert a == b and a["mean_px"] > 0
    relabelled = np.concatenate([np.full_like(pred[:, :1], np.nan), pred[:, ::-1]], axis=1)
    t, u = (
        tracking_metrics(truth, boxes, pred, SIGMAS),
        tracking_metrics(truth, boxes, relabelled, SIGMAS),
    )
    assert t == u  # track ids are names: 0, 1 or 2, 1 score alike


def test_dropped_instances_are_misses_and_a_fragmentation(clip):
    truth, boxes = clip
    pred = truth[..., :2].copy()
    pred[20:25, 1] = np.nan
    t = tracking_metrics(truth, boxes, pred, SIGMAS)
    assert t["num_misses"] == 5 and t["num_fragmentations"] == 1 and t["num_switches"] == 0
    assert t["mota"] == pytest.approx(1 - 5 / (M * T))
    p = poses(truth, pred, boxes)
    assert p["missed_instances"] == 5 and p["matched_instances"] == M * T - 5
    assert [r["matched"] for r in p["per_track"]] == [T, T - 5]
    assert p["mean_px"] == 0


def test_constant_offset_is_error_without_jitter(clip):
    truth, boxes = clip
    p = poses(truth, truth[..., :2] + [3.0, 4.0], boxes)
    assert p["mean_px"] == pytest.approx(5) and p["median_px"] == pytest.approx(5)
    assert p["jitter_px"] == pytest.approx(0, abs=1e-9)
    assert p["excess_motion_px"] == pytest.approx(0, abs=1e-9)
    assert all(r["mean_px"] == pytest.approx(5) for r in p["per_keypoint"])


def test_alternating_offset_is_jitter(clip):
    truth, boxes = clip
    sign = np.where(np.arange(T) % 2, 1.0, -1.0)[:, None, None, None]
    pred = truth[..., :2] + sign * np.array([[[1.5, 0.0]]])
    p = poses(truth, pred, boxes)
    assert p["mean_px"] == pytest.approx(1.5) and p["jitter_px"] == pytest.approx(3.0)
    assert p["motion_px"] > p["truth_motion_px"]
    assert all(r["jitter_px"] == pytest.approx(3.0) for r in p["per_keypoint"])


def test_hidden_and_visible_points_are_split(clip):
    truth, boxes = clip
    hidden = truth[..., 2] == 1
    assert hidden.any()
    pred = truth[..., :2] + np.where(hidden[..., None], [2.0, 0.0], 0.0)
    p = poses(truth, pred, boxes)
    assert p["mean_px_visible"] == 0 and p["mean_px_hidden"] == pytest.approx(2)


def test_errors_split_by_fast_motion(clip):
    truth, boxes = clip
    fast = np.zeros((T, M), bool)
    fast[10:20, 0] = True
    pred = truth[..., :2] + np.where(fast[..., None, None], [0.0, 3.0], 0.0)
    scores = np.ones(pred.shape[:3])
    p = pose_metrics(truth, boxes, pred, scores, scores[..., 0], NAMES, SIGMAS, fast=fast)
    assert p.metrics["mean_px_fast"] == pytest.approx(3) and p.metrics["mean_px_steady"] == 0
    assert np.nanmax(p.error[10:20, 0]) == pytest.approx(3) and np.nanmax(p.error[:10]) == 0


def test_missing_points_and_extra_instances_are_counted(clip):
    truth, boxes = clip
    pred = truth[..., :2].copy()
    pred[:10, 0, 0] = np.nan  # the first keypoint of track 0 missing in 10 frames
    far = np.full((T, 1, K, 2), np.nan)
    far[5:8, 0] = [-500.0, -500.0]  # a false positive far away in 3 frames
    pred = np.concatenate([pred, far], axis=1)
    p = poses(truth, pred, boxes)
    labelled = truth[:10, 0, 0, 2] > 0
    assert p["missing_keypoints"] == int(labelled.sum()) and p["extra_instances"] == 3
    assert p["mean_px"] == 0 and 0.9 < p["oks"]["AP"] < 1.0
    t = tracking_metrics(truth, boxes, pred, SIGMAS)
    assert t["num_false_positives"] == 3 and t["num_switches"] == 0


def test_truth_points_leave_out_points_outside_the_image():
    truth = np.array([[[[5, 6, 2], [7, 8, 1], [9, 9, 0]]]], float)
    points, visible = truth_points(truth)
    assert np.isnan(points[0, 0, 2]).all() and points[0, 0, 1].tolist() == [7, 8]
    assert visible[0, 0].tolist() == [True, False, False]
    areas = scale_areas(points, np.array([[[0, 0, np.nan, np.nan]]]))
    assert areas[0, 0] == pytest.approx(2 * 2)  # no box: the keypoints' box


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 4), st.integers(0, 3))
def test_match_poses_finds_shuffled_instances(seed, m, extra):
    """Instances shuffled within each frame (and extra far ones) pair back with their truth."""
    rng = np.random.default_rng(seed)
    t = 5
    centres = rng.uniform(0, 1000, (t, m, 1, 2)) + np.arange(m)[None, :, None, None] * 300
    gt = centres + rng.uniform(-20, 20, (t, m, 3, 2))
    far = np.full((t, extra, 3, 2), 5000.0) + rng.uniform(0, 100, (t, extra, 1, 2))
    pred = np.concatenate([gt + rng.normal(0, 0.5, gt.shape), far], axis=1)
    order = np.stack([rng.permutation(m + extra) for _ in range(t)])
    shuffled = np.take_along_axis(pred, order[..., None, None], axis=1)
    match = match_poses(gt, shuffled, [0.1] * 3, np.full((t, m), 40.0**2))
    np.testing.assert_array_equal(
        order[np.arange(t)[:, None], match], np.tile(np.arange(m), (t, 1))
    )


def test_tracks_array_places_instances_by_id_and_leaves_out_untracked():
    kp = [np.arange(12.0).reshape(3, 2, 2), np.zeros((0, 2, 2))]
    out = tracks_array([np.array([2, -1, 0]), np.zeros(0, int)], kp, 2)
    assert out.shape == (2, 3, 2, 2)
    np.testing.assert_array_equal(out[0, 2], kp[0][0])
    np.testing.assert_array_equal(out[0, 0], kp[0][2])
    assert np.isnan(out[0, 1]).all() and np.isnan(out[1]).all()


def test_same_points_counts_only_the_kept_points(clip):
    truth, boxes = clip
    pred = truth[..., :2] + [0.0, 1.0]
    keep = np.zeros(truth.shape[:3], bool)
    keep[:, 0, :3] = True
    pred[:, 0, :3] += [0.0, 1.0]  # the kept points are 2 px off, the rest 1 px
    s = same_points(truth, boxes, pred, keep)
    assert s["mean_px"] == pytest.approx(2) and s["jitter_px"] == pytest.approx(0, abs=1e-9)
    assert s["num_keypoints"] == int((truth[:, 0, :3, 2] > 0).sum())
