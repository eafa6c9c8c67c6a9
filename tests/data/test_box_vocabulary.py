"""The box vocabulary: spans between pixel centres, COCO boxes on pixel edges, and which box of
an instance each user gets."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from keypointer.data import transforms as T
from keypointer.data.boxes import (
    crop_box,
    grow_boxes,
    instance_box,
    keypoint_box,
    keypoint_boxes,
    keypoint_crop_box,
    keypoint_span,
    labelled_box,
    scale_box,
    scale_boxes,
)
from keypointer.data.types import Instance


def _inst(*points, bbox=None, v=2):
    return Instance(np.array([[x, y, v] for x, y in points], np.float64), bbox=bbox)


def test_span_runs_between_centres_and_box_covers_the_pixels():
    pts = np.array([[10.0, 5.0], [30.0, 25.0]])
    assert keypoint_span(pts) == (10, 5, 20, 20)
    assert keypoint_box(pts) == (10, 5, 21, 21)
    assert keypoint_box(pts[:1]) == (10, 5, 1, 1)  # one point: its pixel
    assert keypoint_span(np.zeros((0, 2))) is None and keypoint_box(np.zeros((0, 2))) is None


def test_keypoint_box_is_centred_on_the_points_as_a_crop():
    # a COCO box's centre in pixel-centre coordinates is the points' middle
    center, size = T.bbox_crop(keypoint_box(np.array([[10.0, 5.0], [30.0, 25.0]])))
    np.testing.assert_allclose(center, [20, 15])
    np.testing.assert_allclose(size, [21, 21])


def test_keypoint_crop_box_needs_a_pixel_of_extent():
    assert keypoint_crop_box(np.array([[3.0, 4.0], [3.5, 4.5]])) is None
    assert keypoint_crop_box(np.zeros((0, 2))) is None
    assert keypoint_crop_box(np.array([[3.0, 4.0], [np.nan, 1.0], [5.0, 4.0]])) == (3, 4, 3, 1)


def test_each_box_of_an_instance():
    boxed = _inst((5, 6), (9, 16), bbox=(1.0, 2.0, 30.0, 40.0))
    bare = _inst((5, 6), (9, 16))
    empty_box = _inst((5, 6), (9, 16), bbox=(0.0, 0.0, 0.0, 5.0))
    one_point = _inst((7, 8))
    unlabelled = _inst((7, 8), v=0)
    assert labelled_box(boxed) == (1, 2, 30, 40) and labelled_box(empty_box) is None
    for inst in (bare, empty_box):
        assert instance_box(inst) == (5, 6, 5, 11)
        assert scale_box(inst) == (5, 6, 4, 10)
        assert crop_box(inst, whole_image=False) == (5, 6, 5, 11)
    assert instance_box(boxed) == scale_box(boxed) == crop_box(boxed, True) == (1, 2, 30, 40)
    assert crop_box(bare, whole_image=True) is None
    assert instance_box(one_point) == (7, 8, 1, 1) and crop_box(one_point, False) is None
    assert instance_box(unlabelled) is scale_box(unlabelled) is None
    got = scale_boxes([boxed, unlabelled, bare])
    np.testing.assert_allclose(got[[0, 2]], [[1, 2, 30, 40], [5, 6, 4, 10]])
    assert np.isnan(got[1]).all() and scale_boxes([]).shape == (0, 4)


@settings(max_examples=50, deadline=None)
@given(
    x=st.floats(-50, 50),
    y=st.floats(-50, 50),
    w=st.floats(0, 40),
    h=st.floats(0, 40),
    rx=st.floats(1, 2),
    ry=st.floats(1, 2),
)
def test_property_grown_keypoint_boxes_keep_the_centre(x, y, w, h, rx, ry):
    kp = np.array([[[x, y], [x + w, y + h], [x + w / 2, y]]])
    boxes = keypoint_boxes(kp)
    np.testing.assert_allclose(boxes[0], keypoint_box(kp[0]), atol=1e-9)
    grown = grow_boxes(boxes, (rx, ry))[0]
    np.testing.assert_allclose(grown[2:], [(w + 1) * rx, (h + 1) * ry], atol=1e-9)
    center, _ = T.bbox_crop(grown)  # the middle of the points, in pixel-centre coordinates
    np.testing.assert_allclose(center, [x + w / 2, y + h / 2], atol=1e-9)


def test_keypoint_boxes_of_no_points_are_nan():
    assert np.isnan(keypoint_boxes(np.full((1, 3, 2), np.nan))).all()
    assert keypoint_boxes(np.zeros((0, 3, 2))).shape == (0, 4)
