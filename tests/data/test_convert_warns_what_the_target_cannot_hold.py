"""``convert`` (and ``merge`` into another format) says, one warning per kind of loss with
counts, what the target format cannot hold; and the counts are what is really lost."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from keypointer.commands.merge import merge_command
from keypointer.data.formats import convert, load_dataset, losses, write_coco
from keypointer.data.types import Instance, KeypointSet, Sample
from keypointer.skeleton import Skeleton

W = H = 32


def _labels(tmp_path: Path) -> Path:
    """COCO labels of two images: 5 instances, of which 1 box-only (no labelled point); 2
    boxes wider than their points; 3 occluded points (v=1); 3 tracked instances (2 tracks)."""
    skeleton = Skeleton(("nose", "left_eye", "right_eye"), ((0, 1), (0, 2)), ((1, 2),))
    pts = np.array([[10, 10, 2], [8, 8, 1], [12, 8, 2]], float)
    samples = []
    for n in range(2):
        image = tmp_path / "src" / f"f{n}.png"
        image.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(image), np.full((H, W, 3), 40 * n, np.uint8))
        samples.append(Sample(image, W, H, [], n + 1, f"image {n}"))
    samples[0].instances = [
        Instance(pts, (2.0, 2.0, 20.0, 20.0), "a", "m1"),
        Instance(pts + [6, 6, 0], None, "b", "m2"),
        Instance(np.zeros((3, 3)), (1.0, 1.0, 5.0, 5.0), "box only"),
    ]
    samples[1].instances = [
        Instance(pts, (3.0, 3.0, 15.0, 15.0), "c", "m1"),
        Instance(np.array([[5, 5, 2], [0, 0, 0], [0, 0, 0]], float), None, "d"),
    ]
    kset = KeypointSet(skeleton, samples, tmp_path / "src" / "l.json")
    return write_coco(kset, tmp_path / "src" / "l.json")


def _warned(caplog, fn) -> str:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="keypointer"):
        out = fn()
    return out, " ".join(caplog.text.split())


def test_each_target_warns_once_per_loss_with_counts(tmp_path, caplog):
    src = _labels(tmp_path)
    assert load_dataset(src).num_instances == 5
    # COCO holds everything.
    out, text = _warned(caplog, lambda: convert(src, tmp_path / "back.json", to="coco"))
    assert text == "" and load_dataset(out).num_instances == 5
    # DeepLabCut: no box-only instance (multi-animal), no boxes, no occlusion flag.
    out, text = _warned(caplog, lambda: convert(src, tmp_path / "dlc", to="dlc"))
    assert "1 instances with no labelled keypoint (1 of them box-only) are left out" in text
    assert "the boxes of 2 instances are dropped" in text
    assert "3 occluded points (v=1) are written as plain labels" in text
    assert text.count("DeepLabCut") == 3
    back = load_dataset(out)
    assert back.num_instances == 4 and sorted(back.tracks) == ["individual1", "m1", "m2"]
    assert not any((i.keypoints[:, 2] == 1).any() for s in back.samples for i in s.instances)
    # The plain CSV: no boxes, no edges; the box-only instance stays a row with no point.
    out, text = _warned(caplog, lambda: convert(src, tmp_path / "l.csv", to="csv"))
    assert "the boxes of 3 instances are dropped" in text
    assert "its 2 edges are dropped" in text
    back = load_dataset(out)
    assert back.num_instances == 5 and back.tracks == {"m1": 2, "m2": 1}
    assert all(i.bbox is None for s in back.samples for i in s.instances)
    # YOLO: no identity; the box-only instance keeps its box.
    out, text = _warned(caplog, lambda: convert(src, tmp_path / "yolo", to="yolo"))
    assert "the tracks of 3 instances (2 tracks) are not written" in text
    assert "left out" not in text and "boxes" not in text
    back = load_dataset(out)
    assert back.num_instances == 5 and back.tracks == {}


def test_merge_into_another_format_warns_too(tmp_path, caplog):
    src = _labels(tmp_path)
    other = convert(src, tmp_path / "other.json", to="coco")
    _, text = _warned(caplog, lambda: merge_command(src, other, tmp_path / "m.csv", quiet=True))
    assert "The plain CSV has no boxes: the boxes of 3 instances are dropped" in text


@pytest.mark.parametrize("to", ["dlc", "csv", "yolo"])
def test_flip_pairs_and_sigmas_only_coco_stores(tmp_path, to):
    src = _labels(tmp_path)
    kset = load_dataset(src)
    kset.skeleton = Skeleton(kset.skeleton.names, kset.skeleton.edges, ((0, 1),), (0.1,) * 3)
    lines = " ".join(losses(kset, to))
    assert "stores no OKS sigmas: the 3 sigmas are dropped" in lines
    assert ("stores no flip pairs" in lines) == (to != "yolo")  # YOLO has flip_idx
    assert losses(kset, "coco") == []
