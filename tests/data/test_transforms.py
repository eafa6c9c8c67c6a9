from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keypointer.config import AugmentConfig
from keypointer.data import transforms as T


def _blob_image(points: np.ndarray, width: int, height: int, sigma: float = 1.5) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.zeros((height, width))
    for x, y in points:
        img += np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    return np.repeat((np.clip(img, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)


def _centroid(img: np.ndarray, x: float, y: float, r: int = 5) -> np.ndarray:
    x0, y0 = int(round(x)) - r, int(round(y)) - r
    win = img[y0 : y0 + 2 * r + 1, x0 : x0 + 2 * r + 1].astype(np.float64)
    ys, xs = np.mgrid[0 : win.shape[0], 0 : win.shape[1]]
    return np.array([(win * xs).sum() / win.sum() + x0, (win * ys).sum() / win.sum() + y0])


def test_crop_centre_lands_on_box_centre():
    m = T.crop_affine(np.array([50.0, 40.0]), np.array([64.0, 32.0]), (32, 16))
    np.testing.assert_allclose(T.apply_affine([15.5, 7.5], m), [50.0, 40.0])
    # input edges span the crop size: pixel edge -0.5 maps to centre - size / 2
    np.testing.assert_allclose(T.apply_affine([-0.5, -0.5], m), [50.0 - 32, 40.0 - 16])


def test_whole_image_crop_at_same_size_is_identity():
    center, size = T.image_crop(40, 30)
    m = T.crop_affine(center, T.fit_aspect(size, (40, 30)), (40, 30))
    np.testing.assert_allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-12)


def test_bbox_crop_uses_pixel_edges():
    center, size = T.bbox_crop((0, 0, 40, 30))
    np.testing.assert_allclose(center, [19.5, 14.5])
    np.testing.assert_allclose(size, [40, 30])


def test_fit_aspect_grows_to_input_aspect():
    np.testing.assert_allclose(T.fit_aspect(np.array([10.0, 40.0]), (64, 32)), [80, 40])
    np.testing.assert_allclose(T.fit_aspect(np.array([80.0, 10.0]), (64, 32), 1.5), [120, 60])


@settings(deadline=None, max_examples=25)
@given(
    rot=st.floats(-180, 180),
    flip=st.booleans(),
    scale=st.floats(0.7, 1.4),
    cx=st.floats(60, 100),
    cy=st.floats(50, 70),
)
def test_affine_inverse_round_trip(rot, flip, scale, cx, cy):
    m = T.crop_affine(np.array([cx, cy]), np.array([64.0, 48.0]) * scale, (64, 48), rot, flip)
    pts = np.random.default_rng(0).uniform(0, 150, (7, 2))
    back = T.apply_affine(T.apply_affine(pts, T.invert_affine(m)), m)
    np.testing.assert_allclose(back, pts, atol=1e-9)


@settings(deadline=None, max_examples=20)
@given(rot=st.floats(-45, 45), flip=st.booleans(), scale=st.floats(0.8, 1.25))
def test_bright_dot_lands_at_transformed_coordinate(rot, flip, scale):
    points = np.array([[40.3, 30.7], [75.6, 52.2], [55.0, 70.45], [90.25, 35.5]])
    image = _blob_image(points, 130, 100)
    m = T.crop_affine(np.array([64.0, 50.0]), np.array([96.0, 96.0]) * scale, (96, 96), rot, flip)
    crop = T.warp_image(image, m, (96, 96))
    expected = T.apply_affine(points, T.invert_affine(m))
    for x, y in expected:
        assert 6 <= x <= 89 and 6 <= y <= 89
        np.testing.assert_allclose(_centroid(crop[..., 0], x, y), [x, y], atol=0.15)


def test_sample_params_off_is_identity():
    off = AugmentConfig(scale=(1, 1), rotation=0, shift=0, flip=0)
    p = T.sample_params(np.random.default_rng(0), off)
    assert p == T.AugmentParams()
    on = AugmentConfig(flip=1.0)
    ps = [T.sample_params(np.random.default_rng(i), on) for i in range(50)]
    assert all(p.flip for p in ps)
    assert all(0.75 <= p.scale <= 1.25 and abs(p.rotation) <= 30 for p in ps)
    assert len({p.rotation for p in ps}) == 50


def test_half_body_takes_one_half():
    pts = np.array([[0, 0], [1, 1], [2, 2], [3, 3], [4, 4], [5, 5]], dtype=float)
    lab = np.ones(6, bool)
    halves = {
        tuple(T.half_body_points(pts, lab, np.random.default_rng(i))[:, 1]) for i in range(20)
    }
    assert halves == {(0.0, 1.0, 2.0), (3.0, 4.0, 5.0)}
    lab[:3] = False
    assert T.half_body_points(pts, lab, np.random.default_rng(0)) is None


def test_color_jitter():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert np.array_equal(T.color_jitter(img, rng), img)
    out = T.color_jitter(img, np.random.default_rng(1), 0.4, 0.4, 0.4, 0.1)
    assert out.shape == img.shape and out.dtype == np.uint8 and not np.array_equal(out, img)
    again = T.color_jitter(img, np.random.default_rng(1), 0.4, 0.4, 0.4, 0.1)
    assert np.array_equal(out, again)
    gray = np.full((8, 8, 3), 100, np.uint8)
    assert np.abs(T.color_jitter(gray, rng, hue=0.5).astype(int) - 100).max() <= 1
    bright = [
        T.color_jitter(img, np.random.default_rng(i), brightness=0.5).mean() for i in range(8)
    ]
    assert max(bright) - min(bright) > 20


@settings(deadline=None, max_examples=30)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 5))
def test_random_erase_never_hides_every_visible_keypoint(seed, n):
    rng = np.random.default_rng(seed)
    img = np.zeros((32, 32, 3), np.uint8)
    pts = rng.uniform(8, 24, (n, 2))
    out = T.random_erase(img, pts, np.ones(n, bool), rng, area=(0.3, 0.6))
    erased = out.max(axis=2) > 0
    ij = np.round(pts).astype(int)
    assert not erased[ij[:, 1], ij[:, 0]].all() or not erased.any()
    assert img.max() == 0  # the input is not modified


def test_random_erase_erases():
    img = np.zeros((32, 32, 3), np.uint8)
    out = T.random_erase(img, np.zeros((0, 2)), np.zeros(0, bool), np.random.default_rng(0))
    assert (out.max(axis=2) > 0).sum() >= 0.02 * 32 * 32 * 0.5


def test_normalisation():
    img = np.zeros((4, 6, 3), np.uint8)
    img[..., 0] = 255
    out = T.to_chw_normalized(img)
    assert out.shape == (3, 4, 6) and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out[0], (1 - 0.485) / 0.229, rtol=1e-5)
    np.testing.assert_allclose(out[1], -0.456 / 0.224, rtol=1e-5)


@pytest.mark.parametrize("flip", [False, True])
def test_flip_mirrors_x_about_the_crop_centre(flip):
    m = T.crop_affine(np.array([20.0, 10.0]), np.array([32.0, 32.0]), (32, 32), 0.0, flip)
    p = T.apply_affine([[25.0, 10.0]], T.invert_affine(m))[0]
    assert p[0] == pytest.approx(15.5 + (-5 if flip else 5))
