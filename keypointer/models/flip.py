"""Decoding a batch, with or without flip test-time augmentation (tensors in, tensors out).

Shared by ``KeypointModel.predict``, validation, ``keypointer eval``, ``keypointer predict``
and the ONNX export, so all of them flip alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from keypointer._tensors import eval_mode, to_float
from keypointer.codecs import HeatmapCodec


def flip_heatmaps_back(heatmaps: torch.Tensor, flip_index: Sequence[int]) -> torch.Tensor:
    """UDP heatmaps (N, K, h, w) of horizontally flipped inputs -> those of the original inputs.

    Channels are swapped by ``flip_index`` and the maps mirrored. With UDP, input x maps to
    heatmap column ``x (w-1)/(W-1)``, so input mirroring ``x -> W-1-x`` is exactly column
    mirroring ``u -> w-1-u``. (With the plain stride the mirrored map is off by ``1 - w/W``
    columns; re-sampling it is exact inside but wrong within a few columns of the border,
    where the column beyond the edge is missing, so :func:`decode_output` averages decoded
    coordinates for such codecs instead.)
    """
    return heatmaps[:, list(flip_index)].flip(-1)


def decode_batch(
    model: nn.Module, images: torch.Tensor, flip_index: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run and decode ``model`` on normalised images (N, 3, H, W); flip TTA when ``flip_index``.

    With flip TTA the batch and its mirror image run as one batch of 2N (see
    :func:`decode_output`). Pure tensor ops without data-dependent branches (the ONNX export
    traces this). Decodes in float32 even under autocast. Returns keypoints (N, K, 2) in input
    pixels and scores (N, K).
    """
    if flip_index is not None:
        images = torch.cat([images, images.flip(-1)])
    return decode_output(model.codec, to_float(model(images)), flip_index)


def predict_batch(
    model: nn.Module, images: torch.Tensor, flip_index: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`decode_batch` in eval mode under ``torch.inference_mode`` (the model's mode is
    restored after); ``images`` may also be one (3, H, W) image."""
    if images.dim() == 3:
        images = images.unsqueeze(0)
    with eval_mode(model), torch.inference_mode():
        return decode_batch(model, images, flip_index)


def decode_output(
    codec: Any, output: Any, flip_index: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw model output -> keypoints (N, K, 2) input px, scores (N, K).

    With ``flip_index`` the output is of 2N images, the N originals then their mirror
    images. Heatmap heads average the heatmaps (mirrored back, channels swapped) and decode
    once (UDP codecs, where mirroring is exact); other heads and plain-stride heatmaps decode
    both halves and average the mirrored-back coordinates and the scores.
    """
    if flip_index is None:
        return codec.decode(output)
    if flips_heatmaps(codec, output):
        return codec.decode(average_flipped_heatmaps(output, flip_index))
    keypoints, scores = codec.decode(output)
    n = keypoints.shape[0] // 2
    mirrored = mirror_back(keypoints[n:], flip_index, codec.input_size[0])
    return (keypoints[:n] + mirrored) * 0.5, (scores[:n] + scores[n:, list(flip_index)]) * 0.5


def mirror_back(keypoints: torch.Tensor, flip_index: Sequence[int], width: int) -> torch.Tensor:
    """Keypoints (N, K, 2) found in mirror images of width ``width`` -> in the originals:
    channels swapped by ``flip_index``, ``x -> width - 1 - x`` (pixel centres at integers)."""
    mirrored = keypoints[:, list(flip_index)]
    x = (width - 1) - mirrored[..., 0]
    return torch.stack([x, mirrored[..., 1]], dim=-1)


def flip_gap(codec: Any, output: Any, flip_index: Sequence[int]) -> torch.Tensor:
    """(N, K) input pixels between the keypoints decoded from the N originals alone and those
    decoded from their mirror images alone, mirrored back: how much flip TTA disagreed with
    itself. ``output`` is of 2N images, as for :func:`decode_output`."""
    keypoints, _ = codec.decode(output)
    n = keypoints.shape[0] // 2
    back = mirror_back(keypoints[n:], flip_index, codec.input_size[0])
    return torch.linalg.vector_norm(keypoints[:n] - back, dim=-1)


def decode_batch_with_gap(
    model: nn.Module, images: torch.Tensor, flip_index: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`decode_batch` with flip TTA (the very same keypoints and scores: one forward
    pass of 2N images, decoded by :func:`decode_output`), plus :func:`flip_gap` (N, K) in
    input pixels, which decodes the two halves once more, separately.

    ``images`` normalised (N, 3, H, W). Pure tensor ops: the ONNX export with flip traces
    this, so an exported graph flips, and measures the gap, as PyTorch does.
    """
    output = to_float(model(torch.cat([images, images.flip(-1)])))
    keypoints, scores = decode_output(model.codec, output, flip_index)
    return keypoints, scores, flip_gap(model.codec, output, flip_index)


def predict_batch_with_gap(
    model: nn.Module, images: torch.Tensor, flip_index: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`decode_batch_with_gap` in eval mode under ``torch.inference_mode``: keypoints
    (N, K, 2) and flip gap (N, K) in input px, scores (N, K)."""
    with eval_mode(model), torch.inference_mode():
        return decode_batch_with_gap(model, images, flip_index)


def flips_heatmaps(codec: Any, output: Any) -> bool:
    """Whether flip TTA averages heatmaps (UDP heatmap codecs) rather than coordinates."""
    return isinstance(codec, HeatmapCodec) and codec.unbiased and isinstance(output, torch.Tensor)


def average_flipped_heatmaps(heatmaps: torch.Tensor, flip_index: Sequence[int]) -> torch.Tensor:
    """(2N, K, h, w) UDP heatmaps of N images then their mirror images -> (N, K, h, w) mean."""
    n = heatmaps.shape[0] // 2
    return (heatmaps[:n] + flip_heatmaps_back(heatmaps[n:], flip_index)) * 0.5
