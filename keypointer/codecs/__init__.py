"""Keypoint codecs: keypoints <-> training targets, and network outputs -> keypoints.

Conventions, for every codec and every function here:

- keypoints are (x, y) in input-image pixels, with pixel centres at integer coordinates
  (pixel (i, j) covers [i - 0.5, i + 0.5] x [j - 0.5, j + 0.5]);
- arrays are (N, K, 2) for N samples of K keypoints; ``visible`` is (N, K) bool;
- sizes are (width, height); heatmaps are (N, K, h, w).

Every codec is a small frozen dataclass with the :class:`Codec` protocol::

    target, weights = codec.encode(keypoints, visible)   # weights (N, K) float32, 0 = ignore
    keypoints, scores = codec.decode(output)             # (N, K, 2) input pixels, (N, K)
    codec.average_flipped(output, flip_index)            # flip TTA on outputs, or None
    codec.near_ties(output, rel)                         # (N, K) argmax near-ties

Inputs may be numpy arrays or torch tensors; outputs are torch tensors on the input's device.
``encode`` also takes one unbatched sample (K, 2). ``decode`` is pure tensor ops without
data-dependent Python branches, so ``model + decode`` exports to ONNX with a dynamic batch.

- :class:`HeatmapCodec`: Gaussian heatmaps (N, K, h, w); decode by argmax, quarter offset or
  a DARK refinement that stays exact at the border.
- :class:`RegressionCodec`: normalised coordinates (N, K, 2) = (x / W, y / H).
- :class:`SimCCCodec`: 1-D Gaussian labels over x and y bins, a pair ((N, K, Wx), (N, K, Wy)).
- :mod:`keypointer.codecs.centers`: the locator's instance centres (not a keypoint codec).

Which codec a config gets is the head's choice: :func:`keypointer.models.make_codec`.
"""

from __future__ import annotations

from keypointer.codecs.common import ArrayLike
from keypointer.codecs.heatmap import HeatmapCodec, flip_heatmaps_back
from keypointer.codecs.protocol import Codec, Output
from keypointer.codecs.regression import RegressionCodec
from keypointer.codecs.simcc import SimCCCodec

__all__ = [
    "ArrayLike",
    "Codec",
    "HeatmapCodec",
    "Output",
    "RegressionCodec",
    "SimCCCodec",
    "flip_heatmaps_back",
]
