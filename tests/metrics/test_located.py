"""OKS AP of located instances, and counts of missed and extra instances."""

import numpy as np
import pytest

from keypointer.metrics.located import located_oks
from keypointer.metrics.oks import oks_ap

SIGMAS = [0.05] * 4
rng = np.random.default_rng(0)


def _gt(n):
    centre = rng.uniform(40, 160, (n, 1, 2))
    return centre + rng.uniform(-20, 20, (n, 4, 2))


def _boxes(gt):
    lo, hi = gt.min(1), gt.max(1)
    return np.concatenate([lo, hi - lo], 1)


def test_perfect_located_instances_in_any_order_score_one():
    gts = [_gt(3), _gt(1)]
    preds = [g[::-1].copy() for g in gts]  # found in another order than labelled
    out = located_oks(
        pred=preds,
        scores=[np.ones((len(p), 4)) for p in preds],
        instance_scores=[np.ones(len(p)) for p in preds],
        gt=gts,
        visible=[np.ones((len(g), 4)) for g in gts],
        bboxes=[_boxes(g) for g in gts],
        sigmas=SIGMAS,
    )
    assert out["AP"] == pytest.approx(1.0)
    assert (out["gt_instances"], out["matched"], out["missed"], out["extra"]) == (4, 4, 0, 0)


def test_missed_and_extra_instances_are_counted_and_lower_ap():
    gts = [_gt(3)]
    far = gts[0][:1] + 500.0  # a prediction where nothing is
    preds = [np.concatenate([gts[0][:2], far])]  # the third labelled instance is missed
    out = located_oks(
        pred=preds,
        scores=[np.ones((3, 4))],
        instance_scores=[np.array([0.9, 0.8, 0.95])],
        gt=gts,
        visible=[np.ones((3, 4))],
        bboxes=[_boxes(gts[0])],
        sigmas=SIGMAS,
    )
    assert (out["matched"], out["missed"], out["extra"], out["predicted"]) == (2, 1, 1, 3)
    assert out["AP"] < 0.7 and out["AR"] == pytest.approx(2 / 3, abs=0.01)


def test_one_prediction_per_instance_matches_oks_ap():
    """Paired predictions: the same AP as the top-down oks_ap (same COCOeval underneath)."""
    gt = _gt(5)
    pred = gt + rng.normal(0, 2.0, gt.shape)
    scores = rng.uniform(0.5, 1, 5)
    paired = oks_ap(
        pred, scores, gt, np.ones((5, 4)), SIGMAS, bboxes=_boxes(gt), image_ids=np.zeros(5, int)
    )
    out = located_oks(
        [pred], [np.ones((5, 4))], [scores], [gt], [np.ones((5, 4))], [_boxes(gt)], SIGMAS
    )
    assert out["AP"] == pytest.approx(paired["AP"])


def test_unlabelled_ground_truth_is_neither_missed_nor_matched():
    gt = _gt(2)
    visible = np.ones((2, 4))
    visible[1] = 0
    out = located_oks(
        [gt[:1]], [np.ones((1, 4))], [np.ones(1)], [gt], [visible], [_boxes(gt)], SIGMAS
    )
    assert (out["gt_instances"], out["matched"], out["missed"], out["extra"]) == (1, 1, 0, 0)
