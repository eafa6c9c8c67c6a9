"""Fixtures for the reader/writer/check tests: tiny images and a small KeypointSet."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from keypointer.data.types import Instance, KeypointSet, Sample
from keypointer.skeleton import Skeleton

TOY_NAMES = ("nose", "left_eye", "right_eye", "tail")


def write_png(path: Path, width: int, height: int, value: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((height, width, 3), value, np.uint8)
    assert cv2.imwrite(str(path), img)
    return path


@pytest.fixture
def png():
    return write_png


@pytest.fixture
def toy_kset(tmp_path: Path) -> KeypointSet:
    """Three images (two folders, two sizes); occluded, unlabelled and boxless instances."""
    skeleton = Skeleton(TOY_NAMES, ((0, 1), (0, 2), (0, 3)), ((1, 2),))
    a = write_png(tmp_path / "src" / "cam1" / "a.png", 64, 48)
    b = write_png(tmp_path / "src" / "cam1" / "b.png", 64, 48)
    c = write_png(tmp_path / "src" / "cam2" / "c.png", 40, 50)
    kp_a = np.array([[10.25, 12.5, 2], [14.0, 10.0, 2], [6.0, 10.0, 1], [0, 0, 0]])
    kp_b = np.array([[30.125, 20.0, 2], [33.0, 18.0, 2], [27.0, 18.0, 2], [50.0, 40.0, 2]])
    kp_c = np.array([[5.5, 6.5, 2], [0, 0, 0], [8.0, 4.0, 2], [30.0, 45.0, 1]])
    samples = [
        Sample(a, 64, 48, [Instance(kp_a, (4.0, 8.0, 12.0, 8.0), "r1")], 1, "image a"),
        Sample(b, 64, 48, [Instance(kp_b, None, "r2")], 2, "image b"),
        Sample(c, 40, 50, [Instance(kp_c, (2.0, 2.0, 30.0, 45.0), "r3")], 3, "image c"),
    ]
    return KeypointSet(skeleton, samples, tmp_path / "src" / "labels.json")


def assert_same_points(a: KeypointSet, b: KeypointSet, atol: float = 1e-6, occluded_as=None):
    """Same names, images and keypoints (unlabelled points compare as unlabelled only).

    Images are the same file, or (for writers that copy them) files with the same bytes.
    """
    assert a.skeleton.names == b.skeleton.names
    assert len(a) == len(b)
    for sa, sb in zip(a.samples, b.samples, strict=True):
        assert sa.image.resolve() == sb.image.resolve() or (
            sa.image.read_bytes() == sb.image.read_bytes()
        )
        assert len(sa.instances) == len(sb.instances)
        for ia, ib in zip(sa.instances, sb.instances, strict=True):
            va, vb = ia.keypoints[:, 2].copy(), ib.keypoints[:, 2]
            if occluded_as is not None:
                va[va == 1] = occluded_as
            np.testing.assert_array_equal(va, vb)
            lab = va > 0
            np.testing.assert_allclose(ia.keypoints[lab, :2], ib.keypoints[lab, :2], atol=atol)


@pytest.fixture
def same_points():
    return assert_same_points
