"""Locating instances on whole images, with the PyTorch locator and its ONNX export."""

import numpy as np
import pytest
import torch
from torch import nn

from keypointer.config import Config
from keypointer.inference.locate import find_boxes
from keypointer.models.locator import build_locator


class FixedLocator(nn.Module):
    """Always the same boxes in input pixels (a 64x64 input)."""

    input_size = (64, 64)

    def __init__(self, boxes, scores):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(1))
        self.boxes, self.scores = torch.tensor(boxes).float(), torch.tensor(scores).float()

    def predict(self, x):
        n = len(x)
        return self.boxes.expand(n, -1, -1), self.scores.expand(n, -1)


def test_boxes_come_back_in_image_pixels_thresholded_and_best_first():
    loc = FixedLocator([[8, 16, 16, 8], [40, 40, 8, 8], [0, 0, 4, 4]], [0.5, 0.9, 0.1])
    image = np.zeros((64, 128, 3), np.uint8)  # letterboxed: scale 2, bars above and below
    ((boxes, scores),) = find_boxes(loc, [image], threshold=0.3)
    assert scores.tolist() == pytest.approx([0.9, 0.5])
    # input (x, y) -> image: x * 2, (y - 16) * 2 with edges at half pixels
    assert boxes[1] == pytest.approx([16.0, 0.0, 32.0, 16.0], abs=1e-6)
    assert boxes[0] == pytest.approx([80.0, 48.0, 16.0, 16.0], abs=1e-6)
    ((few, _),) = find_boxes(loc, [image], threshold=0.0, max_instances=1)
    assert len(few) == 1


def test_onnx_locator_gives_the_torch_boxes(tmp_path):
    pytest.importorskip("onnxruntime")
    from keypointer.export.locator_onnx import OnnxLocator, export_locator

    cfg = Config.model_validate({"locator": {"backbone": "lcnet_050", "input_size": 96}})
    torch.manual_seed(0)
    model = build_locator(cfg, (96, 64), pretrained=False).eval()
    report = export_locator(model, tmp_path / "m.locator.onnx")
    assert report["max_diff"] < 1e-2
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (90, 140, 3), np.uint8) for _ in range(2)]
    want = find_boxes(model, images, threshold=0.1)
    got = find_boxes(OnnxLocator(tmp_path / "m.locator.onnx"), images, threshold=0.1)
    for (wb, ws), (gb, gs) in zip(want, got, strict=True):
        assert len(wb) == len(gb) > 0
        assert np.sort(gs) == pytest.approx(np.sort(ws), abs=1e-3)
        for b in wb:  # each box found by both (top-k order may differ)
            assert np.abs(gb - b).max(1).min() < 0.05


def test_pose_nms_keeps_one_of_a_pose_found_twice_and_both_of_two_animals():
    from keypointer.inference.locate import pose_nms

    rng = np.random.default_rng(1)
    a = rng.uniform(20, 60, (5, 2))
    b = a + [100.0, 0.0]  # another animal, same pose, elsewhere
    twice = a + rng.normal(0, 0.5, a.shape)  # the first one again, from a shifted box
    kp = np.stack([a, b, twice])
    keep = pose_nms(kp, np.array([0.7, 0.8, 0.9]), [0.05] * 5)
    assert keep.tolist() == [1, 2]  # the better-scoring copy of the first animal stays
    assert pose_nms(kp[:2], np.array([0.7, 0.8]), [0.05] * 5).tolist() == [0, 1]


def test_keep_located_drops_unsure_poses_then_duplicates():
    from keypointer.inference.locate import keep_located

    rng = np.random.default_rng(2)
    a = rng.uniform(20, 60, (5, 2))
    kp = np.stack([a, a + [100.0, 0.0], a + rng.normal(0, 0.5, a.shape), a + [0.0, 100.0]])
    scores = np.array([0.7, 0.8, 0.9, 0.2])[:, None] * np.ones((4, 5))
    assert keep_located(kp, scores, [0.05] * 5).tolist() == [1, 2, 3]
    assert keep_located(kp, scores, [0.05] * 5, min_score=0.5).tolist() == [1, 2]
    assert keep_located(kp, scores, [0.05] * 5, min_score=0.95).tolist() == []
    assert keep_located(kp[:0], scores[:0], [0.05] * 5).tolist() == []


class PointRunner:
    """A pose 'model' that always puts its two keypoints at the same input pixels, scored by
    how bright its crop is (a 64x64 input)."""

    input_size, margin = (64, 64), 1.25

    def __init__(self, locator):
        from keypointer.skeleton import Skeleton

        self.skeleton, self.locator, self.crops = Skeleton(("a", "b")), locator, []

    def __call__(self, crops, flip=False):
        self.crops.append(len(crops))
        kp = np.broadcast_to(np.array([[20.0, 24.0], [40.0, 44.0]]), (len(crops), 2, 2))
        return kp.copy(), np.repeat(crops.mean((1, 2, 3))[:, None] / 255.0, 2, 1)


def test_located_instances_are_posed_again_around_their_first_pose():
    from keypointer.data import transforms as T
    from keypointer.data.boxes import grow_boxes, keypoint_boxes
    from keypointer.inference.crops import crop_matrix
    from keypointer.inference.pipeline import FIRST_PASS_SHARE, LocatorStage, Pipeline

    image = np.zeros((64, 64, 3), np.uint8)
    image[8:40, 8:40] = 255  # the bright animal; the other box holds darkness
    locator = FixedLocator([[4, 4, 40, 40], [40, 40, 20, 20]], [0.9, 0.5])
    runner = PointRunner(locator)

    def pipeline(box_ratio, floor):
        return Pipeline(runner, LocatorStage(locator, 0.0, box_ratio, floor))

    one = pipeline(None, 0.0).run_image(image)  # one pass: the points in the boxes' crops
    boxes = one.located
    assert runner.crops == [2] and len(boxes) == 2
    points = np.array([[20.0, 24], [40, 44]])  # what the runner gives, in input px
    first = np.stack(
        [T.apply_affine(points, crop_matrix((64, 64), (64, 64), b, 1.25)) for b in boxes]
    )
    np.testing.assert_allclose(np.sort(one.keypoints, 0), np.sort(first, 0), atol=1e-6)
    runner.crops = []  # two passes: crops around those points
    two = pipeline((1.2, 1.5), 0.0).run_image(image)
    assert runner.crops == [2, 2]
    again = grow_boxes(keypoint_boxes(first), (1.2, 1.5))
    want = np.stack(
        [T.apply_affine(points, crop_matrix((64, 64), (64, 64), b, 1.25)) for b in again]
    )
    np.testing.assert_allclose(np.sort(two.keypoints, 0), np.sort(want, 0), atol=1e-6)
    # scored by the mean keypoint score alone; the floor drops the dark one
    assert np.sort(two.instance_scores) == pytest.approx(np.sort(two.scores.mean(1)))
    # the floor (here between the two) drops the dark one; at FIRST_PASS_SHARE of it, its
    # first pose (score 0.01 against 0.41) already goes, so it is not posed again
    runner.crops = []
    kept = pipeline((1.2, 1.5), 0.5).run_image(image)
    assert runner.crops == [2, 1] and len(kept.keypoints) == 1
    assert kept.scores.mean() == pytest.approx(two.scores.mean(1).max())
    assert 0 < FIRST_PASS_SHARE < 1
