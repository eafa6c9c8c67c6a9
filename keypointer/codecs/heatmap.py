"""Gaussian heatmap targets and their decoding (argmax, quarter offset, border-exact DARK)."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from keypointer.codecs.common import (
    TINY,
    ArrayLike,
    as_float,
    gaussian_1d,
    near_tie,
    prepare_keypoints,
    refine_log_peak,
)
from keypointer.codecs.protocol import Output
from keypointer.errors import ConfigError

Refine = Literal["none", "quarter", "dark"]


@dataclass(frozen=True)
class HeatmapCodec:
    """Keypoints (N, K, 2) in input pixels <-> Gaussian heatmaps (N, K, h, w).

    ``input_size`` and ``heatmap_size`` are (width, height). ``unbiased`` (UDP) maps an input
    coordinate to the heatmap by ``(hm - 1) / (in - 1)``, so the first and last pixel centres
    of both coincide; otherwise by the plain stride ``hm / in``. ``sigma`` is in heatmap pixels.

    ``refine`` picks the sub-pixel step of :meth:`decode`:

    - ``"none"``: the argmax pixel (error up to half a pixel per axis);
    - ``"quarter"``: the argmax moved 0.25 px towards the higher neighbour (inwards at the
      edge, where one neighbour is missing);
    - ``"dark"``: a Newton step on the log of the smoothed heatmap, as DARK, but built to stay
      exact at the border. DARK blurs with a Gaussian, which near the edge mixes in padding and
      shifts the peak, so the usual implementations skip the last 2 px. Here the smoothing
      never crosses the edge: along each axis the heatmap is first summed across the other
      axis with Gaussian weights (a separable Gaussian keeps its exact profile), then a
      weighted parabola is fitted to the log of that profile over a window of
      ``2 ceil(1.5 sigma) + 1`` px around the argmax, shifted inwards at the edge. The vertex
      is exact for a Gaussian anywhere in the map and the fit averages out noise.

    Decoding uses only tensor ops without data-dependent Python branches, so a model followed
    by ``decode`` exports to ONNX. Scores are the heatmap maximum (peak 1 for a target).
    """

    input_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    sigma: float = 2.0
    unbiased: bool = True
    refine: Refine = "dark"

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        object.__setattr__(self, "heatmap_size", tuple(int(v) for v in self.heatmap_size))
        if len(self.input_size) != 2 or len(self.heatmap_size) != 2:
            raise ConfigError("HeatmapCodec: input_size and heatmap_size are (width, height)")
        if min(self.input_size + self.heatmap_size) < 2:
            raise ConfigError(
                f"HeatmapCodec: sizes must be at least 2 px, got input {self.input_size}, "
                f"heatmap {self.heatmap_size}"
            )
        if not self.sigma > 0:
            raise ConfigError(f"HeatmapCodec: sigma must be > 0, got {self.sigma}")
        if self.refine not in ("none", "quarter", "dark"):
            raise ConfigError(
                f"HeatmapCodec: refine must be none|quarter|dark, got {self.refine!r}"
            )

    @property
    def scale(self) -> tuple[float, float]:
        """(sx, sy): heatmap coordinate = input coordinate * s."""
        (iw, ih), (w, h) = self.input_size, self.heatmap_size
        if self.unbiased:
            return (w - 1) / (iw - 1), (h - 1) / (ih - 1)
        return w / iw, h / ih

    def encode(
        self, keypoints: ArrayLike, visible: ArrayLike | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, K, 2) input pixels, (N, K) bool -> heatmaps (N, K, h, w), weights (N, K) float32.

        Separable and batched: two small 1-D Gaussians per keypoint and one broadcast product,
        no loop. Centres are exact, the Gaussian is cut at 3 sigma per axis, peak 1. An
        invisible keypoint, or one whose Gaussian misses the map, gets zeros and weight 0.
        A (K, 2) input gives (K, h, w) and (K,).
        """
        kp, visible, unbatched = prepare_keypoints(keypoints, visible)
        (w, h), radius = self.heatmap_size, 3.0 * self.sigma
        scale, mid, limit, select, grid = _constants(w, h, self.sigma, self.scale, kp.device)
        # Heatmap px; a non-finite coordinate becomes one far off the map, where all is 0.
        c = torch.nan_to_num(kp * scale, nan=-1e4, posinf=-1e4, neginf=-1e4)
        # Some pixel within 3 sigma of the centre along both axes.
        hits = ((c - mid).abs() <= limit).all(-1)
        if radius < 0.5:  # a cut narrower than a pixel can fall between pixel centres
            hits = hits & (torch.ceil(c - radius) <= torch.floor(c + radius)).all(-1)
        valid = visible & hits
        # The x and y profiles side by side, (N, K, w + h), from one small matmul: (centre -
        # pixel) / (sqrt(2) sigma). The exponent is clipped just past the cut because exp is
        # several times slower on large arguments; the cut itself is a threshold on the value
        # (the 3 sigma radius, to rounding).
        n, k = c.shape[:2]
        g = torch.addmm(grid, c.reshape(n * k, 2), select).view(n, k, w + h)
        g.square_().clamp_(max=5.0).neg_().exp_()
        F.threshold_(g, math.exp(-4.5 * (1 + 1e-6) ** 2), 0.0)
        gy = g[..., w:] * valid.unsqueeze(-1)
        heatmaps = gy.unsqueeze(-1) * g[..., :w].unsqueeze(-2)
        weights = valid.float()
        if unbatched:
            return heatmaps[0], weights[0]
        return heatmaps, weights

    def decode(self, heatmaps: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
        """Heatmaps (N, K, h, w) -> keypoints (N, K, 2) in input pixels, scores (N, K).

        A (K, h, w) input gives (K, 2) and (K,). The score is the heatmap's peak, clipped to
        [0, 1] (a trained map can overshoot its peak-1 target slightly), so it reads as the
        confidence DeepLabCut calls likelihood.
        """
        hm = as_float(heatmaps)
        unbatched = hm.dim() == 3
        if unbatched:
            hm = hm.unsqueeze(0)
        w, h = self.heatmap_size
        if hm.dim() != 4 or tuple(hm.shape[-2:]) != (h, w):
            raise ValueError(f"heatmaps must be (N, K, {h}, {w}), got {tuple(hm.shape)}")
        flat = hm.flatten(-2)
        scores, idx = flat.max(-1)
        ix = idx % w
        iy = torch.div(idx, w, rounding_mode="floor")
        if self.refine == "dark":
            x, y = _dark(hm, ix, iy, self.sigma)
        elif self.refine == "quarter":
            x = ix.to(hm.dtype) + 0.25 * _step(flat, idx, ix, 1, w)
            y = iy.to(hm.dtype) + 0.25 * _step(flat, idx, iy, w, h)
        else:
            x, y = ix.to(hm.dtype), iy.to(hm.dtype)
        sx, sy = self.scale
        keypoints = torch.stack((x / sx, y / sy), dim=-1)
        scores = scores.clamp(0.0, 1.0)
        if unbatched:
            return keypoints[0], scores[0]
        return keypoints, scores

    def average_flipped(self, output: Output, flip_index: Sequence[int]) -> torch.Tensor | None:
        """Heatmaps (2N, K, h, w) of N images then their mirror images -> (N, K, h, w): the
        mean of each image's maps and its mirror image's, mirrored back
        (:func:`flip_heatmaps_back`). None for plain-stride codecs, whose maps do not mirror
        exactly (see there): flip TTA then averages decoded coordinates."""
        if not self.unbiased or not isinstance(output, torch.Tensor):
            return None
        n = output.shape[0] // 2
        return (output[:n] + flip_heatmaps_back(output[n:], flip_index)) * 0.5

    def near_ties(self, output: Output, rel: float) -> torch.Tensor:
        """Heatmaps (N, K, h, w) -> (N, K) bool: the two highest pixels within ``2 rel`` of the
        largest magnitude (an argmax float rounding may flip)."""
        return near_tie(as_float(output).flatten(2), rel)


def flip_heatmaps_back(heatmaps: torch.Tensor, flip_index: Sequence[int]) -> torch.Tensor:
    """UDP heatmaps of horizontally flipped inputs -> those of the original inputs.

    Channels are swapped by ``flip_index`` and the maps mirrored. With UDP, input x maps to
    heatmap column ``x (w-1)/(W-1)``, so input mirroring ``x -> W-1-x`` is exactly column
    mirroring ``u -> w-1-u``. (With the plain stride the mirrored map is off by ``1 - w/W``
    columns; re-sampling it is exact inside but wrong within a few columns of the border,
    where the column beyond the edge is missing, so such codecs average decoded coordinates
    instead.)

    Args:
        heatmaps: (N, K, h, w) of the mirror images.
        flip_index: the skeleton's flip permutation (K,).

    Returns:
        (N, K, h, w) maps of the original images.
    """
    return heatmaps[:, list(flip_index)].flip(-1)


@functools.lru_cache(maxsize=32)
def _constants(
    w: int, h: int, sigma: float, scale: tuple[float, float], device: torch.device
) -> tuple[torch.Tensor, ...]:
    """Encode's constants: input -> heatmap scale (2,); middle of the map and the farthest a
    centre may be from it with a pixel still within 3 sigma (2,) each; and for
    ``(centre @ select + grid)`` = (centre - pixel) / (sqrt(2) sigma) side by side for x and y:
    select (2, w + h) and grid (w + h,)."""
    a = math.sqrt(0.5) / sigma
    select = torch.zeros(2, w + h)
    select[0, :w] = a
    select[1, w:] = a
    grid = torch.cat([torch.arange(w), torch.arange(h)]).float() * -a
    mid = torch.tensor([(w - 1) / 2.0, (h - 1) / 2.0])
    limit = mid + 3.0 * sigma
    return tuple(t.to(device) for t in (torch.tensor(scale), mid, limit, select, grid))


def _step(
    flat: torch.Tensor, idx: torch.Tensor, i: torch.Tensor, stride: int, n: int
) -> torch.Tensor:
    """-1, 0 or +1: towards the higher neighbour along one axis; inwards at the edge."""
    last = flat.shape[-1] - 1
    lo = flat.gather(-1, (idx - stride).clamp(min=0).unsqueeze(-1)).squeeze(-1)
    hi = flat.gather(-1, (idx + stride).clamp(max=last).unsqueeze(-1)).squeeze(-1)
    step = torch.sign(hi - lo)
    one = torch.ones_like(step)
    step = torch.where(i <= 0, one, torch.where(i >= n - 1, -one, step))
    return step * float(n > 1)


def _dark(
    hm: torch.Tensor, ix: torch.Tensor, iy: torch.Tensor, sigma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Border-exact DARK (see :class:`HeatmapCodec`): heatmap-pixel x, y (N, K) each."""
    h, w = hm.shape[-2:]
    # Gaussian weights across the other axis (matched to the target) give a low-noise profile
    # along each axis with exactly the Gaussian's shape, whatever the border.
    wy, _ = gaussian_1d(iy.to(hm.dtype), h, sigma)
    wx, _ = gaussian_1d(ix.to(hm.dtype), w, sigma)
    px = torch.matmul(wy.unsqueeze(-2), hm).squeeze(-2)  # (N, K, w)
    py = torch.matmul(hm, wx.unsqueeze(-1)).squeeze(-1)  # (N, K, h)
    radius = max(1, math.ceil(1.5 * sigma))
    x = refine_log_peak(torch.log(px.clamp(min=TINY)), ix, radius, px > 0)
    y = refine_log_peak(torch.log(py.clamp(min=TINY)), iy, radius, py > 0)
    return x, y
