"""CenterCodec: centre heatmap + log-size targets, peak decoding with sub-pixel refinement."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from keypointer.codecs.centers import MIN_SIGMA, CenterCodec, gaussian_radius, select
from keypointer.errors import ConfigError


def _centres_hm(codec, boxes):
    """(N, 2) box centres in heatmap px."""
    b = torch.as_tensor(boxes, dtype=torch.float32)
    return codec.to_heatmap(b[:, :2] + b[:, 2:] / 2 - 0.5)


def _round_trip(codec, boxes, threshold=0.2):
    hm, size, _ = codec.encode(boxes)
    (got, scores), *_ = codec.decode(hm[None], size[None], k=50, threshold=threshold)
    return got, scores


def _match(got, want):
    """got rows reordered to the nearest want row (by centre)."""
    gc = got[:, :2] + got[:, 2:] / 2
    wc = want[:, :2] + want[:, 2:] / 2
    return got[torch.cdist(wc, gc).argmin(1)]


def test_encode_shapes_values_and_mask():
    codec = CenterCodec((64, 48), stride=4)
    hm, size, mask = codec.encode(np.array([[10.0, 6.0, 16.0, 20.0]]))
    assert hm.shape == (1, 12, 16) and size.shape == (2, 12, 16) and mask.shape == (1, 12, 16)
    assert hm.dtype == size.dtype == mask.dtype == torch.float32
    # centre: input (17.5, 15.5) -> heatmap (18 / 4 - 0.5, 16 / 4 - 0.5) = (4.0, 3.5)
    c = _centres_hm(codec, [[10.0, 6.0, 16.0, 20.0]])[0]
    torch.testing.assert_close(c, torch.tensor([4.0, 3.5]))
    assert mask.sum() == 1 and mask[0, 3, 4] == 1  # 3.5 lies between rows 3 and 4: the first
    torch.testing.assert_close(size[:, 3, 4], torch.log(torch.tensor([4.0, 5.0])))
    assert size[:, mask[0] == 0].abs().max() == 0
    # a Gaussian at the exact sub-pixel centre: equal on both rows around y = 3.5
    assert hm[0, 3, 4] == hm[0, 4, 4] and 0.5 < hm[0, 3, 4] < 1.0
    r = gaussian_radius(torch.tensor(4.0), torch.tensor(5.0))
    sigma = max((2 * float(r) + 1) / 6, MIN_SIGMA)
    assert hm[0, 3, 4] == pytest.approx(math.exp(-0.125 / sigma**2), rel=1e-5)


def test_gaussian_radius_matches_centernet():
    # xingyizhou/CenterNet's gaussian_radius((h, w), min_overlap), run on these sizes
    want = {
        (100, 100): (27.33200530681512, 41.42135623730951),
        (10, 40): (4.509492530276823, 7.015621187164243),
        (3, 2): (0.6581245772583584, 1.0),
        (64, 8): (4.099908256803516, 6.5205832509386),
    }
    for (w, h), (r07, r05) in want.items():
        wt, ht = torch.tensor(float(w)), torch.tensor(float(h))
        assert float(gaussian_radius(wt, ht)) == pytest.approx(r07, rel=1e-5)
        assert float(gaussian_radius(wt, ht, 0.5)) == pytest.approx(r05, rel=1e-5)


def test_empty_invalid_and_off_map_boxes_give_no_target():
    codec = CenterCodec((64, 64), stride=4)
    for boxes in (np.zeros((0, 4)), [[np.nan, 3, 10, 10]], [[5, 5, 0, 10]], [[70, 5, 20, 10]]):
        hm, size, mask = codec.encode(boxes)
        assert hm.abs().sum() == 0 and size.abs().sum() == 0 and mask.sum() == 0
    (b, s), *_ = codec.decode(torch.zeros(1, 1, 16, 16), torch.zeros(1, 2, 16, 16), threshold=0.1)
    assert b.shape == (0, 4) and s.shape == (0,)


def test_smaller_box_owns_a_shared_centre_pixel():
    codec = CenterCodec((64, 64), stride=4)
    big, small = [0.0, 0.0, 60.0, 60.0], [26.0, 26.0, 8.0, 8.0]  # same centre
    for boxes in ([big, small], [small, big]):
        _, size, mask = codec.encode(boxes)
        assert mask.sum() == 1
        torch.testing.assert_close(
            size[:, mask[0] > 0].flatten(), torch.log(torch.tensor([2.0, 2.0]))
        )


def test_size_region_spreads_sizes_around_the_centres():
    boxes = [[10.0, 10.0, 40.0, 60.0], [70.0, 20.0, 30.0, 30.0]]
    sparse = CenterCodec((128, 96), stride=4)
    dense = CenterCodec((128, 96), stride=4, size_region=0.3)
    hm0, size0, mask0 = sparse.encode(boxes)
    hm1, size1, mask1 = dense.encode(boxes)
    torch.testing.assert_close(hm0, hm1)
    assert set(mask0.unique().tolist()) == {0.0, 1.0} and mask0.sum() == 2
    # the centre pixels keep weight 1 and their sizes; around them the Gaussian, below 1
    assert (mask1 == 1).sum() == 2 and ((mask1 == 1) == (mask0 == 1)).all()
    region = (mask1 > 0) & (mask1 < 1)
    assert region.sum() > 10 and (mask1[region] >= 0.3).all()
    torch.testing.assert_close(mask1[region], hm1[region].clamp(max=0.99))
    logs = torch.log(torch.tensor(boxes)[:, 2:] / 4)
    for value in size1[:, region[0]].T:  # every region pixel holds one of the two boxes' sizes
        assert torch.isclose(value[None], logs, atol=1e-6).all(1).any()
    torch.testing.assert_close(size1[:, mask1[0] == 1], size0[:, mask0[0] == 1])
    got, _ = _round_trip(dense, torch.tensor(boxes))
    torch.testing.assert_close(
        _match(got, torch.tensor(boxes)), torch.tensor(boxes), atol=1e-3, rtol=0
    )


@settings(max_examples=150, deadline=None)
@given(
    stride=st.sampled_from([4, 8]),
    x=st.floats(0.0, 1.0),
    y=st.floats(0.0, 1.0),
    w=st.floats(2.0, 200.0),
    h=st.floats(2.0, 200.0),
)
def test_property_single_box_round_trip(stride, x, y, w, h):
    codec = CenterCodec((256, 192), stride=stride)
    # any centre on the input, border pixels included
    cx, cy = x * 255.0, y * 191.0
    box = torch.tensor([[cx + 0.5 - w / 2, cy + 0.5 - h / 2, w, h]])
    got, scores = _round_trip(codec, box)
    assert len(got) == 1 and 0.5 <= float(scores[0]) <= 1.0
    err_hm = (_centres_hm(codec, got) - _centres_hm(codec, box)).abs()
    assert err_hm.max() <= 0.5 + 1e-4  # the brief's bound; away from the border it is exact:
    c = _centres_hm(codec, box)[0]
    wh = codec.heatmap_size
    if all(1 <= float(c[i]) <= wh[i] - 2 for i in (0, 1)):
        assert err_hm.max() < 1e-3
    torch.testing.assert_close(got[0, 2:], box[0, 2:], rtol=1e-4, atol=1e-4)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 9),
    stride=st.sampled_from([4, 8]),
)
def test_property_several_separated_boxes_round_trip(seed, n, stride):
    """Boxes in separate cells of a 3x3 grid (their 3 sigma Gaussians apart) all come back."""
    rng = np.random.default_rng(seed)
    codec = CenterCodec((384, 384), stride=stride)
    cells = rng.permutation(9)[:n]
    boxes = []
    for cell in cells:
        x0, y0 = (cell % 3) * 128.0, (cell // 3) * 128.0
        w, h = rng.uniform(8, 40, 2)  # small enough that a Gaussian stays in its cell
        cx, cy = rng.uniform(48, 80, 2)
        boxes.append([x0 + cx - w / 2, y0 + cy - h / 2, w, h])
    want = torch.tensor(boxes, dtype=torch.float32)
    got, scores = _round_trip(codec, want)
    assert len(got) == n and (scores >= 0.5).all()
    got = _match(got, want)
    assert (_centres_hm(codec, got) - _centres_hm(codec, want)).abs().max() < 1e-3
    rel = (got[:, 2:] / want[:, 2:] - 1).abs()
    assert rel.max() < 0.01


def test_overlapping_boxes_stay_within_half_a_pixel():
    codec = CenterCodec((128, 128), stride=4)
    want = torch.tensor([[20.0, 20.0, 60.0, 90.0], [50.3, 30.7, 50.0, 80.0], [90, 5, 30, 30]])
    got, _ = _round_trip(codec, want)
    assert len(got) == 3
    got = _match(got, want)
    assert (_centres_hm(codec, got) - _centres_hm(codec, want)).abs().max() <= 0.5
    assert ((got[:, 2:] / want[:, 2:]) - 1).abs().max() < 0.01


def test_decode_is_batched_logits_match_probabilities_and_k_caps():
    codec = CenterCodec((128, 96), stride=4)
    a = codec.encode([[10.0, 10.0, 30.0, 40.0], [70.0, 30.0, 40.0, 50.0]])
    b = codec.encode([[50.0, 20.0, 20.0, 20.0]])
    hm = torch.stack([a[0], b[0]])
    size = torch.stack([a[1], b[1]])
    boxes, scores = codec.decode_topk(hm, size, k=5)
    assert boxes.shape == (2, 5, 4) and scores.shape == (2, 5)
    assert (scores[:, :-1] >= scores[:, 1:]).all()  # best first
    out = codec.decode(hm, size, threshold=0.3)
    assert [len(o[0]) for o in out] == [2, 1]
    logits = torch.logit(hm.clamp(1e-6, 1 - 1e-6))
    out_l = codec.decode(logits, size, threshold=0.3, logits=True)
    for (b1, s1), (b2, s2) in zip(out, out_l, strict=True):
        torch.testing.assert_close(b1, b2, atol=1e-3, rtol=0)
        torch.testing.assert_close(s1, s2, atol=1e-4, rtol=0)
    # k larger than the map is capped at h * w
    boxes, _ = codec.decode_topk(hm, size, k=10_000)
    assert boxes.shape[1] == 32 * 24
    kept = select(boxes, torch.zeros(2, 32 * 24), 0.5)
    assert [len(b) for b, _ in kept] == [0, 0]


def test_saturated_logits_still_give_one_peak_per_instance():
    """Logits far past where a sigmoid rounds to 1 keep their order: no plateau of 1.0s."""
    codec = CenterCodec((64, 64), stride=4)
    logits = torch.full((1, 1, 16, 16), -10.0)
    logits[0, 0, 5, 6:9] = torch.tensor([30.0, 40.0, 35.0])
    (boxes, scores), *_ = codec.decode(logits, torch.zeros(1, 2, 16, 16), logits=True)
    assert len(boxes) == 1 and float(scores[0]) == pytest.approx(1.0)
    cx = float(codec.to_heatmap(boxes[0, 0] + boxes[0, 2] / 2 - 0.5))
    assert 6.5 < cx < 7.5 and cx > 7.0  # pulled towards the higher neighbour at x = 8


def test_bad_shapes_and_configs():
    codec = CenterCodec((64, 64), stride=4)
    with pytest.raises(ValueError):
        codec.decode_topk(torch.zeros(1, 1, 8, 8), torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError):
        codec.decode_topk(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16))
    for kwargs in ({"stride": 64}, {"min_overlap": 1.0}, {"input_size": (64,)}, {"size_region": 1}):
        with pytest.raises(ConfigError):
            CenterCodec(**{"input_size": (64, 64), **kwargs})


class _Decode(torch.nn.Module):
    def __init__(self, codec):
        super().__init__()
        self.codec = codec

    def forward(self, heatmap, size):
        return self.codec.decode_topk(heatmap, size, k=8, logits=True)


def test_decode_topk_exports_to_onnx(onnx_check):
    codec = CenterCodec((128, 96), stride=4)
    hm, size, _ = codec.encode([[10.0, 10.0, 30.0, 40.0], [70.0, 30.0, 40.0, 50.0]])
    logits = torch.logit(hm.clamp(1e-4, 1 - 1e-4))[None]
    onnx_check(_Decode(codec), (logits, size[None]), (logits, size[None]))
