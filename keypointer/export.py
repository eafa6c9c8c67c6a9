"""ONNX export with decoding inside the graph, its check against PyTorch, and ONNX Runtime.

The exported graph (one ``.onnx`` file, opset 18+, dynamic batch) is::

    images    float32 (N, 3, H, W): RGB, values 0-255 (not normalised), H x W = input size
    keypoints float32 (N, K, 2): x, y in input pixels (pixel centres at integers)
    scores    float32 (N, K)

ImageNet normalisation and the codec's decoding are in the graph, so a deployer only resizes
(letterboxes) the image to the input size and converts HWC uint8 to NCHW float. With
``flip=True`` flip test-time augmentation is in the graph too. ``metadata_props`` hold the
keypoint names, skeleton edges, flip pairs, input size, the config and the keypointer
version, so ``keypointer predict model.onnx`` needs no checkpoint.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from keypointer import __version__
from keypointer.codecs import HeatmapCodec
from keypointer.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from keypointer.engine.checkpoint import plain_file_mode
from keypointer.engine.predict import (
    average_heatmaps,
    averages_heatmaps,
    decode_output,
    flip_average,
)
from keypointer.errors import CheckpointError, KeypointerError
from keypointer.skeleton import Skeleton

log = logging.getLogger("keypointer")

TOLERANCE_PX = 1e-3
INPUT_FORMAT = "float32 NCHW RGB 0-255"


class ExportError(KeypointerError):
    """The exported graph does not reproduce the PyTorch model."""


class ExportWrapper(nn.Module):
    """0-255 RGB images (N, 3, H, W) -> keypoints (N, K, 2) input px, scores (N, K)."""

    def __init__(self, model: nn.Module, flip: bool = False):
        super().__init__()
        self.model = model
        self.flip_index = model.skeleton.flip_index() if flip else None
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("inv_std", 1.0 / std, persistent=False)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) * self.inv_std

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return flip_average(self.model, self.normalise(images), self.flip_index)


def default_onnx_path(checkpoint: str | Path) -> Path:
    """``run/best.pt`` -> ``run/best.onnx``; a run folder -> ``run/best.onnx``."""
    p = Path(checkpoint)
    return p / "best.onnx" if p.is_dir() else p.with_suffix(".onnx")


def export_onnx(
    model: nn.Module,
    path: str | Path,
    flip: bool = False,
    opset: int = 18,
    check: bool = True,
    exporter: str = "auto",
) -> dict[str, Any]:
    """Write ``model`` (a loaded KeypointModel with ``.skeleton`` and ``.config``) to ``path``.

    ``exporter`` "auto" tries torch's default dynamo exporter, then the TorchScript one
    ("dynamo" / "torchscript": only that one; TorchScript is ~20x faster to export and gives
    the same results). With ``check`` the file is compared with PyTorch on random images
    (:func:`verify_onnx`, raising :class:`ExportError`). Returns
    ``{"path", "exporter", ...verify_onnx's report}``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = ExportWrapper(model.cpu().eval(), flip).eval()
    w, h = model.codec.input_size
    example = torch.rand(2, 3, h, w) * 255.0
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        exporter = _export(wrapper, example, Path(tmp), opset, exporter)
        _add_metadata(Path(tmp), model, flip)
        os.chmod(tmp, plain_file_mode())  # mkstemp's 0600, not the umask's mode
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    report: dict[str, Any] = {"path": str(path), "exporter": exporter}
    if check:
        report.update(verify_onnx(model, path, flip))
    return report


def _export(
    wrapper: nn.Module, example: torch.Tensor, path: Path, opset: int, exporter: str = "auto"
) -> str:
    if exporter not in ("auto", "dynamo", "torchscript"):
        raise KeypointerError(f"unknown exporter {exporter!r}: auto, dynamo or torchscript")
    names = {"input_names": ["images"], "output_names": ["keypoints", "scores"]}
    quiet = contextlib.redirect_stdout(io.StringIO())  # the exporter prints its progress
    try:
        if exporter == "torchscript":
            raise RuntimeError("TorchScript exporter asked for")
        with quiet, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            batch = torch.export.Dim("batch", min=1, max=4096)
            torch.onnx.export(
                wrapper, (example,), str(path), dynamo=True, external_data=False,
                dynamic_shapes=({0: batch},), opset_version=opset, **names,
            )  # fmt: skip
        return "dynamo"
    except Exception as err:  # the dynamo exporter fails on some timm models; fall back
        if exporter == "dynamo":
            raise
        if exporter == "auto":
            log.warning("dynamo ONNX export failed (%s); using the TorchScript exporter", err)
    axes = {"images": {0: "batch"}, "keypoints": {0: "batch"}, "scores": {0: "batch"}}
    with quiet, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, (example,), str(path), dynamo=False, dynamic_axes=axes,
            opset_version=min(opset, 17), **names,
        )  # fmt: skip
    return "torchscript"


