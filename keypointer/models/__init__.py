"""Models: timm backbones, keypoint heads and :class:`KeypointModel`; :func:`build_model`.

- :mod:`.registry`: the head registry (:class:`HeadSpec`, :func:`register_head`), and
  :func:`make_codec` / :func:`make_loss`, which look ``model.head`` up;
- :mod:`.heads`: one module per head kind, each registering itself (imported here, so the
  built-in kinds are registered whenever :mod:`keypointer.models` is);
- :mod:`.model`: :class:`KeypointModel` and :func:`build_model`;
- :mod:`.decode`: running and decoding a batch, with flip TTA;
- :mod:`.backbones`, :mod:`.locator`: timm backbones; the two-stage model's instance locator.
"""

from __future__ import annotations

from keypointer.models.backbones import FeatureSpec, create_backbone, probe_features
from keypointer.models.heads import HeatmapHead, IntegralHead, RegressionHead, SimCCHead
from keypointer.models.model import KeypointModel, build_model
from keypointer.models.registry import (
    HeadSpec,
    head_spec,
    make_codec,
    make_loss,
    register_head,
    registered_heads,
    unregister_head,
)

__all__ = [
    "FeatureSpec",
    "HeadSpec",
    "HeatmapHead",
    "IntegralHead",
    "KeypointModel",
    "RegressionHead",
    "SimCCHead",
    "build_model",
    "create_backbone",
    "head_spec",
    "make_codec",
    "make_loss",
    "probe_features",
    "register_head",
    "registered_heads",
    "unregister_head",
]
