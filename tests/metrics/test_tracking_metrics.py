"""MOT metrics: hand-made cases with known answers, and py-motmetrics on random ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keypointer.errors import DataError
from keypointer.metrics.tracking import MOT_KEYS, min_cost_matching, mot_metrics, pose_distances


def _pose(x: float, y: float) -> np.ndarray:
    """(3, 2): a small L-shaped pose at (x, y), 20 px across."""
    return np.array([[x, y], [x + 20, y], [x, y + 20]], dtype=float)


def _frames(*frames):
    """frames of {id: (x, y)} -> ids, keypoints per frame."""
    ids = [np.array(list(f), dtype=int) for f in frames]
    kps = [np.stack([_pose(*f[i]) for i in f]) if f else np.zeros((0, 3, 2)) for f in frames]
    return ids, kps


def _pixels(gt, pred, threshold=5.0):
    return mot_metrics(*gt, *pred, threshold=threshold, match="pixels")


A, B = (0.0, 0.0), (200.0, 0.0)  # two places far apart


def test_perfect_tracks():
    gt = _frames({0: A, 1: B}, {0: A, 1: B}, {0: A, 1: B})
    out = _pixels(gt, gt)
    assert set(out) == set(MOT_KEYS)
    assert out["mota"] == 1.0 and out["idf1"] == 1.0 and out["motp"] == 0.0
    assert out["num_matches"] == 6 and out["num_switches"] == 0 and out["num_frames"] == 3
    assert out["num_unique_objects"] == 2


def test_swapped_ids_count_two_switches_and_halve_idf1():
    gt = _frames({0: A, 1: B}, {0: A, 1: B}, {0: A, 1: B}, {0: A, 1: B})
    pred = _frames({5: A, 6: B}, {5: A, 6: B}, {6: A, 5: B}, {6: A, 5: B})
    out = _pixels(gt, pred)
    assert out["num_switches"] == 2  # each ground-truth track changes partner once
    assert out["num_detections"] == 8 and out["num_matches"] == 6
    assert out["mota"] == pytest.approx(1 - 2 / 8)
    # Best one-to-one track assignment covers 2 of 4 frames per track: IDTP = 4 of 8.
    assert out["idtp"] == 4 and out["idf1"] == pytest.approx(0.5)
    assert out["num_fragmentations"] == 0


def test_miss_false_positive_and_fragmentation():
    gt = _frames({0: A}, {0: A}, {0: A}, {0: A})
    far = (500.0, 500.0)
    pred = _frames({3: A}, {3: far}, {3: A}, {3: A, 4: far})
    out = _pixels(gt, pred)
    assert out["num_misses"] == 1 and out["num_false_positives"] == 2
    assert out["num_fragmentations"] == 1  # tracked, lost, tracked again
    assert out["num_switches"] == 0
    assert out["mota"] == pytest.approx(1 - 3 / 4)
    assert out["idtp"] == 3 and out["idf1"] == pytest.approx(2 * 3 / (4 + 5))


def test_threshold_in_pixels():
    gt = _frames({0: A})
    near, off = _frames({1: (A[0] + 4, A[1])}), _frames({1: (A[0] + 6, A[1])})
    assert _pixels(gt, near)["num_matches"] == 1
    assert _pixels(gt, near)["motp"] == pytest.approx(4.0)
    out = _pixels(gt, off)
    assert out["num_matches"] == 0 and out["num_misses"] == 1 and out["num_false_positives"] == 1


def test_previous_partner_is_kept_while_in_reach():
    # Prediction 2 comes closer to ground truth 0 than its partner 1, which is still in reach:
    # CLEAR-MOT keeps the partner, so no switch (and 2 is a false positive).
    gt = _frames({0: A}, {0: A})
    pred = _frames({1: A}, {1: (A[0] + 4, A[1]), 2: A})
    out = _pixels(gt, pred)
    assert out["num_switches"] == 0 and out["num_false_positives"] == 1
    assert out["motp"] == pytest.approx(2.0)


def test_switch_after_a_gap_still_counts():
    gt = _frames({0: A}, {}, {0: A})
    pred = _frames({1: A}, {}, {2: A})
    out = _pixels(gt, pred)
    assert out["num_switches"] == 1 and out["num_objects"] == 2


def test_untracked_and_empty_predictions_are_ignored():
    gt = _frames({0: A}, {0: A})
    ids, kps = _frames({1: A, 2: B}, {1: A})
    ids[0][1] = -1  # B: untracked
    nan = np.full((1, 3, 2), np.nan)
    out = _pixels(gt, ([ids[0], np.r_[ids[1], 7]], [kps[0], np.concatenate([kps[1], nan])]))
    assert out["num_false_positives"] == 0 and out["num_predictions"] == 2
    assert out["mota"] == 1.0


def test_visibility_triples_and_missing_points():
    gt_kp = _pose(*A)[None].copy()
    gt_v = np.concatenate([gt_kp, [[[2], [0], [1]]]], axis=-1)  # point 1 unlabelled
    pred = _pose(*A)[None].copy()
    pred[0, 1] = [999.0, 999.0]  # wrong only where the truth has no label
    out = mot_metrics([[0]], [gt_v], [[0]], [pred], threshold=1.0, match="pixels")
    assert out["num_matches"] == 1 and out["motp"] == 0.0


def test_oks_distance_by_hand():
    gt = _pose(0, 0)[None]  # keypoint box 20 x 20: area 400
    pred = gt + [[[3.0, 4.0]]]  # every point 5 px off
    sigma = 0.1
    expected = 1 - math.exp(-25 / (2 * 400 * (2 * sigma) ** 2))
    d = pose_distances(gt, pred, "oks", [sigma] * 3)
    assert d.shape == (1, 1) and d[0, 0] == pytest.approx(expected)
    half = pred.copy()
    half[0, 0] = np.nan  # a missing prediction counts 0 for its keypoint
    assert pose_distances(gt, half, "oks", [sigma] * 3)[0, 0] == pytest.approx(
        1 - (2 / 3) * (1 - expected)
    )
    oks = 1 - expected  # threshold: the least OKS that matches
    out = mot_metrics([[0]], [gt], [[0]], [pred], threshold=oks - 1e-9, sigmas=[sigma] * 3)
    assert out["num_matches"] == 1
    out = mot_metrics([[0]], [gt], [[0]], [pred], threshold=oks + 1e-9, sigmas=[sigma] * 3)
    assert out["num_matches"] == 0


def test_pixel_distance_of_poses_with_nothing_in_common_is_inf():
    gt, pred = _pose(0, 0)[None].copy(), _pose(0, 0)[None].copy()
    gt[0, :2], pred[0, 2] = np.nan, np.nan
    assert pose_distances(gt, pred, "pixels")[0, 0] == np.inf
    pred[0, 2] = [3.0, 24.0]  # 5 px from the truth's only point
    assert pose_distances(gt, pred, "pixels")[0, 0] == pytest.approx(5.0)


def test_min_cost_matching_maximises_pairs_first():
    inf = np.inf
    cost = np.array([[0.1, 0.2], [0.15, inf]])  # the cheapest pair (0, 0) leaves row 1 alone
    rows, cols = min_cost_matching(cost)
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 1), (1, 0)]
    assert min_cost_matching(np.full((2, 2), inf))[0].size == 0


def test_no_ground_truth_gives_nan_mota():
    out = _pixels(_frames({}), _frames({1: A}))
    assert math.isnan(out["mota"]) and out["num_false_positives"] == 1


@pytest.mark.parametrize(
    "args",
    [
        ([[0]], [np.zeros((1, 3, 2))], [[0], [1]], [np.zeros((1, 3, 2))] * 2),  # frame counts
        ([[0, 0]], [np.zeros((2, 3, 2))], [[0]], [np.zeros((1, 3, 2))]),  # repeated id
        ([[0]], [np.zeros((1, 3, 2))], [[0]], [np.zeros((1, 4, 2))]),  # keypoint counts
        ([[0]], [np.zeros((2, 3, 2))], [[0]], [np.zeros((1, 3, 2))]),  # ids vs instances
    ],
)
def test_bad_input_raises_data_error(args):
    with pytest.raises(DataError):
        mot_metrics(*args, match="pixels")


def _random_case(rng: np.random.Generator, frames: int = 30):
    """Random tracks that appear, vanish, swap ids and jitter; ids from small pools."""
    gt_ids, gt_kp, pr_ids, pr_kp = [], [], [], []
    paths = rng.uniform(0, 60, (4, 2)) + np.cumsum(rng.normal(0, 3, (frames, 4, 2)), axis=0)
    for t in range(frames):
        present = np.flatnonzero(rng.random(4) < 0.8)
        gt_ids.append(present)
        gt_kp.append(
            np.stack([_pose(*paths[t, m]) for m in present])
            if len(present)
            else np.zeros((0, 3, 2))
        )
        keep = present[rng.random(len(present)) < 0.85]
        labels = rng.permutation(6)[: len(keep)] if rng.random() < 0.15 else keep + 10
        kp = [_pose(*(paths[t, m] + rng.normal(0, 2, 2))) for m in keep]
        if rng.random() < 0.2:  # a false positive somewhere
            labels = np.r_[labels, 20 + t % 3]
            kp.append(_pose(*rng.uniform(0, 80, 2)))
        pr_ids.append(np.asarray(labels, dtype=int))
        pr_kp.append(np.stack(kp) if kp else np.zeros((0, 3, 2)))
    return gt_ids, gt_kp, pr_ids, pr_kp


@pytest.mark.parametrize("seed", range(16))
def test_agrees_with_py_motmetrics(seed):
    mm = pytest.importorskip("motmetrics")
    gt_ids, gt_kp, pr_ids, pr_kp = _random_case(np.random.default_rng(seed))
    threshold = 6.0
    acc = mm.MOTAccumulator(auto_id=True)
    for g, gk, p, pk in zip(gt_ids, gt_kp, pr_ids, pr_kp, strict=True):
        d = pose_distances(gk, pk, "pixels") if len(g) and len(p) else np.zeros((len(g), len(p)))
        acc.update(g, p, np.where(d <= threshold, d, np.nan))
    names = ["mota", "motp", "idf1", "num_switches", "num_fragmentations", "num_misses"]
    names += ["num_false_positives", "num_matches", "num_detections", "num_objects", "idtp"]
    ref = mm.metrics.create().compute(acc, metrics=names, name="x").iloc[0]
    ours = mot_metrics(gt_ids, gt_kp, pr_ids, pr_kp, threshold=threshold, match="pixels")
    assert ours["num_switches"] > 0 or seed > 3  # the cases do exercise switches
    for name in names:
        assert ours[name] == pytest.approx(float(ref[name]), abs=1e-9), name


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_metrics_ignore_instance_order_and_id_labels(seed):
    gt_ids, gt_kp, pr_ids, pr_kp = _random_case(np.random.default_rng(seed), frames=15)
    rng = np.random.default_rng(seed + 1)
    relabel = dict(enumerate(rng.permutation(100) + 1000))  # predicted ids renamed
    g_order = [rng.permutation(len(g)) for g in gt_ids]
    p_order = [rng.permutation(len(p)) for p in pr_ids]
    shuffled = (
        [g[o] for g, o in zip(gt_ids, g_order, strict=True)],
        [k[o] for k, o in zip(gt_kp, g_order, strict=True)],
        [
            np.array([relabel[int(i)] for i in p[o]], dtype=int)
            for p, o in zip(pr_ids, p_order, strict=True)
        ],
        [k[o] for k, o in zip(pr_kp, p_order, strict=True)],
    )
    a = mot_metrics(gt_ids, gt_kp, pr_ids, pr_kp, threshold=6.0, match="pixels")
    b = mot_metrics(*shuffled, threshold=6.0, match="pixels")
    assert a == pytest.approx(b, nan_ok=True)
