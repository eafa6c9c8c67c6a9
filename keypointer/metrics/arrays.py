"""The metrics' edges: inputs to numpy arrays, whatever they came as, and results to plain
JSON values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

JsonValue: TypeAlias = "None | bool | int | float | str | list[JsonValue] | dict[str, JsonValue]"
"""What ``json.dump`` writes in strict JSON (no NaN)."""


def to_numpy(x: npt.ArrayLike, dtype: npt.DTypeLike = np.float64) -> np.ndarray:
    """A numpy array from a numpy array, a list or a torch tensor (any device or dtype).

    Args:
        x: the values; a tensor is detached and copied to the CPU.
        dtype: the array's dtype.

    Returns:
        ``x`` as an array of ``dtype``, same shape.
    """
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.double()  # bf16/fp16 tensors have no numpy twin
        x = x.numpy()
    return np.asarray(x, dtype=dtype)


def json_ready(values: Mapping[str, object]) -> dict[str, JsonValue]:
    """A metrics dict made of plain Python values for ``json.dump``.

    Args:
        values: nested dicts, lists, tuples, numpy arrays and scalars.

    Returns:
        The same structure with str keys, arrays and tuples as lists, numpy scalars as Python
        ones, and NaN/inf as None.
    """
    return {str(k): _json_value(v) for k, v in values.items()}


def _json_value(x: object) -> JsonValue:
    if isinstance(x, dict):
        return json_ready(x)
    if isinstance(x, list | tuple | np.ndarray):
        return [_json_value(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    return None if isinstance(x, float) and not np.isfinite(x) else x
