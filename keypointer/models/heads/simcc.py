"""The SimCC head kind: :class:`SimCCHead` -> x and y logits over 1-D bins, decoded by
:class:`~keypointer.codecs.SimCCCodec`, trained with a KL divergence. Flip TTA averages the
decoded, mirrored-back coordinates."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from keypointer.codecs import SimCCCodec
from keypointer.config import Config
from keypointer.losses import SimCCLoss
from keypointer.models.backbones import FeatureSpec
from keypointer.models.registry import HeadSpec, register_head


class SimCCHead(nn.Module):
    """Deepest feature -> 1x1 conv to K maps -> flatten -> two linears (RTMPose-style, simple).

    Returns ``(x_logits (N, K, Wx), y_logits (N, K, Wy))`` with ``Wx = int(W * split_ratio)``,
    ``Wy = int(H * split_ratio)``. ``feature_size`` is the deepest feature's (w, h) at the
    model's input size; the linears are sized for it, so the input size is fixed.
    """

    def __init__(
        self,
        in_channels: int,
        feature_size: tuple[int, int],
        num_keypoints: int,
        input_size: tuple[int, int],
        split_ratio: float = 2.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        fw, fh = feature_size
        self.conv = nn.Conv2d(in_channels, num_keypoints, 1)
        self.dropout = nn.Dropout(dropout)
        self.fc_x = nn.Linear(fw * fh, int(input_size[0] * split_ratio))
        self.fc_y = nn.Linear(fw * fh, int(input_size[1] * split_ratio))

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.dropout(torch.flatten(self.conv(features[-1]), 2))
        return self.fc_x(x), self.fc_y(x)


def simcc_codec(cfg: Config) -> SimCCCodec:
    """The SimCC head's codec.

    Args:
        cfg: the run's config (``model.input_size``, ``codec.simcc_split_ratio``,
            ``codec.simcc_sigma``).

    Returns:
        SimCCCodec of those.
    """
    c = cfg.codec
    return SimCCCodec(
        tuple(cfg.model.input_size), split_ratio=c.simcc_split_ratio, sigma=tuple(c.simcc_sigma)
    )


def build_simcc_head(specs: Sequence[FeatureSpec], num_keypoints: int, cfg: Config) -> SimCCHead:
    """The SimCC head of a config.

    Args:
        specs: the backbone's feature levels, finest first.
        num_keypoints: K.
        cfg: the run's config (input size, split ratio, dropout).

    Returns:
        A :class:`SimCCHead` over the deepest level, sized for the input: features ->
        (x (N, K, Wx), y (N, K, Wy)).
    """
    return SimCCHead(
        specs[-1].channels,
        specs[-1].size,
        num_keypoints,
        input_size=cfg.model.input_size,
        split_ratio=cfg.codec.simcc_split_ratio,
        dropout=cfg.model.dropout,
    )


SIMCC = register_head(
    HeadSpec(
        name="simcc", build=build_simcc_head, make_codec=simcc_codec, losses={"auto": SimCCLoss}
    )
)
