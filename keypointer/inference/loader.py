"""Predictions for every instance of a labelled data set, in the pixels of the original images.

Shared by validation during training and by ``keypointer eval``: predictions in input pixels
are mapped back through each sample's affine, so metrics are in the pixels of the user's own
images.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from keypointer._tensors import eval_mode
from keypointer.data import transforms as T
from keypointer.metrics import bbox_norm, pck, pixel_errors
from keypointer.models.flip import decode_batch


@dataclass
class Predictions:
    """Everything needed to score a dataset; M instances, K keypoints, original pixels."""

    keypoints: np.ndarray  # (M, K, 2) predicted
    scores: np.ndarray  # (M, K)
    gt: np.ndarray  # (M, K, 2)
    visible: np.ndarray  # (M, K) bool: labelled ground truth
    bboxes: np.ndarray  # (M, 4) x, y, w, h of the instance box
    index: np.ndarray  # (M,) dataset index of each instance
    image_ids: np.ndarray | None = None  # (M,) position of each instance's image in the set


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
    flip_index: Sequence[int] | None = None,
) -> Predictions:
    """Predict every instance of ``loader``'s dataset and map results to original pixels.

    ``flip_index`` (the skeleton's): flip test-time augmentation, see
    :func:`keypointer.models.flip.decode_batch`. Boxes are the batch's "bbox" when the
    dataset gives one, else the instance's box, else the box around its labelled keypoints.
    """
    parts: dict[str, list[np.ndarray]] = {k: [] for k in Predictions.__dataclass_fields__}
    with eval_mode(model):
        for batch in loader:
            batch = to_device(batch, device, channels_last)
            with autocast or contextlib.nullcontext():
                kpts, scores = decode_batch(model, batch["image"], flip_index)
            affine = batch["affine"].cpu().numpy()
            index = batch["index"].cpu().numpy()
            parts["keypoints"].append(T.apply_affine(kpts.float().cpu().numpy(), affine))
            parts["gt"].append(T.apply_affine(batch["keypoints"].cpu().numpy(), affine))
            parts["scores"].append(scores.float().cpu().numpy())
            parts["visible"].append(batch["visible"].cpu().numpy().astype(bool))
            if "bbox" in batch:
                parts["bboxes"].append(batch["bbox"].cpu().numpy().astype(np.float64))
            else:
                parts["bboxes"].append(instance_boxes(loader.dataset, index))
            parts["index"].append(index)
            if "image_id" in batch:
                parts["image_ids"].append(batch["image_id"].cpu().numpy())
    return Predictions(**{k: np.concatenate(v) if v else _empty(k) for k, v in parts.items()})


def _empty(key: str) -> np.ndarray | None:
    return None if key == "image_ids" else np.zeros((0,))


def instance_boxes(dataset, index: np.ndarray) -> np.ndarray:
    """(M, 4) x, y, w, h original-pixel boxes of dataset items: the instance's box when it has
    one with an area, else the box around its labelled keypoints (NaN when none)."""
    boxes = np.full((len(index), 4), np.nan)
    for row, i in enumerate(index):
        _, inst = dataset.entry(int(i))
        if inst.bbox is not None and inst.bbox[2] > 0 and inst.bbox[3] > 0:
            boxes[row] = inst.bbox
        elif (extent := inst.extent()) is not None:
            boxes[row] = extent
    return boxes


def quick_metrics(pred: Predictions, alpha: float) -> dict[str, float]:
    """Validation metrics logged every epoch: PCK@alpha (box-size normaliser) and mean pixel error."""
    result = pck(pred.keypoints, pred.gt, pred.visible, bbox_norm(pred.bboxes), alpha)
    errors = pixel_errors(pred.keypoints, pred.gt, pred.visible)
    return {"pck": float(result.overall), "mean_px": float(errors["mean"])}
