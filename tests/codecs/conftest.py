"""Fixtures of the codec tests."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch


@pytest.fixture
def onnx_check():
    """check(module, example_inputs, check_inputs): export, run in onnxruntime, compare.

    Exports with the TorchScript exporter and a dynamic batch axis (the dynamo exporter when
    that one is gone), then runs a batch of another size and compares with torch (1e-3).
    """
    ort = pytest.importorskip("onnxruntime")
    return lambda module, example, check: _export_and_run(ort, module, example, check)


def _export_and_run(ort, module, example, check):
    buf = io.BytesIO()
    names = [f"in{i}" for i in range(len(example))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module,
                example,
                buf,
                dynamo=False,
                opset_version=17,
                input_names=names,
                dynamic_axes={n: {0: "batch"} for n in names},
            )
            data = buf.getvalue()
        except Exception:  # legacy exporter gone: the dynamo one (slower)
            batch = torch.export.Dim("batch")
            prog = torch.onnx.export(
                module,
                example,
                dynamo=True,
                opset_version=18,
                dynamic_shapes=tuple({0: batch} for _ in example),
            )
            data = prog.model_proto.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    inputs = tuple(torch.cat([t, t.flip(0)]) for t in check)  # another batch size
    got = session.run(None, {n: t.numpy() for n, t in zip(names, inputs, strict=True)})
    want = module(*inputs)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w.numpy(), atol=1e-3, rtol=0)
