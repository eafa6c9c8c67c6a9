"""Locating instances on whole images, with the PyTorch locator and its ONNX export."""

import numpy as np
import pytest
import torch
from torch import nn

from keypointer.config import Config
from keypointer.inference.locate import locate
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
    ((boxes, scores),) = locate(loc, [image], threshold=0.3)
    assert scores.tolist() == pytest.approx([0.9, 0.5])
    # input (x, y) -> image: x * 2, (y - 16) * 2 with edges at half pixels
    assert boxes[1] == pytest.approx([16.0, 0.0, 32.0, 16.0], abs=1e-6)
    assert boxes[0] == pytest.approx([80.0, 48.0, 16.0, 16.0], abs=1e-6)
    ((few, _),) = locate(loc, [image], threshold=0.0, max_instances=1)
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
    want = locate(model, images, threshold=0.1)
    got = locate(OnnxLocator(tmp_path / "m.locator.onnx"), images, threshold=0.1)
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
