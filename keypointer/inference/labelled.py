"""Predictions for every instance of a labelled data set, in the pixels of the original images.

:func:`predict_instances` runs ``keypointer eval``'s (and ``demo``'s): each labelled instance
through the one :class:`~keypointer.inference.pipeline.Pipeline`, cropped as ``predict --boxes``
crops it, so eval scores what predict writes (and takes an ONNX export alike).
:func:`predict_batches` is validation's during training: the same crops as batches of tensors,
straight through the model (with autocast and channels-last); both map back to the pixels of
the user's images.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from keypointer.data import transforms as T
from keypointer.data.boxes import scale_boxes
from keypointer.data.dataset import KeypointDataset
from keypointer.inference.crops import crop_matrix
from keypointer.inference.pipeline import Pipeline
from keypointer.inference.sources import Frame, Source
from keypointer.metrics import bbox_norm, pck, pixel_errors
from keypointer.models.decode import decode_batch
from keypointer.tensors import eval_mode


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


def to_device(
    batch: dict[str, object], device: torch.device, channels_last: bool = False
) -> dict[str, object]:
    """A collated batch with its tensors (and tuples of tensors) moved to ``device``.

    Args:
        batch: name -> tensor, tuple of tensors, or anything else (left as it is).
        device: where the tensors go (copied without blocking).
        channels_last: store "image" (N, 3, H, W) channels-last.

    Returns:
        A new dict with the same keys.
    """
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
def predict_batches(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    autocast: contextlib.AbstractContextManager | None = None,
    channels_last: bool = False,
    flip_index: Sequence[int] | None = None,
) -> Predictions:
    """Every instance of ``loader``'s batches straight through ``model``, in original pixels.

    Args:
        model: a :class:`~keypointer.models.model.KeypointModel` (run in eval mode).
        loader: batches of a :class:`~keypointer.data.dataset.KeypointDataset`.
        device: where the model is.
        autocast: a mixed-precision context to run the model in, or None.
        channels_last: feed the images channels-last.
        flip_index: the skeleton's, for flip test-time augmentation
            (:func:`keypointer.models.decode.decode_batch`); None: no flip.

    Returns:
        :class:`Predictions` of the M instances; boxes are the batch's "bbox" when the dataset
        gives one, else :func:`item_scale_boxes`.
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
                parts["bboxes"].append(item_scale_boxes(loader.dataset, index))
            parts["index"].append(index)
            if "image_id" in batch:
                parts["image_ids"].append(batch["image_id"].cpu().numpy())
    return Predictions(**{k: np.concatenate(v) if v else _empty(k) for k, v in parts.items()})


def predict_instances(
    pipe: Pipeline, dataset: KeypointDataset, advance: Callable[[], None] | None = None
) -> Predictions:
    """Every labelled instance of ``dataset`` through ``pipe``, cropped as ``predict --boxes``
    crops it (:meth:`~keypointer.data.dataset.KeypointDataset.crop_box`).

    Args:
        pipe: the pipeline; its ``max_instances`` is lifted (one pose per labelled box).
        dataset: a dataset without augmentation.
        advance: called once per image, or None.

    Returns:
        :class:`Predictions` of the M instances; ground truth counts where labelled and inside
        the crop, as in validation; boxes are :func:`item_scale_boxes`.
    """
    pipe = pipe.with_options(max_instances=None)  # one pose per labelled box, whatever the cap
    by_image: dict[int, list[int]] = {}
    for index in range(len(dataset)):
        by_image.setdefault(dataset.position(index)[0], []).append(index)
    detections = {
        Path(f"<image {si}>"): [(dataset.crop_box(i), 1.0, None) for i in items]
        for si, items in by_image.items()
    }

    def frames() -> Iterator[Frame]:
        for si in by_image:
            sample = dataset.kset.samples[si]
            yield Frame(Source(Path(f"<image {si}>"), "image"), sample.read())

    parts: dict[str, list[np.ndarray]] = {k: [] for k in Predictions.__dataclass_fields__}
    for pred, (si, items) in zip(pipe.run(frames(), detections), by_image.items(), strict=True):
        h, w = pred.frame.image.shape[:2]
        for row, index in enumerate(items):
            _, inst = dataset.entry(index)
            mat = crop_matrix((w, h), pipe.input_size, dataset.crop_box(index), pipe.margin)
            points = inst.keypoints[:, :2].astype(np.float64)
            labelled = (inst.keypoints[:, 2] > 0) & np.isfinite(points).all(axis=1)
            points = np.where(labelled[:, None], points, 0.0)
            inside = _inside(T.apply_affine(points, T.invert_affine(mat)), pipe.input_size)
            parts["keypoints"].append(pred.keypoints[row])
            parts["scores"].append(pred.scores[row])
            parts["gt"].append(points)
            parts["visible"].append(labelled & inside)
            parts["index"].append(np.int64(index))
            parts["image_ids"].append(np.int64(si))
        if advance is not None:
            advance()
    index = np.array(parts["index"], np.int64)
    parts["bboxes"] = [item_scale_boxes(dataset, index)] if len(index) else []
    stacked = {k: np.stack(v) if k != "bboxes" and v else None for k, v in parts.items()}
    stacked["bboxes"] = parts["bboxes"][0] if parts["bboxes"] else np.zeros((0, 4))
    return Predictions(**{k: v if v is not None else _empty(k) for k, v in stacked.items()})


def _inside(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(K,) whether points (K, 2) in input pixels fall inside the input (pixel edges)."""
    w, h = size
    x, y = points[:, 0], points[:, 1]
    return (x >= -0.5) & (x < w - 0.5) & (y >= -0.5) & (y < h - 0.5)


def _empty(key: str) -> np.ndarray | None:
    return None if key == "image_ids" else np.zeros((0,))


def item_scale_boxes(dataset: KeypointDataset, index: np.ndarray) -> np.ndarray:
    """(M, 4) x, y, w, h boxes, original pixels, that dataset items ``index`` (M,) are measured
    by (:func:`~keypointer.data.boxes.scale_box`; NaN rows for none)."""
    return scale_boxes(dataset.entry(int(i))[1] for i in index)


def quick_metrics(pred: Predictions, alpha: float) -> dict[str, float]:
    """Validation metrics logged every epoch.

    Args:
        pred: the predictions of a labelled set.
        alpha: the PCK threshold, as a share of the box size (:func:`item_scale_boxes`).

    Returns:
        {"pck": PCK@alpha, "mean_px": mean pixel error}.
    """
    result = pck(pred.keypoints, pred.gt, pred.visible, bbox_norm(pred.bboxes), alpha)
    errors = pixel_errors(pred.keypoints, pred.gt, pred.visible)
    return {"pck": float(result.overall), "mean_px": float(errors["mean"])}
