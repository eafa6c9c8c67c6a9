"""SimCC targets: one 1-D Gaussian label over x bins and one over y bins per keypoint."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from keypointer.codecs.common import (
    TINY,
    ArrayLike,
    as_float,
    gaussian_1d,
    near_tie,
    on_image,
    prepare_keypoints,
    refine_log_peak,
)
from keypointer.codecs.protocol import Output
from keypointer.errors import ConfigError


@dataclass(frozen=True)
class SimCCCodec:
    """Keypoints (N, K, 2) in input pixels <-> x labels (N, K, Wx) and y labels (N, K, Wy).

    ``Wx = int(W * split_ratio)``, ``Wy = int(H * split_ratio)`` (as the SimCC head). Bin ``b``
    is input coordinate ``b / split_ratio``, so bin 0 is pixel centre 0 and pixel centres stay
    at integers. Labels are ``exp(-(b - x * split_ratio)^2 / (2 sigma^2))``, peak 1 at the
    exact (sub-bin) position, not truncated; ``sigma`` = (sigma_x, sigma_y) is in bins.
    Invisible keypoints and keypoints off the image (outside [-0.5, W - 0.5) x
    [-0.5, H - 0.5)) get all-zero labels and weight 0.

    :meth:`decode` takes the head's logits (trained by :class:`keypointer.losses.SimCCLoss`,
    whose optimum is the log of the label plus a constant); pass ``logits=False`` to decode
    labels themselves. Position: argmax, then with ``refine`` the vertex of a weighted parabola
    fitted to the log-profile around it (exact for a Gaussian, one-sided at the ends).
    Score: for logits, the peak softmax probability times ``sqrt(2 pi) sigma`` (1 for an
    output shaped like the label), clipped to [0, 1]; for labels, the peak value; the smaller
    of the x and y values.
    """

    input_size: tuple[int, int]
    split_ratio: float = 2.0
    sigma: tuple[float, float] = (4.9, 5.66)
    refine: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        object.__setattr__(self, "sigma", tuple(float(s) for s in self.sigma))
        if len(self.input_size) != 2 or min(self.input_size) < 1:
            raise ConfigError(f"SimCCCodec: input_size is (W, H) >= 1, got {self.input_size}")
        if not self.split_ratio > 0 or min(self.bins) < 2:
            raise ConfigError(
                f"SimCCCodec: split_ratio must give >= 2 bins, got {self.split_ratio}"
            )
        if len(self.sigma) != 2 or not min(self.sigma) > 0:
            raise ConfigError(f"SimCCCodec: sigma is (sigma_x, sigma_y) > 0, got {self.sigma}")

    @property
    def bins(self) -> tuple[int, int]:
        """(Wx, Wy): number of x and y bins."""
        w, h = self.input_size
        return int(w * self.split_ratio), int(h * self.split_ratio)  # as the SimCC head

    def encode(
        self, keypoints: ArrayLike, visible: ArrayLike | None = None
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """(N, K, 2) input pixels, (N, K) bool -> ((x (N, K, Wx), y (N, K, Wy)), weights (N, K)).

        A (K, 2) input gives ((K, Wx), (K, Wy)) and (K,).
        """
        kp, visible, unbatched = prepare_keypoints(keypoints, visible)
        valid = visible & on_image(kp, self.input_size)
        keep = valid.unsqueeze(-1)
        mu = torch.where(keep, kp, torch.zeros((), device=kp.device)) * self.split_ratio
        (wx, wy), (sx, sy), zero = self.bins, self.sigma, torch.zeros((), device=kp.device)
        x = torch.where(keep, gaussian_1d(mu[..., 0], wx, sx)[0], zero)
        y = torch.where(keep, gaussian_1d(mu[..., 1], wy, sy)[0], zero)
        weights = valid.float()
        if unbatched:
            return (x[0], y[0]), weights[0]
        return (x, y), weights

    def decode(
        self, output: tuple[ArrayLike, ArrayLike], logits: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x (N, K, Wx), y (N, K, Wy)) -> keypoints (N, K, 2) in input pixels, scores (N, K)."""
        if not isinstance(output, (tuple, list)) or len(output) != 2:
            raise ValueError("SimCC output must be a pair (x (N, K, Wx), y (N, K, Wy))")
        x, sx = self._axis(as_float(output[0]), self.bins[0], self.sigma[0], logits)
        y, sy = self._axis(as_float(output[1]), self.bins[1], self.sigma[1], logits)
        return torch.stack((x, y), dim=-1) / self.split_ratio, torch.minimum(sx, sy)

    def average_flipped(self, output: Output, flip_index: Sequence[int]) -> None:
        """None: flip TTA averages the decoded, mirrored-back coordinates."""
        return None

    def near_ties(self, output: Output, rel: float) -> torch.Tensor:
        """Logits (x (N, K, Wx), y (N, K, Wy)) -> (N, K) bool: a near-tie on either axis."""
        return near_tie(as_float(output[0]), rel) | near_tie(as_float(output[1]), rel)

    def _axis(
        self, v: torch.Tensor, bins: int, sigma: float, logits: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if v.shape[-1] != bins:
            raise ValueError(f"expected {bins} bins on the last axis, got {tuple(v.shape)}")
        peak, idx = v.max(-1)
        if logits:
            z = v
            score = (torch.softmax(v, -1).amax(-1) * (math.sqrt(2 * math.pi) * sigma)).clamp(0, 1)
        else:
            z, score = torch.log(v.clamp(min=TINY)), peak
        if not self.refine:
            return idx.to(v.dtype), score
        radius = max(1, math.ceil(1.5 * sigma))
        valid = None if logits else v > 0
        return refine_log_peak(z, idx, radius, valid), score
