from __future__ import annotations

import pytest
import torch
from torch import nn

from keypointer.models.heads import HeatmapHead, IntegralHead, RegressionHead, SimCCHead

K = 3


def _feats(n: int, w: int, h: int, levels=((16, 8), (24, 16), (32, 32))) -> list[torch.Tensor]:
    """Fake backbone outputs for a (w, h) input: (channels, stride) per level, finest first."""
    return [torch.randn(n, c, -(-h // s), -(-w // s)) for c, s in levels]


@pytest.mark.parametrize("upsample", ["deconv", "bilinear"])
def test_heatmap_single_level_reaches_stride_4(upsample):
    head = HeatmapHead([32], [32], K, heatmap_size=(24, 16), channels=8, upsample=upsample)
    assert len(head.upsample) == 3  # 32 -> 16 -> 8 -> 4
    out = head(_feats(2, 96, 64)[-1:])
    assert out.shape == (2, K, 16, 24)


def test_heatmap_fpn_lite_merges_levels():
    head = HeatmapHead([16, 24, 32], [8, 16, 32], K, heatmap_size=(24, 16), channels=8)
    assert len(head.laterals) == 3 and len(head.upsample) == 1  # from stride 8
    out = head(_feats(2, 96, 64))
    assert out.shape == (2, K, 16, 24)
    out.sum().backward()
    assert all(lat.weight.grad.abs().sum() > 0 for lat in head.laterals)


def test_heatmap_fits_inputs_that_are_not_multiples_of_32():
    head = HeatmapHead([32], [32], K, heatmap_size=(25, 25), channels=8)
    feats = [torch.randn(1, 32, 4, 4)]  # ceil(100 / 32) -> 32x32 after 3 stages, cropped
    assert head(feats).shape == (1, K, 25, 25)
    short = HeatmapHead([32], [32], K, heatmap_size=(24, 16), channels=8, upsample_stages=1)
    assert short(_feats(1, 96, 64)[-1:]).shape == (1, K, 16, 24)  # resized up


def test_regression_outputs_normalised_coordinates():
    head = RegressionHead(32, K)
    out = head(_feats(4, 96, 64))
    assert out.shape == (4, K, 2)
    assert ((out > 0) & (out < 1)).all()


def test_regression_dropout_only_in_train_mode():
    torch.manual_seed(0)
    head = RegressionHead(32, K, dropout=0.5)
    feats = _feats(4, 96, 64)
    head.eval()
    assert torch.equal(head(feats), head(feats))
    head.train()
    assert not torch.equal(head(feats), head(feats))
    assert isinstance(head.dropout, nn.Dropout)


def test_simcc_bins_follow_split_ratio():
    feats = _feats(2, 96, 64)
    head = SimCCHead(32, (3, 2), K, input_size=(96, 64), split_ratio=2.0)
    x, y = head(feats)
    assert x.shape == (2, K, 192) and y.shape == (2, K, 128)
    head = SimCCHead(32, (3, 2), K, input_size=(96, 64), split_ratio=1.5)
    x, y = head(feats)
    assert x.shape == (2, K, 144) and y.shape == (2, K, 96)


class _FixedMaps(nn.Module):
    """Stands in for a heatmap head: one sharp peak per keypoint at given heatmap pixels."""

    def __init__(self, peaks: list[tuple[int, int]], size: tuple[int, int]):
        super().__init__()
        self.heatmap_size = size
        w, h = size
        maps = torch.full((1, len(peaks), h, w), -1e4)
        for k, (x, y) in enumerate(peaks):
            maps[0, k, y, x] = 0.0
        self.register_buffer("maps", maps)

    def forward(self, features):
        return self.maps.expand(features[-1].shape[0], -1, -1, -1)


def test_integral_uses_the_udp_pixel_mapping():
    peaks = [(0, 0), (23, 15), (5, 3)]  # heatmap (w, h) = (24, 16) for input (96, 64)
    head = IntegralHead(_FixedMaps(peaks, (24, 16)), input_size=(96, 64))
    out = head(_feats(2, 96, 64))
    assert out.shape == (2, K, 2)
    px = out[0] * torch.tensor([96.0, 64.0])  # normalised -> input pixels
    expected = torch.tensor([[0.0, 0.0], [95.0, 63.0], [5 * 95 / 23, 3 * 63 / 15]])
    torch.testing.assert_close(px, expected, atol=1e-4, rtol=0)


def test_integral_is_differentiable():
    hm = HeatmapHead([16, 24, 32], [8, 16, 32], K, heatmap_size=(24, 16), channels=8)
    head = IntegralHead(hm, input_size=(96, 64), learn_beta=True)
    out = head(_feats(2, 96, 64))
    assert ((out >= 0) & (out <= 1)).all()
    (out - 0.3).abs().sum().backward()
    assert hm.final.weight.grad.abs().sum() > 0
    assert head.beta.grad is not None


def test_integral_mapping_matches_the_heatmap_codec():
    from keypointer.codecs import HeatmapCodec, RegressionCodec

    peaks = [(3, 2), (17, 11), (22, 1)]
    head = IntegralHead(_FixedMaps(peaks, (24, 16)), input_size=(96, 64))
    via_integral, _ = RegressionCodec((96, 64)).decode(head(_feats(1, 96, 64)))
    codec = HeatmapCodec((96, 64), (24, 16), unbiased=True, refine="none")
    via_heatmap, _ = codec.decode(head.heatmap.maps)
    torch.testing.assert_close(via_integral, via_heatmap, atol=1e-3, rtol=0)
