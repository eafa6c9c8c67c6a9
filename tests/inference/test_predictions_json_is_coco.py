"""``predictions.json`` stays COCO results that pycocotools loads: a point without a value
(a gap smoothing did not fill) is x = y = score = 0, never null."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import cli, noise_images, write_video

from keypointer.inference.runners import FramePrediction
from keypointer.inference.sources import Frame, Source
from keypointer.inference.tracks import PostProcess
from keypointer.inference.writers import Outputs
from keypointer.skeleton import Skeleton

SKELETON = Skeleton(("nose", "tail"), ((0, 1),))
T, FPS = 40, 20.0
GAP = range(10, 30)  # frames whose nose scores below the threshold: longer than --max-gap


def load_results(out: Path, names: tuple[str, ...]):
    """pycocotools' own loading of the results against the images of images.json."""
    coco = pytest.importorskip("pycocotools.coco")
    gt = coco.COCO()
    gt.dataset = {
        "images": json.loads((out / "images.json").read_text()),
        "annotations": [],
        "categories": [{"id": 1, "name": "animal", "keypoints": list(names), "skeleton": []}],
    }
    gt.createIndex()
    return gt.loadRes(str(out / "predictions.json"))


def no_null(value) -> bool:
    if isinstance(value, dict):
        return all(no_null(v) for v in value.values())
    if isinstance(value, list):
        return all(no_null(v) for v in value)
    return value is not None


def test_smoothed_video_with_a_gap_loads_in_pycocotools(tmp_path):
    src = Source(tmp_path / "clip.mp4", "video")
    out = Outputs(tmp_path / "out", SKELETON, draw=False, post=PostProcess("kalman", max_gap=5))
    image = np.zeros((48, 64, 3), np.uint8)
    for f in range(T):
        frame = Frame(src, image, number=f, fps=FPS, time=f / FPS)
        kp = np.array([[[10.0 + f, 20.0], [30.0 + f, 25.0]]])
        scores = np.array([[0.05 if f in GAP else 0.9, 0.9]])
        out.add(FramePrediction(frame, kp, scores, np.full(1, 0.9)))
    out.close()
    results = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert len(results) == T and no_null(results)
    middle = results[20]  # deep in the gap: the smoother has no nose here
    assert middle["keypoints"][:3] == [0, 0, 0]
    assert middle["keypoints"][3:] == pytest.approx([50.0, 25.0, 0.9], abs=0.5)
    assert middle["keypoints_raw"][:3] == pytest.approx([30.0, 20.0, 0.05], abs=1e-3)
    assert results[0]["keypoints"][:3] == pytest.approx([10.0, 20.0, 0.9], abs=0.5)
    loaded = load_results(tmp_path / "out", SKELETON.names)
    assert len(loaded.getAnnIds()) == T
    assert loaded.anns[21]["bbox"] == pytest.approx([0, 0, 50, 25], abs=0.5)  # 0s included


def test_smoothed_prediction_of_a_video_loads_in_pycocotools(checkpoint, tmp_path):
    """Through the CLI: the tiny test model scores low, so most points are gaps."""
    video = write_video(tmp_path / "clip.mp4", noise_images(16, (64, 48)), fps=25.0)
    out = tmp_path / "out"
    args = ["--smooth", "kalman", "--threshold", "0.99", "--max-gap", "0", "--no-draw"]
    assert cli("predict", checkpoint, video, "--out", out, *args, "--device", "cpu", "--quiet") == 0
    results = json.loads((out / "predictions.json").read_text())
    assert len(results) == 16 and no_null(results)
    names = tuple(f"k{i}" for i in range(len(results[0]["keypoints"]) // 3))
    assert len(load_results(out, names).getAnnIds()) == 16
