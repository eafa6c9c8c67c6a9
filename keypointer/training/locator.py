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
from typing import TypedDict

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
from keypointer.errors import DataError
from keypointer.inference.labelled import to_device
from keypointer.metrics.boxes import box_metrics
from keypointer.models.locator import (
    DEFAULT_SIDE,
    MULTIPLE,
    LocatorModel,
    build_locator,
    locator_input_size,
)
from keypointer.training.budget import TimeBudget
from keypointer.training.loaders import Batch
from keypointer.training.optim import LRShape, build_optimizer
from keypointer.training.progress import TrainProgress
from keypointer.training.schedule import Schedule, check_loss

FOCAL_ALPHA, FOCAL_BETA = 2.0, 4.0  # CenterNet's (CornerNet's) focal loss exponents
SIZE_WEIGHT = 1.0  # L1 on log sizes is O(1) already (CenterNet's 0.1 was for pixel sizes)
WARMUP = 0.05  # share of the steps spent warming up
BOX_PX = 64.0  # median instance box, long side, in the input (measured: see benchmarks/locator.py)
SIDE_RANGE = (128, 512)  # bounds of the input's long side chosen from the data


class LocatorEntry(TypedDict):
    """A trained locator as best.pt and last.pt store it (two_stage.py): its weights, what
    rebuilds it ("input_size", "box_ratio", "min_pose_score") and its validation."""

    model: dict[str, torch.Tensor]
    build_info: dict[str, object]
    metrics: dict[str, float]


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

    Args:
        train_set: the training images with their instances' boxes.
        val_set: the validation images.
        cfg: the run's config.
        device: where to train.
        time_budget_s: wall seconds for the whole run, or None: ``steps`` alone.
        steps: the planned length (default ``cfg.locator.steps``).
        progress: the bar to show the steps on, or None.

    Returns:
        The model in eval mode and the metrics: val recall, precision, mean IoU and counts,
        plus steps, seconds and the last training losses.
    """
    started = time.perf_counter()
    device = torch.device(device)
    torch.manual_seed(cfg.train.seed)
    model, train_ds, loader = locator_setup(train_set, cfg, device)
    batch_size = loader.batch_size
    optimizer, scheduler = locator_optimizer(
        model, cfg, len(loader), int(steps or cfg.locator.steps)
    )
    autocast = make_autocast(device, resolve_amp(cfg.train.amp, device))
    schedule = Schedule(
        scheduler.lr_lambdas[0],
        validation_batches=math.ceil(len(val_set) / batch_size),
        warmup_share=WARMUP,
    )
    if time_budget_s:
        schedule.budget = TimeBudget(time_budget_s / 60.0, time.perf_counter() - started)
    if progress is not None:
        schedule.progress = progress
        progress.set_total(schedule.total)

    # The loop: steps until the plan (or the budget) says stop.
    model.train()
    epoch, tick, losses = 0, time.perf_counter(), {}
    while schedule.epoch_due(epoch):
        train_ds.set_epoch(epoch)
        for batch in loader:
            losses = locator_step(model, batch, optimizer, scheduler, autocast, device, cfg)
            now = time.perf_counter()
            schedule.advance(
                now - tick,
                epoch=epoch + 1,
                loss=losses["loss"],
                lr=optimizer.param_groups[0]["lr"],
                samples_per_s=batch_size / max(now - tick, 1e-9),
            )
            tick = now
            if schedule.finished:
                break
        epoch += 1

    threshold = cfg.locator.score_threshold
    metrics = evaluate_locator(model, val_set, device, threshold, batch_size, autocast)
    metrics.update({f"train_{k}": v for k, v in losses.items()})
    metrics.update(steps=float(schedule.done), seconds=time.perf_counter() - started)
    return model.eval(), metrics


def locator_setup(
    train_set: KeypointSet, cfg: Config, device: torch.device
) -> tuple[LocatorModel, WholeImageDataset, DataLoader]:
    """The locator and its training data.

    Args:
        train_set: the training images with their instances' boxes.
        cfg: the run's config.
        device: where to train.

    Returns:
        The model (input with the images' typical aspect ratio, biases from the boxes), the
        augmented whole-image dataset (flips at 0.5, no rotation) and its loader.

    Raises:
        DataError: ``train_set`` holds no image.
    """
    lc = cfg.locator
    if len(train_set) == 0:
        raise DataError("no training images for the locator", train_set.source)
    long_side = lc.input_size or data_long_side(train_set)
    input_size = locator_input_size(long_side, median_aspect(train_set))
    model = build_locator(cfg, input_size).to(device)
    augment = cfg.augment.model_copy(update={"rotation": 0.0, "flip": 0.5})
    train_ds = WholeImageDataset(train_set, model.codec, augment, progress=not cfg.run.quiet)
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
    """Adam at ``locator.lr``, linear warm-up over ``WARMUP`` of the steps, cosine to zero.

    Args:
        model: the locator.
        cfg: the run's config.
        steps_per_epoch: batches in one pass over the training images.
        total: the planned length in steps.

    Returns:
        The optimiser and its per-step schedule (:class:`LRShape`, re-plannable:
        ``scheduler.lr_lambdas[0]``).
    """
    train_cfg = cfg.train.model_copy(
        update={
            "optimizer": "adam",
            "lr": cfg.locator.lr,
            "weight_decay": 0.0,
            "schedule": "cosine",
            "warmup_epochs": WARMUP * total / steps_per_epoch,
        }
    )
    optimizer = build_optimizer(model, train_cfg)
    return optimizer, LambdaLR(optimizer, LRShape(train_cfg, steps_per_epoch, total))


def locator_step(
    model: LocatorModel,
    batch: Batch,
    optimizer: torch.optim.Optimizer,
    scheduler: LambdaLR,
    autocast: contextlib.AbstractContextManager,
    device: torch.device,
    cfg: Config,
) -> dict[str, float]:
    """Forward, loss, backward, optimiser and schedule step for one batch of the locator.

    Args:
        model: the locator.
        batch: a batch of :class:`WholeImageDataset` items ("target": heatmap, size, mask).
        optimizer: its optimiser.
        scheduler: its per-step schedule.
        autocast: the mixed-precision context.
        device: where it trains.
        cfg: the run's config (``train.channels_last``).

    Returns:
        The loss parts: "loss", "centre", "size".

    Raises:
        TrainingError: the loss is no longer finite.
    """
    batch = to_device(batch, device, cfg.train.channels_last)
    with autocast:
        output = model(batch["image"])
    loss, parts = locator_loss(output.float(), *batch["target"])
    check_loss(parts["loss"], subject="the locator's loss", advice="try a lower locator.lr")
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

    Args:
        output: the locator's output (N, 3, h, w): centre logits, log sizes (w, h).
        heatmap: the Gaussian centre targets (N, 1, h, w).
        size: the log-size targets (N, 2, h, w).
        mask: 1 at the centres, a weight in (0, 1) in a size region, else 0 (N, 1, h, w).

    Returns:
        The loss to backpropagate and its parts as floats.
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

    Args:
        logits: centre logits (N, 1, h, w).
        heatmap: the Gaussian targets y (N, 1, h, w).
        positive: where the centres are (N, 1, h, w), bool.

    Returns:
        The summed loss, a scalar tensor.
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
    """Locate the instances of every image of ``kset`` and compare with its boxes (image px).

    Args:
        model: the locator (its training mode is restored after).
        kset: the labelled images.
        device: where the model is.
        threshold: the centre score a found box needs.
        batch_size: images per batch.
        autocast: a mixed-precision context, or None.

    Returns:
        ``val_recall``, ``val_precision`` at IoU 0.5 (NaN when it found no box at all),
        ``val_mean_iou`` of the matched boxes, the counts (``val_predicted``: boxes found),
        and ``val_ms_per_image`` (the model and decoding, batched).
    """
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
    centres stay a few heatmap pixels apart without spending pixels on large instances.

    Args:
        kset: the training labels (image sizes, instance boxes).

    Returns:
        The long side in input pixels, a multiple of 32 (256 when no box or image size is
        known).
    """
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
    """Median width / height of the images.

    Args:
        kset: the labels.

    Returns:
        The ratio (1 when no size is known).
    """
    ratios = [s.width / s.height for s in kset.samples if s.width > 0 and s.height > 0]
    return float(np.median(ratios)) if ratios else 1.0


def mean_log_size(dataset: WholeImageDataset, stride: int) -> tuple[float, float] | None:
    """Mean ``log(side / stride)`` (w, h) of the training boxes as the letterbox shows them
    (the size maps' starting bias).

    Args:
        dataset: the locator's training dataset.
        stride: the size maps' stride.

    Returns:
        (w, h), or None when there are no boxes.
    """
    logs = []
    for sample, boxes in zip(dataset.kset.samples, dataset.boxes, strict=True):
        if len(boxes) and sample.width > 0 and sample.height > 0:
            scale = min(np.array(dataset.codec.input_size) / (sample.width, sample.height))
            logs.append(np.log(np.maximum(boxes[:, 2:] * scale / stride, 1e-3)))
    if not logs:
        return None
    w, h = np.concatenate(logs).mean(0)
    return float(w), float(h)
