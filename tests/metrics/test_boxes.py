"""Box metrics: IoU, one-to-one matching, recall / precision / mean IoU."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keypointer.metrics.boxes import box_iou, box_metrics, match_boxes


def test_iou_values():
    iou = box_iou([[0, 0, 10, 10], [5, 0, 10, 10]], [[0, 0, 10, 10], [20, 20, 5, 5]])
    np.testing.assert_allclose(iou, [[1.0, 0.0], [50 / 150, 0.0]])
    assert box_iou(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)


def test_matching_is_one_to_one_and_maximises_iou():
    gt = [[0, 0, 10, 10], [8, 0, 10, 10]]
    # pred 0 overlaps both; greedy would give it gt 0 and leave pred 1 with a poor match
    pred = [[4, 0, 10, 10], [0, 0, 10, 10]]
    pairs, ious = match_boxes(pred, gt, 0.3)
    assert sorted(map(tuple, pairs.tolist())) == [(0, 1), (1, 0)]
    assert ious.min() > 0.4
    pairs, _ = match_boxes([[0, 0, 10, 10], [0, 0, 10, 10]], [[0, 0, 10, 10]])
    assert len(pairs) == 1


def test_box_metrics_counts():
    gts = [np.array([[0, 0, 10, 10], [50, 50, 10, 10]]), np.zeros((0, 4)), np.array([[0, 0, 4, 4]])]
    preds = [np.array([[1, 0, 10, 10]]), np.array([[5, 5, 5, 5]]), np.array([[30, 30, 4, 4]])]
    m = box_metrics(preds, gts)
    assert m["recall"] == pytest.approx(1 / 3) and m["precision"] == pytest.approx(1 / 3)
    assert m["mean_iou"] == pytest.approx(90 / 110)
    assert (m["matched"], m["predicted"], m["instances"]) == (1, 3, 3)
    empty = box_metrics([np.zeros((0, 4))], [np.zeros((0, 4))])
    assert empty["recall"] == 1 and math.isnan(empty["precision"]) and math.isnan(empty["mean_iou"])
    missed = box_metrics([np.zeros((0, 4))], [np.array([[0, 0, 4, 4]])])
    assert missed["recall"] == 0 and math.isnan(missed["precision"])  # found nothing: no 1.0
    with pytest.raises(ValueError):
        box_metrics([], [np.zeros((0, 4))])


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 100), st.floats(0, 100), st.floats(1, 50), st.floats(1, 50)),
        max_size=8,
    )
)
def test_property_perfect_predictions_score_one(boxes):
    b = np.array(boxes, np.float64).reshape(-1, 4)
    m = box_metrics([b[::-1]], [b])
    assert m["recall"] == 1 and (m["precision"] == 1 or (not len(b) and math.isnan(m["precision"])))
    if len(b):
        assert m["mean_iou"] == pytest.approx(1.0)