def _add_metadata(path: Path, model: nn.Module, flip: bool) -> None:
    import onnx

    proto = onnx.load(str(path))
    skeleton: Skeleton = model.skeleton
    cfg = getattr(model, "config", None)
    props = {
        "keypointer_version": __version__,
        "keypoint_names": json.dumps(list(skeleton.names)),
        "skeleton": json.dumps(skeleton.to_dict()),
        "input_size": json.dumps(list(model.codec.input_size)),
        "input_format": INPUT_FORMAT,
        "flip_tta": json.dumps(bool(flip)),
        "config": json.dumps(cfg.to_dict() if cfg is not None else None),
    }
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(path))


# --------------------------------------------------------------------------- checking


def verify_onnx(
    model: nn.Module,
    path: str | Path,
    flip: bool = False,
    batch_sizes: tuple[int, ...] = (1, 5),
    seed: int = 0,
) -> dict[str, Any]:
    """Compare the ONNX file with PyTorch on random 0-255 images at each batch size.

    Keypoints whose decoding is ill-conditioned (see :func:`ill_conditioned`) are left out:
    there, float rounding differences between the two runtimes (~1e-6 relative) move the
    result by far more than the tolerance, as they would between two PyTorch builds. Raises
    :class:`ExportError` when a compared keypoint differs by ``TOLERANCE_PX`` or more.
    """
    session = OnnxModel(path)
    wrapper = ExportWrapper(model.cpu().eval(), flip).eval()
    w, h = model.codec.input_size
    gen = torch.Generator().manual_seed(seed)
    max_diff, max_score_diff, compared, total = 0.0, 0.0, 0, 0
    for n in batch_sizes:
        images = torch.rand(n, 3, h, w, generator=gen) * 255.0
        with torch.inference_mode():
            kp, scores = wrapper(images)
            skip = ill_conditioned(model, wrapper.normalise(images), wrapper.flip_index)
        kp_o, scores_o = session.run(images.numpy())
        if kp_o.shape != tuple(kp.shape):
            raise ExportError(f"{path}: keypoints {kp_o.shape} for batch {n}, expected {kp.shape}")
        diff = np.linalg.norm(kp_o - kp.numpy(), axis=-1)[~skip.numpy()]
        compared, total = compared + diff.size, total + skip.numel()
        max_diff = max(max_diff, float(diff.max(initial=0.0)))
        max_score_diff = max(max_score_diff, float(np.abs(scores_o - scores.numpy()).max()))
    report = {"max_diff_px": max_diff, "max_score_diff": max_score_diff}
    report.update(compared=compared, total=total, batch_sizes=list(batch_sizes))
    if max_diff >= TOLERANCE_PX:
        raise ExportError(
            f"{path}: ONNX Runtime differs from PyTorch by {max_diff:.2e} px "
            f"(tolerance {TOLERANCE_PX:g} px)"
        )
    return report


