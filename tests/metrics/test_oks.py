"""OKS AP/AR: hand-computable cases and pycocotools run directly on the COCO sample."""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest

from keypointer.metrics.oks import OKS_STAT_NAMES, oks_ap
from keypointer.skeleton import COCO_BODY_SIGMAS

COCO_THRESHOLDS = np.linspace(0.5, 0.95, 10)


def _load_coco_sample(shared_data):
    path = shared_data / "mmpose-samples" / "coco" / "test_coco.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    anns = json.loads(path.read_text())["annotations"]
    kp = np.array([a["keypoints"] for a in anns], dtype=float).reshape(len(anns), 17, 3)
    return path, {
        "gt": kp[..., :2],
        "visible": kp[..., 2] > 0,
        "bboxes": np.array([a["bbox"] for a in anns]),
        "areas": np.array([a["area"] for a in anns]),
        "image_ids": np.array([a["image_id"] for a in anns]),
    }


def _offset_for_oks(oks: float, area: float, sigma: float) -> float:
    """Distance d with exp(-d^2 / (2 s^2 k^2)) = oks, s^2 = area, k = 2 sigma."""
    return math.sqrt(-2 * area * (2 * sigma) ** 2 * math.log(oks))


@pytest.mark.parametrize("target", [0.45, 0.52, 0.72, 0.93, 0.97])
def test_single_keypoint_ap_matches_hand_computed_oks(target):
    area, sigma = 2500.0, 0.05  # area 50^2: a "medium" COCO instance
    gt = np.array([[[100.0, 100.0]]])
    pred = gt + [[[_offset_for_oks(target, area, sigma), 0.0]]]
    out = oks_ap(pred, None, gt, np.ones((1, 1), bool), [sigma], areas=[area])
    # One prediction for one instance: AP at threshold t is 1 when OKS >= t, else 0.
    expected = float(np.mean(COCO_THRESHOLDS <= target))
    assert out["AP"] == pytest.approx(expected)
    assert out["APm"] == pytest.approx(expected)
    assert out["AP50"] == pytest.approx(float(target >= 0.5))
    assert out["AP75"] == pytest.approx(float(target >= 0.75))
    assert out["AR"] == pytest.approx(expected)
    assert math.isnan(out["APl"])  # no large instance: COCOeval's -1 becomes NaN


def test_only_labelled_keypoints_enter_oks_and_box_area_is_the_scale():
    sigmas = [0.05, 0.1]
    box = [0.0, 0.0, 50.0, 50.0]  # area 2500 from w * h
    gt = np.array([[[10.0, 10.0], [30.0, 30.0]]])
    d = _offset_for_oks(0.72, 2500.0, 0.05)
    pred = gt + [[[d, 0.0], [500.0, 500.0]]]  # keypoint 1 is far off but unlabelled
    visible = np.array([[True, False]])
    out = oks_ap(pred, None, gt, visible, sigmas, bboxes=[box])
    assert out["AP"] == pytest.approx(0.5)


def test_scores_rank_the_predictions():
    gt = np.array([[[10.0, 10.0]], [[10.0, 10.0]]])
    pred = gt + [[[0.0, 0.0]], [[300.0, 0.0]]]  # a perfect and a useless prediction
    args = (gt, np.ones((2, 1), bool), [0.05])
    good_first = oks_ap(pred, [0.9, 0.1], *args, areas=[2500.0, 2500.0])
    bad_first = oks_ap(pred, np.array([[0.1], [0.9]]), *args, areas=[2500.0, 2500.0])
    # 101-point interpolated precision, recall reaching 0.5: 51 points at precision 1 or 0.5
    assert good_first["AP"] == pytest.approx(51 / 101)
    assert bad_first["AP"] == pytest.approx(0.5 * 51 / 101)


def test_unlabelled_instances_change_nothing_and_no_labels_give_nan():
    gt = np.array([[[10.0, 10.0]], [[50.0, 50.0]]])
    pred = gt + 2.0
    one = oks_ap(pred[:1], None, gt[:1], [[True]], [0.05], areas=[900.0])
    two = oks_ap(pred, None, gt, [[True], [False]], [0.05], areas=[900.0, 900.0])
    np.testing.assert_array_equal(list(one.values()), list(two.values()))  # NaN-aware
    assert one["AP"] == pytest.approx(0.3)  # 2.83 px off with s = 30: OKS 0.64
    empty = oks_ap(pred, None, gt, np.zeros((2, 1), bool), [0.05], areas=[900.0, 900.0])
    assert set(empty) == set(OKS_STAT_NAMES) and all(math.isnan(v) for v in empty.values())


def test_bad_arguments_raise():
    gt = np.zeros((1, 2, 2))
    with pytest.raises(ValueError, match="bboxes or areas"):
        oks_ap(gt, None, gt, np.ones((1, 2), bool), [0.05, 0.05])
    with pytest.raises(ValueError, match="sigmas"):
        oks_ap(gt, None, gt, np.ones((1, 2), bool), [0.05], areas=[100.0])
    with pytest.raises(ValueError, match="NaN"):
        oks_ap(gt + np.nan, None, gt, np.ones((1, 2), bool), [0.05, 0.05], areas=[100.0])


def test_ground_truth_as_prediction_scores_one_on_coco_sample(shared_data):
    _, s = _load_coco_sample(shared_data)
    out = oks_ap(
        s["gt"],
        None,
        s["gt"],
        s["visible"],
        COCO_BODY_SIGMAS,
        s["bboxes"],
        s["areas"],
        s["image_ids"],
    )
    assert out == {name: 1.0 for name in OKS_STAT_NAMES}


def test_matches_pycocotools_run_directly_on_coco_sample(shared_data, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    path, s = _load_coco_sample(shared_data)
    rng = np.random.default_rng(0)
    pred = s["gt"] + rng.normal(0.0, 6.0, s["gt"].shape)
    instance_scores = rng.uniform(0.1, 1.0, len(pred))
    results = [
        {
            "image_id": int(s["image_ids"][i]),
            "category_id": 1,
            "keypoints": np.concatenate([pred[i], np.ones((17, 1))], axis=1).ravel().tolist(),
            "score": float(instance_scores[i]),
        }
        for i in range(len(pred))
        if s["visible"][i].any()  # instances without labels get no prediction
    ]
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps(results))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(path))
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(str(results_path)), iouType="keypoints")
        evaluator.params.kpt_oks_sigmas = np.array(COCO_BODY_SIGMAS)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    expected = [math.nan if v == -1 else v for v in evaluator.stats]

    out = oks_ap(
        pred,
        instance_scores,
        s["gt"],
        s["visible"],
        COCO_BODY_SIGMAS,
        s["bboxes"],
        s["areas"],
        s["image_ids"],
    )
    assert 0.1 < out["AP"] < 0.99  # the perturbation is neither negligible nor ruinous
    np.testing.assert_array_equal([out[name] for name in OKS_STAT_NAMES], expected)
