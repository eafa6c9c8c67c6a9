"""Shared helpers of the codecs: input conversion, the 1-D log-parabola peak refinement and
the argmax near-tie test."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import torch

TINY = 1e-10

ArrayLike = torch.Tensor | npt.ArrayLike
"""What codecs take: a tensor, a numpy array or nested lists of numbers."""


def as_float(x: ArrayLike) -> torch.Tensor:
    """A floating tensor of ``x``.

    Args:
        x: a numpy array, nested lists or a tensor, any shape.

    Returns:
        A tensor of the same shape (and device, for a tensor); integer, float16 and bfloat16
        values are widened to float32, other floating dtypes kept.
    """
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if not t.is_floating_point() or t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    return t


def prepare_keypoints(
    keypoints: ArrayLike, visible: ArrayLike | None
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Keypoints and visibility as every codec's ``encode`` takes them.

    Coordinates are not checked here: each codec's range test, False for NaN, decides which
    keypoints are usable, before any coordinate reaches a target.

    Args:
        keypoints: (N, K, 2) input px, or (K, 2) for one sample.
        visible: (N, K) or (K,) bool; None: all visible.

    Returns:
        keypoints (N, K, 2) float32, visible (N, K) bool, and whether the input was one
        unbatched sample.
    """
    kp = as_float(keypoints).float()
    unbatched = kp.dim() == 2
    if unbatched:
        kp = kp.unsqueeze(0)
    if kp.dim() != 3 or kp.shape[-1] != 2:
        raise ValueError(f"keypoints must be (N, K, 2) or (K, 2), got {tuple(kp.shape)}")
    if visible is None:
        return kp, torch.ones(kp.shape[:2], dtype=torch.bool, device=kp.device), unbatched
    vis = torch.as_tensor(np.asarray(visible) if isinstance(visible, list) else visible)
    return kp, vis.to(kp.device).bool().reshape(kp.shape[:2]), unbatched


def on_image(kp: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, K, 2) -> (N, K): inside the image area [-0.5, W - 0.5) x [-0.5, H - 0.5); NaN: False."""
    hi = torch.tensor(size, dtype=kp.dtype, device=kp.device) - 0.5
    return ((kp >= -0.5) & (kp < hi)).all(-1)


def gaussian_1d(
    centre: torch.Tensor, size: int, sigma: float, radius: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sampled 1-D Gaussians, peak 1 at ``centre``: (...,) -> (..., size), and any-nonzero (...,).

    Samples farther than ``radius`` (default: unlimited) from the centre are 0.
    """
    grid = torch.arange(size, dtype=centre.dtype, device=centre.device)
    d = grid - centre.unsqueeze(-1)
    g = torch.exp(d * d * (-0.5 / (sigma * sigma)))
    if radius is None:
        return g, torch.ones(centre.shape, dtype=torch.bool, device=centre.device)
    inside = d.abs() <= radius
    return torch.where(inside, g, torch.zeros((), dtype=g.dtype, device=g.device)), inside.any(-1)


def _fit_parabola(
    z: torch.Tensor, w: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted least squares z ~ a + b t + c t^2 along the last axis, by Cramer's rule.

    A closed form rather than ``torch.linalg.solve`` keeps it ONNX-exportable. Returns (a, b, c,
    ok) with ok False where the fit is singular or not a maximum (c >= 0).
    """
    t2 = t * t
    s0, s1, s2 = w.sum(-1), (w * t).sum(-1), (w * t2).sum(-1)
    s3, s4 = (w * t2 * t).sum(-1), (w * t2 * t2).sum(-1)
    wz = w * z
    r0, r1, r2 = wz.sum(-1), (wz * t).sum(-1), (wz * t2).sum(-1)
    m0, m1, m2 = s2 * s4 - s3 * s3, s1 * s4 - s3 * s2, s1 * s3 - s2 * s2  # cofactors of row 0
    det = s0 * m0 - s1 * m1 + s2 * m2
    da = r0 * m0 - s1 * (r1 * s4 - s3 * r2) + s2 * (r1 * s3 - s2 * r2)
    db = s0 * (r1 * s4 - s3 * r2) - r0 * m1 + s2 * (s1 * r2 - r1 * s2)
    dc = s0 * (s2 * r2 - r1 * s3) - s1 * (s1 * r2 - r1 * s2) + r0 * m2
    ok = (det > 0) & (dc < 0)
    safe = torch.where(ok, det, torch.ones_like(det))
    zero = torch.zeros_like(det)
    return (
        torch.where(ok, da / safe, zero),
        torch.where(ok, db / safe, zero),
        torch.where(ok, dc / safe, -torch.ones_like(det)),
        ok,
    )


def refine_log_peak(
    z: torch.Tensor, peak: torch.Tensor, radius: int, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Sub-sample position of the maximum of 1-D log-profiles z (..., L) near integer ``peak``.

    Fits a parabola to z over the ``2 radius + 1`` samples around the peak, the window shifted
    inwards at the ends (one-sided, never padded), and returns its vertex. For a sampled
    Gaussian, log is an exact parabola, so this is exact up to rounding, at the border too.
    Weights are the squared profile (``exp(2 z)``, i.e. least squares in the linear domain to
    first order: tails, where log is mostly noise, barely count); a second pass reweights with
    the first fit's values so that a noisy low sample cannot pull the fit. Samples where
    ``valid`` (..., L) is False are left out. Returns float (...) positions; where no maximum
    can be fitted, the integer ``peak``.
    """
    n = z.shape[-1]
    span = min(2 * radius + 1, n)
    half = (span - 1) / 2.0
    start = (peak - radius).clamp(min=0, max=n - span)
    pos = torch.arange(n, dtype=z.dtype, device=z.device)
    t = pos - (start.to(z.dtype) + half).unsqueeze(-1)  # centred window: better conditioned
    inwin = t.abs() <= half + 0.25
    if valid is not None:
        inwin = inwin & valid
    zero = torch.zeros_like(z)
    zmax = torch.where(inwin, z, torch.full_like(z, -1e30)).amax(-1, keepdim=True)
    z = torch.where(inwin, z - zmax, zero)
    w1 = torch.where(inwin, torch.exp(2.0 * z), zero)
    a, b, c, ok = _fit_parabola(z, w1, t)
    fit = (a.unsqueeze(-1) + b.unsqueeze(-1) * t + c.unsqueeze(-1) * t * t).clamp(max=1.0)
    refit = inwin & ok.unsqueeze(-1)
    z2 = torch.where(refit, torch.maximum(z, fit + math.log(0.2)), z)
    w2 = torch.where(refit, torch.exp(2.0 * fit), w1)
    _, b, c, ok = _fit_parabola(z2, w2, t)
    # A vertex a little past the window is a centre just off the map: allowed, within reason.
    limit = 2.0 * half + 2.0
    offset = torch.where(ok, -b / (2.0 * c), zero[..., 0]).clamp(-limit, limit)
    centre = start.to(z.dtype) + half + offset
    return torch.where(ok, centre, peak.to(z.dtype))


def near_tie(values: torch.Tensor, rel: float) -> torch.Tensor:
    """Where float rounding may change which of L values is the largest.

    Args:
        values: (N, K, L), e.g. flattened heatmaps or SimCC logits.
        rel: rounding, relative to the largest magnitude.

    Returns:
        (N, K) bool: the two largest values are within ``2 rel`` times the largest magnitude.
    """
    top = values.topk(2, dim=-1).values
    return (top[..., 0] - top[..., 1]) <= 2 * rel * values.abs().amax(-1)
