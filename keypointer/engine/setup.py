"""Training set-up: device, precision, seeding, backends, model wrapping (DDP, EMA), TensorBoard."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from keypointer.config import Config, ConfigError
from keypointer.engine import distributed as dist
from keypointer.engine.data import TrainData


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"train.device: {name!r} is not a device; use auto, cpu, cuda or cuda:<index>"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {name!r} asked for, but CUDA is not available here")
    return device


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """auto: bf16 on GPUs that support it (else fp16), and on CPUs with native bf16
    instructions (AVX512-BF16 or AMX), where it about doubles training throughput;
    off on other CPUs, where bf16 would be emulated."""
    if mode == "off":
        return None
    if device.type != "cuda":
        if mode == "fp16":
            raise ConfigError("train.amp: fp16 needs CUDA; use bf16 or off on the CPU")
        return torch.bfloat16 if mode == "bf16" or cpu_has_native_bf16() else None
    if mode == "fp16" or (mode == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


def cpu_has_native_bf16() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = set(f.read().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def make_autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def open_tensorboard(cfg: Config, run_dir: Path):
    if not cfg.run.tensorboard:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(run_dir))


def check_tensorboard(cfg: Config) -> None:
    if cfg.run.tensorboard:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise ConfigError(
                "run.tensorboard: the tensorboard package is not installed (pip install tensorboard)"
            ) from None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_backends(cfg: Config, device: torch.device) -> None:
    if cfg.train.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        # Input size is fixed by model.input_size, so autotuning pays off after the first step.
        torch.backends.cudnn.benchmark = cfg.train.cudnn_benchmark


def build_model_for(cfg: Config, data: TrainData, device: torch.device) -> nn.Module:
    from keypointer.models.model import build_model

    model = build_model(cfg, data.skeleton.num_keypoints, data.codec).to(device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def wrap_ddp(model: nn.Module, cfg: Config, device: torch.device, info: dist.DistInfo) -> nn.Module:
    if not info.enabled:
        return model
    if cfg.train.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def make_ema(model: nn.Module, cfg: Config) -> AveragedModel:
    return AveragedModel(
        model, multi_avg_fn=get_ema_multi_avg_fn(cfg.train.ema_decay), use_buffers=True
    )
