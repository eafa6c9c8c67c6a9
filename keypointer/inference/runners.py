"""Runners: a KeypointModel (PyTorch) or an exported ONNX file behind one call, uint8 crops in,
keypoints in crop pixels out (:func:`run_crops` in batches); and :class:`FramePrediction`,
what one frame gives. Crops, stages and frames are the
:class:`~keypointer.inference.pipeline.Pipeline`'s.

A runner is called as ``runner(crops (N, H, W, 3) uint8, flip) -> keypoints (N, K, 2) input px,
scores (N, K)`` (numpy) and has ``skeleton``, ``input_size`` and ``margin``; the two here also
have ``run_with_gap(crops, flip) -> (keypoints, scores, flip gap (N, K) input px or None)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from keypointer.config import BOX_MARGIN
from keypointer.data import transforms as T
from keypointer.export.onnx_model import OnnxModel
from keypointer.inference.sources import Frame
from keypointer.models.decode import predict_batch, predict_batch_with_gap
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
        flip_index = self.skeleton.flip_index() if flip else None
        kp, scores = predict_batch(self.model, self._tensor(crops), flip_index)
        return _numpy(kp), _numpy(scores)

    def run_with_gap(
        self, crops: np.ndarray, flip: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Like calling it (the same keypoints and scores), plus the flip gap (N, K): input
        pixels between the keypoints of the crops and those of their mirror images mirrored
        back. None without flip or without flip pairs."""
        if not (flip and self.skeleton.flip_pairs):
            return (*self(crops, flip), None)
        flip_index = self.skeleton.flip_index()
        kp, scores, gap = predict_batch_with_gap(self.model, self._tensor(crops), flip_index)
        return _numpy(kp), _numpy(scores), _numpy(gap)

    def _tensor(self, crops: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.stack([T.to_chw_normalized(c) for c in crops])).to(self.device)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.float().cpu().numpy()


Runner = TorchRunner | OnnxModel
"""The two runners: PyTorch and ONNX Runtime."""

Gaps = np.ndarray | None  # flip gaps (N, K) input px, or None when none can be told


def as_runner(model: nn.Module | Runner) -> Runner:
    """The runner of a model.

    Args:
        model: a KeypointModel (run where its parameters are), or a runner already.

    Returns:
        A :class:`TorchRunner` around the model, or the runner itself.
    """
    if isinstance(model, nn.Module):
        return TorchRunner(model, next(model.parameters()).device)
    return model  # an OnnxModel or TorchRunner already


@dataclass
class FramePrediction:
    """What the model found in one image or video frame (M instances, K keypoints).

    ``keypoints`` (M, K, 2) in the frame's pixels, ``scores`` (M, K), ``instance_scores``
    (M,); ``image_id`` from a boxes file, else None; ``flip_gap`` (M, K): pixels between the
    unflipped and the flipped-back prediction, when flip TTA ran on a skeleton with flip
    pairs and the runner could tell them apart, else None.
    """

    frame: Frame
    keypoints: np.ndarray
    scores: np.ndarray
    instance_scores: np.ndarray
    image_id: int | str | None = None
    flip_gap: np.ndarray | None = None
    located: np.ndarray | None = None  # (M0, 4) COCO boxes the locator found, before keeping

    def select(self, keep: np.ndarray) -> FramePrediction:
        """The instances at indices ``keep`` (the frame, image id and located boxes stay)."""
        gap = None if self.flip_gap is None else self.flip_gap[keep]
        return FramePrediction(
            frame=self.frame,
            keypoints=self.keypoints[keep],
            scores=self.scores[keep],
            instance_scores=self.instance_scores[keep],
            image_id=self.image_id,
            flip_gap=gap,
            located=self.located,
        )


def run_crops(
    runner: Runner, crops: np.ndarray, batch_size: int, flip: bool
) -> tuple[np.ndarray, np.ndarray, Gaps]:
    """Crops through a runner, in batches.

    Args:
        runner: the pose runner.
        crops: (N, H, W, 3) uint8 RGB crops.
        batch_size: the most crops per call.
        flip: flip test-time augmentation.

    Returns:
        Keypoints (N, K, 2) input px, scores (N, K) float64, and flip gaps (N, K) float64 or
        None.
    """
    k = runner.skeleton.num_keypoints
    if not len(crops):
        return np.zeros((0, k, 2)), np.zeros((0, k)), _no_gap(runner, flip, k)
    parts = [
        _run(runner, crops[i : i + batch_size], flip) for i in range(0, len(crops), batch_size)
    ]
    kp = np.concatenate([p[0] for p in parts])
    scores = np.concatenate([p[1] for p in parts]).astype(np.float64)
    gaps = None
    if all(p[2] is not None for p in parts):
        gaps = np.concatenate([p[2] for p in parts]).astype(np.float64)
    return kp, scores, gaps


def _run(runner: Runner, crops: np.ndarray, flip: bool) -> tuple[np.ndarray, np.ndarray, Gaps]:
    """(keypoints, scores, flip gap or None) from a runner with or without ``run_with_gap``."""
    if flip and hasattr(runner, "run_with_gap"):
        return runner.run_with_gap(crops, flip)
    return (*runner(crops, flip), None)


def _no_gap(runner: Runner, flip: bool, k: int) -> Gaps:
    """The flip gap of a batch without crops: empty where the runner would give one."""
    if getattr(runner, "flip_in_graph", False):  # an ONNX graph that flips: gap if it has one
        return np.zeros((0, k)) if getattr(runner, "has_flip_gap", False) else None
    gives = flip and bool(runner.skeleton.flip_pairs) and hasattr(runner, "run_with_gap")
    return np.zeros((0, k)) if gives else None


def crop_scale(mats: np.ndarray) -> np.ndarray:
    """How many image pixels one input pixel of each crop spans.

    Args:
        mats: (M, 2, 3) input-to-image matrices (letterbox and box crops scale alike along x
            and y).

    Returns:
        (M,) float64: the square root of each matrix's determinant.
    """
    return np.sqrt(np.abs(np.linalg.det(np.asarray(mats, np.float64)[:, :, :2])))
