"""ONNX export with decoding inside the graph, and its check against PyTorch.

The exported graph (one ``.onnx`` file, opset 18+, dynamic batch) is::

    images    float32 (N, 3, H, W): RGB, values 0-255 (not normalised), H x W = input size
    keypoints float32 (N, K, 2): x, y in input pixels (pixel centres at integers)
    scores    float32 (N, K)
    flip_gap  float32 (N, K): with ``flip=True`` only; see below

ImageNet normalisation and the codec's decoding are in the graph, so a deployer only resizes
(letterboxes) the image to the input size and converts HWC uint8 to NCHW float. With
``flip=True`` flip test-time augmentation is in the graph too, the same computation as
PyTorch's (:func:`~keypointer.models.decode.decode_batch_with_gap` is traced): keypoints and
scores are those of flip TTA, and ``flip_gap`` is the input pixels between the keypoints
decoded from the images alone and from their mirror images alone (what ``predict --flip``
flags as ``flip``). Such a graph always flips. ``metadata_props`` hold the
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
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

import numpy as np
import torch
from torch import nn

from keypointer.codecs import Codec, Output
from keypointer.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from keypointer.errors import ExportError, KeypointerError
from keypointer.export.locator_onnx import LocatorReport
from keypointer.export.onnx_model import FLIP_GAP, OnnxModel
from keypointer.files import plain_file_mode
from keypointer.models.decode import decode_batch, decode_batch_with_gap, decode_output
from keypointer.skeleton import Skeleton
from keypointer.tensors import to_float
from keypointer.version import __version__

log = logging.getLogger("keypointer")

TOLERANCE_PX = 1e-3
INPUT_FORMAT = "float32 NCHW RGB 0-255"


class ExportReport(TypedDict, total=False):
    """What :func:`export_onnx` and :func:`verify_onnx` report (the check's keys only with
    ``check``; ``max_flip_gap_diff_px`` only with ``flip``; ``locator`` is added by the
    ``export`` command for a two-stage model)."""

    path: str
    exporter: str
    max_diff_px: float
    max_score_diff: float
    max_flip_gap_diff_px: float
    compared: int
    total: int
    batch_sizes: list[int]
    locator: LocatorReport


class ExportWrapper(nn.Module):
    """0-255 RGB images (N, 3, H, W) -> keypoints (N, K, 2) input px, scores (N, K), and
    with ``flip`` the flip gap (N, K) input px."""

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

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.flip_index is None:
            return decode_batch(self.model, self.normalise(images))
        return decode_batch_with_gap(self.model, self.normalise(images), self.flip_index)


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
    locator_file: str | None = None,
) -> ExportReport:
    """Write ``model`` (a loaded KeypointModel with ``.skeleton`` and ``.config``) to ``path``.

    ``exporter`` "auto" tries torch's default dynamo exporter, then the TorchScript one
    ("dynamo" / "torchscript": only that one; TorchScript is much faster to export and gives
    the same results; measured: benchmarks/RESULTS.md, Inference). ``flip``: flip TTA in the graph, which then also outputs the flip gap
    (N, K). With ``check`` the file is compared with PyTorch on random images
    (:func:`verify_onnx`, raising :class:`ExportError`). ``locator_file``: the file name of
    the locator exported beside it (a two-stage model), written into the metadata so that the
    pose file alone is known to be half a model.

    Args:
        model: a loaded KeypointModel (``.skeleton``, ``.config``); moved to the CPU.
        path: the ``.onnx`` file to write (atomically).
        flip: flip TTA in the graph, with the flip gap output.
        opset: the ONNX opset (the TorchScript exporter uses at most 17).
        check: compare the file with PyTorch (:func:`verify_onnx`).
        exporter: "auto", "dynamo" or "torchscript".
        locator_file: the name of the locator file beside it, or None.

    Returns:
        ``{"path", "exporter"}`` and, with ``check``, :func:`verify_onnx`'s report.
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
        _add_metadata(Path(tmp), model, flip, locator_file)
        os.chmod(tmp, plain_file_mode())  # mkstemp's 0600, not the umask's mode
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    report = ExportReport(path=str(path), exporter=exporter)
    if check:
        report.update(verify_onnx(model, path, flip))
    return report


