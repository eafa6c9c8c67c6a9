"""Models: timm backbones, keypoint heads and :class:`KeypointModel`; :func:`build_model`."""

from __future__ import annotations

from keypointer.models.backbones import FeatureSpec, create_backbone, probe_features
from keypointer.models.heads import HeatmapHead, IntegralHead, RegressionHead, SimCCHead
from keypointer.models.model import KeypointModel, build_model

__all__ = [
    "FeatureSpec",
    "HeatmapHead",
    "IntegralHead",
    "KeypointModel",
    "RegressionHead",
    "SimCCHead",
    "build_model",
    "create_backbone",
    "probe_features",
]
