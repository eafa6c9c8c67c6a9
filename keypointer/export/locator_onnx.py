"""The locator as its own ONNX file, next to the pose model's: ``best.onnx`` and
``best.locator.onnx``.

Between the two stages sits a variable number of affine crops per image, which does not fit
one static graph well, so the export is two graphs; :mod:`keypointer.inference.locate` runs
the same pre- and post-processing around either the PyTorch locator or this file, so both give
the same boxes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import TypedDict

import numpy as np
import torch
from torch import nn

from keypointer.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from keypointer.errors import CheckpointError, ExportError
from keypointer.files import plain_file_mode
from keypointer.version import __version__

TOLERANCE = 1e-2  # px on boxes, and on scores, between PyTorch and ONNX Runtime


class LocatorReport(TypedDict):
    """What :func:`export_locator` reports: the file and its largest difference from PyTorch."""

    path: str
    max_diff: float


def locator_path(pose_onnx: str | Path) -> Path:
    """``run/best.onnx`` -> ``run/best.locator.onnx``: where the locator of a pose export is."""
    p = Path(pose_onnx)
    return p.with_name(f"{p.stem}.locator{p.suffix}")


class _LocatorWrapper(nn.Module):
    """0-255 RGB images (N, 3, H, W) -> boxes (N, k, 4) input px, scores (N, k)."""

    def __init__(self, locator: nn.Module):
        super().__init__()
        self.locator = locator
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("inv_std", 1.0 / std, persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.locator.decode_topk(self.locator((images - self.mean) * self.inv_std))


def export_locator(locator: nn.Module, path: str | Path, opset: int = 17) -> LocatorReport:
    """Write ``locator`` (a LocatorModel) to ``path`` atomically, then check it against
    PyTorch on random images; returns ``{"path", "max_diff"}``. The TorchScript exporter is
    used: the top-k decode exports cleanly with it (the dynamo exporter adds nothing here)."""
    path = Path(path)
    wrapper = _LocatorWrapper(locator.cpu().eval()).eval()
    w, h = locator.input_size
    example = torch.rand(2, 3, h, w) * 255.0
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    axes = {"images": {0: "batch"}, "boxes": {0: "batch"}, "scores": {0: "batch"}}
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                (example,),
                tmp,
                dynamo=False,
                dynamic_axes=axes,
                opset_version=opset,
                input_names=["images"],
                output_names=["boxes", "scores"],
            )
        _add_metadata(Path(tmp), locator)
        os.chmod(tmp, plain_file_mode())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return LocatorReport(path=str(path), max_diff=_verify(wrapper, path, example))


def _add_metadata(path: Path, locator: nn.Module) -> None:
    import onnx

    proto = onnx.load(str(path))
    props = {
        "keypointer_version": __version__,
        "kind": "locator",
        "input_size": json.dumps(list(locator.input_size)),
        "input_format": "float32 NCHW RGB 0-255",
        "min_pose_score": json.dumps(float(getattr(locator, "min_pose_score", 0.0))),
    }
    ratio = getattr(locator, "box_ratio", None)
    if ratio is not None:
        props["box_ratio"] = json.dumps([float(v) for v in ratio])
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(path))


def _verify(wrapper: nn.Module, path: Path, example: torch.Tensor) -> float:
    """Largest difference of the scores (sorted) and of the boxes whose score no other box
    comes near, PyTorch vs ONNX Runtime (near-equal scores may take the top-k in either
    order, which is no difference in the boxes found)."""
    with torch.inference_mode():
        boxes, scores = (t.numpy() for t in wrapper(example))
    got_boxes, got_scores = OnnxLocator(path).run(example.numpy())
    diff = float(np.abs(np.sort(got_scores, 1) - np.sort(scores, 1)).max())
    for b, s, gb, gs in zip(boxes, scores, got_boxes, got_scores, strict=True):
        gaps = np.abs(s[:, None] - s[None, :]) + np.eye(len(s))
        for i in np.flatnonzero(gaps.min(1) > 1e-3):
            j = int(np.abs(gs - s[i]).argmin())
            diff = max(diff, float(np.abs(gb[j] - b[i]).max()))
    if diff > TOLERANCE:
        raise ExportError(f"{path}: the ONNX locator differs from PyTorch by {diff:.3g}")
    return diff


class OnnxLocator:
    """An exported locator in ONNX Runtime: ``run(images (N, 3, H, W) 0-255 float32)`` ->
    boxes (N, k, 4) input px, scores (N, k), as numpy; ``input_size`` (W, H), and as the
    PyTorch locator has them, ``box_ratio`` and ``min_pose_score``."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
            meta = self.session.get_modelmeta().custom_metadata_map
            if meta.get("kind") != "locator":
                raise ValueError("not a locator")
            self.input_size = tuple(int(v) for v in json.loads(meta["input_size"]))
            ratio = json.loads(meta["box_ratio"]) if "box_ratio" in meta else None
            self.box_ratio = None if ratio is None else (float(ratio[0]), float(ratio[1]))
            self.min_pose_score = float(json.loads(meta.get("min_pose_score", "0")))
        except Exception as err:  # onnxruntime raises its own exception types
            raise CheckpointError(f"{self.path}: not a keypointer locator export ({err})") from None

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes, scores = self.session.run(None, {"images": np.asarray(images, np.float32)})
        return boxes, scores
