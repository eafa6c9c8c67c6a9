"""``Predictor.predict`` takes what a user hands it: gray and RGBA arrays, image file paths,
an empty list; an empty image is refused by name."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from keypointer.config import Config
from keypointer.errors import DataError
from keypointer.inference import Predictor
from keypointer.models.model import build_model
from keypointer.skeleton import Skeleton


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    cfg = Config()
    cfg.model.input_size = (64, 64)
    torch.manual_seed(0)
    model = build_model(cfg, 3)
    model.skeleton = Skeleton(("a", "left_x", "right_x"))
    return Predictor(model.eval())


@pytest.fixture(scope="module")
def gray() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (48, 80), dtype=np.uint8)


def _same(a, b) -> None:
    np.testing.assert_allclose(a[0], b[0], atol=1e-3)
    np.testing.assert_allclose(a[1], b[1], atol=1e-4)


def test_a_2d_array_is_one_grayscale_image(predictor, gray):
    rgb = np.repeat(gray[..., None], 3, axis=2)
    kp, scores = predictor.predict(gray)
    assert kp.shape == (3, 2) and scores.shape == (3,)
    _same((kp, scores), predictor.predict(rgb))
    _same(predictor.predict(gray[..., None]), predictor.predict(rgb))  # (H, W, 1)
    kps, _ = predictor.predict([gray, rgb])
    assert kps.shape == (2, 3, 2)
    np.testing.assert_allclose(kps[0], kps[1], atol=1e-3)


def test_rgba_drops_its_alpha(predictor):
    rgba = np.random.default_rng(1).integers(0, 255, (40, 56, 4), dtype=np.uint8)
    _same(predictor.predict(rgba), predictor.predict(rgba[..., :3].copy()))


def test_an_empty_list_gives_empty_arrays(predictor):
    kp, scores = predictor.predict([])
    assert kp.shape == (0, 3, 2) and scores.shape == (0, 3)


def test_an_empty_image_is_refused_by_name(predictor, gray):
    with pytest.raises(ValueError, match="the image is empty: 0x0 px"):
        predictor.predict(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(ValueError, match="image 1 of the list is empty: 5x0 px"):
        predictor.predict([gray, np.zeros((0, 5), np.uint8)])


def test_paths_are_read_as_image_files(predictor, tmp_path):
    rgb = np.random.default_rng(2).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))  # lossless
    _same(predictor.predict(str(path)), predictor.predict(rgb))
    _same(predictor.predict(path), predictor.predict(rgb))
    kp, scores = predictor.predict([str(path), path])
    assert kp.shape == (2, 3, 2) and scores.shape == (2, 3)
    np.testing.assert_allclose(kp[0], predictor.predict(rgb)[0], atol=1e-3)
    with pytest.raises(DataError) as err:
        predictor.predict(str(tmp_path / "missing.png"))
    assert Path(err.value.file).name == "missing.png"


def test_what_is_no_image_is_refused_clearly(predictor):
    with pytest.raises(ValueError, match="uint8"):
        predictor.predict(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"shape \(5, 8, 8, 2\)|shape \(8, 8, 2\)"):
        predictor.predict(np.zeros((5, 8, 8, 2), np.uint8))
    with pytest.raises(ValueError, match="got int"):
        predictor.predict(3)
