"""Coordinate regression targets: keypoints normalised by the input size (the seed's u/w, v/h)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from keypointer.codecs.common import ArrayLike, as_float, on_image, prepare_keypoints
from keypointer.codecs.protocol import Output
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

    def encode(
        self, keypoints: ArrayLike, visible: ArrayLike | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
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

    def decode(self, coords: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised (N, K, 2) -> keypoints (N, K, 2) in input pixels, scores (N, K) of ones."""
        c = as_float(coords)
        size = torch.tensor(self.input_size, dtype=c.dtype, device=c.device)
        return c * size, torch.ones_like(c[..., 0])

    def average_flipped(self, output: Output, flip_index: Sequence[int]) -> None:
        """None: flip TTA averages the decoded, mirrored-back coordinates."""
        return None

    def near_ties(self, output: Output, rel: float) -> torch.Tensor:
        """(N, K) all False: coordinates have no argmax to tie."""
        return torch.zeros(as_float(output).shape[:2], dtype=torch.bool)
