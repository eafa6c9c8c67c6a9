"""Training the locator, top to bottom (nanoGPT style): :func:`train_locator` reads the whole
run; the loss (:func:`locator_loss`) and the validation (:func:`evaluate_locator`) follow it.

Whole images are letterboxed into the locator's input (:mod:`keypointer.data.whole_images`),
flipped, scaled, shifted and colour-jittered; the targets are CenterNet's (a centre heatmap,
sizes at the centres: :class:`~keypointer.codecs.centers.CenterCodec`); the loss is its
penalty-reduced focal loss on the centres plus L1 on the log sizes; Adam with warm-up and
cosine decay (:class:`~keypointer.training.optim.LRShape`), mixed precision as ``train.amp``
says, and optionally a wall-clock budget (:class:`~keypointer.training.budget.TimeBudget`).
Validation: box recall and precision at IoU 0.5 and the mean IoU of the matched boxes.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader

from keypointer.config import LOCATOR_SCORE_THRESHOLD, Config, LoaderConfig
from keypointer.data.dataset import make_loader
from keypointer.data.types import KeypointSet
from keypointer.data.whole_images import (
    WholeImageDataset,
    instance_boxes,
    keypoint_box_ratio,
    map_boxes,
)
from keypointer.device import make_autocast, resolve_amp
from keypointer.errors import DataError, TrainingError
from keypointer.inference.loader import to_device
from keypointer.metrics.boxes import box_metrics
from keypointer.models.locator import (
    DEFAULT_SIDE,
    MULTIPLE,
    LocatorModel,
    build_locator,
    locator_input_size,
)
from keypointer.training.budget import TimeBudget
from keypointer.training.optim import LRShape, build_optimizer
from keypointer.training.progress import TrainProgress

FOCAL_ALPHA, FOCAL_BETA = 2.0, 4.0  # CenterNet's (CornerNet's) focal loss exponents
SIZE_WEIGHT = 1.0  # L1 on log sizes is O(1) already (CenterNet's 0.1 was for pixel sizes)
WARMUP = 0.05  # share of the steps spent warming up
BOX_PX = 64.0  # median instance box, long side, in the input (measured: see benchmarks/locator.py)
SIDE_RANGE = (128, 512)  # bounds of the input's long side chosen from the data


def train_locator(
    train_set: KeypointSet,
    val_set: KeypointSet,
    cfg: Config,
    device: str | torch.device = "cpu",
    *,
    time_budget_s: float | None = None,
    steps: int | None = None,
    progress: TrainProgress | None = None,
) -> tuple[LocatorModel, dict[str, float]]:
    """Train a locator on ``train_set``'s images and boxes; validate on ``val_set``.

    Length: ``steps`` (default ``cfg.locator.steps``) optimiser steps; with ``time_budget_s``
    the run instead ends on time (the steps are only the first plan; the schedule is re-planned
    from the measured step time and the final validation fits in too). Settings come from
    ``cfg.locator`` (input, backbone, stride, batch, lr), ``cfg.augment`` (scale, shift,
    colour; flips at 0.5 always, no rotation), ``cfg.train`` (seed, amp, channels_last).
    Returns the model in eval mode and the metrics: val recall, precision, mean IoU and
    counts, plus steps, seconds and the last training losses.
    """
    started = time.perf_counter()
    lc, device = cfg.locator, torch.device(device)
    torch.manual_seed(cfg.train.seed)
    model, train_ds, loader = locator_setup(train_set, cfg, device)
    batch = loader.batch_size
    total = int(steps or lc.steps)
    optimizer, scheduler = locator_optimizer(model, cfg, len(loader), total)
    shape = scheduler.lr_lambdas[0]
    autocast = make_autocast(device, resolve_amp(cfg.train.amp, device))
    budget = None
    if time_budget_s:
        budget = TimeBudget(time_budget_s / 60.0, time.perf_counter() - started)
    reserve = 0.5 * math.ceil(len(val_set) / batch)  # a validation batch ~ half a step
    if progress is not None:
        progress.set_total(total)

    # The loop: steps until the plan (or the budget) says stop.
    model.train()
    step, epoch, tick, last = 0, 0, time.perf_counter(), {}
    while step < total:
        train_ds.set_epoch(epoch)
        for batch_ in loader:
            last = train_step(model, batch_, optimizer, scheduler, autocast, device, cfg)
            step += 1
            now = time.perf_counter()
            if budget is not None:
                budget.observe_step(now - tick)
                planned = replan(shape, budget, step, reserve)
                total = total if planned is None else planned
            if progress is not None:
                progress.set_total(total)
                lr = optimizer.param_groups[0]["lr"]
                progress.step(epoch + 1, last["loss"], lr, batch / max(now - tick, 1e-9))
            tick = now
            if step >= total:
                break
        epoch += 1

    metrics = evaluate_locator(model, val_set, device, lc.score_threshold, batch, autocast)
    metrics.update({f"train_{k}": v for k, v in last.items()})
    metrics.update(steps=float(step), seconds=time.perf_counter() - started)
    return model.eval(), metrics


def locator_setup(
    train_set: KeypointSet, cfg: Config, device: torch.device
) -> tuple[LocatorModel, WholeImageDataset, DataLoader]:
    """The model (input with the images' typical aspect ratio, biases from the boxes), the
    augmented whole-image dataset (flips at 0.5, no rotation) and its loader."""
    lc = cfg.locator
    if len(train_set) == 0:
        raise DataError("no training images for the locator", train_set.source)
    long_side = lc.input_size or data_long_side(train_set)
    input_size = locator_input_size(long_side, median_aspect(train_set))
    model = build_locator(cfg, input_size).to(device)
    augment = cfg.augment.model_copy(update={"rotation": 0.0, "flip": 0.5})
    train_ds = WholeImageDataset(train_set, model.codec, augment)
    model.init_biases(mean_log_size(train_ds, model.codec.stride))
    model.box_ratio = keypoint_box_ratio(train_set)
    model.build_info = {**(model.build_info or {}), "box_ratio": list(model.box_ratio)}
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    batch = max(1, min(lc.batch_size, len(train_ds)))
    loader_cfg = LoaderConfig(batch_size=batch, num_workers=cfg.loader.num_workers)
    loader = make_loader(train_ds, loader_cfg, train=True, device=device, seed=cfg.train.seed)
    return model, train_ds, loader


def locator_optimizer(
    model: LocatorModel, cfg: Config, steps_per_epoch: int, total: int
) -> tuple[torch.optim.Optimizer, LambdaLR]:
    """Adam at ``locator.lr``, linear warm-up over ``WARMUP`` of the steps, cosine to zero
    (:class:`LRShape`, re-plannable: ``scheduler.lr_lambdas[0]``)."""
    train_cfg = cfg.train.model_copy(
        update={"optimizer": "adam", "lr": cfg.locator.lr, "weight_decay": 0.0,
                "schedule": "cosine", "warmup_epochs": WARMUP * total / steps_per_epoch}
    )  # fmt: skip
    optimizer = build_optimizer(model, train_cfg)
    return optimizer, LambdaLR(optimizer, LRShape(train_cfg, steps_per_epoch, total))


def replan(shape: LRShape, budget: TimeBudget, step: int, reserve: float) -> int | None:
    """The run's length re-planned from the time budget (None until steps were timed): the
    cosine stretches with it and, while it lasts, the warm-up stays ``WARMUP`` of it."""
    total = budget.total_steps(step, reserve)
    if total is None:
        return None
    if step < shape.warmup:
        shape.warmup_epochs = WARMUP * total / shape.steps_per_epoch
    shape.set_total(total)
    return max(total, step)


def train_step(
    model: LocatorModel,
    batch: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    scheduler: LambdaLR,
    autocast: contextlib.AbstractContextManager,
    device: torch.device,
    cfg: Config,
) -> dict[str, float]:
    """Forward, loss, backward, optimiser and schedule step for one batch; the loss parts."""
    batch = to_device(batch, device, cfg.train.channels_last)
    with autocast:
        output = model(batch["image"])
    loss, parts = locator_loss(output.float(), *batch["target"])
    if not math.isfinite(parts["loss"]):
        raise TrainingError(f"the locator's loss became {parts['loss']}; try a lower locator.lr")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    return parts


# --------------------------------------------------------------------------- loss


def locator_loss(
    output: torch.Tensor, heatmap: torch.Tensor, size: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """Output (N, 3, h, w) against the codec's targets -> (loss, {"loss", "centre", "size"}).

    Centre: CenterNet's penalty-reduced focal loss on channel 0, positives where ``mask`` is
    1, summed over the batch and divided by its number of instances as CenterNet does (an
    image without instances adds only negatives); size: L1 on the log sizes, the mean
    weighted by ``mask`` (CenterNet's at the centres; TTFNet's with a size region).
    """
    positive = mask >= 1.0
    count = positive.sum().clamp(min=1)
    centre = centre_focal_loss(output[:, :1], heatmap, positive) / count
    size_l1 = ((output[:, 1:] - size).abs() * mask).sum() / (2 * mask.sum().clamp(min=1.0))
    loss = centre + SIZE_WEIGHT * size_l1
    parts = {"loss": loss.item(), "centre": centre.item(), "size": size_l1.item()}
    return loss, parts


def centre_focal_loss(
    logits: torch.Tensor, heatmap: torch.Tensor, positive: torch.Tensor
) -> torch.Tensor:
    """Summed penalty-reduced focal loss (CornerNet/CenterNet) of centre logits (N, 1, h, w).

    Positives (``positive`` true): ``-(1 - p)^2 log p``. Elsewhere ``-(1 - y)^4 p^2
    log(1 - p)``, where y is the Gaussian target, so pixels near a centre are barely punished
    for firing. Written with ``logsigmoid`` (no clamping of p, stable for large logits).
    """
    log_p, log_q = F.logsigmoid(logits), F.logsigmoid(-logits)  # log p, log (1 - p)
    p = log_p.exp()
    pos = -((1 - p) ** FOCAL_ALPHA) * log_p
    negative = -((1 - heatmap) ** FOCAL_BETA) * p**FOCAL_ALPHA * log_q
    return torch.where(positive, pos, negative).sum()


# --------------------------------------------------------------------------- validation


@torch.inference_mode()
def evaluate_locator(
    model: LocatorModel,
    kset: KeypointSet,
    device: str | torch.device = "cpu",
    threshold: float = LOCATOR_SCORE_THRESHOLD,
    batch_size: int = 16,
    autocast: contextlib.AbstractContextManager | None = None,
) -> dict[str, float]:
    """Locate the instances of every image of ``kset`` and compare with its boxes (image px):
    ``val_recall``, ``val_precision`` at IoU 0.5 (NaN when it found no box at all),
    ``val_mean_iou`` of the matched boxes, the counts (``val_predicted``: boxes found), and
    ``val_ms_per_image`` (the model and decoding, batched)."""
    device = torch.device(device)
    dataset = WholeImageDataset(kset, model.codec)
    cfg = LoaderConfig(batch_size=batch_size, num_workers=0)
    preds: list[np.ndarray] = [np.zeros((0, 4))] * len(dataset)
    was_training, seconds = model.training, 0.0
    model.eval()
    try:
        for batch in make_loader(dataset, cfg, train=False, device=device):
            t0 = time.perf_counter()
            with autocast or contextlib.nullcontext():
                output = model(batch["image"].to(device))
            boxes, scores = model.decode_topk(output)
            seconds += time.perf_counter() - t0
            for b, s, m, i in zip(boxes, scores, batch["affine"], batch["index"], strict=True):
                preds[int(i)] = map_boxes(b[s >= threshold].cpu().numpy(), m.numpy())
    finally:
        model.train(was_training)
    found = box_metrics(preds, dataset.boxes, iou_threshold=0.5)  # found nothing: precision NaN
    found["ms_per_image"] = 1000 * seconds / max(len(dataset), 1)
    return {f"val_{k}": v for k, v in found.items()}


# --------------------------------------------------------------------------- data statistics


def data_long_side(kset: KeypointSet) -> int:
    """The input's long side that shows the median instance box ``BOX_PX`` px long, between
    ``SIDE_RANGE`` and at most the images' own median long side (rounded up to 32), so that
    centres stay a few heatmap pixels apart without spending pixels on large instances. 256
    when no box or image size is known."""
    ratios, sides = [], []
    for sample in kset.samples:
        if sample.width > 0 and sample.height > 0:
            image_long = max(sample.width, sample.height)
            sides.append(image_long)
            ratios += [image_long / b[2:].max() for b in instance_boxes(sample) if b[2:].max() > 0]
    if not ratios:
        return DEFAULT_SIDE
    wanted = BOX_PX * float(np.median(ratios))
    native = MULTIPLE * math.ceil(float(np.median(sides)) / MULTIPLE)
    side = min(max(wanted, SIDE_RANGE[0]), SIDE_RANGE[1], max(native, SIDE_RANGE[0]))
    return int(MULTIPLE * round(side / MULTIPLE))


def median_aspect(kset: KeypointSet) -> float:
    """Median width / height of the images (1 when no size is known)."""
    ratios = [s.width / s.height for s in kset.samples if s.width > 0 and s.height > 0]
    return float(np.median(ratios)) if ratios else 1.0


def mean_log_size(dataset: WholeImageDataset, stride: int) -> tuple[float, float] | None:
    """Mean ``log(side / stride)`` (w, h) of the training boxes as the letterbox shows them
    (the size maps' starting bias); None when there are no boxes."""
    logs = []
    for sample, boxes in zip(dataset.kset.samples, dataset.boxes, strict=True):
        if len(boxes) and sample.width > 0 and sample.height > 0:
            scale = min(np.array(dataset.codec.input_size) / (sample.width, sample.height))
            logs.append(np.log(np.maximum(boxes[:, 2:] * scale / stride, 1e-3)))
    if not logs:
        return None
    w, h = np.concatenate(logs).mean(0)
    return float(w), float(h)