def _export(
    wrapper: nn.Module, example: torch.Tensor, path: Path, opset: int, exporter: str = "auto"
) -> str:
    if exporter not in ("auto", "dynamo", "torchscript"):
        raise KeypointerError(f"unknown exporter {exporter!r}: auto, dynamo or torchscript")
    outputs = ["keypoints", "scores"] + ([FLIP_GAP] if wrapper.flip_index is not None else [])
    names = {"input_names": ["images"], "output_names": outputs}
    quiet = contextlib.redirect_stdout(io.StringIO())  # the exporter prints its progress
    try:
        if exporter == "torchscript":
            raise RuntimeError("TorchScript exporter asked for")
        with quiet, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            batch = torch.export.Dim("batch", min=1, max=4096)
            torch.onnx.export(
                wrapper,
                (example,),
                str(path),
                dynamo=True,
                external_data=False,
                dynamic_shapes=({0: batch},),
                opset_version=opset,
                **names,
            )
        return "dynamo"
    except Exception as err:  # the dynamo exporter fails on some timm models; fall back
        if exporter == "dynamo":
            raise
        if exporter == "auto":
            log.warning("dynamo ONNX export failed (%s); using the TorchScript exporter", err)
    axes = {name: {0: "batch"} for name in ["images", *outputs]}
    with quiet, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (example,),
            str(path),
            dynamo=False,
            dynamic_axes=axes,
            opset_version=min(opset, 17),
            **names,
        )
    return "torchscript"


def _add_metadata(path: Path, model: nn.Module, flip: bool, locator_file: str | None) -> None:
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
    if locator_file is not None:
        props["locator_file"] = locator_file
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(path))


# --------------------------------------------------------------------------- checking


def verify_onnx(
    model: nn.Module,
    path: str | Path,
    flip: bool = False,
    batch_sizes: tuple[int, ...] = (1, 5),
    seed: int = 0,
) -> ExportReport:
    """Compare the ONNX file with PyTorch on random 0-255 images at each batch size.

    Keypoints whose decoding is ill-conditioned (see :func:`ill_conditioned`) are left out:
    there, float rounding differences between the two runtimes (~1e-6 relative) move the
    result by far more than the tolerance, as they would between two PyTorch builds. Raises
    :class:`ExportError` when a compared keypoint differs by ``TOLERANCE_PX`` or more, or
    (with ``flip``) a flip gap by ``2 * TOLERANCE_PX`` or more (the distance between two
    decodings, each within ``TOLERANCE_PX``; either one ill-conditioned leaves it out).

    Args:
        model: the KeypointModel the file was exported from.
        path: the ``.onnx`` file.
        flip: the file was exported with flip TTA.
        batch_sizes: the batch sizes to run.
        seed: the random images' seed.

    Returns:
        The largest keypoint, score (and flip gap) differences and how many keypoints were
        compared of how many.
    """
    session = OnnxModel(path)
    wrapper = ExportWrapper(model.cpu().eval(), flip).eval()
    w, h = model.codec.input_size
    gen = torch.Generator().manual_seed(seed)
    max_diff, max_score_diff, max_gap_diff, compared, total = 0.0, 0.0, 0.0, 0, 0
    for n in batch_sizes:
        images = torch.rand(n, 3, h, w, generator=gen) * 255.0
        with torch.inference_mode():
            kp, scores, *gap = wrapper(images)
            x = wrapper.normalise(images)
            skip = ill_conditioned(model, x, wrapper.flip_index)
            gap_skip = _halves_ill_conditioned(model, x, wrapper.flip_index) if gap else None
        kp_o, scores_o, gap_o = session.run_graph(images.numpy())
        if kp_o.shape != tuple(kp.shape):
            raise ExportError(f"{path}: keypoints {kp_o.shape} for batch {n}, expected {kp.shape}")
        if (gap_o is None) != (not gap):
            raise ExportError(
                f"{path}: {'no' if gap_o is None else 'an unexpected'} flip gap output"
            )
        diff = np.linalg.norm(kp_o - kp.numpy(), axis=-1)[~skip.numpy()]
        compared, total = compared + diff.size, total + skip.numel()
        max_diff = max(max_diff, float(diff.max(initial=0.0)))
        max_score_diff = max(max_score_diff, float(np.abs(scores_o - scores.numpy()).max()))
        if gap:
            gap_diff = np.abs(gap_o - gap[0].numpy())[~(skip | gap_skip).numpy()]
            max_gap_diff = max(max_gap_diff, float(gap_diff.max(initial=0.0)))
    report = ExportReport(max_diff_px=max_diff, max_score_diff=max_score_diff)
    if flip:
        report["max_flip_gap_diff_px"] = max_gap_diff
    report.update(compared=compared, total=total, batch_sizes=list(batch_sizes))
    if max_diff >= TOLERANCE_PX:
        raise ExportError(
            f"{path}: ONNX Runtime differs from PyTorch by {max_diff:.2e} px "
            f"(tolerance {TOLERANCE_PX:g} px)"
        )
    if max_gap_diff >= 2 * TOLERANCE_PX:
        raise ExportError(
            f"{path}: ONNX Runtime's flip gap differs from PyTorch's by {max_gap_diff:.2e} px "
            f"(tolerance {2 * TOLERANCE_PX:g} px)"
        )
    return report


