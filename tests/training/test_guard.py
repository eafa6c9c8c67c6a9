"""The learned-nothing guard: the mean-pose baseline and when the warning fires."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keypointer.data.types import Instance, KeypointSet, Sample
from keypointer.skeleton import Skeleton
from keypointer.training.guard import learned_nothing_message, mean_pose_error


def _set(points: list[list[tuple[float, float]]], size=(100, 50), boxes=None) -> KeypointSet:
    samples = []
    for i, pts in enumerate(points):
        kp = np.array([[x, y, 2.0] for x, y in pts])
        box = boxes[i] if boxes else None
        samples.append(Sample(Path(f"{i}.png"), *size, [Instance(kp, box)], id=i))
    return KeypointSet(Skeleton(("a", "b")), samples)


def test_baseline_is_the_error_of_the_average_whole_image_pose():
    train = _set([[(10, 10), (20, 20)], [(30, 10), (40, 20)]])  # mean: (20, 10), (30, 20)
    val = _set([[(20, 13), (34, 23)]])  # errors 3 and 5
    assert mean_pose_error(train, val) == pytest.approx(4.0)


def test_baseline_uses_each_instance_box_when_there_are_boxes():
    boxes = [(0, 0, 10, 10), (100, 100, 20, 20)]
    train = _set([[(5, 5), (10, 10)], [(110, 110), (120, 120)]], boxes=boxes)
    val = _set([[(205, 205), (210, 210)]], boxes=[(200, 200, 10, 10)])
    assert mean_pose_error(train, val) == pytest.approx(0.0)


def test_warning_only_near_the_baseline():
    assert learned_nothing_message(10.0, 50.0) is None
    message = learned_nothing_message(45.0, 50.0)
    assert "45.0 px" in message and "50.0 px" in message and "model.input_size" in message
    assert learned_nothing_message(45.0, float("nan")) is None
