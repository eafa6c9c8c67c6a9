"""HeatmapCodec: exact Gaussian targets, border-exact DARK decoding, flip TTA, ONNX export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from keypointer.codecs import HeatmapCodec
from keypointer.errors import ConfigError


def _codec(refine="dark", unbiased=True, sigma=2.0, inp=(192, 256), hm=(48, 64)):
    return HeatmapCodec(inp, hm, sigma=sigma, unbiased=unbiased, refine=refine)


def _random_heatmap_points(codec, n, seed, border_fraction=0.5):
    """(n, 1, 2) input-pixel keypoints whose heatmap centres cover the map, border included."""
    g = torch.Generator().manual_seed(seed)
    w, h = codec.heatmap_size
    uv = torch.rand(n, 2, generator=g) * torch.tensor([w - 1.0, h - 1.0])
    m = int(n * border_fraction)  # within 2 px of an edge, on either axis
    edge = torch.rand(m, generator=g) * 2.0
    far = torch.rand(m, generator=g) < 0.5
    axis = (torch.rand(m, generator=g) < 0.5).long()
    size = torch.tensor([w - 1.0, h - 1.0])[axis]
    uv[torch.arange(m), axis] = torch.where(far, size - edge, edge)
    sx, sy = codec.scale
    return (uv / torch.tensor([sx, sy])).unsqueeze(1), uv


def _hm_error(codec, kp, uv):
    """Per-axis decode error in heatmap pixels (n, 2)."""
    heatmaps, _ = codec.encode(kp, torch.ones(kp.shape[:2], dtype=torch.bool))
    out, _ = codec.decode(heatmaps)
    return (out[:, 0] * torch.tensor(codec.scale) - uv).abs()


def test_encode_shapes_types_and_exact_values():
    codec = _codec(inp=(64, 48), hm=(16, 12), unbiased=False)
    kp = np.array([[[12.0, 20.0], [33.3, 7.7]]])
    heatmaps, weights = codec.encode(kp, np.array([[True, True]]))
    assert heatmaps.shape == (1, 2, 12, 16) and heatmaps.dtype == torch.float32
    assert weights.dtype == torch.float32 and weights.tolist() == [[1.0, 1.0]]
    # plain stride: heatmap = input / 4; exact, unrounded centre, cut at 3 sigma per axis
    ys, xs = torch.meshgrid(torch.arange(12.0), torch.arange(16.0), indexing="ij")
    u, v = 33.3 / 4, 7.7 / 4
    ref = torch.exp(-((xs - u) ** 2 + (ys - v) ** 2) / 8.0)
    ref = ref * ((xs - u).abs() <= 6) * ((ys - v).abs() <= 6)
    torch.testing.assert_close(heatmaps[0, 1], ref, atol=1e-6, rtol=0)
    assert heatmaps[0, 0, 5, 3] == 1.0  # (12, 20) / 4 is a pixel centre
    assert heatmaps[0, 1].max() < 0.99  # never rounded to the nearest pixel


def test_unbiased_maps_first_and_last_pixel_centres():
    codec = _codec(inp=(64, 48), hm=(16, 12))
    heatmaps, _ = codec.encode(torch.tensor([[[0.0, 0.0], [63.0, 47.0]]]), None)
    assert heatmaps[0, 0, 0, 0] == 1.0 and heatmaps[0, 1, 11, 15] == 1.0
    assert codec.scale == (15 / 63, 11 / 47)
    assert _codec(inp=(64, 48), hm=(16, 12), unbiased=False).scale == (0.25, 0.25)


def test_invisible_offmap_and_nan_get_zero_maps_and_weight():
    codec = _codec(inp=(64, 48), hm=(16, 12))
    kp = torch.tensor([[[10.0, 10.0], [-60.0, 10.0], [10.0, 500.0], [float("nan"), 3.0], [-5, 2]]])
    vis = torch.tensor([[False, True, True, True, True]])
    heatmaps, weights = codec.encode(kp, vis)
    assert weights.tolist() == [[0.0, 0.0, 0.0, 0.0, 1.0]]
    assert heatmaps[0, :4].abs().sum() == 0 and torch.isfinite(heatmaps).all()
    assert heatmaps[0, 4].max() > 0.5  # centre 1.2 px off the map: its Gaussian still overlaps


def test_unbatched_numpy_and_device():
    codec = _codec(inp=(64, 48), hm=(16, 12))
    heatmaps, weights = codec.encode(np.array([[5.0, 6.0], [7.0, 8.0]]), np.array([1, 0]))
    assert heatmaps.shape == (2, 12, 16) and weights.tolist() == [1.0, 0.0]
    kp, scores = codec.decode(heatmaps.numpy())
    assert isinstance(kp, torch.Tensor) and kp.shape == (2, 2) and scores.shape == (2,)
    torch.testing.assert_close(kp[0], torch.tensor([5.0, 6.0]), atol=1e-3, rtol=0)


@pytest.mark.parametrize("unbiased", [True, False])
def test_dark_round_trip_is_exact_everywhere(unbiased):
    codec = _codec(unbiased=unbiased)
    kp, uv = _random_heatmap_points(codec, 3000, seed=int(unbiased))
    err = _hm_error(codec, kp, uv).norm(dim=-1)
    assert err.mean() < 0.01 and err.max() < 0.01


@pytest.mark.parametrize("refine,bound", [("none", 0.5), ("quarter", 0.25)])
def test_argmax_error_within_its_bound(refine, bound):
    codec = _codec(refine=refine, inp=(64, 48), hm=(64, 48))
    kp, uv = _random_heatmap_points(codec, 2000, seed=3)
    err = _hm_error(codec, kp, uv)
    assert err.max() <= bound + 1e-4
    assert err.mean() > bound / 3  # it is really the coarse method


@pytest.mark.parametrize("sigma_pred", [1.5, 3.0])
def test_dark_exact_when_predicted_width_differs(sigma_pred):
    codec, wide = (
        _codec(inp=(48, 64), hm=(48, 64)),
        _codec(sigma=sigma_pred, inp=(48, 64), hm=(48, 64)),
    )
    kp, uv = _random_heatmap_points(codec, 500, seed=4)
    heatmaps, _ = wide.encode(kp, None)
    out, _ = codec.decode(heatmaps)
    assert (out[:, 0] - uv).norm(dim=-1).max() < 0.01


def test_dark_is_robust_to_noise():
    codec = _codec(inp=(48, 64), hm=(48, 64))
    kp, uv = _random_heatmap_points(codec, 1000, seed=5, border_fraction=0.0)
    heatmaps, _ = codec.encode(kp, None)
    noisy = heatmaps + 0.05 * torch.randn(
        heatmaps.shape, generator=torch.Generator().manual_seed(0)
    )
    dark = (codec.decode(noisy)[0][:, 0] - uv).norm(dim=-1)
    argmax = (_codec("none", inp=(48, 64), hm=(48, 64)).decode(noisy)[0][:, 0] - uv).norm(dim=-1)
    assert dark.mean() < 0.065 and dark.mean() < argmax.mean() / 5


def test_dark_extrapolates_centres_just_off_the_map():
    codec = _codec(inp=(48, 64), hm=(48, 64))
    kp = torch.tensor([[[-1.5, 10.3]], [[48.0, 63.7]], [[20.2, -2.0]]])
    heatmaps, weights = codec.encode(kp, None)
    assert weights.min() == 1
    torch.testing.assert_close(codec.decode(heatmaps)[0], kp, atol=0.01, rtol=0)


def test_decode_scores_and_degenerate_maps():
    codec = _codec(inp=(32, 32), hm=(8, 8))
    heatmaps = torch.zeros(2, 3, 8, 8)
    heatmaps[0, 1, 4, 5] = 0.7  # a single hot pixel: no curvature to fit, falls back to argmax
    heatmaps[1, 2] = -1.0
    kp, scores = codec.decode(heatmaps)
    assert torch.isfinite(kp).all() and scores[0, 1] == pytest.approx(0.7)
    torch.testing.assert_close(kp[0, 1], torch.tensor([5.0, 4.0]) * 31 / 7)
    assert scores[1, 2] == 0.0  # clipped to [0, 1]
    heatmaps[0, 0, 2, 2] = 1.3
    assert codec.decode(heatmaps)[1][0, 0] == 1.0


def test_empty_batch_and_bad_shapes():
    codec = _codec(inp=(32, 32), hm=(8, 8))
    heatmaps, weights = codec.encode(torch.zeros(0, 4, 2), torch.zeros(0, 4, dtype=torch.bool))
    assert heatmaps.shape == (0, 4, 8, 8) and weights.shape == (0, 4)
    assert codec.decode(heatmaps)[0].shape == (0, 4, 2)
    with pytest.raises(ValueError):
        codec.decode(torch.zeros(1, 4, 9, 8))
    with pytest.raises(ConfigError):
        HeatmapCodec((32, 32), (8, 8), refine="bogus")


class _DecodeHeatmap(torch.nn.Module):
    def __init__(self, codec):
        super().__init__()
        self.codec = codec

    def forward(self, heatmaps):
        return self.codec.decode(heatmaps)


@pytest.mark.parametrize("refine", ["dark", "quarter"])
def test_decode_exports_to_onnx(refine, onnx_check):
    codec = _codec(refine=refine, inp=(64, 48), hm=(16, 12))
    g = torch.Generator().manual_seed(0)
    kp = torch.rand(3, 5, 2, generator=g) * torch.tensor([63.0, 47.0])
    heatmaps = codec.encode(kp, None)[0] + 0.02 * torch.randn(3, 5, 12, 16, generator=g)
    onnx_check(_DecodeHeatmap(codec), (heatmaps[:2],), (heatmaps,))


@settings(deadline=None, max_examples=20)
@given(
    w=st.integers(8, 40),
    h=st.integers(8, 40),
    stride=st.sampled_from([1, 2, 4]),
    sigma=st.floats(1.0, 3.0),
    unbiased=st.booleans(),
    fx=st.floats(0.0, 1.0),
    fy=st.floats(0.0, 1.0),
)
def test_property_round_trip(w, h, stride, sigma, unbiased, fx, fy):
    codec = HeatmapCodec((w * stride, h * stride), (w, h), sigma, unbiased, "dark")
    uv = torch.tensor([[fx * (w - 1), fy * (h - 1)]])
    kp = (uv / torch.tensor(codec.scale)).unsqueeze(0)
    heatmaps, weights = codec.encode(kp, None)
    assert weights.item() == 1.0 and 0.6 < heatmaps.max() <= 1.0
    assert (heatmaps > 0).sum() <= (int(6 * sigma) + 1) ** 2  # cut at 3 sigma
    out, score = codec.decode(heatmaps)
    assert (out[0, 0] * torch.tensor(codec.scale) - uv[0]).norm() < 0.01
    assert score.item() == heatmaps.max()


def test_flip_tta_averages_udp_maps_and_leaves_plain_stride_maps_to_coordinates():
    flip_index = [1, 0, 2]
    kp = torch.tensor([[[10.0, 20.0], [40.0, 21.0], [31.5, 5.0]]])
    udp = _codec(unbiased=True, inp=(64, 48), hm=(16, 12))
    maps = udp.encode(kp)[0]
    flipped = kp[:, flip_index]
    mirrored = udp.encode(torch.stack([63.0 - flipped[..., 0], flipped[..., 1]], -1))[0]
    averaged = udp.average_flipped(torch.cat([maps, mirrored]), flip_index)
    torch.testing.assert_close(averaged, maps)  # UDP: the mirror image's maps mirror exactly
    plain = _codec(unbiased=False, inp=(64, 48), hm=(16, 12))
    assert plain.average_flipped(torch.cat([maps, mirrored]), flip_index) is None


def test_near_ties_flag_two_equal_peaks_only():
    codec = _codec(inp=(64, 48), hm=(16, 12))
    maps = torch.zeros(1, 2, 12, 16)
    maps[0, 0, 3, 4] = maps[0, 0, 8, 9] = 1.0  # two equal peaks: either could be the argmax
    maps[0, 1, 3, 4], maps[0, 1, 8, 9] = 1.0, 0.9
    assert codec.near_ties(maps, 1e-6).tolist() == [[True, False]]
