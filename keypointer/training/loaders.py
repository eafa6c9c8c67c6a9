"""Training data set-up: read, validate, split, and build the loaders.

``loader.batch_size`` is the *global* batch: under ``torchrun`` each of the N
processes loads ``batch_size // N`` samples, so a config gives the same
optimisation on one GPU or many.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from rich.console import Console
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from keypointer.codecs import Codec
from keypointer.config import Config
from keypointer.data.check import validate
from keypointer.data.dataset import KeypointDataset, make_loader
from keypointer.data.formats import detect_format, load_dataset
from keypointer.data.split import (
    SplitPlan,
    clustering_warning,
    frame_refs,
    plan_split,
    separate_plan,
    split_summary,
    split_warnings,
    video_timings,
)
from keypointer.data.types import KeypointSet
from keypointer.errors import DataError
from keypointer.models.registry import make_codec, make_loss
from keypointer.skeleton import Skeleton
from keypointer.training.distributed import DistInfo
from keypointer.training.guard import mean_pose_error

log = logging.getLogger("keypointer")

Batch = dict[str, torch.Tensor | Sequence[torch.Tensor]]
"""A loader's batch: "image" (N, 3, H, W), "target" (a tensor, or the codec's parts of one),
"weights" and the items' other tensors, each (N, ...)."""


@dataclass(kw_only=True)
class TrainData:
    """The pose model's data: the labels' skeleton, the codec and loss, the datasets and
    their loaders, and the validation error of always predicting the mean pose (guard.py)."""

    skeleton: Skeleton
    codec: Codec
    loss_fn: nn.Module
    train_set: KeypointDataset
    val_set: KeypointDataset
    train_loader: DataLoader
    val_loader: DataLoader
    baseline_px: float

    def set_epoch(self, epoch: int) -> None:
        """Reseed shuffling and augmentation for ``epoch`` (reproducible, worker-independent)."""
        self.train_set.set_epoch(epoch)
        sampler = self.train_loader.sampler
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        batch_sampler = getattr(self.train_loader, "batch_sampler", None)
        if batch_sampler is not None and hasattr(batch_sampler.sampler, "set_epoch"):
            batch_sampler.sampler.set_epoch(epoch)


def read_checked(
    path: str,
    cfg: Config,
    split: str | None = None,
    check_images: bool = True,
    progress: bool = False,
) -> KeypointSet:
    """Load labels and run ``keypointer check``'s validation (fatal problems raise).

    With ``check_images`` every image is decoded, as ``keypointer check`` does, so a corrupt
    file stops the run before its folder exists (about 1.6 ms per 640x480 JPEG on 2 threads).
    Every process decodes: sizes read from the files can differ from those in the labels, and
    all processes must clean the labels alike. An image that goes bad later, during training,
    is reported by the dataset and skipped.

    Args:
        path: the label file or folder.
        cfg: the run's config (``data.format``, ``data.images``).
        split: the split of a YOLO data.yaml to read ("val"), or None.
        check_images: decode every image.
        progress: show a progress bar while checking.

    Returns:
        The labels, cleaned of what the check drops.
    """
    kset = load_dataset(path, format=cfg.data.format, images=cfg.data.images, split=split)
    for line in kset.warnings:  # what the reader tolerated, e.g. skeleton edges it dropped
        log.warning("%s", line)
    return validate(kset, check_images=check_images, progress=progress).cleaned