def _halves_ill_conditioned(
    model: nn.Module, images: torch.Tensor, flip_index: Sequence[int]
) -> torch.Tensor:
    """(N, K) bool: keypoints of normalised images (N, 3, H, W) whose flip gap is
    ill-conditioned: the decoding of the image alone or of its mirror image alone is."""
    both = ill_conditioned(model, torch.cat([images, images.flip(-1)]))
    return _pair_halves(both, flip_index)


@torch.inference_mode()
def ill_conditioned(
    model: nn.Module,
    images: torch.Tensor,
    flip_index: Sequence[int] | None = None,
    rel: float = 2e-6,
    tol: float = 2.5e-4,
    repeats: int = 3,
) -> torch.Tensor:
    """(N, K) bool: keypoints whose decoding float rounding can move by ``tol`` px or more.

    ``images`` are normalised (N, 3, H, W). The raw output is perturbed ``repeats`` times by
    uniform noise of ``rel`` times each map's largest magnitude (a few times the differences
    seen between PyTorch and ONNX Runtime) and decoded again. Keypoints whose argmax is a
    near-tie (the codec's :meth:`~keypointer.codecs.Codec.near_ties`) are flagged too. Typical
    of flat outputs (untrained models, images without the object), rare on a trained model's
    peaks.

    Args:
        model: a KeypointModel.
        images: normalised (N, 3, H, W).
        flip_index: the flip permutation (K,) when decoding with flip TTA, else None.
        rel: the perturbation, relative to each map's largest magnitude.
        tol: the movement, input px, that counts as ill-conditioned.
        repeats: how many perturbed decodings.

    Returns:
        (N, K) bool, True where the decoding is ill-conditioned.
    """
    model.eval()
    x = torch.cat([images, images.flip(-1)]) if flip_index is not None else images
    out = model(x)
    out = to_float(out)
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


def _perturb(out: Output, rel: float, gen: torch.Generator) -> Output:
    if isinstance(out, tuple):
        return tuple(_perturb(o, rel, gen) for o in out)
    scale = out.abs().flatten(2).amax(-1) if out.dim() > 2 else out.abs()
    scale = scale.reshape(scale.shape + (1,) * (out.dim() - scale.dim()))
    return out + (torch.rand(out.shape, generator=gen) * 2 - 1) * rel * scale


def _near_ties(
    codec: Codec, out: Output, flip_index: Sequence[int] | None, rel: float
) -> torch.Tensor:
    """(N, K) argmax near-ties of the output that is decoded: the flip-averaged one when the
    codec averages outputs, else either half's."""
    if flip_index is None:
        return codec.near_ties(out, rel)
    averaged = codec.average_flipped(out, flip_index)
    if averaged is not None:
        return codec.near_ties(averaged, rel)
    return _pair_halves(codec.near_ties(out, rel), flip_index)


def _pair_halves(flags: torch.Tensor, flip_index: Sequence[int]) -> torch.Tensor:
    """(2N, K) flags of images then mirror images -> (N, K): either copy flagged."""
    n = flags.shape[0] // 2
    return flags[:n] | flags[n:, list(flip_index)]
