"""resolve_device and resolve_amp: device names and the autocast dtype they lead to."""

import pytest
import torch

from keypointer import device as device_module
from keypointer.device import make_autocast, resolve_amp, resolve_device
from keypointer.errors import ConfigError

CPU = torch.device("cpu")


def test_resolve_device_names():
    assert resolve_device("cpu") == CPU
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ConfigError, match="not a device"):
        resolve_device("toaster")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_resolve_device_refuses_cuda_without_it():
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda:0")


def test_resolve_amp_on_the_cpu(monkeypatch):
    assert resolve_amp("off", CPU) is None
    assert resolve_amp("bf16", CPU) is torch.bfloat16
    with pytest.raises(ConfigError, match="fp16 needs CUDA"):
        resolve_amp("fp16", CPU)
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: True)
    assert resolve_amp("auto", CPU) is torch.bfloat16
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: False)
    assert resolve_amp("auto", CPU) is None  # emulated bf16 would be slower than float32


def test_resolve_amp_on_a_gpu(monkeypatch):
    gpu = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_amp("auto", gpu) is torch.float16
    assert resolve_amp("fp16", gpu) is torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_amp("auto", gpu) is torch.bfloat16
    assert resolve_amp("off", gpu) is None


def test_make_autocast():
    with make_autocast(CPU, None):
        assert not torch.is_autocast_enabled("cpu")
    with make_autocast(CPU, torch.bfloat16):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16


def test_bf16_can_be_forced_either_way(monkeypatch):
    from keypointer.device import cpu_has_native_bf16

    monkeypatch.setenv("KEYPOINTER_CPU_BF16", "1")
    assert cpu_has_native_bf16() is True
    monkeypatch.setenv("KEYPOINTER_CPU_BF16", "0")
    assert cpu_has_native_bf16() is False
    monkeypatch.setenv("KEYPOINTER_CPU_BF16", "")
    with open("/proc/cpuinfo", encoding="utf-8") as f:  # unset: the hardware decides
        flags = set(f.read().split())
    assert cpu_has_native_bf16() == bool(flags & {"avx512_bf16", "amx_bf16"})
