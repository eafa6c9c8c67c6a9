"""The integral head kind: :class:`IntegralHead`, a heatmap head with a soft-argmax on top ->
(N, K, 2) normalised coordinates, so it trains and decodes as a regression head
(:class:`~keypointer.codecs.RegressionCodec`, L1 or smooth L1) on multi-scale features."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from keypointer.config import Config
from keypointer.models.backbones import FeatureSpec
from keypointer.models.heads.heatmap import HeatmapHead, build_heatmap_head
from keypointer.models.heads.regression import COORDINATE_LOSSES, regression_codec
from keypointer.models.registry import HeadSpec, register_head


class IntegralHead(nn.Module):
    """Heatmap head + soft-argmax: (N, K, 2) normalised (x/W, y/H), differentiable end to end.

    The expected heatmap position maps to input pixels with the UDP rule
    ``x_in = x_hm * (W - 1) / (w - 1)`` (pixel centres at integers), then divides by (W, H)
    as RegressionCodec does. ``beta`` sharpens the softmax; ``learn_beta`` makes it trainable.
    """

    def __init__(
        self,
        heatmap_head: HeatmapHead,
        input_size: tuple[int, int],
        beta: float = 1.0,
        learn_beta: bool = False,
    ) -> None:
        super().__init__()
        self.heatmap = heatmap_head
        w, h = heatmap_head.heatmap_size
        iw, ih = input_size
        # Heatmap px -> normalised input coordinate, one scale per axis.
        scale = torch.tensor(
            [(iw - 1) / max(w - 1, 1) / iw, (ih - 1) / max(h - 1, 1) / ih], dtype=torch.float32
        )
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("xs", torch.arange(w, dtype=torch.float32), persistent=False)
        self.register_buffer("ys", torch.arange(h, dtype=torch.float32), persistent=False)
        self.beta = nn.Parameter(torch.tensor(float(beta)), requires_grad=learn_beta)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        hm = self.heatmap(features).float()  # softmax in fp32 even under autocast
        n, k, h, w = hm.shape
        prob = torch.softmax(hm.reshape(n, k, h * w) * self.beta, dim=-1).reshape(n, k, h, w)
        x = (prob.sum(dim=2) * self.xs).sum(dim=-1)
        y = (prob.sum(dim=3) * self.ys).sum(dim=-1)
        return torch.stack((x, y), dim=-1) * self.scale


def build_integral_head(
    specs: Sequence[FeatureSpec], num_keypoints: int, cfg: Config
) -> IntegralHead:
    """The integral head of a config: a soft-argmax over the heatmap head's maps (logits, not
    peak-1 maps: no output scaling).

    Args:
        specs: the backbone's feature levels, finest first.
        num_keypoints: K.
        cfg: the run's config (as for the heatmap head).

    Returns:
        An :class:`IntegralHead`: features -> (N, K, 2) normalised coordinates.
    """
    heatmaps = build_heatmap_head(specs, num_keypoints, cfg, output_scale=1.0)
    return IntegralHead(heatmaps, cfg.model.input_size)


INTEGRAL = register_head(
    HeadSpec(
        name="integral",
        build=build_integral_head,
        make_codec=regression_codec,
        losses=COORDINATE_LOSSES,
        multi_scale=True,
    )
)
