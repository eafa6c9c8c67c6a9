"""HeatmapCodec's targets against the seed notes' heatmap code (tests/codecs/seed_notes.py):
the same Gaussian where the notes' code works (integer centres, the default 6 sigma + 1
window), and exact where it is not (fractional centres, overlapping keypoints)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from seed_notes import notes_all_kps_gauss_heatmap, notes_gauss_heatmap

from keypointer.codecs import HeatmapCodec


def _targets(width: int, height: int, keypoints, sigma: float) -> np.ndarray:
    """(K, height, width) float64: the codec's maps at stride 1 (input = heatmap pixels)."""
    codec = HeatmapCodec((width, height), (width, height), sigma=sigma)
    maps, _ = codec.encode(torch.tensor(keypoints, dtype=torch.float32).reshape(-1, 2))
    return maps.double().numpy()


@pytest.mark.parametrize("sigma", [1, 2, 3])
def test_one_keypoint_equals_notes_at_integer_centres(sigma):
    rng = np.random.default_rng(sigma)
    for cx, cy in [(0, 0), (47, 63), (0, 63), (20, 31), *rng.integers(0, 48, (6, 2))]:
        ours = _targets(48, 64, [cx, cy], sigma)[0]
        np.testing.assert_allclose(ours, notes_gauss_heatmap(48, 64, cx, cy, sigma), atol=1e-5)
        assert ours.shape == (64, 48) and ours[cy, cx] == pytest.approx(1.0)


def test_keypoints_apart_equal_the_notes_all_keypoints_map():
    kps = [[5, 5], [30, 10], [12, 40], [40, 60]]
    ours = _targets(48, 64, kps, 2).max(axis=0)
    np.testing.assert_allclose(
        ours, notes_all_kps_gauss_heatmap(48, 64, np.array(kps), 2), atol=1e-5
    )


def test_overlapping_keypoints_keep_their_peaks():
    kps = [[10, 10], [13, 10]]
    ours = _targets(32, 32, kps, 2)
    assert ours[0, 10, 10] == pytest.approx(1.0) and ours[1, 10, 13] == pytest.approx(1.0)
    # The notes overwrite: the first keypoint's peak is lost under the second's tail.
    assert notes_all_kps_gauss_heatmap(32, 32, np.array(kps), 2)[10, 10] < 1.0


def test_a_fractional_centre_is_an_exact_gaussian():
    ours = _targets(32, 24, [10.3, 7.8], 2.0)[0]
    ys, xs = np.mgrid[0:24, 0:32]
    ref = np.exp(-((xs - 10.3) ** 2 + (ys - 7.8) ** 2) / 8.0)
    inside = (np.abs(xs - 10.3) <= 6) & (np.abs(ys - 7.8) <= 6)  # cut at 3 sigma per axis
    np.testing.assert_allclose(ours, np.where(inside, ref, 0.0), atol=1e-5)
    assert 0.9 < ours.max() < 1.0  # the value 1 is at (10.3, 7.8), between pixels
    # The notes round the centre to a pixel: off by (0.3, 0.2) px.
    rounded = notes_gauss_heatmap(32, 24, 10, 8, 2)
    assert np.unravel_index(rounded.argmax(), rounded.shape) == (8, 10) and rounded.max() == 1.0


@settings(deadline=None, max_examples=25)
@given(x=st.integers(0, 39), y=st.integers(0, 29), sigma=st.integers(1, 3))
def test_property_equals_notes(x, y, sigma):
    ours = _targets(40, 30, [x, y], sigma)[0]
    np.testing.assert_allclose(ours, notes_gauss_heatmap(40, 30, x, y, sigma), atol=1e-5)
