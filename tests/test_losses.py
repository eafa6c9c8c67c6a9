"""Keypoint losses: hand-written references, weights, reductions, gradients, edge shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from keypointer.codecs import HeatmapCodec
from keypointer.losses import (
    AdaptiveWingLoss,
    KeypointL1Loss,
    KeypointMSELoss,
    KeypointSmoothL1Loss,
    SimCCLoss,
    adaptive_wing_loss,
    keypoint_mse_loss,
)

REDUCTIONS = ["none", "sum", "mean", "keypoint_sum"]


# --- hand-written per-keypoint references, float64 numpy, (N, K) ---
def ref_mse(o, t):
    return ((o - t) ** 2).mean(axis=(2, 3))


def ref_l1(o, t):
    return np.abs(o - t).mean(axis=2)


def ref_smooth_l1(o, t, beta=1.0):
    d = np.abs(o - t)
    return np.where(d < beta, 0.5 * d**2 / beta, d - 0.5 * beta).mean(axis=2)


def ref_simcc(o, t, beta=1.0, eps=0.0):
    total = 0.0
    for logits, label in zip(o, t, strict=True):
        z = logits * beta
        log_q = z - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True))
        log_q -= z.max(-1, keepdims=True)
        p = label / label.sum(-1, keepdims=True)
        p = (1 - eps) * p + eps / label.shape[-1]
        total = total + np.where(p > 0, p * (np.log(np.where(p > 0, p, 1)) - log_q), 0).sum(-1)
    return total


def ref_awing(o, t, alpha=2.1, omega=14.0, eps=1.0, theta=0.5):
    out = np.zeros(o.shape)
    for idx in np.ndindex(o.shape):
        y, d = t[idx], abs(t[idx] - o[idx])
        p = alpha - y
        if d < theta:
            out[idx] = omega * math.log(1 + (d / eps) ** p)
        else:
            a = omega / (1 + (theta / eps) ** p) * p * (theta / eps) ** (p - 1) / eps
            c = theta * a - omega * math.log(1 + (theta / eps) ** p)
            out[idx] = a * d - c
    return out.mean(axis=(2, 3))


def ref_reduce(per_kp, w, reduction, elements=1):
    """``elements``: how many elements each per-keypoint value is the mean of."""
    loss = per_kp * w
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum() * elements
    if reduction == "keypoint_sum":
        return loss.sum()
    return loss.sum() / max((w > 0).sum(), 1)


def _heatmap_case(n=3, k=4, h=5, w=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, k, h, w, generator=g), torch.rand(n, k, h, w, generator=g)


def _coord_case(n=3, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, k, 2, generator=g), torch.rand(n, k, 2, generator=g)


def _simcc_case(n=3, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = (torch.randn(n, k, 20, generator=g), torch.randn(n, k, 14, generator=g))
    tgt = (torch.rand(n, k, 20, generator=g), torch.rand(n, k, 14, generator=g))
    tgt[0][:1, :1, :10] = 0  # zero bins: 0 log 0 = 0
    return out, tgt


def _np(x):
    return tuple(_np(v) for v in x) if isinstance(x, tuple) else x.double().numpy()


def _elements(name, output):
    """Elements per keypoint value: heatmap pixels, 2 coordinates, or 1 (SimCC sums bins)."""
    return 1 if name.startswith("simcc") else math.prod(output.shape[2:])


CASES = {
    "mse": (KeypointMSELoss, {}, _heatmap_case, ref_mse),
    "l1": (KeypointL1Loss, {}, _coord_case, ref_l1),
    "smooth_l1": (
        KeypointSmoothL1Loss,
        {"beta": 0.3},
        _coord_case,
        lambda o, t: ref_smooth_l1(o, t, 0.3),
    ),
    "simcc": (SimCCLoss, {}, _simcc_case, ref_simcc),
    "simcc_smooth": (
        SimCCLoss,
        {"beta": 2.0, "label_smoothing": 0.1},
        _simcc_case,
        lambda o, t: ref_simcc(o, t, 2.0, 0.1),
    ),
    "awing": (AdaptiveWingLoss, {}, lambda **kw: _heatmap_case(h=3, w=4, **kw), ref_awing),
}
WEIGHTS = torch.tensor([[1.0, 0.0, 0.5, 1.0], [0.0, 0.0, 0.0, 0.0], [2.0, 1.0, 1.0, 0.0]])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", list(CASES))
def test_equals_hand_written_reference(name, reduction):
    cls, kwargs, case, ref = CASES[name]
    output, target = case()
    got = cls(reduction=reduction, **kwargs)(output, target, WEIGHTS)
    per_kp, w = ref(_np(output), _np(target)), WEIGHTS.double().numpy()
    want = ref_reduce(per_kp, w, reduction, _elements(name, output))
    assert got.shape == ((3, 4) if reduction == "none" else ())
    np.testing.assert_allclose(got.detach().double().numpy(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(CASES))
def test_weight_zero_removes_keypoint_and_mean_is_not_diluted(name):
    cls, kwargs, case, _ = CASES[name]
    output, target = case()
    w = torch.ones(3, 4)
    w[1, 2] = 0
    loss = cls(**kwargs)
    base = loss(output, target, w)

    def bump(x):
        x = x.clone()
        x[1, 2] += 50.0
        return x

    moved = tuple(bump(o) for o in output) if isinstance(output, tuple) else bump(output)
    assert loss(moved, target, w) == base
    per_kp = cls(reduction="none", **kwargs)(output, target, w)
    torch.testing.assert_close(base, per_kp.sum() / 11)  # 11 labelled keypoints, not 12


@pytest.mark.parametrize("name", list(CASES))
def test_gradients_flow_only_to_labelled_keypoints(name):
    cls, kwargs, case, _ = CASES[name]
    output, target = case()
    leaves = output if isinstance(output, tuple) else (output,)
    for leaf in leaves:
        leaf.requires_grad_(True)
    cls(**kwargs)(output, target, WEIGHTS).backward()
    for leaf in leaves:
        g = leaf.grad.flatten(2).abs().sum(-1)
        assert torch.isfinite(leaf.grad).all()
        assert (g[WEIGHTS > 0] > 0).all() and (g[WEIGHTS == 0] == 0).all()


@pytest.mark.parametrize("name", list(CASES))
def test_empty_batch_and_single_keypoint(name):
    cls, kwargs, case, ref = CASES[name]
    output, target = case(n=0)
    leaves = output if isinstance(output, tuple) else (output,)
    for leaf in leaves:
        leaf.requires_grad_(True)
    assert cls(reduction="none", **kwargs)(output, target, torch.zeros(0, 4)).shape == (0, 4)
    for reduction in ("sum", "keypoint_sum"):
        assert cls(reduction=reduction, **kwargs)(output, target, torch.zeros(0, 4)) == 0
    mean = cls(**kwargs)(output, target, torch.zeros(0, 4))
    assert mean == 0 and not torch.isnan(mean)
    mean.backward()
    output, target = case(k=1)
    got = cls(**kwargs)(output, target)  # weights None: all labelled
    np.testing.assert_allclose(got.item(), ref(_np(output), _np(target)).mean(), rtol=1e-5)


def test_nothing_labelled_gives_zero_not_nan():
    output, target = _heatmap_case()
    loss = keypoint_mse_loss(output.requires_grad_(True), target, torch.zeros(3, 4))
    loss.backward()
    assert loss == 0 and (output.grad == 0).all()


def _torch_simcc(output, target, reduction, beta=1.0, eps=0.0):
    """SimCC through F.kl_div on (N*K, bins) rows; its "mean" is "batchmean" (true KL)."""
    total = 0.0
    for logits, label in zip(output, target, strict=True):
        p = label / label.sum(-1, keepdim=True)
        p = (1 - eps) * p + eps / label.shape[-1]
        log_q = F.log_softmax(logits * beta, -1)
        if reduction == "none":
            total = total + F.kl_div(log_q, p, reduction="none").sum(-1)
            continue
        rows = (log_q.flatten(0, 1), p.flatten(0, 1))
        total = total + F.kl_div(*rows, reduction="batchmean" if reduction == "mean" else "sum")
    return total


def _awing_elementwise(output, target):
    """Adaptive Wing, elementwise (N, K, h, w), from the per-keypoint reference on 1x1 maps."""
    o, t = _np(output), _np(target)
    n, k, h, w = o.shape
    flat = ref_awing(o.reshape(n, k * h * w, 1, 1), t.reshape(n, k * h * w, 1, 1))
    return torch.from_numpy(flat.reshape(n, k, h, w)).float()


_TORCH_REDUCE = {"none": lambda e: e, "sum": torch.sum, "mean": torch.mean}
TORCH_LOSSES = {
    "mse": lambda o, t, r: F.mse_loss(o, t, reduction=r),
    "l1": lambda o, t, r: F.l1_loss(o, t, reduction=r),
    "smooth_l1": lambda o, t, r: F.smooth_l1_loss(o, t, reduction=r, beta=0.3),
    # no PyTorch function: the hand-written elementwise loss with PyTorch's own reductions
    "awing": lambda o, t, r: _TORCH_REDUCE[r](_awing_elementwise(o, t)),
}


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("name", list(CASES))
def test_unweighted_reductions_match_pytorch(name, reduction):
    """No weights (None) and all-ones weights both give PyTorch's own "none"/"sum"/"mean"."""
    cls, kwargs, case, _ = CASES[name]
    output, target = case()
    if name.startswith("simcc"):
        smooth = {"beta": kwargs.get("beta", 1.0), "eps": kwargs.get("label_smoothing", 0.0)}
        want = _torch_simcc(output, target, reduction, **smooth)
    else:
        want = TORCH_LOSSES[name](output, target, reduction)
        if reduction == "none":  # one value per keypoint: the mean of its elements
            want = want.flatten(2).mean(-1)
    loss = cls(reduction=reduction, **kwargs)
    torch.testing.assert_close(loss(output, target), want)
    torch.testing.assert_close(loss(output, target, torch.ones(3, 4)), want)


