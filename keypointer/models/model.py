"""KeypointModel = timm backbone + head + codec, and :func:`build_model`, the one place a
model is put together from a config (:mod:`keypointer.checkpoint` calls it again to rebuild one)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from keypointer.codecs import make_codec
from keypointer.config import Config
from keypointer.models.backbones import FeatureSpec, create_backbone, probe_features
from keypointer.models.flip import predict_batch
from keypointer.models.heads import HeatmapHead, IntegralHead, RegressionHead, SimCCHead

Output = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class KeypointModel(nn.Module):
    """Images (N, 3, H, W), normalised as the dataset gives them -> keypoints.

    ``forward`` returns the head's raw output (what losses and ``codec.encode`` targets match);
    ``predict`` decodes it to keypoints in input pixels. ``codec`` is a plain frozen object, not a
    module, so it is not part of the state_dict. Images must already be resized/cropped to the
    model's input size; reading and cropping image files is :mod:`keypointer.inference`'s job.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, codec: Any) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.codec = codec
        self.build_info: dict[str, Any] | None = None
        """Set by :func:`build_model`: ``{"num_keypoints": K}`` (checkpoints store the config)."""

    def forward(self, images: torch.Tensor) -> Output:
        return self.head(self.backbone(images))

    def predict(
        self, images: torch.Tensor, flip: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised images (N, 3, H, W) as in training (or one (3, H, W) image) -> keypoints
        (N, K, 2) in input pixels and scores (N, K), as tensors.

        ``flip`` averages with the horizontally flipped input (needs ``self.skeleton``,
        which :func:`keypointer.checkpoint.load_model` sets). Runs in eval mode under
        ``torch.inference_mode``; the caller's mode is restored. Outputs are decoded in float32
        even under autocast. For plain RGB images of any size use
        :class:`keypointer.inference.Predictor` (``keypointer.load``).
        """
        flip_index = self.skeleton.flip_index() if flip else None
        return predict_batch(self, images, flip_index)


HEATMAP_OUTPUT_SCALE = 0.1  # see HeatmapHead: escapes the all-zeros plateau of heatmap MSE


def _heatmap(
    specs: list[FeatureSpec], k: int, cfg: Config, output_scale: float = HEATMAP_OUTPUT_SCALE
) -> nn.Module:
    w, h = cfg.model.input_size
    return HeatmapHead(
        [s.channels for s in specs],
        [s.stride for s in specs],
        k,
        heatmap_size=(w // 4, h // 4),
        channels=cfg.model.head_channels,
        upsample_stages=cfg.model.upsample_stages,
        output_scale=output_scale,
    )


def _regression(specs: list[FeatureSpec], k: int, cfg: Config) -> nn.Module:
    return RegressionHead(specs[-1].channels, k, dropout=cfg.model.dropout)


def _simcc(specs: list[FeatureSpec], k: int, cfg: Config) -> nn.Module:
    return SimCCHead(
        specs[-1].channels,
        specs[-1].size,
        k,
        input_size=cfg.model.input_size,
        split_ratio=cfg.codec.simcc_split_ratio,
        dropout=cfg.model.dropout,
    )


def _integral(specs: list[FeatureSpec], k: int, cfg: Config) -> nn.Module:
    # Soft-argmax logits, not peak-1 maps: no output scaling.
    return IntegralHead(_heatmap(specs, k, cfg, output_scale=1.0), cfg.model.input_size)


_HEADS: dict[str, Callable[[list[FeatureSpec], int, Config], nn.Module]] = {
    "heatmap": _heatmap,
    "regression": _regression,
    "simcc": _simcc,
    "integral": _integral,
}


def build_model(
    cfg: Config, num_keypoints: int, codec: Any = None, *, pretrained: bool | None = None
) -> KeypointModel:
    """Build the model ``cfg.model`` describes for ``num_keypoints`` keypoints.

    The architecture depends only on ``cfg`` and ``num_keypoints``, so a checkpoint's saved
    config rebuilds a model its state_dict fits. ``codec`` None: ``make_codec(cfg)``.
    ``pretrained`` None: ``cfg.model.pretrained``; pass False when weights will be loaded from a
    checkpoint anyway, so nothing is downloaded.
    """
    m = cfg.model
    if num_keypoints < 1:
        raise ValueError(f"num_keypoints must be >= 1, got {num_keypoints}")
    use_pretrained = m.pretrained if pretrained is None else pretrained
    multi_scale = m.head in ("heatmap", "integral")  # FPN-lite: see benchmarks/RESULTS.md
    backbone = create_backbone(m.backbone, use_pretrained, m.out_indices, multi_scale)
    specs = probe_features(backbone, m.input_size)
    head = _HEADS[m.head](specs, num_keypoints, cfg)
    if codec is None:
        codec = make_codec(cfg)
    model = KeypointModel(backbone, head, codec)
    model.build_info = {"num_keypoints": int(num_keypoints)}
    return model
