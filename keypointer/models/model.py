"""KeypointModel = timm backbone + head + codec, and :func:`build_model`, the one place a
model is put together from a config (:mod:`keypointer.checkpoint` calls it again to rebuild one).
The head kind comes from the registry (:mod:`keypointer.models.registry`)."""

from __future__ import annotations

import torch
from torch import nn

from keypointer.codecs import Codec, Output
from keypointer.config import Config
from keypointer.models.backbones import create_backbone, probe_features
from keypointer.models.decode import predict_batch
from keypointer.models.registry import head_spec


class KeypointModel(nn.Module):
    """Images (N, 3, H, W), normalised as the dataset gives them -> keypoints.

    ``forward`` returns the head's raw output (what losses and ``codec.encode`` targets match);
    ``predict`` decodes it to keypoints in input pixels. ``codec`` is a plain frozen object, not a
    module, so it is not part of the state_dict. Images must already be resized/cropped to the
    model's input size; reading and cropping image files is :mod:`keypointer.inference`'s job.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, codec: Codec) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.codec = codec
        self.build_info: dict[str, int] | None = None
        """Set by :func:`build_model`: ``{"num_keypoints": K}`` (checkpoints store the config)."""

    def forward(self, images: torch.Tensor) -> Output:
        """Normalised images (N, 3, H, W) -> the head's raw output (what its codec decodes)."""
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


def build_model(
    cfg: Config,
    num_keypoints: int,
    codec: Codec | None = None,
    *,
    pretrained: bool | None = None,
) -> KeypointModel:
    """Build the model ``cfg.model`` describes for ``num_keypoints`` keypoints.

    The architecture depends only on ``cfg`` and ``num_keypoints``, so a checkpoint's saved
    config rebuilds a model its state_dict fits.

    Args:
        cfg: the config; ``cfg.model.head`` names a registered head (else ConfigError).
        num_keypoints: K >= 1.
        codec: the codec to attach; None: the head's (``make_codec(cfg)``).
        pretrained: None: ``cfg.model.pretrained``; pass False when weights will be loaded
            from a checkpoint anyway, so nothing is downloaded.

    Returns:
        The model, ``build_info`` set to ``{"num_keypoints": K}``.
    """
    m = cfg.model
    if num_keypoints < 1:
        raise ValueError(f"num_keypoints must be >= 1, got {num_keypoints}")
    spec = head_spec(m.head)
    use_pretrained = m.pretrained if pretrained is None else pretrained
    backbone = create_backbone(m.backbone, use_pretrained, m.out_indices, spec.multi_scale)
    specs = probe_features(backbone, m.input_size)
    head = spec.build(specs, num_keypoints, cfg)
    if codec is None:
        codec = spec.make_codec(cfg)
    model = KeypointModel(backbone, head, codec)
    model.build_info = {"num_keypoints": int(num_keypoints)}
    return model