def split_data(
    cfg: Config, progress: bool = False, say: bool = False
) -> tuple[KeypointSet, KeypointSet]:
    """The training and validation labels: ``data.val_path`` (or a YOLO data.yaml's own
    validation images), else a ``data.val_fraction`` split (``data.split``: by video or
    blocks of time for frames of videos, see :mod:`keypointer.data.split`), else the
    training labels again. Warns when the labelled frames are clustered in time or the
    validation frames sit next to training frames.

    Args:
        cfg: the run's config.
        progress: show a progress bar while checking images.
        say: print the split used and how far its validation frames are from training frames.

    Returns:
        (training labels, validation labels).
    """
    is_yolo = (cfg.data.format or detect_format(cfg.data.path)) == "yolo"
    train_set = read_checked(cfg.data.path, cfg, progress=progress)
    refs, timings = frame_refs(train_set), video_timings(train_set)
    clustered = clustering_warning(refs, timings)
    if clustered:
        log.warning("%s", clustered)
    val_path = cfg.data.val_path or (cfg.data.path if is_yolo else None)
    if val_path and is_yolo and not cfg.data.val_path:
        # A YOLO data.yaml names its own validation images; use them unless they are the train ones.
        val_set = read_checked(val_path, cfg, split="val", check_images=False)
        if {s.image for s in val_set.samples} == {s.image for s in train_set.samples}:
            val_path = None
    if val_path:
        split = "val" if is_yolo else None
        val_set = read_checked(val_path, cfg, split=split, progress=progress)
        if val_set.skeleton.names != train_set.skeleton.names:
            raise DataError(
                f"validation keypoints {list(val_set.skeleton.names)} differ from training "
                f"keypoints {list(train_set.skeleton.names)}",
                cfg.data.val_path,
            )
        how = f"the validation labels {val_path}"
        _say(separate_plan(refs, frame_refs(val_set), how, timings), say)
        return train_set, val_set
    if cfg.data.val_fraction > 0 and len(train_set) >= 2:
        data = cfg.data
        names = [str(s.image) for s in train_set.samples]
        plan = plan_split(refs, data.split, data.val_fraction, data.split_seed, timings, names)
        _say(plan, say)
        return train_set.subset(plan.train), train_set.subset(plan.val)
    log.warning(
        "no validation split (val_fraction 0 or a single image): validating on training data"
    )
    return train_set, train_set


def _say(plan: SplitPlan, show: bool) -> None:
    # The split's line is shown by the main process (quiet runs too); warnings by every one.
    if show:
        Console(stderr=True, width=120).print(split_summary(plan), highlight=False)
    for line in split_warnings(plan):
        log.warning("%s", line)


def build_data(
    cfg: Config,
    train_kset: KeypointSet,
    val_kset: KeypointSet,
    device: torch.device,
    info: DistInfo,
) -> TrainData:
    """Datasets, loaders, codec and loss for the split labels (:func:`split_data`).

    Args:
        cfg: the run's config, its recipe already planned.
        train_kset: the training labels.
        val_kset: the validation labels.
        device: where training runs.
        info: the process group (each process loads its share of the global batch).

    Returns:
        The training data.

    Raises:
        DataError: no instance has a labelled keypoint.
    """
    codec = make_codec(cfg)
    aug, size = cfg.augment, cfg.model.input_size
    # Video frames are decoded here, before the loaders fork their workers (who inherit them).
    show = info.is_main and not cfg.run.quiet
    train_ds = KeypointDataset(
        train_kset, codec, size, aug, box_margin=aug.box_margin, progress=show
    )
    val_ds = KeypointDataset(
        val_kset, codec, size, None, train=False, box_margin=aug.box_margin, progress=show
    )
    if len(train_ds) == 0:
        raise DataError("no instance with a labelled keypoint to train on", cfg.data.path)
    per_process = max(1, cfg.loader.batch_size // info.world_size)
    per_process = min(per_process, max(1, len(train_ds) // info.world_size))
    if per_process * info.world_size != cfg.loader.batch_size:
        log.warning(
            "loader.batch_size %d -> %d per process x %d (dataset size / process count)",
            cfg.loader.batch_size,
            per_process,
            info.world_size,
        )
    loader_cfg = cfg.loader.model_copy(update={"batch_size": per_process})
    # Also with one process: the same permutation then splits exactly across N processes,
    # so a torchrun run sees the same global batches as a single-process run.
    sampler = DistributedSampler(
        train_ds, info.world_size, info.rank, shuffle=True, seed=cfg.train.seed, drop_last=True
    )
    seed = cfg.train.seed
    train_loader = make_loader(
        train_ds, loader_cfg, train=True, device=device, seed=seed, sampler=sampler
    )
    val_loader = make_loader(val_ds, loader_cfg, train=False, device=device, seed=seed)
    skeleton = train_kset.skeleton
    # Per-keypoint losses summed here, divided by the global labelled count in the loop
    # (see global_mean_loss): the "mean" of one process holding the whole batch.
    loss_fn = make_loss(cfg, reduction="keypoint_sum")
    baseline = mean_pose_error(train_kset, val_kset)
    return TrainData(
        skeleton=skeleton,
        codec=codec,
        loss_fn=loss_fn,
        train_set=train_ds,
        val_set=val_ds,
        train_loader=train_loader,
        val_loader=val_loader,
        baseline_px=baseline,
    )
