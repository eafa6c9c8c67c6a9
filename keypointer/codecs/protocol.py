"""What every keypoint codec provides (:class:`Codec`), and the shapes it works with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from keypointer.codecs.common import ArrayLike

Output = torch.Tensor | tuple[torch.Tensor, ...]
"""A head's raw output, a codec's target: one tensor (N, K, ...) or a tuple of them."""


class Codec(Protocol):
    """Keypoints <-> training targets, and network outputs -> keypoints.

    Besides :meth:`encode` and :meth:`decode`, a codec says how flip test-time augmentation
    combines the outputs of images and their mirror images (:meth:`average_flipped`) and where
    its argmax is a near-tie (:meth:`near_ties`, for the ONNX export's check). Both are tensor
    ops without data-dependent Python branches, so they trace into an ONNX graph.
    """

    @property
    def input_size(self) -> tuple[int, int]:
        """(W, H) of the network input, pixels."""
        ...

    def encode(
        self, keypoints: ArrayLike, visible: ArrayLike | None = None
    ) -> tuple[Output, torch.Tensor]:
        """Keypoints (N, K, 2) input px, visible (N, K) bool -> target, weights (N, K) float32
        (0 = ignore). A (K, 2) input gives one unbatched target and (K,) weights."""
        ...

    def decode(self, output: Output) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw output of N images -> keypoints (N, K, 2) in input px, scores (N, K)."""
        ...

    def average_flipped(self, output: Output, flip_index: Sequence[int]) -> Output | None:
        """Output of 2N images (N originals, then their mirror images) -> the output of the N
        originals whose decoding is the flip-TTA result (e.g. mirrored-back heatmaps averaged),
        or None when this codec's outputs cannot be mirrored exactly; then flip TTA averages
        the decoded, mirrored-back keypoints instead."""
        ...

    def near_ties(self, output: Output, rel: float) -> torch.Tensor:
        """(N, K) bool: keypoints whose argmax has a runner-up within ``2 rel`` times the
        largest magnitude (float rounding may pick either); all False without an argmax."""
        ...
