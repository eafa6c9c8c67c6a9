"""Running a model and decoding its output, with or without flip test-time augmentation
(tensors in, tensors out).

Shared by ``KeypointModel.predict``, validation, ``keypointer eval``, ``keypointer predict``
and the ONNX export, so all of them decode and flip alike. How outputs of an image and its
mirror image combine is the codec's choice (:meth:`keypointer.codecs.Codec.average_flipped`);
otherwise the decoded keypoints are mirrored back and averaged here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from keypointer.codecs import Codec, Output
from keypointer.tensors import eval_mode, to_float


def decode_batch(
    model: nn.Module, images: torch.Tensor, flip_index: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run and decode ``model`` on normalised images; flip TTA when ``flip_index``.

    With flip TTA the batch and its mirror image run as one batch of 2N (see
    :func:`decode_output`). Pure tensor ops without data-dependent branches (the ONNX export
    traces this). Decodes in float32 even under autocast.

    Args:
        model: a KeypointModel (``model.codec`` decodes its output).
        images: normalised (N, 3, H, W).
        flip_index: the skeleton's flip permutation (K,), or None for no flip TTA.

    Returns:
        Keypoints (N, K, 2) in input pixels and scores (N, K).
    """
    if flip_index is not None:
        images = torch.cat([images, images.flip(-1)])
    return decode_output(model.codec, to_float(model(images)), flip_index)


def predict_batch(
    model: nn.Module, images: torch.Tensor, flip_index: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`decode_batch` in eval mode under ``torch.inference_mode`` (the model's mode is
    restored after).

    Args:
        model: a KeypointModel.
        images: normalised (N, 3, H, W), or one (3, H, W) image.
        flip_index: the flip permutation (K,), or None for no flip TTA.

    Returns:
        Keypoints (N, K, 2) in input pixels and scores (N, K).
    """
    if images.dim() == 3:
        images = images.unsqueeze(0)
    with eval_mode(model), torch.inference_mode():
        return decode_batch(model, images, flip_index)


def decode_output(
    codec: Codec, output: Output, flip_index: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw model output -> keypoints and scores.

    With ``flip_index`` the output is of 2N images, the N originals then their mirror images.
    Codecs whose outputs mirror exactly (UDP heatmaps) average the outputs and decode once
    (:meth:`~keypointer.codecs.Codec.average_flipped`); the others decode both halves and
    average the mirrored-back coordinates and the scores.

    Args:
        codec: the model's codec.
        output: the raw output of N images (2N with ``flip_index``).
        flip_index: the flip permutation (K,), or None.

    Returns:
        Keypoints (N, K, 2) in input pixels and scores (N, K).
    """
    if flip_index is None:
        return codec.decode(output)
    averaged = codec.average_flipped(output, flip_index)
    if averaged is not None:
        return codec.decode(averaged)
    keypoints, scores = codec.decode(output)
    n = keypoints.shape[0] // 2
    mirrored = mirror_back(keypoints[n:], flip_index, codec.input_size[0])
    return (keypoints[:n] + mirrored) * 0.5, (scores[:n] + scores[n:, list(flip_index)]) * 0.5


def mirror_back(keypoints: torch.Tensor, flip_index: Sequence[int], width: int) -> torch.Tensor:
    """Keypoints found in mirror images -> in the originals: channels swapped by ``flip_index``,
    ``x -> width - 1 - x`` (pixel centres at integers).

    Args:
        keypoints: (N, K, 2) input px in the mirror images.
        flip_index: the flip permutation (K,).
        width: the images' width W.

    Returns:
        (N, K, 2) input px in the original images.
    """
    mirrored = keypoints[:, list(flip_index)]
    x = (width - 1) - mirrored[..., 0]
    return torch.stack([x, mirrored[..., 1]], dim=-1)


def flip_gap(codec: Codec, output: Output, flip_index: Sequence[int]) -> torch.Tensor:
    """How much flip TTA disagreed with itself.

    Args:
        codec: the model's codec.
        output: the raw output of 2N images, as for :func:`decode_output`.
        flip_index: the flip permutation (K,).

    Returns:
        (N, K) input pixels between the keypoints decoded from the N originals alone and
        those decoded from their mirror images alone, mirrored back.
    """
    keypoints, _ = codec.decode(output)
    n = keypoints.shape[0] // 2
    back = mirror_back(keypoints[n:], flip_index, codec.input_size[0])
    return torch.linalg.vector_norm(keypoints[:n] - back, dim=-1)


def decode_batch_with_gap(
    model: nn.Module, images: torch.Tensor, flip_index: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`decode_batch` with flip TTA (the very same keypoints and scores: one forward
    pass of 2N images, decoded by :func:`decode_output`), plus :func:`flip_gap`, which
    decodes the two halves once more, separately. Pure tensor ops: the ONNX export with flip
    traces this, so an exported graph flips, and measures the gap, as PyTorch does.

    Args:
        model: a KeypointModel.
        images: normalised (N, 3, H, W).
        flip_index: the flip permutation (K,).

    Returns:
        Keypoints (N, K, 2) in input pixels, scores (N, K), flip gap (N, K) in input pixels.
    """
    output = to_float(model(torch.cat([images, images.flip(-1)])))
    keypoints, scores = decode_output(model.codec, output, flip_index)
    return keypoints, scores, flip_gap(model.codec, output, flip_index)


def predict_batch_with_gap(
    model: nn.Module, images: torch.Tensor, flip_index: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`decode_batch_with_gap` in eval mode under ``torch.inference_mode``.

    Args:
        model: a KeypointModel.
        images: normalised (N, 3, H, W).
        flip_index: the flip permutation (K,).

    Returns:
        Keypoints (N, K, 2) and flip gap (N, K) in input pixels, scores (N, K).
    """
    with eval_mode(model), torch.inference_mode():
        return decode_batch_with_gap(model, images, flip_index)
