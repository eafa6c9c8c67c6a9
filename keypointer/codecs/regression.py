"""Coordinate regression targets: keypoints normalised by the input size (the seed's u/w, v/h)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from keypointer.codecs._common import as_float, on_image, prepare_keypoints
from keypointer.errors import ConfigError


@dataclass(frozen=True)
class RegressionCodec:
    """Keypoints (N, K, 2) in input pixels <-> normalised coordinates (x / W, y / H).

    ``input_size`` is (W, H). Pixel centres are at integers, so pixel centres map into
    [0, (W - 1) / W] x [0, (H - 1) / H], inside [0, 1]. Invisible keypoints and keypoints off
    the image (outside its area [-0.5, W - 0.5) x [-0.5, H - 0.5), the dataset's rule) get
    weight 0 and a 0 target.
    Regression has no confidence: decoded scores are all 1.
    """

    input_size: tuple[int, int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        if len(self.input_size) != 2 or min(self.input_size) < 1:
            raise ConfigError(f"RegressionCodec: input_size is (W, H) >= 1, got {self.input_size}")

    def encode(self, keypoints: Any, visible: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, K, 2) input pixels, (N, K) bool -> targets (N, K, 2), weights (N, K) float32.

        A (K, 2) input gives (K, 2) and (K,).
        """
        kp, visible, unbatched = prepare_keypoints(keypoints, visible)
        valid = visible & on_image(kp, self.input_size)
        size = torch.tensor(self.input_size, dtype=kp.dtype, device=kp.device)
        targets = torch.where(valid.unsqueeze(-1), kp / size, torch.zeros((), device=kp.device))
        weights = valid.float()
        if unbatched:
            return targets[0], weights[0]
        return targets, weights

    def decode(self, coords: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised (N, K, 2) -> keypoints (N, K, 2) in input pixels, scores (N, K) of ones."""
        c = as_float(coords)
        size = torch.tensor(self.input_size, dtype=c.dtype, device=c.device)
        return c * size, torch.ones_like(c[..., 0])
