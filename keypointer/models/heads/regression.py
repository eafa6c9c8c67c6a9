"""The regression head kind: :class:`RegressionHead` -> (N, K, 2) normalised coordinates,
decoded by :class:`~keypointer.codecs.RegressionCodec`, trained with L1 (or smooth L1). Flip TTA
averages the decoded, mirrored-back coordinates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from keypointer.codecs import RegressionCodec
from keypointer.config import Config
from keypointer.losses import KeypointL1Loss, KeypointSmoothL1Loss
from keypointer.models.backbones import FeatureSpec
from keypointer.models.registry import HeadSpec, LossMaker, register_head


class RegressionHead(nn.Module):
    """Deepest feature -> global average pool -> dropout -> linear -> sigmoid -> (N, K, 2).

    Outputs are normalised coordinates (x/W, y/H) as RegressionCodec encodes them.
    """

    def __init__(self, in_channels: int, num_keypoints: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_keypoints = num_keypoints
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels, 2 * num_keypoints)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.dropout(torch.flatten(self.pool(features[-1]), 1))
        return torch.sigmoid(self.fc(x)).view(-1, self.num_keypoints, 2)


COORDINATE_LOSSES: Mapping[str, LossMaker] = {
    "auto": KeypointL1Loss,
    "l1": KeypointL1Loss,
    "smooth_l1": KeypointSmoothL1Loss,
}
"""The losses of heads trained on normalised coordinates (regression, integral)."""


def regression_codec(cfg: Config) -> RegressionCodec:
    """The codec of heads trained on normalised coordinates.

    Args:
        cfg: the run's config (``model.input_size``).

    Returns:
        RegressionCodec of the input size.
    """
    return RegressionCodec(tuple(cfg.model.input_size))


def build_regression_head(
    specs: Sequence[FeatureSpec], num_keypoints: int, cfg: Config
) -> RegressionHead:
    """The regression head of a config.

    Args:
        specs: the backbone's feature levels, finest first.
        num_keypoints: K.
        cfg: the run's config (``model.dropout``).

    Returns:
        A :class:`RegressionHead` over the deepest level: features -> (N, K, 2).
    """
    return RegressionHead(specs[-1].channels, num_keypoints, dropout=cfg.model.dropout)


REGRESSION = register_head(
    HeadSpec(
        name="regression",
        build=build_regression_head,
        make_codec=regression_codec,
        losses=COORDINATE_LOSSES,
    )
)
