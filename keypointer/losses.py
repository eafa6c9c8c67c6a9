"""Keypoint losses: nn.Modules called as ``loss(output, target, weights)``, with functional twins.

Every loss has an elementwise value (per heatmap pixel, per coordinate, per SimCC bin) and a
per-keypoint value: the mean of that keypoint's elements (MSE, L1, smooth L1, Adaptive Wing),
or for SimCC the KL divergence of x plus that of y (each a sum over bins, as a KL is). The
per-keypoint ``weights`` (N, K) (the codec's; None = all 1) scale every element of their
keypoint. ``reduction``:

- ``"none"``: the weighted per-keypoint losses, shape (N, K) (one value per keypoint, not per
  element, since the weights are per keypoint);
- ``"mean"``: the sum of those divided by the number of labelled keypoints (weight > 0), so an
  unlabelled keypoint never dilutes the loss; 0 (not NaN) when nothing is labelled. With all
  weights 1 this is PyTorch's ``reduction="mean"`` (for SimCC: ``"batchmean"`` over the
  N*K rows of x, plus the same for y);
- ``"sum"``: the sum of the weighted *elementwise* losses. With all weights 1 this is
  PyTorch's ``reduction="sum"``;
- ``"keypoint_sum"``: the sum of the weighted per-keypoint losses (``none.sum()``), i.e.
  "mean" before the division by the labelled count. Training uses it and divides by the
  labelled count of the global batch (see ``keypointer.training.loop.global_mean_loss``).

Which losses a head may train with (``train.loss``) is the head's choice, registered with it:
:func:`keypointer.models.make_loss`.

A keypoint with weight 0 contributes exactly 0 to the value (even if its own loss is not
finite) and to the gradient. Losses are computed in at least float32, so bf16/fp16 outputs of
a mixed-precision model are fine.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Reduction = Literal["none", "sum", "mean", "keypoint_sum"]
REDUCTIONS: tuple[str, ...] = ("none", "sum", "mean", "keypoint_sum")
Pair = tuple[torch.Tensor, torch.Tensor]


def _check(reduction: str) -> Reduction:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction  # type: ignore[return-value]


def weighted_reduce(
    per_keypoint: torch.Tensor, weights: torch.Tensor | None, reduction: Reduction
) -> torch.Tensor:
    """Apply weights (N, K) and ``reduction`` to per-keypoint losses (N, K).

    The values are taken as the elements, so "sum" and "keypoint_sum" agree here; the
    losses below get PyTorch's "sum" from :func:`_reduce_elements`.
    """
    _check(reduction)
    if weights is None:
        w = torch.ones_like(per_keypoint)
    else:
        w = torch.as_tensor(weights, device=per_keypoint.device).to(per_keypoint.dtype)
        w = w.reshape(per_keypoint.shape)
    loss = torch.where(w > 0, per_keypoint * w, torch.zeros_like(per_keypoint))
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction in ("sum", "keypoint_sum"):
        return total
    return total / (w > 0).sum().clamp(min=1).to(total.dtype)


def _f32(output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dtype = torch.promote_types(torch.promote_types(output.dtype, target.dtype), torch.float32)
    return output.to(dtype), target.to(dtype)


def _reduce_elements(
    elementwise: torch.Tensor, weights: torch.Tensor | None, reduction: Reduction
) -> torch.Tensor:
    """Elementwise losses (N, K, ...) -> ``reduction``; per keypoint = mean of its elements."""
    flat = elementwise.flatten(2)
    if _check(reduction) == "sum":  # PyTorch's sum: every element, not every keypoint mean
        return weighted_reduce(flat.sum(-1), weights, "sum")
    return weighted_reduce(flat.mean(-1), weights, reduction)


def keypoint_mse_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Heatmap MSE: per keypoint, the mean over pixels of (output - target)^2, (N, K, h, w)."""
    output, target = _f32(output, target)
    return _reduce_elements(F.mse_loss(output, target, reduction="none"), weights, reduction)


def keypoint_l1_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """L1 on coordinates (N, K, 2) (normalised, as RegressionCodec): mean |error| of x and y."""
    output, target = _f32(output, target)
    return _reduce_elements(F.l1_loss(output, target, reduction="none"), weights, reduction)


def keypoint_smooth_l1_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None = None,
    reduction: Reduction = "mean",
    beta: float = 1.0,
) -> torch.Tensor:
    """Smooth L1 (Huber / beta) on coordinates (N, K, 2), as ``F.smooth_l1_loss``.

    ``beta`` is PyTorch's default 1.0; on normalised coordinates every error is below 1, so
    this is a pure L2. Something like 0.05 (5% of the input) makes it robust to outliers.
    """
    output, target = _f32(output, target)
    elementwise = F.smooth_l1_loss(output, target, reduction="none", beta=beta)
    return _reduce_elements(elementwise, weights, reduction)


