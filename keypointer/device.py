"""Devices and mixed precision: which device a run uses, which autocast dtype, the autocast."""

from __future__ import annotations

import contextlib
import os

import torch

from keypointer.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:<index>``."""
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
    """The autocast dtype of ``train.amp`` on ``device``; None: no autocast.

    auto: bf16 on GPUs that support it (else fp16), and on CPUs with native bf16 instructions
    (AVX512-BF16 or AMX), where it trains faster than float32 (measured: benchmarks/RESULTS.md,
    "Training step"); off on other CPUs, where bf16 would be emulated."""
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
    """Whether /proc/cpuinfo lists AVX512-BF16 or AMX-BF16. ``KEYPOINTER_CPU_BF16=1`` or ``0``
    says so instead, so that one machine runs the other's numerics (``make test-dispatch``)."""
    forced = os.environ.get("KEYPOINTER_CPU_BF16", "")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = set(f.read().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def make_autocast(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``; a no-op context when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
