"""Print the environment (``KEY=VALUE`` lines, for ``env``) that moves this machine's CPU
kernels one level down: ``make test-dispatch`` re-runs tests under it, so that a test which
only holds with this machine's kernels fails here rather than on someone else's machine.

Each library picks its kernels when it loads, from what the CPU offers; each has its own
switch, and each switch only takes what the CPU has (OpenCV prints a warning on every import
for a feature the CPU lacks, and a test reading stderr would see it):

- PyTorch's own kernels: ``ATEN_CPU_CAPABILITY`` (AVX512 -> avx2, AVX2 -> default).
- oneDNN (convolutions) and MKL (matrix products): ``DNNL_MAX_CPU_ISA``,
  ``MKL_ENABLE_INSTRUCTIONS`` (AVX-512 -> AVX2, AVX2 -> AVX), which also turns off AMX.
- OpenCV (resizing, warps, colour conversion): ``OPENCV_CPU_DISABLE``, the AVX-512 groups
  the CPU has, or AVX2 and AVX_VNNI where it has no AVX-512.
- NumPy: ``NPY_DISABLE_CPU_FEATURES``, its highest dispatch groups that the CPU has.
- Mixed precision: ``KEYPOINTER_CPU_BF16`` flips ``train.amp=auto``'s choice (bf16 autocast
  on CPUs with native bf16, float32 elsewhere), so both numerics get tested on either CPU.

ONNX Runtime has no such switch, and nothing here changes the FFmpeg build or how the
hardware rounds: those differences stay untested.
"""

from __future__ import annotations

import sys


def lower_dispatch() -> dict[str, str]:
    """The variables (name -> value) that move each library one level below its default."""
    import cv2
    import torch
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    from keypointer.device import cpu_has_native_bf16

    env = {}
    avx512 = torch.backends.cpu.get_cpu_capability() == "AVX512"
    env["ATEN_CPU_CAPABILITY"] = "avx2" if avx512 else "default"
    env["DNNL_MAX_CPU_ISA"] = "AVX2" if avx512 else "AVX"
    env["MKL_ENABLE_INSTRUCTIONS"] = "AVX2" if avx512 else "AVX"

    # "*AVX2" is a dispatched feature the CPU has; "*AVX2?" one it lacks.
    have = [f[1:] for f in cv2.getCPUFeaturesLine().split() if f[0] == "*" and f[-1] != "?"]
    top = [f for f in have if f.startswith("AVX512")] or [
        f for f in have if f in ("AVX2", "AVX_VNNI")
    ]
    if top:
        env["OPENCV_CPU_DISABLE"] = ",".join(top)

    groups = [g for g in __cpu_dispatch__ if __cpu_features__.get(g)]  # lowest first
    if groups:
        highest = [g for g in groups if g != "X86_V3"] or groups[-1:]
        env["NPY_DISABLE_CPU_FEATURES"] = ",".join(highest)

    env["KEYPOINTER_CPU_BF16"] = "0" if cpu_has_native_bf16() else "1"
    return env


if __name__ == "__main__":
    chosen = lower_dispatch()
    print("\n".join(f"{k}={v}" for k, v in chosen.items()))
    print("dispatch lowered:", " ".join(f"{k}={v}" for k, v in chosen.items()), file=sys.stderr)