def simcc_loss(
    output: Pair,
    target: Pair,
    weights: torch.Tensor | None = None,
    reduction: Reduction = "mean",
    beta: float = 1.0,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """KL divergence between SimCC labels and the softmax of the logits, x plus y per keypoint.

    ``output``: logits (x (N, K, Wx), y (N, K, Wy)); ``target``: SimCCCodec labels, normalised
    here to distributions (the Gaussian label is SimCC's "label smoothing" of a one-hot bin);
    ``label_smoothing`` mixes in that much of the uniform distribution on top, as
    ``nn.CrossEntropyLoss`` does. ``beta`` scales the logits before the softmax (a temperature;
    decode with the same scale). Per keypoint: KL(x) + KL(y), each summed over bins.
    """
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    per_kp = sum(_kl_bins(o, t, beta, label_smoothing) for o, t in zip(output, target, strict=True))
    # per_kp already sums its bins, so "sum" here is the elementwise sum, as in PyTorch
    return weighted_reduce(per_kp, weights, reduction)  # type: ignore[arg-type]


def _kl_bins(logits: torch.Tensor, label: torch.Tensor, beta: float, eps: float) -> torch.Tensor:
    logits, label = _f32(logits, label)
    log_q = F.log_softmax(logits * beta, dim=-1)
    p = label / label.sum(-1, keepdim=True).clamp(min=1e-12)
    if eps > 0:
        p = (1.0 - eps) * p + eps / label.shape[-1]
    return F.kl_div(log_q, p, reduction="none").sum(-1)


def adaptive_wing_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None = None,
    reduction: Reduction = "mean",
    alpha: float = 2.1,
    omega: float = 14.0,
    epsilon: float = 1.0,
    theta: float = 0.5,
) -> torch.Tensor:
    """Adaptive Wing loss on heatmaps (N, K, h, w) (Wang et al., ICCV 2019), mean over pixels.

    ``omega ln(1 + (|d| / epsilon)^(alpha - y))`` for errors |d| < theta, linear beyond, where
    y is the target pixel (in [0, 1]): steep near the foreground, gentle on the background.
    """
    output, target = _f32(output, target)
    delta = (target - output).abs()
    power = alpha - target
    ratio = theta / epsilon
    a = omega / (1.0 + ratio**power) * power * ratio ** (power - 1.0) / epsilon
    c = theta * a - omega * torch.log1p(ratio**power)
    small = omega * torch.log1p((delta / epsilon) ** power)
    elementwise = torch.where(delta < theta, small, a * delta - c)
    return _reduce_elements(elementwise, weights, reduction)


class _KeypointLoss(nn.Module):
    def __init__(self, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.reduction = _check(reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class KeypointMSELoss(_KeypointLoss):
    """Module form of :func:`keypoint_mse_loss`: ``loss(output, target, weights=None)``."""

    def forward(
        self, output: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        return keypoint_mse_loss(output, target, weights, self.reduction)


class KeypointL1Loss(_KeypointLoss):
    """Module form of :func:`keypoint_l1_loss`."""

    def forward(
        self, output: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        return keypoint_l1_loss(output, target, weights, self.reduction)


class KeypointSmoothL1Loss(_KeypointLoss):
    """Module form of :func:`keypoint_smooth_l1_loss`."""

    def __init__(self, reduction: Reduction = "mean", beta: float = 1.0) -> None:
        super().__init__(reduction)
        self.beta = beta

    def forward(
        self, output: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        return keypoint_smooth_l1_loss(output, target, weights, self.reduction, self.beta)


class SimCCLoss(_KeypointLoss):
    """Module form of :func:`simcc_loss`."""

    def __init__(
        self, reduction: Reduction = "mean", beta: float = 1.0, label_smoothing: float = 0.0
    ) -> None:
        super().__init__(reduction)
        self.beta, self.label_smoothing = beta, label_smoothing

    def forward(
        self, output: Pair, target: Pair, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        return simcc_loss(output, target, weights, self.reduction, self.beta, self.label_smoothing)


class AdaptiveWingLoss(_KeypointLoss):
    """Module form of :func:`adaptive_wing_loss`."""

    def __init__(
        self,
        reduction: Reduction = "mean",
        alpha: float = 2.1,
        omega: float = 14.0,
        epsilon: float = 1.0,
        theta: float = 0.5,
    ) -> None:
        super().__init__(reduction)
        self.alpha, self.omega, self.epsilon, self.theta = alpha, omega, epsilon, theta
        if not (epsilon > 0 and theta > 0 and math.isfinite(alpha)):
            raise ValueError("AdaptiveWingLoss: need epsilon > 0 and theta > 0")

    def forward(
        self, output: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        return adaptive_wing_loss(
            output,
            target,
            weights,
            self.reduction,
            self.alpha,
            self.omega,
            self.epsilon,
            self.theta,
        )
