"""Keypoint heads: backbone features (list, deepest last) -> raw outputs a codec decodes.

Every head takes ``features``: a list of (N, C_i, H_i, W_i) tensors, finest first.

- :class:`HeatmapHead`: (N, K, H//4, W//4) heatmap logits (HeatmapCodec).
- :class:`RegressionHead`: (N, K, 2) sigmoid outputs, normalised (x/W, y/H) (RegressionCodec).
- :class:`SimCCHead`: tuple of x logits (N, K, Wx) and y logits (N, K, Wy) (SimCCCodec).
- :class:`IntegralHead`: (N, K, 2) normalised (x/W, y/H) from a soft-argmax over heatmaps,
  so it trains against RegressionCodec targets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

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
    """Features -> heatmap logits (N, K, h, w) with (w, h) = ``heatmap_size`` = input // 4.

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
    few hundred steps instead of thousands (measured: PCK@0.05 0.14 -> 0.94 after 340
    steps on the synthetic data), and the maps still decode to scores in [0, 1].
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
            upsample_stages = max(0, round(math.log2(stride / 4)))
        stages = []
        for _ in range(upsample_stages):
            stages.append(_upsample_stage(cin, channels, upsample))
            cin = channels
        self.upsample = nn.Sequential(*stages)
        self.final = nn.Conv2d(cin, num_keypoints, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
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
