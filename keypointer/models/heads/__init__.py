"""Keypoint heads, one module per head kind, each registering its :class:`HeadSpec`
(:mod:`keypointer.models.registry`): backbone features -> raw outputs its codec decodes.

Every head takes ``features``: a list of (N, C_i, H_i, W_i) tensors, finest first.

- :mod:`.heatmap`: :class:`HeatmapHead`, (N, K, H/4, W/4) heatmap logits (HeatmapCodec).
- :mod:`.regression`: :class:`RegressionHead`, (N, K, 2) sigmoid outputs, normalised
  (x/W, y/H) (RegressionCodec).
- :mod:`.simcc`: :class:`SimCCHead`, x logits (N, K, Wx) and y logits (N, K, Wy) (SimCCCodec).
- :mod:`.integral`: :class:`IntegralHead`, (N, K, 2) normalised (x/W, y/H) from a soft-argmax
  over heatmaps, so it trains against RegressionCodec targets.
"""

from keypointer.models.heads.heatmap import HeatmapHead
from keypointer.models.heads.integral import IntegralHead
from keypointer.models.heads.regression import RegressionHead
from keypointer.models.heads.simcc import SimCCHead

__all__ = ["HeatmapHead", "IntegralHead", "RegressionHead", "SimCCHead"]
