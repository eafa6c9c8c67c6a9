"""The seed notes' heatmap functions: equal to the notes where they work, fixed where they don't."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seed_notes import (
    notes_all_kps_gauss_heatmap,
    notes_gauss_heatmap,
    notes_gauss_kernel,
)

from keypointer.codecs import all_keypoints_heatmap, gaussian_heatmap, gaussian_kernel


@pytest.mark.parametrize("sigma", [1, 2, 3])
def test_kernel_equals_notes(sigma):
    np.testing.assert_allclose(gaussian_kernel(sigma), notes_gauss_kernel(sigma), atol=1e-12)
    np.testing.assert_allclose(gaussian_kernel(sigma, 7), notes_gauss_kernel(sigma, 7), atol=1e-12)
    assert gaussian_kernel(sigma).shape == (6 * sigma + 1, 6 * sigma + 1)


@pytest.mark.parametrize("sigma", [1, 2, 3])
def test_heatmap_equals_notes_at_integer_centres(sigma):
    rng = np.random.default_rng(sigma)
    for cx, cy in [(0, 0), (47, 63), (0, 63), (20, 31), *rng.integers(0, 48, (6, 2))]:
        ours = gaussian_heatmap(48, 64, cx, cy, sigma)
        np.testing.assert_allclose(ours, notes_gauss_heatmap(48, 64, cx, cy, sigma), atol=1e-12)
        assert ours.shape == (64, 48) and ours[cy, cx] == 1.0


def test_all_keypoints_equal_notes_without_overlap():
    kps = np.array([[5, 5], [30, 10], [12, 40], [40, 60]])
    ours = all_keypoints_heatmap(48, 64, kps, 2)
    np.testing.assert_allclose(ours, notes_all_kps_gauss_heatmap(48, 64, kps, 2), atol=1e-12)


def test_overlap_takes_maximum_not_last_written():
    kps = np.array([[10, 10], [13, 10]])
    ours = all_keypoints_heatmap(32, 32, kps, 2)
    singles = [gaussian_heatmap(32, 32, x, y, 2) for x, y in kps]
    np.testing.assert_allclose(ours, np.maximum(*singles))
    assert ours[10, 10] == 1.0 and ours[10, 13] == 1.0
    # The notes overwrite: the first keypoint's peak is lost under the second's tail.
    assert notes_all_kps_gauss_heatmap(32, 32, kps, 2)[10, 10] < 1.0


@pytest.mark.parametrize("size", [2, 4, 6, 8, 5])
def test_any_kernel_size_is_centred(size):
    k = gaussian_kernel(1.5, size)
    assert k.shape == (size, size)
    np.testing.assert_allclose(k, k[::-1, ::-1])
    np.testing.assert_allclose(k, k.T)
    ys, xs = np.mgrid[0:size, 0:size]
    assert np.isclose((k * xs).sum() / k.sum(), (size - 1) / 2)
    # The notes' even kernel is not symmetric: its peak sits half a pixel off the centre.
    if size % 2 == 0:
        assert not np.allclose(notes_gauss_kernel(1.5, size), notes_gauss_kernel(1.5, size)[::-1])


@pytest.mark.parametrize("size", [4, 5, 8])
def test_heatmap_window_centred_on_keypoint(size):
    hm = gaussian_heatmap(40, 30, 20.5, 10.0, 2.0, size)
    cols = np.nonzero(hm[10])[0]
    assert np.isclose(cols.mean(), 20.5) and len(cols) <= size
    np.testing.assert_allclose(hm[10, cols], hm[10, cols][::-1])


def test_float_centre_is_exact_gaussian():
    hm = gaussian_heatmap(32, 24, 10.3, 7.8, 2.0)
    ys, xs = np.mgrid[0:24, 0:32]
    ref = np.exp(-((xs - 10.3) ** 2 + (ys - 7.8) ** 2) / 8.0)
    inside = (np.abs(xs - 10.3) < 6.5) & (np.abs(ys - 7.8) < 6.5)
    np.testing.assert_allclose(hm, np.where(inside, ref, 0.0), atol=1e-12)
    assert 0.9 < hm.max() < 1.0  # the value 1 is at (10.3, 7.8), between pixels


def test_edge_cases():
    assert all_keypoints_heatmap(8, 6, np.zeros((0, 2)), 1.0).shape == (6, 8)
    hm = all_keypoints_heatmap(8, 6, np.array([[np.nan, 1.0], [3.0, 2.0]]), 1.0)
    assert hm[2, 3] == 1.0 and np.isfinite(hm).all()
    assert gaussian_heatmap(8, 6, -50.0, 2.0, 1.0).sum() == 0.0
    with pytest.raises(ValueError):
        gaussian_kernel(0.0)


@settings(deadline=None, max_examples=25)
@given(
    x=st.integers(0, 39),
    y=st.integers(0, 29),
    sigma=st.integers(1, 3),
    size=st.one_of(st.none(), st.integers(1, 7).map(lambda k: 2 * k + 1)),
)
def test_property_equals_notes(x, y, sigma, size):
    ours = gaussian_heatmap(40, 30, x, y, sigma, size)
    np.testing.assert_allclose(ours, notes_gauss_heatmap(40, 30, x, y, sigma, size), atol=1e-12)
