"""Metrics against hand-computed cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from keypointer.errors import ConfigError
from keypointer.metrics import (
    FACE_EYE_CORNERS,
    auc,
    bbox_diagonal_norm,
    bbox_norm,
    bboxes_from_keypoints,
    evaluate_keypoints,
    eye_indices,
    image_norm,
    interocular_norm,
    keypoint_errors,
    nme,
    nme_norm,
    pair_norm,
    pck,
    pck_auc,
    pck_curve,
    pixel_errors,
    torso_norm,
)
from keypointer.skeleton import Skeleton

# Two samples, four keypoints; keypoint 3 is never labelled, (1, 2) is unlabelled.
GT = np.array(
    [
        [[10, 10], [20, 20], [30, 30], [40, 40]],
        [[50, 50], [60, 60], [70, 70], [80, 80]],
    ],
    dtype=float,
)
OFFSETS = np.array(
    [
        [[3, 4], [0, 0], [6, 8], [1, 1]],  # distances 5, 0, 10
        [[0, 1], [5, 12], [9, 9], [1, 1]],  # distances 1, 13
    ],
    dtype=float,
)
PRED = GT + OFFSETS
VISIBLE = np.array([[True, True, True, False], [True, True, False, False]])
NORM = np.array([100.0, 50.0])  # normalised distances: 0.05, 0, 0.1 | 0.02, 0.26
SCORES = np.array([[0.9, 0.2, 0.6, 1.0], [0.5, 0.7, 0.9, 1.0]])


def test_keypoint_errors_are_euclidean_pixels():
    np.testing.assert_allclose(
        keypoint_errors(PRED, GT), [[5, 0, 10, math.sqrt(2)], [1, 13, math.sqrt(162), math.sqrt(2)]]
    )


def test_keypoint_errors_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="N, K, 2"):
        keypoint_errors(PRED, GT[:, :3])


def test_pck_hand_computed_and_inclusive_threshold():
    result = pck(PRED, GT, VISIBLE, NORM, alpha=0.05)
    # 0.05 is exactly on the threshold and counts as correct (distance <= alpha * norm).
    assert result.overall == pytest.approx(3 / 5)
    np.testing.assert_allclose(result.per_keypoint[:3], [1.0, 0.5, 0.0])
    assert math.isnan(result.per_keypoint[3])  # never labelled: NaN, ignored by overall
    assert result.count == 5
    np.testing.assert_array_equal(result.per_keypoint_count, [2, 2, 1, 0])
    assert result.keypoint_mean == pytest.approx(0.5)  # MMPose-style mean over keypoints


def test_pck_leaves_out_samples_with_unusable_norm():
    result = pck(PRED, GT, VISIBLE, np.array([np.nan, 50.0]), alpha=0.05)
    assert result.count == 2  # only sample 1: distances 0.02 and 0.26
    assert result.overall == pytest.approx(0.5)
    assert pck(PRED, GT, VISIBLE, np.array([0.0, -1.0])).count == 0
    assert math.isnan(pck(PRED, GT, np.zeros((2, 4), bool), NORM).overall)


def test_pck_accepts_torch_and_scalar_norm():
    a = pck(torch.tensor(PRED), torch.tensor(GT), torch.tensor(VISIBLE), 100.0, alpha=0.1)
    b = pck(PRED, GT, VISIBLE, np.array([100.0, 100.0]), alpha=0.1)
    assert a.overall == b.overall == pytest.approx(4 / 5)  # distances 5, 0, 10, 1 | 13 px


def test_nan_prediction_counts_as_wrong():
    pred = PRED.copy()
    pred[0, 1] = np.nan
    assert pck(pred, GT, VISIBLE, NORM, alpha=0.05).overall == pytest.approx(2 / 5)
    assert pixel_errors(pred, GT, VISIBLE)["mean"] == math.inf


def test_nme_hand_computed():
    result = nme(PRED, GT, VISIBLE, NORM)
    assert result.overall == pytest.approx((0.05 + 0 + 0.1 + 0.02 + 0.26) / 5)
    np.testing.assert_allclose(result.per_keypoint[:3], [0.035, 0.13, 0.1])
    assert math.isnan(result.per_keypoint[3])


def test_pixel_errors_dlc_mean_and_true_rmse():
    out = pixel_errors(PRED, GT, VISIBLE)
    assert out["mean"] == pytest.approx((5 + 0 + 10 + 1 + 13) / 5)  # DLC's "RMSE"
    assert out["rmse"] == pytest.approx(math.sqrt((25 + 0 + 100 + 1 + 169) / 5))
    np.testing.assert_allclose(out["per_keypoint_mean"][:3], [3.0, 6.5, 10.0])
    np.testing.assert_allclose(out["per_keypoint_rmse"][:3], [math.sqrt(13), math.sqrt(84.5), 10])
    assert math.isnan(out["per_keypoint_mean"][3])
    assert out["count"] == 5


def test_pixel_errors_with_pcutoff_keep_scores_at_or_above_it():
    out = pixel_errors(PRED, GT, VISIBLE, SCORES, pcutoff=0.6)
    # kept: (0, 0) score 0.9 -> 5 px, (0, 2) score 0.6 -> 10 px, (1, 1) score 0.7 -> 13 px
    assert out["count"] == 3
    assert out["mean"] == pytest.approx(28 / 3)
    assert out["rmse"] == pytest.approx(math.sqrt((25 + 100 + 169) / 3))
    np.testing.assert_array_equal(out["per_keypoint_count"], [1, 1, 1, 0])
    with pytest.raises(ValueError, match="scores"):
        pixel_errors(PRED, GT, VISIBLE, pcutoff=0.6)


def test_box_and_image_normalisers():
    boxes = np.array([[5, 5, 30, 40], [0, 0, 12, 5]], dtype=float)
    np.testing.assert_allclose(bbox_norm(boxes), [40, 12])
    np.testing.assert_allclose(bbox_diagonal_norm(boxes), [50, 13])
    np.testing.assert_allclose(image_norm([[640, 480], [300, 400]]), [640, 400])


def test_bboxes_from_keypoints_use_labelled_points_only():
    boxes = bboxes_from_keypoints(GT, VISIBLE)
    np.testing.assert_allclose(boxes, [[10, 10, 20, 20], [50, 50, 10, 10]])
    assert np.isnan(bboxes_from_keypoints(GT, np.zeros((2, 4), bool))).all()


def test_pair_norm_is_nan_where_either_keypoint_is_unlabelled():
    np.testing.assert_allclose(pair_norm(GT, VISIBLE, 0, 2), [math.sqrt(800), np.nan])


def test_torso_norm_uses_conventional_names_with_fallback():
    skeleton = Skeleton.coco_body()
    gt = np.zeros((2, 17, 2))
    gt[:, 5] = [0, 0]  # left_shoulder
    gt[:, 12] = [30, 40]  # right_hip
    gt[:, 6] = [10, 0]  # right_shoulder
    gt[:, 11] = [10, 24]  # left_hip
    visible = np.ones((2, 17), bool)
    visible[1, 12] = False  # sample 1 falls back to right_shoulder - left_hip
    np.testing.assert_allclose(torso_norm(gt, visible, skeleton), [50, 24])
    with pytest.raises(ConfigError, match="left_shoulder"):
        torso_norm(gt[:, :3], visible[:, :3], Skeleton(("a", "b", "c")))


def test_eye_indices_for_faces_only():
    assert eye_indices(Skeleton.coco_body()) is None  # a body: eyes are no NME scale
    face = Skeleton(("nose", "Left_Eye", "right_eye", "mouth"))
    assert eye_indices(face) == (1, 2)
    assert eye_indices(Skeleton(tuple(f"kp{i}" for i in range(68)))) == FACE_EYE_CORNERS[68]
    assert eye_indices(Skeleton(tuple(str(i) for i in range(98)))) == (60, 72)
    assert eye_indices(Skeleton(tuple(f"kp{i}" for i in range(21)))) is None


def test_interocular_nme_and_fallbacks():
    face = Skeleton(("left_eye", "right_eye", "nose"))
    gt = np.array([[[0, 0], [40, 0], [20, 20]]], dtype=float)
    pred = gt + [[0, 0], [0, 0], [4, 0]]
    visible = np.ones((1, 3), bool)
    np.testing.assert_allclose(interocular_norm(gt, face), [40])
    norm, name = nme_norm(gt, visible, face)
    assert name == "interocular"
    assert nme(pred, gt, visible, norm).overall == pytest.approx(4 / 40 / 3)
    body = Skeleton(("left_shoulder", "right_shoulder", "nose"))
    norm, name = nme_norm(gt, visible, body, bboxes=np.array([[0, 0, 30, 40]]))
    assert (name, norm.tolist()) == ("bbox_diagonal", [50.0])
    norm, name = nme_norm(gt, visible, body, pair=(0, 2))
    assert name == "pair" and norm[0] == pytest.approx(math.sqrt(800))
    with pytest.raises(ConfigError, match="inter-ocular"):
        interocular_norm(gt, body)


def test_auc_of_perfect_predictor_is_one():
    assert pck_auc(GT, GT, VISIBLE, NORM) == pytest.approx(1.0)
    alphas, values = pck_curve(GT, GT, VISIBLE, NORM)
    assert alphas[0] == 0 and alphas[-1] == pytest.approx(0.2) and (values == 1).all()


def test_auc_of_constant_offset_predictor():
    # Every keypoint 5.25 px off with norm 100: PCK steps from 0 to 1 at alpha = 0.0525,
    # half-way between the grid points 0.05 and 0.055, so the trapezoidal area is exactly
    # (0.2 - 0.0525) / 0.2.
    gt = np.zeros((3, 2, 2))
    pred = gt + [5.25, 0.0]
    visible = np.ones((3, 2), bool)
    assert pck_auc(pred, gt, visible, 100.0) == pytest.approx((0.2 - 0.0525) / 0.2)
    # alpha step 0.01: the step falls between 0.05 and 0.06
    assert pck_auc(pred, gt, visible, 100.0, max_alpha=0.4) == pytest.approx(
        (0.01 / 2 + 0.4 - 0.06) / 0.4
    )


def test_auc_trapezoid_and_validation():
    assert auc([0, 0.1, 0.2], [0, 0.5, 1]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        auc([0.1, 0.0], [1, 1])


def test_pck_curve_matches_pck_at_each_alpha():
    alphas, values = pck_curve(PRED, GT, VISIBLE, NORM, alphas=[0, 0.02, 0.05, 0.1, 0.3])
    expected = [pck(PRED, GT, VISIBLE, NORM, a).overall for a in alphas]
    np.testing.assert_allclose(values, expected)
    np.testing.assert_allclose(values, [0.2, 0.4, 0.6, 0.8, 1.0])


def test_evaluate_keypoints_is_json_serialisable_with_per_keypoint_table():
    skeleton = Skeleton(("a", "b", "c", "d"), sigmas=(0.05,) * 4)
    boxes = np.array([[0, 0, 100, 60], [40, 40, 50, 50]], dtype=float)
    out = evaluate_keypoints(PRED, GT, VISIBLE, SCORES, boxes, skeleton, alpha=0.05, pcutoff=0.6)
    text = json.dumps(out, allow_nan=False)  # raises on NaN or numpy values
    assert json.loads(text) == out
    assert out["pck"] == pytest.approx(3 / 5) and out["pck_norm"] == "bbox"
    assert out["mean_px"] == pytest.approx(29 / 5) and out["mean_px_pcutoff"] == pytest.approx(
        28 / 3
    )
    assert out["nme_norm"] == "bbox_diagonal" and 0 < out["pck_auc"] < 1
    assert set(out["oks"]) >= {"AP", "AP50", "AR"}
    assert [row["name"] for row in out["per_keypoint"]] == ["a", "b", "c", "d"]
    assert out["per_keypoint"][1]["mean_px"] == pytest.approx(6.5)
    assert out["per_keypoint"][3]["pck"] is None and out["per_keypoint"][3]["count"] == 0


def test_evaluate_keypoints_without_boxes_uses_keypoint_boxes_and_skips_oks():
    skeleton = Skeleton(("a", "b", "c", "d"))
    out = evaluate_keypoints(PRED, GT, VISIBLE, skeleton=skeleton)
    assert out["pck_norm"] == "keypoint_box" and "oks" not in out
    # keypoint boxes are 20 and 10 px: normalised distances .25 0 .5 | .1 1.3
    assert out["pck_count"] == 5 and out["pck"] == pytest.approx(1 / 5)
