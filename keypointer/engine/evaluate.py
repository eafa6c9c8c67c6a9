"""Run a model over a dataset and score it, in original-image pixels.

``predict_loader`` is shared by validation during training and by
``keypointer eval``: predictions in input pixels are mapped back through each
sample's affine, so metrics are in the pixels of the user's own images.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader


@dataclass
class Predictions:
    """Everything needed to score a dataset; M instances, K keypoints, original pixels."""

    keypoints: np.ndarray  # (M, K, 2) predicted
    scores: np.ndarray  # (M, K)
    gt: np.ndarray  # (M, K, 2)
    visible: np.ndarray  # (M, K) bool: labelled ground truth
    bboxes: np.ndarray  # (M, 4) x, y, w, h of the instance box
    index: np.ndarray  # (M,) dataset index of each instance


def apply_affine(points: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """Map (N, K, 2) points through (N, 2, 3) affine matrices."""
    a = affine.to(torch.float64)
    p = points.to(torch.float64)
    return p @ a[:, :, :2].transpose(1, 2) + a[:, None, :, 2]


def to_device(batch: dict, device: torch.device, channels_last: bool = False) -> dict:
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device, non_blocking=True)
            if key == "image" and channels_last:
                value = value.contiguous(memory_format=torch.channels_last)
        elif isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
            value = type(value)(v.to(device, non_blocking=True) for v in value)
        out[key] = value
    return out


@torch.inference_mode()
def predict_loader(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    autocast: contextlib.AbstractContextManager | None = None,
    channels_last: bool = False,
) -> Predictions:
    """Predict every instance of ``loader``'s dataset and map results to original pixels."""
    was_training = model.training
    model.eval()
    parts: dict[str, list[np.ndarray]] = {k: [] for k in Predictions.__dataclass_fields__}
    try:
        for batch in loader:
            batch = to_device(batch, device, channels_last)
            with autocast or contextlib.nullcontext():
                kpts, scores = model.predict(batch["image"])
            affine = batch["affine"]
            parts["keypoints"].append(apply_affine(kpts.float(), affine).cpu().numpy())
            parts["gt"].append(apply_affine(batch["keypoints"], affine).cpu().numpy())
            parts["scores"].append(scores.float().cpu().numpy())
            parts["visible"].append(batch["visible"].cpu().numpy().astype(bool))
            parts["bboxes"].append(batch["bbox"].cpu().numpy().astype(np.float64))
            parts["index"].append(batch["index"].cpu().numpy())
    finally:
        model.train(was_training)
    return Predictions(**{k: np.concatenate(v) if v else np.zeros((0,)) for k, v in parts.items()})


def quick_metrics(pred: Predictions, alpha: float) -> dict[str, float]:
    """Validation metrics logged every epoch: PCK@alpha (box-size normaliser) and mean pixel error."""
    err = np.linalg.norm(pred.keypoints - pred.gt, axis=-1)
    vis = pred.visible
    if not vis.any():
        return {"pck": float("nan"), "mean_px": float("nan")}
    norm = np.maximum(pred.bboxes[:, 2], pred.bboxes[:, 3])[:, None]
    hit = (err <= alpha * norm) & vis
    return {"pck": float(hit.sum() / vis.sum()), "mean_px": float(err[vis].mean())}
