"""Keypoint codecs: keypoints <-> training targets, and network outputs -> keypoints.

Conventions, for every codec and every function here:

- keypoints are (x, y) in input-image pixels, with pixel centres at integer coordinates
  (pixel (i, j) covers [i - 0.5, i + 0.5] x [j - 0.5, j + 0.5]);
- arrays are (N, K, 2) for N samples of K keypoints; ``visible`` is (N, K) bool;
- sizes are (width, height); heatmaps are (N, K, h, w).

Every codec is a small frozen dataclass with the same protocol::

    target, weights = codec.encode(keypoints, visible)   # weights (N, K) float32, 0 = ignore
    keypoints, scores = codec.decode(output)             # (N, K, 2) input pixels, (N, K)

Inputs may be numpy arrays or torch tensors; outputs are torch tensors on the input's device.
``encode`` also takes one unbatched sample (K, 2). ``decode`` is pure tensor ops without
data-dependent Python branches, so ``model + decode`` exports to ONNX with a dynamic batch.

- :class:`HeatmapCodec`: Gaussian heatmaps (N, K, h, w); decode by argmax, quarter offset or
  a DARK refinement that stays exact at the border.
- :class:`RegressionCodec`: normalised coordinates (N, K, 2) = (x / W, y / H).
- :class:`SimCCCodec`: 1-D Gaussian labels over x and y bins, a pair ((N, K, Wx), (N, K, Wy)).
- :mod:`keypointer.codecs.seed`: the seed notes' ``gaussian_kernel``, ``gaussian_heatmap``
  and ``all_keypoints_heatmap``, corrected (sub-pixel centres, max-merge, even sizes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keypointer.codecs.heatmap import HeatmapCodec
from keypointer.codecs.regression import RegressionCodec
from keypointer.codecs.seed import all_keypoints_heatmap, gaussian_heatmap, gaussian_kernel
from keypointer.codecs.simcc import SimCCCodec
from keypointer.errors import ConfigError

if TYPE_CHECKING:
    from keypointer.config import Config

Codec = HeatmapCodec | RegressionCodec | SimCCCodec

__all__ = [
    "Codec",
    "HeatmapCodec",
    "RegressionCodec",
    "SimCCCodec",
    "all_keypoints_heatmap",
    "gaussian_heatmap",
    "gaussian_kernel",
    "make_codec",
]


def make_codec(cfg: Config) -> Codec:
    """The codec for ``cfg.model.head``, the one place codecs are built from a config.

    heatmap: HeatmapCodec with heatmap size input // 4 and ``cfg.codec`` sigma/unbiased/refine;
    regression and integral (a soft-argmax head trained on coordinates): RegressionCodec;
    simcc: SimCCCodec with ``cfg.codec.simcc_split_ratio`` and ``simcc_sigma``.
    """
    head, size, c = cfg.model.head, tuple(cfg.model.input_size), cfg.codec
    if head == "heatmap":
        hm_size = (size[0] // 4, size[1] // 4)
        return HeatmapCodec(size, hm_size, c.sigma, c.unbiased, c.refine)
    if head in ("regression", "integral"):
        return RegressionCodec(size)
    if head == "simcc":
        return SimCCCodec(size, c.simcc_split_ratio, tuple(c.simcc_sigma))
    raise ConfigError(f"model.head: no codec for {head!r} (heatmap, regression, simcc, integral)")
