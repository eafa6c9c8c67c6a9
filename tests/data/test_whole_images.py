"""Whole images for the locator: instance boxes, box geometry through affines, items."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from keypointer.codecs.centers import CenterCodec
from keypointer.config import AugmentConfig
from keypointer.data import transforms as T
from keypointer.data.types import Instance, KeypointSet, Sample
from keypointer.data.whole_images import (
    WholeImageDataset,
    clip_boxes,
    instance_boxes,
    keypoint_box_ratio,
    letterbox,
    map_boxes,
)
from keypointer.skeleton import Skeleton


def _kps(*points, v=2):
    return np.array([[x, y, v] for x, y in points], np.float64)


def test_instance_boxes_prefer_the_box_then_the_keypoints_pixels():
    sample = Sample(
        image=None,
        instances=[
            Instance(_kps((1, 1), (2, 2)), bbox=(10.0, 20.0, 30.0, 40.0)),
            Instance(_kps((5, 6), (9, 16))),  # the pixels of the keypoints: (5, 6, 5, 11)
            Instance(_kps((7, 8))),  # one keypoint: its pixel
            Instance(_kps((3, 3), v=0)),  # nothing labelled: no box
            Instance(_kps((5, 6), (9, 16)), bbox=(0.0, 0.0, 0.0, 5.0)),  # empty box: extent
        ],
    )
    got = instance_boxes(sample)
    want = [[10, 20, 30, 40], [5, 6, 5, 11], [7, 8, 1, 1], [5, 6, 5, 11]]
    np.testing.assert_allclose(got, want)
    assert instance_boxes(Sample(image=None)).shape == (0, 4)


def test_keypoint_box_ratio_is_the_median_box_over_the_extent():
    sk = Skeleton(("a", "b"))

    def inst(w, h, box):  # two points spanning w x h (extent with pixels: w + 1, h + 1)
        return Instance(_kps((10, 10), (10 + w, 10 + h)), bbox=box)

    samples = [
        Sample(None, instances=[inst(9, 19, (0, 0, 12, 30)), inst(9, 19, (0, 0, 15, 20))]),
        Sample(None, instances=[inst(9, 19, (0, 0, 30, 60)), inst(9, 19, None)]),  # no box
        Sample(None, instances=[Instance(_kps((1, 1), (3, 3), v=0), bbox=(0, 0, 5, 5))]),
    ]
    assert keypoint_box_ratio(KeypointSet(sk, samples)) == pytest.approx((1.5, 1.5))
    assert keypoint_box_ratio(KeypointSet(sk, samples[1:2])) == pytest.approx((3.0, 3.0))
    assert keypoint_box_ratio(KeypointSet(sk, [])) == (1.0, 1.0)


def test_letterbox_maps_the_whole_image_onto_its_content_area():
    m = letterbox(640, 480, (256, 256))  # input -> image
    box = map_boxes([[0.0, 0.0, 640.0, 480.0]], T.invert_affine(m))
    np.testing.assert_allclose(box, [[0, 32, 256, 192]], atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(
    scale=st.floats(0.3, 3.0),
    dx=st.floats(-50, 50),
    dy=st.floats(-50, 50),
    flip=st.booleans(),
    x=st.floats(0, 100),
    y=st.floats(0, 100),
    w=st.floats(0.5, 80),
    h=st.floats(0.5, 80),
)
def test_property_boxes_through_scale_shift_flip(scale, dx, dy, flip, x, y, w, h):
    m = T.crop_affine(
        np.array([60.0 + dx, 50.0 + dy]), np.array([128 * scale] * 2), (128, 128), 0.0, flip
    )
    box = np.array([[x, y, w, h]])
    there = map_boxes(box, T.invert_affine(m))
    np.testing.assert_allclose(there[0, 2:], box[0, 2:] / scale, rtol=1e-9)
    np.testing.assert_allclose(map_boxes(there, m), box, atol=1e-9)
    # the pixel centres a box covers map inside its mapped box
    c = T.apply_affine(np.array([x + w / 2 - 0.5, y + h / 2 - 0.5]), T.invert_affine(m))
    np.testing.assert_allclose(c, there[0, :2] + there[0, 2:] / 2 - 0.5, atol=1e-9)


def test_clip_drops_boxes_cut_to_slivers():
    boxes = np.array([[-10, -10, 30, 30], [120, 5, 20, 20], [127.5, 0, 10, 10], [np.nan, 0, 5, 5]])
    np.testing.assert_allclose(clip_boxes(boxes, (128, 64)), [[0, 0, 20, 20], [120, 5, 8, 20]])


def _image_set(tmp_path, boxes_per_image, size=(160, 120)):
    samples = []
    for i, boxes in enumerate(boxes_per_image):
        image = np.full((size[1], size[0], 3), 40, np.uint8)
        instances = []
        for x, y, w, h in boxes:
            cv2.rectangle(
                image, (int(x), int(y)), (int(x + w) - 1, int(y + h) - 1), (0, 200, 250), -1
            )  # BGR: yellow
            instances.append(Instance(_kps((x + 1, y + 1), (x + w - 2, y + h - 2)), (x, y, w, h)))
        path = tmp_path / f"{i}.png"
        cv2.imwrite(str(path), image)
        samples.append(Sample(path, size[0], size[1], instances))
    return KeypointSet(Skeleton(("a", "b")), samples)


def test_items_hold_the_letterboxed_targets(tmp_path):
    kset = _image_set(tmp_path, [[(10, 20, 40, 60), (90, 30, 50, 40)], []])
    codec = CenterCodec((128, 96), stride=4)
    ds = WholeImageDataset(kset, codec)
    assert len(ds) == 2
    item = ds[0]
    assert item["image"].shape == (3, 96, 128)
    heatmap, size, mask = item["target"]
    assert heatmap.shape == (1, 24, 32) and size.shape == (2, 24, 32) and mask.sum() == 2
    (found, _), *_ = codec.decode(heatmap[None], size[None], threshold=0.3)
    back = map_boxes(found.numpy(), item["affine"].numpy())  # input -> image px
    back = back[np.argsort(back[:, 0])]
    np.testing.assert_allclose(back, [[10, 20, 40, 60], [90, 30, 50, 40]], atol=1e-3)
    empty = ds[1]["target"]
    assert empty[0].sum() == 0 and empty[2].sum() == 0


def test_augmented_items_follow_their_boxes_and_are_reproducible(tmp_path):
    kset = _image_set(tmp_path, [[(10, 20, 40, 60), (90, 30, 50, 40)]])
    codec = CenterCodec((128, 96), stride=4)
    aug = AugmentConfig(scale=(0.6, 1.4), shift=0.2, flip=0.5, rotation=0.0)
    ds = WholeImageDataset(kset, codec, aug)
    flips = set()
    for epoch in range(8):
        item = ds[(0, epoch, 0)]
        again = ds[(0, epoch, 0)]
        torch.testing.assert_close(item["image"], again["image"])
        m = item["affine"].numpy()
        flips.add(bool(m[0, 0] < 0))
        # the boxes' colour (yellow) fills the encoded boxes' centres in the warped image
        heatmap, size, mask = item["target"]
        (found, _), *_ = codec.decode(heatmap[None], size[None], threshold=0.3)
        image = item["image"].numpy()
        for x, y, w, h in found.numpy():
            cx, cy = int(round(x + w / 2 - 0.5)), int(round(y + h / 2 - 0.5))
            assert image[2, cy, cx] < 0 < image[0, cy, cx], (epoch, x, y, w, h)  # R high, B low
    assert flips == {True, False}


def test_colour_jitter_changes_pixels_not_targets(tmp_path):
    kset = _image_set(tmp_path, [[(10, 20, 40, 60)]])
    codec = CenterCodec((128, 96), stride=4)
    plain = AugmentConfig(
        scale=(1, 1), shift=0.0, flip=0.0, brightness=0, contrast=0, saturation=0, hue=0
    )
    jitter = plain.model_copy(update={"brightness": 0.5})
    a = WholeImageDataset(kset, codec, plain)[(0, 0, 0)]
    b = WholeImageDataset(kset, codec, jitter)[(0, 0, 0)]
    for ta, tb in zip(a["target"], b["target"], strict=True):
        torch.testing.assert_close(ta, tb)
    assert not torch.equal(a["image"], b["image"])
    with pytest.raises(IndexError):
        WholeImageDataset(kset, codec)[5]
