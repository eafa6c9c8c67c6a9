"""SimCCCodec: 1-D Gaussian labels over bins, exact sub-bin decoding, ONNX export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from keypointer.codecs import SimCCCodec
from keypointer.errors import ConfigError


def _points(n, size, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 2, generator=g) * (torch.tensor(size, dtype=torch.float32) - 1)


def test_encode_labels():
    codec = SimCCCodec((64, 48), split_ratio=2.0, sigma=(4.9, 5.66))
    (x, y), weights = codec.encode(np.array([[[10.0, 20.25], [63.0, 0.0]]]), None)
    assert codec.bins == (128, 96) and x.shape == (1, 2, 128) and y.shape == (1, 2, 96)
    bins = torch.arange(128.0)
    torch.testing.assert_close(x[0, 0], torch.exp(-((bins - 20.0) ** 2) / (2 * 4.9**2)))
    assert x[0, 0, 20] == 1.0 and x[0, 1, 126] == 1.0 and y[0, 1, 0] == 1.0
    assert y[0, 0].max() < 1.0  # 20.25 * 2 = 40.5: between bins, not rounded
    assert weights.tolist() == [[1.0, 1.0]]


def test_invisible_and_off_image_keypoints():
    codec = SimCCCodec((32, 32))
    kp = torch.tensor([[[5.0, 5.0], [40.0, 5.0], [5.0, -0.6], [float("nan"), 1.0], [31.4, -0.5]]])
    (x, y), weights = codec.encode(kp, torch.tensor([[False, True, True, True, True]]))
    assert weights.tolist() == [[0.0, 0.0, 0.0, 0.0, 1.0]]
    assert x[0, :4].abs().sum() == 0 and y[0, :4].abs().sum() == 0 and torch.isfinite(x).all()


@pytest.mark.parametrize("ratio", [1.0, 2.0, 3.0])
def test_round_trip_labels_and_logits(ratio):
    codec = SimCCCodec((64, 48), split_ratio=ratio)
    kp = _points(200, (64, 48), seed=int(ratio))
    kp[0, 0] = torch.tensor([0.0, 0.0])
    kp[0, 1] = torch.tensor([63.0, 47.0])  # the last bins: one-sided fit
    (x, y), _ = codec.encode(kp, None)
    out, scores = codec.decode((x, y), logits=False)
    assert (out - kp).norm(dim=-1).max() < 0.01 / ratio
    assert scores.min() > 0.95
    # A perfectly trained head outputs the log of the label plus any constant.
    out, scores = codec.decode((x.log() + 3.0, y.log() - 1.0))
    assert (out - kp).norm(dim=-1).max() < 0.01 / ratio
    assert scores.min() > 0.99 and scores.max() <= 1.0


def test_argmax_only_within_half_a_bin():
    codec = SimCCCodec((64, 48), split_ratio=2.0, refine=False)
    kp = _points(200, (64, 48), seed=7)
    (x, y), _ = codec.encode(kp, None)
    err = (codec.decode((x.log(), y.log()))[0] - kp).abs()
    assert err.max() <= 0.25 + 1e-5 and err.mean() > 0.05


def test_flat_logits_score_low():
    codec = SimCCCodec((16, 16))
    kp, scores = codec.decode((torch.zeros(2, 3, 32), torch.zeros(2, 3, 32)))
    assert torch.isfinite(kp).all() and scores.max() < 0.5


def test_shapes_unbatched_empty_and_errors():
    codec = SimCCCodec((16, 8), split_ratio=1.5)
    (x, y), w = codec.encode(np.array([[1.0, 2.0]]), np.array([True]))
    assert x.shape == (1, 24) and y.shape == (1, 12) and w.shape == (1,)
    (x, y), w = codec.encode(torch.zeros(0, 2, 2), None)
    assert codec.decode((x, y))[0].shape == (0, 2, 2)
    with pytest.raises(ValueError):
        codec.decode((torch.zeros(1, 2, 25), torch.zeros(1, 2, 12)))
    with pytest.raises(ConfigError):
        SimCCCodec((16, 8), sigma=(0.0, 1.0))


class _DecodeSimCC(torch.nn.Module):
    def __init__(self, codec):
        super().__init__()
        self.codec = codec

    def forward(self, x, y):
        return self.codec.decode((x, y))


def test_decode_exports_to_onnx(onnx_check):
    codec = SimCCCodec((32, 24))
    (x, y), _ = codec.encode(_points(3, (32, 24), seed=1), None)
    g = torch.Generator().manual_seed(0)
    x = x.clamp(min=1e-6).log() + 0.05 * torch.randn(x.shape, generator=g)
    y = y.clamp(min=1e-6).log() + 0.05 * torch.randn(y.shape, generator=g)
    onnx_check(_DecodeSimCC(codec), (x[:2], y[:2]), (x, y))


@settings(deadline=None, max_examples=20)
@given(
    w=st.integers(8, 64),
    h=st.integers(8, 64),
    ratio=st.sampled_from([1.0, 1.5, 2.0, 2.5]),
    sigma=st.floats(1.0, 8.0),
    fx=st.floats(0.0, 1.0),
    fy=st.floats(0.0, 1.0),
)
def test_property_round_trip(w, h, ratio, sigma, fx, fy):
    codec = SimCCCodec((w, h), ratio, (sigma, sigma))
    kp = torch.tensor([[[fx * (w - 1), fy * (h - 1)]]])
    (x, y), weights = codec.encode(kp, None)
    assert weights.item() == 1.0 and x.max() <= 1.0 and x.max() > 0.8
    out, _ = codec.decode((x, y), logits=False)
    assert (out - kp).norm() < 0.01