def test_sum_is_pytorch_sum_not_sum_of_keypoint_means():
    """Issue 9's example: (4, 5, 8, 6) heatmaps, where the two differ by the 48 pixels."""
    g = torch.Generator().manual_seed(1)
    p, t = torch.randn(4, 5, 8, 6, generator=g), torch.randn(4, 5, 8, 6, generator=g)
    ones = torch.ones(4, 5)
    got = KeypointMSELoss(reduction="sum")(p, t, ones)
    torch.testing.assert_close(got, F.mse_loss(p, t, reduction="sum"))
    keypoint_sum = KeypointMSELoss(reduction="keypoint_sum")(p, t, ones)
    torch.testing.assert_close(keypoint_sum * 48, got)
    torch.testing.assert_close(keypoint_sum / 20, KeypointMSELoss()(p, t, ones))


def test_keypoints_off_the_map_contribute_nothing():
    codec = HeatmapCodec((64, 48), (16, 12))
    kp = torch.tensor([[[10.0, 10.0], [500.0, 10.0], [30.0, 40.0]]])
    target, weights = codec.encode(kp, None)
    assert weights.tolist() == [[1.0, 0.0, 1.0]]
    output = torch.rand(1, 3, 12, 16)
    full = KeypointMSELoss()(output, target, weights)
    keep = [0, 2]
    torch.testing.assert_close(full, KeypointMSELoss()(output[:, keep], target[:, keep]))


