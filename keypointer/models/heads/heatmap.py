"""The heatmap head kind: :class:`HeatmapHead` -> (N, K, H/4, W/4) Gaussian heatmaps,
decoded by :class:`~keypointer.codecs.HeatmapCodec`, trained with MSE (or Adaptive Wing).
Flip TTA averages the mirrored-back maps (UDP codecs)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from keypointer.codecs import HeatmapCodec
from keypointer.config import HEATMAP_STRIDE, Config
from keypointer.losses import AdaptiveWingLoss, KeypointMSELoss
from keypointer.models.backbones import FeatureSpec
from keypointer.models.registry import HeadSpec, register_head

Upsample = Literal["deconv", "bilinear"]


def _upsample_stage(cin: int, cout: int, mode: Upsample) -> nn.Sequential:
    """One x2 upsampling stage: deconv 4x4/2 (SimpleBaseline) or bilinear x2 + 3x3 conv."""
    if mode == "deconv":
        conv: list[nn.Module] = [nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False)]
    else:
        conv = [
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        ]
    return nn.Sequential(*conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class HeatmapHead(nn.Module):
    """Features -> heatmap logits (N, K, h, w) with (w, h) = ``heatmap_size`` = input //
    ``HEATMAP_STRIDE``.

    With one feature level this is SimpleBaseline: x2 upsampling stages from the feature's
    stride to stride 4, then a 1x1 conv to K maps. With several levels an FPN-lite top-down
    pass (1x1 laterals, nearest x2 + add, 3x3 smoothing conv) first merges them at the finest
    level's stride, which keeps fine position detail that small inputs lose at stride 32.

    ``upsample_stages`` None: as many as reach stride 4 from the (finest) feature's stride.
    When the result is not exactly ``heatmap_size`` (input not a multiple of the stride) it is
    cropped at the bottom/right, or resized up if too small, so pixel (i, j) stays at ~4x input.

    ``output_scale`` multiplies the maps by a constant. With 0.1, learning peak-1 targets
    is the same problem, for Adam (invariant to loss scale), as learning peak-10 targets:
    a model from scratch leaves the "predict all zeros" plateau of heatmap MSE within a
    few hundred steps instead of thousands, and the maps still decode to scores in [0, 1]
    (measured: benchmarks/RESULTS.md, Default backbone).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        num_keypoints: int,
        heatmap_size: tuple[int, int],
        channels: int = 128,
        upsample_stages: int | None = None,
        upsample: Upsample = "deconv",
        output_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        self.output_scale = float(output_scale)
        self.laterals = nn.ModuleList()
        self.smooth: nn.Module = nn.Identity()
        cin = int(in_channels[-1])
        if len(in_channels) > 1:
            self.laterals = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
            self.smooth = nn.Sequential(
                nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            )
            cin = channels
        stride = min(in_strides)
        if upsample_stages is None:
            upsample_stages = max(0, round(math.log2(stride / HEATMAP_STRIDE)))
        stages = []
        for _ in range(upsample_stages):
            stages.append(_upsample_stage(cin, channels, upsample))
            cin = channels
        self.upsample = nn.Sequential(*stages)
        self.final = nn.Conv2d(cin, num_keypoints, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Features (N, C_i, H_i, W_i), finest first -> heatmap logits (N, K, h, w)."""
        x = self._merge(features) if len(self.laterals) else features[-1]
        x = self.final(self.upsample(x))
        if self.output_scale != 1.0:
            x = x * self.output_scale
        return _fit(x, self.heatmap_size)

    def _merge(self, features: list[torch.Tensor]) -> torch.Tensor:
        feats = features[-len(self.laterals) :]
        x = self.laterals[-1](feats[-1])
        for lateral, f in zip(self.laterals[-2::-1], feats[-2::-1], strict=True):
            x = F.interpolate(x, size=f.shape[-2:], mode="nearest") + lateral(f)
        return self.smooth(x)


def _fit(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop (N, K, h', w') to (w, h) = ``size``, or resize when it is smaller."""
    w, h = size
    if x.shape[-1] < w or x.shape[-2] < h:
        return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    if x.shape[-1] != w or x.shape[-2] != h:
        x = x[..., :h, :w]
    return x


HEATMAP_OUTPUT_SCALE = 0.1  # see HeatmapHead: escapes the all-zeros plateau of heatmap MSE


def heatmap_size(cfg: Config) -> tuple[int, int]:
    """The heatmap size of a config.

    Args:
        cfg: the run's config (``model.input_size``).

    Returns:
        (w, h) = input size // ``HEATMAP_STRIDE``.
    """
    w, h = cfg.model.input_size
    return w // HEATMAP_STRIDE, h // HEATMAP_STRIDE


def build_heatmap_head(
    specs: Sequence[FeatureSpec],
    num_keypoints: int,
    cfg: Config,
    output_scale: float = HEATMAP_OUTPUT_SCALE,
) -> HeatmapHead:
    """The :class:`HeatmapHead` of ``cfg.model`` over the backbone levels ``specs``.

    Args:
        specs: the backbone's feature levels, finest first.
        num_keypoints: K, the maps it outputs.
        cfg: the run's config (``model.head_channels``, ``model.upsample_stages``).
        output_scale: see :class:`HeatmapHead`.

    Returns:
        The head: features -> (N, K, h, w) with (w, h) = :func:`heatmap_size`.
    """
    return HeatmapHead(
        in_channels=[s.channels for s in specs],
        in_strides=[s.stride for s in specs],
        num_keypoints=num_keypoints,
        heatmap_size=heatmap_size(cfg),
        channels=cfg.model.head_channels,
        upsample_stages=cfg.model.upsample_stages,
        output_scale=output_scale,
    )


def heatmap_codec(cfg: Config) -> HeatmapCodec:
    """The heatmap head's codec.

    Args:
        cfg: the run's config (``model.input_size``, ``codec``).

    Returns:
        HeatmapCodec of :func:`heatmap_size` and ``cfg.codec``'s sigma, unbiased and refine.
    """
    c = cfg.codec
    return HeatmapCodec(
        input_size=tuple(cfg.model.input_size),
        heatmap_size=heatmap_size(cfg),
        sigma=c.sigma,
        unbiased=c.unbiased,
        refine=c.refine,
    )


HEATMAP = register_head(
    HeadSpec(
        name="heatmap",
        build=build_heatmap_head,
        make_codec=heatmap_codec,
        losses={"auto": KeypointMSELoss, "mse": KeypointMSELoss, "awing": AdaptiveWingLoss},
        multi_scale=True,  # FPN-lite: see benchmarks/RESULTS.md
    )
)