@torch.inference_mode()
def ill_conditioned(
    model: nn.Module,
    images: torch.Tensor,
    flip_index: list[int] | None = None,
    rel: float = 2e-6,
    tol: float = 2.5e-4,
    repeats: int = 3,
) -> torch.Tensor:
    """(N, K) bool: keypoints whose decoding float rounding can move by ``tol`` px or more.

    ``images`` are normalised (N, 3, H, W). The raw output is perturbed ``repeats`` times by
    uniform noise of ``rel`` times each map's largest magnitude (a few times the differences
    seen between PyTorch and ONNX Runtime) and decoded again. Heatmap and SimCC maps whose top
    two values are closer than that are flagged too (an argmax near-tie). Typical of flat
    outputs (untrained models, images without the object), rare on a trained model's peaks.
    """
    model.eval()
    x = torch.cat([images, images.flip(-1)]) if flip_index is not None else images
    out = model(x)
    out = tuple(o.float() for o in out) if isinstance(out, tuple) else out.float()
    codec = model.codec
    ref, _ = decode_output(codec, out, flip_index)
    gen = torch.Generator().manual_seed(0)
    moved = torch.zeros(ref.shape[:2])
    for _ in range(repeats):
        noisy = _perturb(out, rel, gen)
        kp, _ = decode_output(codec, noisy, flip_index)
        moved = torch.maximum(moved, torch.linalg.norm(kp - ref, dim=-1))
    flagged = ~(moved < tol)  # NaN counts as moved
    return flagged | _near_ties(codec, out, flip_index, rel)


def _perturb(out: Any, rel: float, gen: torch.Generator) -> Any:
    if isinstance(out, tuple):
        return tuple(_perturb(o, rel, gen) for o in out)
    scale = out.abs().flatten(2).amax(-1) if out.dim() > 2 else out.abs()
    scale = scale.reshape(scale.shape + (1,) * (out.dim() - scale.dim()))
    return out + (torch.rand(out.shape, generator=gen) * 2 - 1) * rel * scale


def _near_ties(codec: Any, out: Any, flip_index: list[int] | None, rel: float) -> torch.Tensor:
    if flip_index is not None and averages_heatmaps(codec, out):
        return _tie(average_heatmaps(out, flip_index).flatten(2), rel)
    if isinstance(codec, HeatmapCodec) and isinstance(out, torch.Tensor):
        tie = _tie(out.flatten(2), rel)
        return tie if flip_index is None else _pair_halves(tie, flip_index)
    if isinstance(out, tuple):  # SimCC: x and y logits
        tie = _tie(out[0], rel) | _tie(out[1], rel)
        return tie if flip_index is None else _pair_halves(tie, flip_index)
    n = out.shape[0] // (2 if flip_index is not None else 1)
    return torch.zeros(out.shape[:2], dtype=torch.bool)[:n]


def _pair_halves(flags: torch.Tensor, flip_index: list[int]) -> torch.Tensor:
    """(2N, K) flags of images then mirror images -> (N, K): either copy flagged."""
    n = flags.shape[0] // 2
    return flags[:n] | flags[n:, list(flip_index)]


def _tie(values: torch.Tensor, rel: float) -> torch.Tensor:
    """(N, K, L) -> (N, K): the two largest values closer than ``rel`` x the largest magnitude."""
    top = values.topk(2, dim=-1).values
    return (top[..., 0] - top[..., 1]) <= 2 * rel * values.abs().amax(-1)


# --------------------------------------------------------------------------- runtime


