"""Training's log lines say true things: the learned-nothing warning (never "close to" a
baseline it is far from, never against a 0 px baseline), the locator's summary when it found
no box (no "precision 1.000"), and an undefined validation PCK explained once."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import tiny_config, tiny_locator_config

from keypointer.data import synthetic
from keypointer.data.types import Instance, KeypointSet, Sample
from keypointer.metrics.keypoints import bbox_norm, pck
from keypointer.skeleton import Skeleton
from keypointer.training.guard import learned_nothing_message
from keypointer.training.locator import evaluate_locator, locator_setup
from keypointer.training.loop import train
from keypointer.training.two_stage import summary_line


def test_a_model_worse_than_the_baseline_is_not_called_close_to_it():
    message = learned_nothing_message(39.0, 13.4)
    assert message is not None
    assert "39.0 px is worse than the 13.4 px" in message and "close to" not in message


def test_no_warning_against_a_zero_baseline():
    # the average pose is exact there: there is nothing for a model to beat
    assert learned_nothing_message(69.4, 0.0) is None
    assert learned_nothing_message(0.3, 0.2) is None


def test_near_the_baseline_the_warning_says_by_how_much():
    message = learned_nothing_message(45.0, 50.0)
    assert "45.0 px is only 10% below the 50.0 px" in message
    assert learned_nothing_message(29.0, 50.0) is None


def _figures(out: Path, n: int) -> KeypointSet:
    """n 64 px images of one synthetic figure each, with its box."""
    rng, samples = np.random.default_rng(0), []
    for i in range(n):
        image, kps, box = synthetic.render(rng, 64)
        path = out / f"{i}.png"
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        samples.append(Sample(path, 64, 64, [Instance(kps.copy(), tuple(box))], id=i))
    return KeypointSet(Skeleton(synthetic.NAMES, synthetic.EDGES), samples, source=out)


def test_a_locator_that_finds_nothing_has_no_precision(tmp_path):
    kset = _figures(tmp_path, 2)
    torch.manual_seed(0)
    model, _, _ = locator_setup(kset, tiny_locator_config(), torch.device("cpu"))
    metrics = evaluate_locator(model, kset, threshold=2.0)  # scores are <= 1: no box at all
    assert metrics["val_predicted"] == 0 and metrics["val_recall"] == 0
    assert math.isnan(metrics["val_precision"])
    line = summary_line({**metrics, "steps": 3.0, "seconds": 6.0})
    assert "precision 1.000" not in line and "precision nan" not in line
    assert "found no box" in line and "precision n/a" in line


def test_summary_of_an_old_checkpoints_metrics_with_nothing_found():
    old = dict(
        val_recall=0.0,
        val_precision=1.0,
        val_mean_iou=float("nan"),
        val_instances=7.0,
        val_predicted=0.0,
        steps=10.0,
        seconds=60.0,
    )
    line = summary_line(old)
    assert "precision 1.000" not in line and "found no box for 7 labelled instances" in line
    found = {**old, "val_recall": 0.5, "val_precision": 0.75, "val_mean_iou": 0.8}
    found["val_predicted"] = 4.0
    assert "recall 0.500, precision 0.750" in summary_line(found)


def test_pck_undefined_reason_names_the_zero_size_box():
    from keypointer.metrics.keypoints import pck_undefined_reason  # new in this change

    gt = np.full((3, 2, 2), 10.0)  # every keypoint of every instance on one point
    visible = np.ones((3, 2), bool)
    norm = bbox_norm(np.array([[10.0, 10.0, 0.0, 0.0]] * 3))
    assert math.isnan(pck(gt, gt, visible, norm).overall)
    reason = pck_undefined_reason(gt, visible, norm)
    assert "zero size" in reason and "pixel error" in reason
    assert "no keypoint" in pck_undefined_reason(gt, np.zeros((3, 2), bool), norm)
    assert pck_undefined_reason(gt, visible, np.array([0.0, 5.0, 0.0])) is None


@pytest.mark.slow
def test_training_on_points_that_never_move_explains_the_nan_pck_once(synth, tmp_path, capsys):
    data = json.loads(synth.read_text())
    for ann in data["annotations"]:
        k = len(ann["keypoints"]) // 3
        ann["keypoints"] = [30.0, 30.0, 2] * k  # every keypoint on one point, no box
        ann.pop("bbox", None)
        ann.pop("area", None)
    labels = synth.parent / "one_point.json"
    labels.write_text(json.dumps(data))
    sets = ("train.val_every=1", "data.val_fraction=0.25", "train.recipe=false")
    cfg = tiny_config(labels, tmp_path, *sets, epochs=2)
    run = train(cfg)
    assert all(math.isnan(r["val_pck"]) for r in run.metrics if "val_pck" in r)
    err = capsys.readouterr().err
    assert err.count("validation PCK is undefined (nan)") == 1, err
    assert "zero size" in err and "close to the 0.0 px" not in err
