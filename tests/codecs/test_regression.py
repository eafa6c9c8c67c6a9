"""RegressionCodec: coordinates normalised by the input size (the seed's u/w, v/h)."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from keypointer.codecs import RegressionCodec


def test_encode_normalises_by_input_size():
    codec = RegressionCodec((64, 32))
    targets, weights = codec.encode(np.array([[[0.0, 0.0], [63.0, 31.0], [16.0, 8.0]]]), None)
    expected = torch.tensor([[[0.0, 0.0], [63 / 64, 31 / 32], [0.25, 0.25]]])
    torch.testing.assert_close(targets, expected)
    assert targets.dtype == torch.float32 and weights.tolist() == [[1.0, 1.0, 1.0]]
    assert targets.min() >= 0 and targets.max() <= 1


def test_invisible_off_image_and_nan_get_weight_zero():
    codec = RegressionCodec((64, 32))
    kp = torch.tensor([[[3.0, 4.0], [64.0, 4.0], [3.0, -0.6], [float("nan"), 1.0], [63.4, -0.5]]])
    targets, weights = codec.encode(kp, torch.tensor([[False, True, True, True, True]]))
    assert weights.tolist() == [[0.0, 0.0, 0.0, 0.0, 1.0]]
    assert targets[0, :4].abs().sum() == 0 and torch.isfinite(targets).all()


def test_decode_round_trip_unbatched_and_scores():
    codec = RegressionCodec((100, 50))
    kp = torch.tensor([[12.5, 3.25], [99.0, 49.0]])
    targets, weights = codec.encode(kp, np.array([True, True]))
    assert targets.shape == (2, 2) and weights.shape == (2,)
    out, scores = codec.decode(targets)
    torch.testing.assert_close(out, kp)
    assert scores.tolist() == [1.0, 1.0]


def test_empty_batch():
    codec = RegressionCodec((8, 8))
    targets, weights = codec.encode(torch.zeros(0, 5, 2), torch.zeros(0, 5, dtype=torch.bool))
    assert targets.shape == (0, 5, 2) and weights.shape == (0, 5)
    assert codec.decode(targets)[0].shape == (0, 5, 2)


@settings(deadline=None, max_examples=25)
@given(
    w=st.integers(1, 512),
    h=st.integers(1, 512),
    fx=st.floats(0.0, 1.0),
    fy=st.floats(0.0, 1.0),
)
def test_property_round_trip(w, h, fx, fy):
    codec = RegressionCodec((w, h))
    kp = torch.tensor([[[fx * (w - 1), fy * (h - 1)]]])
    targets, weights = codec.encode(kp, None)
    assert weights.item() == 1.0 and 0 <= targets.min() and targets.max() <= 1
    torch.testing.assert_close(codec.decode(targets)[0], kp, atol=1e-4, rtol=1e-5)
