"""LocatorModel: finds the instances in a whole image at low resolution (CenterNet-style).

A timm backbone (:mod:`keypointer.models.backbones`), the heatmap head's FPN-lite neck merging
strides 8/16/32 (:class:`~keypointer.models.heads.HeatmapHead`, reused as it is) with
deconvolution up to ``cfg.locator.stride``, and three output maps: a centre logit and the
log width and height (:class:`~keypointer.codecs.centers.CenterCodec` decodes them to boxes).

Tensors in, tensors out: ``forward`` takes normalised images (N, 3, H, W) of the locator's
input size (the whole image letterboxed into it) and returns (N, 3, h, w); ``predict`` returns
boxes (N, k, 4), COCO (x, y, w, h) in input pixels, and scores (N, k), fixed k, exportable.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from keypointer.codecs.centers import CenterCodec, select
from keypointer.config import LOCATOR_SCORE_THRESHOLD, Config
from keypointer.models.backbones import create_backbone, probe_features
from keypointer.models.heads import HeatmapHead
from keypointer.tensors import eval_mode

CENTRE_PRIOR = 0.1
"""Initial centre probability everywhere: CenterNet's bias of -2.19 (focal loss's prior), so
the first steps are not swamped by the loss of ~h*w confident negatives."""

MULTIPLE = 32  # input sides are multiples of the backbone's deepest stride
DEFAULT_SIDE = 256  # the long side when neither the config nor the data says


def locator_input_size(long_side: int, aspect: float = 1.0) -> tuple[int, int]:
    """(width, height) of the locator input: ``long_side`` on the longer axis, the other from
    ``aspect`` = width / height of the images, both rounded to multiples of 32."""
    if not aspect > 0 or not math.isfinite(aspect):
        aspect = 1.0
    long_side = max(MULTIPLE, int(round(long_side / MULTIPLE)) * MULTIPLE)
    short = long_side * min(aspect, 1 / aspect)
    short = max(MULTIPLE, int(round(short / MULTIPLE)) * MULTIPLE)
    return (long_side, short) if aspect >= 1 else (short, long_side)


class LocatorModel(nn.Module):
    """Whole images (N, 3, H, W), normalised as the dataset gives them -> centre and size maps.

    ``forward`` -> (N, 3, h, w): channel 0 the centre logit, 1 and 2 ``log(w / stride)``,
    ``log(h / stride)`` (what :meth:`CenterCodec.encode` targets). ``codec`` is a plain frozen
    object, not part of the state_dict. ``build_info`` (from :func:`build_locator`) holds what a
    checkpoint needs besides the config to rebuild it: the resolved input size.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, codec: CenterCodec) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.codec = codec
        self.max_instances = 20
        self.build_info: dict[str, list[int] | list[float] | float] | None = None
        # How its finds are used, measured on the training labels (keypointer.training):
        # labelled box over keypoint extent (None: no second crop), and the lowest mean
        # keypoint score a located instance keeps.
        self.box_ratio: tuple[float, float] | None = None
        self.min_pose_score = 0.0

    @property
    def input_size(self) -> tuple[int, int]:
        return self.codec.input_size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))

    def decode_topk(self, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw output (N, 3, h, w) -> boxes (N, k, 4) in input px, scores (N, k); float32."""
        output = output.float()
        return self.codec.decode_topk(output[:, :1], output[:, 1:], self.max_instances, True)

    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised images (N, 3, H, W) -> boxes (N, k, 4) COCO in input px, scores (N, k),
        best first, k = ``max_instances``: the graph an ONNX export holds. Runs in eval mode
        under ``torch.inference_mode``; the caller's mode is restored."""
        with eval_mode(self), torch.inference_mode():
            return self.decode_topk(self(images))

    def locate(
        self,
        images: torch.Tensor,
        threshold: float = LOCATOR_SCORE_THRESHOLD,
        nms_iou: float | None = None,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """:meth:`predict`, then per image the boxes (M, 4) and scores (M,) >= ``threshold``
        (and box NMS at ``nms_iou`` when given: :func:`~keypointer.codecs.centers.select`)."""
        return select(*self.predict(images), threshold, nms_iou)

    def init_biases(self, mean_log_size: tuple[float, float] | None = None) -> None:
        """Centre logits start at :data:`CENTRE_PRIOR`; the size maps at ``mean_log_size``
        (the training boxes' mean ``log(side / stride)``) when given, so that the size loss
        starts near its floor instead of at ~log(the typical size)."""
        bias = self.head.final.bias
        with torch.no_grad():
            bias[0] = math.log(CENTRE_PRIOR / (1 - CENTRE_PRIOR))
            if mean_log_size is not None:
                bias[1:] = torch.tensor(mean_log_size, dtype=bias.dtype)


def build_locator(
    cfg: Config,
    input_size: tuple[int, int] | None = None,
    *,
    pretrained: bool | str | None = None,
) -> LocatorModel:
    """The locator ``cfg.locator`` describes, for inputs of ``input_size`` (W, H).

    ``input_size`` None: square, ``locator.input_size`` (or 256) on both sides. The architecture depends
    only on ``cfg.locator`` and ``input_size`` (kept in ``build_info``), so a checkpoint's
    config and build_info rebuild a model its state_dict fits. ``pretrained`` None:
    ``cfg.locator.pretrained``; pass False when the weights come from a checkpoint anyway.
    """
    lc = cfg.locator
    side = lc.input_size or DEFAULT_SIDE
    size = tuple(int(v) for v in (input_size or (side, side)))
    codec = CenterCodec(size, lc.stride, size_region=lc.size_region)  # checks the size
    use_pretrained = lc.pretrained if pretrained is None else pretrained
    backbone = create_backbone(lc.backbone, use_pretrained, None, multi_scale=True)
    specs = probe_features(backbone, size)
    finest = min(s.stride for s in specs)
    head = HeatmapHead(
        [s.channels for s in specs],
        [s.stride for s in specs],
        3,
        heatmap_size=codec.heatmap_size,
        channels=lc.channels,
        upsample_stages=max(0, round(math.log2(finest / lc.stride))),
    )
    model = LocatorModel(backbone, head, codec)
    model.max_instances = lc.max_instances
    model.init_biases()
    model.build_info = {"input_size": list(size)}
    return model
