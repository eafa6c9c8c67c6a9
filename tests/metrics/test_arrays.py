"""The metrics' edges: inputs to numpy arrays, results to strict JSON values."""

from __future__ import annotations

import json

import numpy as np
import torch

from keypointer.metrics.arrays import json_ready, to_numpy


def test_to_numpy_widens_half_precision_tensors_to_float64():
    x = torch.tensor([[0.5, 1.25]], dtype=torch.bfloat16)
    out = to_numpy(x)
    assert out.dtype == np.float64 and out.tolist() == [[0.5, 1.25]]
    assert to_numpy([1, 0, 2], bool).tolist() == [True, False, True]


def test_json_ready_gives_plain_values_and_none_for_nan():
    values = {
        "mean": np.float32(1.5),
        "count": np.int64(3),
        "missing": float("nan"),
        "per_keypoint": np.array([0.25, np.inf]),
        "nested": {1: (np.float64(2.0), "a")},
    }
    out = json_ready(values)
    assert out == {
        "mean": 1.5,
        "count": 3,
        "missing": None,
        "per_keypoint": [0.25, None],
        "nested": {"1": [2.0, "a"]},
    }
    assert type(out["count"]) is int
    assert json.loads(json.dumps(out, allow_nan=False)) == out
