"""Runners: a KeypointModel (PyTorch) or an exported ONNX file behind one call, uint8 crops in,
keypoints in crop pixels out; and on top of them keypoints in the pixels of whole images or
boxes (:func:`predict_image`) and of a stream of frames (:func:`predict_frames`).

A runner is called as ``runner(crops (N, H, W, 3) uint8, flip) -> keypoints (N, K, 2) input px,
scores (N, K)`` (numpy) and has ``skeleton``, ``input_size`` and ``margin``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from keypointer.checkpoint import load_model
from keypointer.config import BOX_MARGIN
from keypointer.data import transforms as T
from keypointer.export.onnx_model import OnnxModel
from keypointer.inference.crops import make_crops
from keypointer.models.flip import predict_batch
from keypointer.skeleton import Skeleton


class TorchRunner:
    """Runs a :class:`~keypointer.models.model.KeypointModel` on uint8 crops."""

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu"):
        self.model = model
        self.device = torch.device(device)
        self.skeleton = getattr(model, "skeleton", None)
        if self.skeleton is None:  # a model from build_model: no names, no flip pairs
            k = (model.build_info or {}).get("num_keypoints", 0)
            self.skeleton = Skeleton(tuple(f"keypoint{i}" for i in range(k)))
        self.input_size = tuple(model.codec.input_size)
        cfg = getattr(model, "config", None)
        self.margin = cfg.augment.box_margin if cfg is not None else BOX_MARGIN

    def __call__(self, crops: np.ndarray, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Crops (N, H, W, 3) uint8 RGB -> keypoints (N, K, 2) input px, scores (N, K)."""
        x = torch.from_numpy(np.stack([T.to_chw_normalized(c) for c in crops]))
        flip_index = self.skeleton.flip_index() if flip else None
        kp, scores = predict_batch(self.model, x.to(self.device), flip_index)
        return kp.float().cpu().numpy(), scores.float().cpu().numpy()


def load_runner(path: str | Path, device: str | torch.device = "cpu") -> Any:
    """A runner for a checkpoint (``.pt`` or run folder) or an exported ``.onnx`` file."""
    if Path(path).suffix.lower() == ".onnx":
        return OnnxModel(path)
    return TorchRunner(load_model(path, device), device)


def as_runner(model: Any) -> Any:
    if isinstance(model, nn.Module):
        return TorchRunner(model, next(model.parameters()).device)
    return model  # an OnnxModel or TorchRunner already


def predict_image(
    model: Any,
    images: np.ndarray | Sequence[np.ndarray],
    boxes: Sequence[Sequence[float]] | None = None,
    flip: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints in the pixels of RGB uint8 images of any size.

    ``model``: a KeypointModel (with ``.skeleton``, as :func:`keypointer.load` gives),
    an :class:`~keypointer.export.OnnxModel` or a runner. ``images``: one (H, W, 3) array, or a
    list of them (sizes may differ). Each image is letterboxed whole into the input, or, with
    ``boxes`` (one image only), cropped to each COCO (x, y, w, h) box.

    Returns:
        one image: (K, 2) keypoints and (K,) scores (with boxes: (M, K, 2) and (M, K));
        a list: (N, K, 2) and (N, K).
    """
    runner = as_runner(model)
    single = isinstance(images, np.ndarray) and images.ndim == 3
    batch = [images] if single else list(images)
    if boxes is not None and not single:
        raise ValueError("boxes are for one image; call once per image")
    crops, mats = zip(
        *(make_crops(_rgb(im), runner.input_size, boxes, runner.margin) for im in batch),
        strict=True,
    )
    crops_all, mats_all = np.concatenate(crops), np.concatenate(mats)
    if len(crops_all) == 0:
        k = runner.skeleton.num_keypoints
        return np.zeros((0, k, 2)), np.zeros((0, k))
    kp, scores = runner(crops_all, flip)
    kp = T.apply_affine(kp, mats_all)
    if single and boxes is None:
        return kp[0], scores[0]
    return kp, scores


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
    return image


@dataclass
class FramePrediction:
    """What the model found in one image or video frame (M instances, K keypoints).

    ``keypoints`` (M, K, 2) in the frame's pixels, ``scores`` (M, K), ``instance_scores``
    (M,); ``image_id`` from a boxes file, else None; ``flip_gap`` (M, K): pixels between the
    unflipped and the flipped-back prediction, when flip TTA ran on a skeleton with flip
    pairs and the runner could tell them apart, else None.
    """

    frame: Any  # a keypointer.inference.sources.Frame
    keypoints: np.ndarray
    scores: np.ndarray
    instance_scores: np.ndarray
    image_id: int | str | None = None
    flip_gap: np.ndarray | None = None


def predict_frames(
    frames: Iterable[Any],
    runner: Any,
    detections: dict | None = None,
    batch_size: int = 16,
    flip: bool = False,
) -> Iterator[FramePrediction]:
    """Frames (:class:`~keypointer.inference.sources.Frame`) -> one
    :class:`FramePrediction` per frame, in order.

    Crops of several frames run together, ``batch_size`` at a time. With ``detections``
    (image path -> boxes), images get one crop per box (none when they have no box) and an
    instance score of box score x mean keypoint score; video frames are always whole.
    """
    pending: list[tuple[Any, np.ndarray, np.ndarray, list | None]] = []
    count = 0
    for frame in frames:
        dets = None
        if detections is not None and frame.number is None:
            dets = detections.get(frame.source.path, [])
        boxes = [d[0] for d in dets] if dets is not None else None
        crops, mats = make_crops(frame.image, runner.input_size, boxes, runner.margin)
        pending.append((frame, crops, mats, dets))
        count += len(crops)
        if count >= batch_size:
            yield from _run_pending(pending, runner, batch_size, flip)
            pending, count = [], 0
    if pending:
        yield from _run_pending(pending, runner, batch_size, flip)


def _run_pending(
    pending: list, runner: Any, batch_size: int, flip: bool
) -> Iterator[FramePrediction]:
    crops = np.concatenate([p[1] for p in pending])
    k = runner.skeleton.num_keypoints
    kp, scores = np.zeros((0, k, 2)), np.zeros((0, k))
    if len(crops):
        parts = [runner(crops[i : i + batch_size], flip) for i in range(0, len(crops), batch_size)]
        kp = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts]).astype(np.float64)
    start = 0
    for frame, c, mats, dets in pending:
        end = start + len(c)
        frame_kp = T.apply_affine(kp[start:end], mats) if end > start else kp[start:end]
        frame_scores = scores[start:end]
        box_scores = np.array([d[1] for d in dets]) if dets else np.ones(end - start)
        image_id = dets[0][2] if dets else None
        inst = frame_scores.mean(-1) * box_scores
        yield FramePrediction(frame, frame_kp, frame_scores, inst, image_id)
        start = end
