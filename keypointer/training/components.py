"""The parts :func:`keypointer.training.loop.setup` assembles: seeding, backends, the model and
its wrappers (DDP, EMA), TensorBoard."""

from __future__ import annotations

import gc
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from keypointer.config import Config, ConfigError
from keypointer.models.model import KeypointModel, build_model
from keypointer.training import distributed as dist
from keypointer.training.loaders import TrainData
from keypointer.training.records import ScalarWriter


def open_tensorboard(cfg: Config, run_dir: Path) -> ScalarWriter | None:
    """A TensorBoard writer on the run folder when ``run.tensorboard`` says so.

    Args:
        cfg: the run's config.
        run_dir: the run folder (the event files go there).

    Returns:
        A ``SummaryWriter``, or None when ``run.tensorboard`` is off.
    """
    if not cfg.run.tensorboard:
        return None
    from torch.utils.tensorboard import SummaryWriter  # optional: tensorboard installed

    return SummaryWriter(str(run_dir))


def check_tensorboard(cfg: Config) -> None:
    """Stop with a ConfigError before anything is written when ``run.tensorboard`` is on but
    the tensorboard package is missing.

    Args:
        cfg: the run's config.
    """
    if cfg.run.tensorboard:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise ConfigError(
                "run.tensorboard: the tensorboard package is not installed (pip install tensorboard)"
            ) from None


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's random generators.

    Args:
        seed: ``train.seed``.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_backends(cfg: Config, device: torch.device) -> None:
    """Deterministic algorithms (``train.deterministic``), else cuDNN autotuning on CUDA.

    Args:
        cfg: the run's config.
        device: where training runs.
    """
    if cfg.train.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        # Input size is fixed by model.input_size, so autotuning pays off after the first step.
        torch.backends.cudnn.benchmark = cfg.train.cudnn_benchmark


def build_model_for(cfg: Config, data: TrainData, device: torch.device) -> KeypointModel:
    """The pose model for the data's skeleton and codec, on ``device``.

    Args:
        cfg: the run's config.
        data: the training data (skeleton, codec).
        device: where training runs.

    Returns:
        The model, channels-last when ``train.channels_last``.
    """
    model = build_model(cfg, data.skeleton.num_keypoints, data.codec).to(device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def wrap_ddp(model: nn.Module, cfg: Config, device: torch.device, info: dist.DistInfo) -> nn.Module:
    """The model that trains: wrapped in DDP (SyncBatchNorm with ``train.sync_bn``) under
    torchrun, else ``model`` itself.

    Args:
        model: the plain model.
        cfg: the run's config.
        device: this process's device.
        info: the process group.

    Returns:
        The model to train.
    """
    if not info.enabled:
        return model
    if cfg.train.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside a DDP wrapper (``model`` itself when it is none).

    Args:
        model: a model, DDP-wrapped or not.

    Returns:
        The plain model.
    """
    return model.module if isinstance(model, DistributedDataParallel) else model


def make_ema(model: nn.Module, cfg: Config) -> AveragedModel:
    """An EMA copy of ``model`` (buffers averaged too) with decay ``train.ema_decay``.

    Args:
        model: the plain model.
        cfg: the run's config.

    Returns:
        The averaged model.
    """
    return AveragedModel(
        model, multi_avg_fn=get_ema_multi_avg_fn(cfg.train.ema_decay), use_buffers=True
    )


def freeze_setup_objects() -> bool:
    """Move everything alive now (modules, model, dataset) out of the collector's sight, so
    that the full collection after each epoch costs ~10 ms instead of ~200 ms. Without one,
    each epoch's curves.png figure (a reference cycle) waits for a rare full collection and
    resident memory creeps up by ~6 MiB per epoch (benchmarks/memory.py). False when
    someone else froze objects already: theirs are not ours to unfreeze."""
    if gc.get_freeze_count():
        return False
    gc.collect()
    gc.freeze()
    return True