class OnnxModel:
    """An exported model in ONNX Runtime (CPU), with the same uses as a KeypointModel.

    ``predict(images)`` takes what ``KeypointModel.predict`` takes (normalised (N, 3, H, W),
    tensor or array) and returns torch tensors; ``run(images)`` takes the graph's own input
    (0-255 float) and returns numpy arrays; calling it on uint8 crops (N, H, W, 3) is the
    runner protocol of :mod:`keypointer.engine.predict`. ``skeleton``, ``input_size``,
    ``config`` and ``flip_in_graph`` come from the file's metadata.
    """

    def __init__(self, path: str | Path, threads: int | None = None, spin: bool | None = None):
        """``threads``: intra-op threads (None: ORT's choice); ``spin`` False: idle threads
        sleep instead of spin-waiting (better on a machine shared with other jobs)."""
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"ONNX model not found: {self.path}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = int(threads)
        if spin is not None:
            options.add_session_config_entry("session.intra_op.allow_spinning", str(int(spin)))
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
            meta = self.session.get_modelmeta().custom_metadata_map
            self.skeleton = Skeleton.from_dict(json.loads(meta["skeleton"]))
            self.input_size = tuple(int(v) for v in json.loads(meta["input_size"]))
            self.flip_in_graph = bool(json.loads(meta.get("flip_tta", "false")))
            config = json.loads(meta.get("config", "null"))
        except (KeyError, ValueError) as err:
            raise CheckpointError(
                f"{self.path}: not a keypointer ONNX export (metadata: {err})"
            ) from None
        except Exception as err:  # onnxruntime raises its own exception types
            raise CheckpointError(f"{self.path}: not a readable ONNX model ({err})") from None
        self.config = config
        self.margin = float(((config or {}).get("augment") or {}).get("box_margin", 1.25))
        self._warned = False

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """0-255 float RGB (N, 3, H, W) -> keypoints (N, K, 2) input px, scores (N, K)."""
        x = np.ascontiguousarray(images, dtype=np.float32)
        keypoints, scores = self.session.run(None, {"images": x})
        return keypoints, scores

    def __call__(self, crops: np.ndarray, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """uint8 RGB crops (N, H, W, 3) -> keypoints (N, K, 2) input px, scores (N, K).

        ``flip`` on a graph exported without flip TTA runs the mirrored crops too and averages
        the decoded coordinates (export with ``--flip`` for heatmap averaging, as PyTorch does).
        """
        x = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)
        if not flip or self.flip_in_graph:
            return self.run(x)
        kp, scores = self.run(np.concatenate([x, x[..., ::-1]]))
        n, index = len(x), self.skeleton.flip_index()
        mirrored = kp[n:, index].copy()
        mirrored[..., 0] = (self.input_size[0] - 1) - mirrored[..., 0]
        return (kp[:n] + mirrored) * 0.5, (scores[:n] + scores[n:, index]) * 0.5

    def predict(self, images: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Like ``KeypointModel.predict``: normalised images (N, 3, H, W) or (3, H, W)."""
        x = images.detach().cpu().float().numpy() if hasattr(images, "detach") else images
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        std = np.array(IMAGENET_STD, np.float32).reshape(1, 3, 1, 1) * 255.0
        mean = np.array(IMAGENET_MEAN, np.float32).reshape(1, 3, 1, 1) * 255.0
        kp, scores = self.run(x * std + mean)
        return torch.from_numpy(kp), torch.from_numpy(scores)


def export_command(
    checkpoint: Path, format: str = "onnx", out: Path | None = None, flip: bool = False
) -> dict[str, Any]:
    """What ``keypointer export`` does: load, export, check, print a summary."""
    from keypointer.engine.checkpoint import load_model
    from keypointer.output_paths import check_output_file

    if format != "onnx":
        raise KeypointerError(f"unknown export format {format!r}; supported: onnx")
    path = Path(out) if out is not None else default_onnx_path(checkpoint)
    check_output_file(path, example=default_onnx_path(checkpoint).name)
    model = load_model(checkpoint, "cpu")
    report = export_onnx(model, path, flip=flip)
    w, h = model.codec.input_size
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {report['exporter']} exporter)\n"
        f"input: images {INPUT_FORMAT}, (N, 3, {h}, {w}); outputs: keypoints (N, "
        f"{model.skeleton.num_keypoints}, 2) input px, scores (N, {model.skeleton.num_keypoints})"
        f"{'; flip TTA included' if flip else ''}\n"
        f"checked against PyTorch: max difference {report['max_diff_px']:.2e} px over "
        f"{report['compared']} of {report['total']} keypoints (the rest ill-conditioned)"
    )
    return report
