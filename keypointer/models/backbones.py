"""Feature backbones from timm (``features_only=True``): any timm model name works.

A backbone maps images (N, 3, H, W) to a list of feature maps, one per selected
level, deepest last. :func:`probe_features` tells the heads what they will get.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import timm
import torch
from torch import nn

from keypointer.errors import ConfigError
from keypointer.models.pretrained import create_with_weights

_EXAMPLES = "resnet18, mobilenetv3_large_100, efficientnet_b0, regnetx_002, hrnet_w18_small"
_warned_offline: set[str] = set()  # warn once per backbone name, not once per model built


@dataclass(frozen=True)
class FeatureSpec:
    """One backbone output level: channels, stride and spatial size (w, h) at the probed input."""

    channels: int
    stride: int
    size: tuple[int, int]


def create_backbone(
    name: str,
    pretrained: bool | str = False,
    out_indices: Sequence[int] | None = None,
    multi_scale: bool = False,
) -> nn.Module:
    """Build a timm features-only backbone returning a list of (N, C_i, H_i, W_i) tensors.

    ``out_indices`` picks feature levels (timm's indices, negative allowed). None takes the
    deepest level with stride <= 32, or with ``multi_scale`` the deepest level at each of the
    strides 8, 16 and 32 (what the heatmap head's FPN-lite merges).

    ``pretrained`` True loads ImageNet weights when the machine can fetch them; when it cannot
    (offline, no weights for this model) it warns once per name and starts from random
    weights, so a run never fails for lack of a network. A path loads that local weights file
    (safetensors or a timm/torchvision state dict) and fails clearly when it does not fit.
    """
    if not timm.is_model(name):
        raise ConfigError(f"model.backbone: unknown timm model {name!r}; e.g. {_EXAMPLES}")
    indices = _resolve_indices(name, out_indices, multi_scale)
    if isinstance(pretrained, str):
        return create_with_weights(name, pretrained, features_only=True, out_indices=indices)
    if pretrained:
        try:
            return _create(name, True, indices)
        except Exception as err:  # offline / hub errors have no common base class
            if name not in _warned_offline:
                _warned_offline.add(name)
                warnings.warn(
                    f"could not fetch pretrained weights for {name} (offline?); training from "
                    f"scratch ({type(err).__name__}: {str(err).splitlines()[0][:200]})",
                    stacklevel=2,
                )
    return _create(name, False, indices)


def _create(name: str, pretrained: bool, indices: tuple[int, ...]) -> nn.Module:
    try:
        return timm.create_model(
            name, pretrained=pretrained, features_only=True, out_indices=indices
        )
    except (RuntimeError, ValueError, TypeError, IndexError, AssertionError) as err:
        if pretrained:
            raise
        raise ConfigError(
            f"model.backbone: timm model {name!r} cannot give features: {err}"
        ) from None


def _resolve_indices(
    name: str, out_indices: Sequence[int] | None, multi_scale: bool
) -> tuple[int, ...]:
    """Turn ``out_indices`` into non-negative timm indices, checked against the model's levels."""
    try:
        # A throwaway meta-device build reads the feature levels without allocating weights.
        with torch.device("meta"):
            probe = timm.create_model(name, pretrained=False, features_only=True)
    except Exception as err:
        raise ConfigError(
            f"model.backbone: timm model {name!r} cannot give features: {err}"
        ) from None
    strides = list(probe.feature_info.reduction())
    n = len(strides)
    if out_indices is None:
        deepest = max(i for i, s in enumerate(strides) if s <= 32)
        if not multi_scale:
            return (deepest,)
        by_stride = {s: i for i, s in enumerate(strides) if s in (8, 16, 32)}
        return tuple(sorted(set(by_stride.values()) | {deepest}))
    resolved = []
    for i in out_indices:
        if not -n <= i < n:
            raise ConfigError(
                f"model.out_indices: {i} is out of range for {name} ({n} levels, strides {strides})"
            )
        resolved.append(i % n)
    if len(set(resolved)) != len(resolved):
        raise ConfigError(f"model.out_indices: repeated level in {tuple(out_indices)}")
    return tuple(sorted(resolved))


def probe_features(backbone: nn.Module, input_size: tuple[int, int]) -> list[FeatureSpec]:
    """Run one dummy image of ``input_size`` (W, H) through the backbone to learn its outputs.

    Uses eval mode and no_grad so BatchNorm statistics are untouched; the training flag is
    restored afterwards.
    """
    w, h = input_size
    was_training = backbone.training
    device = next(backbone.parameters()).device
    backbone.eval()
    try:
        with torch.no_grad():
            feats = backbone(torch.zeros(1, 3, h, w, device=device))
    except Exception as err:  # e.g. a ViT with a fixed image size
        raise ConfigError(
            f"model.input_size: backbone cannot take a {w}x{h} input: {type(err).__name__}: {err}"
        ) from None
    finally:
        backbone.train(was_training)
    strides = backbone.feature_info.reduction()
    return [
        FeatureSpec(int(f.shape[1]), int(s), (int(f.shape[-1]), int(f.shape[-2])))
        for f, s in zip(feats, strides, strict=True)
    ]
