"""Inputs of the metrics as numpy arrays, whatever they came as."""

from __future__ import annotations

from typing import Any

import numpy as np


def to_numpy(x: Any, dtype: Any = np.float64) -> np.ndarray:
    """A numpy array from a numpy array, a list or a torch tensor (any device or dtype)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.double()  # bf16/fp16 tensors have no numpy twin
        x = x.numpy()
    return np.asarray(x, dtype=dtype)