def test_simcc_minimum_at_log_label_and_awing_shape():
    label = torch.exp(-((torch.arange(30.0) - 11.3) ** 2) / 8).expand(2, 3, 30)
    logits = label.log() + 5.0
    assert SimCCLoss()((logits, logits), (label, label)).abs() < 1e-5
    assert SimCCLoss()((logits + torch.randn(2, 3, 30), logits), (label, label)) > 1e-3
    # Adaptive Wing: 0 at a perfect prediction, continuous where it turns linear (|d| = theta)
    t = torch.full((1, 1, 1, 2), 0.3)
    assert adaptive_wing_loss(t, t) == 0
    at = adaptive_wing_loss(t - 0.5 + 1e-6, t, reduction="none")
    below = adaptive_wing_loss(t - 0.5 + 2e-6, t, reduction="none")
    torch.testing.assert_close(at, below, atol=1e-3, rtol=0)


def test_modules_compose_and_validate():
    seq = nn.Sequential(KeypointMSELoss(), SimCCLoss())
    assert isinstance(seq[0], nn.Module) and len(seq.state_dict()) == 0
    assert "reduction='mean'" in repr(seq)
    with pytest.raises(ValueError):
        KeypointL1Loss(reduction="avg")
    with pytest.raises(ValueError):
        keypoint_mse_loss(*_heatmap_case(), reduction="batchmean")
    assert "reduction='keypoint_sum'" in repr(KeypointMSELoss("keypoint_sum"))


def test_half_precision_outputs_are_computed_in_float32():
    output, target = _heatmap_case()
    low = output.bfloat16().requires_grad_(True)
    got = KeypointMSELoss()(low, target, WEIGHTS)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, KeypointMSELoss()(low.float(), target, WEIGHTS))
    got.backward()
    assert low.grad.dtype == torch.bfloat16
