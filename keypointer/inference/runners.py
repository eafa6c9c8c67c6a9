"""Inference on whole images or boxes: crops, flip test-time augmentation, runners, the command.

Three layers, each usable on its own:

- :func:`flip_average` / :func:`predict_batch`: a batch of normalised crops (N, 3, H, W) ->
  keypoints (N, K, 2) in input pixels and scores (N, K), optionally with flip TTA. Shared by
  ``keypointer eval``, ``keypointer predict`` and the ONNX export (so all three flip alike).
- :func:`crop_matrix` / :func:`predict_image`: RGB uint8 images of any size -> keypoints in
  that image's pixels (the whole image letterboxed into the input, or given boxes).
- :func:`predict_command`: files, folders and videos -> COCO results JSON, DeepLabCut-style
  CSV and drawn images/videos (the I/O lives in :mod:`keypointer.engine.predict_io`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from keypointer.codecs import HeatmapCodec
from keypointer.data import transforms as T

# --------------------------------------------------------------------------- flip TTA


def flip_heatmaps_back(heatmaps: torch.Tensor, flip_index: Sequence[int]) -> torch.Tensor:
    """UDP heatmaps (N, K, h, w) of horizontally flipped inputs -> those of the original inputs.

    Channels are swapped by ``flip_index`` and the maps mirrored. With UDP, input x maps to
    heatmap column ``x (w-1)/(W-1)``, so input mirroring ``x -> W-1-x`` is exactly column
    mirroring ``u -> w-1-u``. (With the plain stride the mirrored map is off by ``1 - w/W``
    columns; re-sampling it is exact inside but wrong within a few columns of the border,
    where the column beyond the edge is missing, so :func:`decode_output` averages decoded
    coordinates for such codecs instead.)
    """
    return heatmaps[:, list(flip_index)].flip(-1)


def flip_average(
    model: nn.Module, images: torch.Tensor, flip_index: Sequence[int] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode ``model`` on normalised images (N, 3, H, W), with flip TTA when ``flip_index``.

    The batch and its mirror image run as one batch of 2N (see :func:`decode_output`). Pure
    tensor ops without data-dependent branches (the ONNX export traces this). Returns
    keypoints (N, K, 2) in input pixels and scores (N, K).
    """
    if flip_index is not None:
        images = torch.cat([images, images.flip(-1)])
    return decode_output(model.codec, _to_float(model(images)), flip_index)


def decode_output(
    codec: Any, output: Any, flip_index: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw model output -> keypoints (N, K, 2) input px, scores (N, K).

    With ``flip_index`` the output is of 2N images, the N originals then their mirror
    images. Heatmap heads average the heatmaps (mirrored back, channels swapped) and decode
    once (UDP codecs, where mirroring is exact); other heads and plain-stride heatmaps decode
    both halves and average the mirrored-back coordinates and the scores.
    """
    if flip_index is None:
        return codec.decode(output)
    if averages_heatmaps(codec, output):
        return codec.decode(average_heatmaps(output, flip_index))
    keypoints, scores = codec.decode(output)
    n = keypoints.shape[0] // 2
    mirrored = keypoints[n:, list(flip_index)]
    x = (codec.input_size[0] - 1) - mirrored[..., 0]
    mirrored = torch.stack([x, mirrored[..., 1]], dim=-1)
    return (keypoints[:n] + mirrored) * 0.5, (scores[:n] + scores[n:, list(flip_index)]) * 0.5


def averages_heatmaps(codec: Any, output: Any) -> bool:
    """Whether flip TTA averages heatmaps (UDP heatmap codecs) rather than coordinates."""
    return isinstance(codec, HeatmapCodec) and codec.unbiased and isinstance(output, torch.Tensor)


def average_heatmaps(heatmaps: torch.Tensor, flip_index: Sequence[int]) -> torch.Tensor:
    """(2N, K, h, w) UDP heatmaps of N images then their mirror images -> (N, K, h, w) mean."""
    n = heatmaps.shape[0] // 2
    return (heatmaps[:n] + flip_heatmaps_back(heatmaps[n:], flip_index)) * 0.5


def _to_float(out: Any) -> Any:
    if isinstance(out, (tuple, list)):
        return tuple(o.float() for o in out)
    return out.float()


def predict_batch(
    model: nn.Module, images: torch.Tensor, flip_index: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`flip_average` in eval mode under ``torch.inference_mode`` (mode restored after).

    Without flip TTA it is exactly ``model.predict(images)``.
    """
    if flip_index is None:
        return model.predict(images)
    if images.dim() == 3:
        images = images.unsqueeze(0)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return flip_average(model, images, flip_index)
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------- crops


def crop_matrix(
    image_size: tuple[int, int],
    input_size: tuple[int, int],
    box: Sequence[float] | None = None,
    margin: float = 1.25,
) -> np.ndarray:
    """(2, 3) float64 matrix mapping input pixels to image pixels.

    ``image_size`` and ``input_size`` are (width, height). No ``box``: the whole image,
    letterboxed (aspect kept, centred, black bars). A COCO ``box`` (x, y, w, h): the box grown
    to the input's aspect ratio and by ``margin``, as the training crops are.
    """
    if box is None:
        center, size = T.image_crop(*image_size)
        return T.crop_affine(center, T.fit_aspect(size, input_size), input_size)
    center, size = T.bbox_crop(box)
    return T.crop_affine(center, T.fit_aspect(size, input_size, margin), input_size)


def make_crops(
    image: np.ndarray,
    input_size: tuple[int, int],
    boxes: Sequence[Sequence[float]] | None = None,
    margin: float = 1.25,
) -> tuple[np.ndarray, np.ndarray]:
    """RGB (H, W, 3) uint8 -> crops (M, H_in, W_in, 3) uint8 and matrices (M, 2, 3).

    One crop for the whole image when ``boxes`` is None, else one per box.
    """
    size = (image.shape[1], image.shape[0])
    regions = [None] if boxes is None else list(boxes)
    mats = [crop_matrix(size, input_size, b, margin) for b in regions]
    crops = [T.warp_image(image, m, input_size) for m in mats]
    w, h = input_size
    if not crops:
        return np.zeros((0, h, w, 3), np.uint8), np.zeros((0, 2, 3))
    return np.stack(crops), np.stack(mats)


def map_to_image(keypoints: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """Keypoints (M, K, 2) in input pixels -> image pixels through matrices (M, 2, 3)."""
    kp = np.asarray(keypoints, np.float64)
    return np.einsum("mkj,mij->mki", kp, matrices[:, :, :2]) + matrices[:, None, :, 2]


# --------------------------------------------------------------------------- runners


class TorchRunner:
    """Runs a :class:`~keypointer.models.model.KeypointModel` on uint8 crops."""

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu"):
        self.model = model
        self.device = torch.device(device)
        self.skeleton = getattr(model, "skeleton", None)
        if self.skeleton is None:  # a model from build_model: no names, no flip pairs
            from keypointer.skeleton import Skeleton

            k = (model.build_info or {}).get("num_keypoints", 0)
            self.skeleton = Skeleton(tuple(f"keypoint{i}" for i in range(k)))
        self.input_size = tuple(model.codec.input_size)
        cfg = getattr(model, "config", None)
        self.margin = cfg.augment.box_margin if cfg is not None else 1.25

    def __call__(self, crops: np.ndarray, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Crops (N, H, W, 3) uint8 RGB -> keypoints (N, K, 2) input px, scores (N, K)."""
        x = torch.from_numpy(np.stack([T.to_chw_normalized(c) for c in crops]))
        flip_index = self.skeleton.flip_index() if flip else None
        kp, scores = predict_batch(self.model, x.to(self.device), flip_index)
        return kp.float().cpu().numpy(), scores.float().cpu().numpy()


def load_runner(path: str | Path, device: str | torch.device = "cpu") -> Any:
    """A runner for a checkpoint (``.pt`` or run folder) or an exported ``.onnx`` file."""
    if Path(path).suffix.lower() == ".onnx":
        from keypointer.export import OnnxModel

        return OnnxModel(path)
    from keypointer.engine.checkpoint import load_model

    return TorchRunner(load_model(path, device), device)


def _as_runner(model: Any) -> Any:
    if isinstance(model, nn.Module):
        return TorchRunner(model, next(model.parameters()).device)
    return model  # an OnnxModel or TorchRunner already


def predict_image(
    model: Any,
    images: np.ndarray | Sequence[np.ndarray],
    boxes: Sequence[Sequence[float]] | None = None,
    flip: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints in the pixels of RGB uint8 images of any size.

    ``model``: a KeypointModel (with ``.skeleton``, as :func:`keypointer.load` gives),
    an :class:`~keypointer.export.OnnxModel` or a runner. ``images``: one (H, W, 3) array, or a
    list of them (sizes may differ). Each image is letterboxed whole into the input, or, with
    ``boxes`` (one image only), cropped to each COCO (x, y, w, h) box.

    Returns:
        one image: (K, 2) keypoints and (K,) scores (with boxes: (M, K, 2) and (M, K));
        a list: (N, K, 2) and (N, K).
    """
    runner = _as_runner(model)
    single = isinstance(images, np.ndarray) and images.ndim == 3
    batch = [images] if single else list(images)
    if boxes is not None and not single:
        raise ValueError("boxes are for one image; call once per image")
    crops, mats = zip(
        *(make_crops(_rgb(im), runner.input_size, boxes, runner.margin) for im in batch),
        strict=True,
    )
    crops_all, mats_all = np.concatenate(crops), np.concatenate(mats)
    if len(crops_all) == 0:
        k = runner.skeleton.num_keypoints
        return np.zeros((0, k, 2)), np.zeros((0, k))
    kp, scores = runner(crops_all, flip)
    kp = map_to_image(kp, mats_all)
    if single and boxes is None:
        return kp[0], scores[0]
    return kp, scores


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
    return image


# --------------------------------------------------------------------------- the command


def predict_frames(
    frames: Iterable[Any],
    runner: Any,
    detections: dict | None = None,
    batch_size: int = 16,
    flip: bool = False,
) -> Iterator[tuple[Any, np.ndarray, np.ndarray, np.ndarray, Any]]:
    """Frames (:class:`~keypointer.engine.predict_io.Frame`) -> per frame, in order:
    (frame, keypoints (M, K, 2) image px, scores (M, K), instance scores (M,), image_id).

    Crops of several frames run together, ``batch_size`` at a time. With ``detections``
    (image path -> boxes), images get one crop per box (none when they have no box) and an
    instance score of box score x mean keypoint score; video frames are always whole.
    """
    pending: list[tuple[Any, np.ndarray, np.ndarray, list | None]] = []
    count = 0
    for frame in frames:
        dets = None
        if detections is not None and frame.number is None:
            dets = detections.get(frame.source.path, [])
        boxes = [d[0] for d in dets] if dets is not None else None
        crops, mats = make_crops(frame.image, runner.input_size, boxes, runner.margin)
        pending.append((frame, crops, mats, dets))
        count += len(crops)
        if count >= batch_size:
            yield from _run_pending(pending, runner, batch_size, flip)
            pending, count = [], 0
    if pending:
        yield from _run_pending(pending, runner, batch_size, flip)


def _run_pending(pending: list, runner: Any, batch_size: int, flip: bool) -> Iterator[tuple]:
    crops = np.concatenate([p[1] for p in pending])
    k = runner.skeleton.num_keypoints
    kp, scores = np.zeros((0, k, 2)), np.zeros((0, k))
    if len(crops):
        parts = [runner(crops[i : i + batch_size], flip) for i in range(0, len(crops), batch_size)]
        kp = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts]).astype(np.float64)
    start = 0
    for frame, c, mats, dets in pending:
        end = start + len(c)
        frame_kp = map_to_image(kp[start:end], mats) if end > start else kp[start:end]
        frame_scores = scores[start:end]
        box_scores = np.array([d[1] for d in dets]) if dets else np.ones(end - start)
        image_id = dets[0][2] if dets else None
        yield frame, frame_kp, frame_scores, frame_scores.mean(-1) * box_scores, image_id
        start = end


def predict_command(
    model: str | Path,
    inputs: Sequence[str | Path],
    out: str | Path,
    boxes: str | Path | None = None,
    flip: bool = False,
    threshold: float = 0.3,
    batch_size: int = 16,
    draw: bool = True,
    device: str = "auto",
    quiet: bool = False,
    box_threshold: float = 0.0,
) -> dict[str, Any]:
    """What ``keypointer predict`` does; returns a summary (frames, instances, files)."""
    from keypointer.engine import predict_io as io
    from keypointer.engine.train import resolve_device
    from keypointer.output_paths import check_output_dir

    check_output_dir(out)  # before any work: a wrong --out ends at once
    sources = io.collect_sources(inputs)
    detections = io.load_detections(boxes, sources, box_threshold) if boxes else None
    runner = load_runner(model, resolve_device(device))
    outputs = io.Outputs(Path(out), runner.skeleton, threshold, draw, detections is not None)
    total = io.count_frames(sources)
    stream = predict_frames(io.iter_frames(sources), runner, detections, batch_size, flip)
    try:
        frames, instances = _write_all(stream, outputs, total, quiet)
        files = outputs.close()
    except BaseException:
        outputs.abort()  # no half-written video, no output folder of a failed run
        raise
    if not quiet:
        print(f"{frames} images/frames, {instances} instances -> {out}")
    return {"frames": frames, "instances": instances, "files": [str(f) for f in files]}


def _write_all(stream: Iterable[tuple], outputs: Any, total: int, quiet: bool) -> tuple[int, int]:
    """Feed :func:`predict_frames`' results to the outputs; returns (frames, instances)."""
    frames = instances = 0
    with _progress(total, quiet or total < PROGRESS_FROM) as advance:
        for frame, kp, scores, inst, image_id in stream:
            outputs.add(frame, kp, scores, inst, image_id)
            frames, instances = frames + 1, instances + len(kp)
            advance()
    return frames, instances


PROGRESS_FROM = 20  # images or frames; fewer run without a progress bar


@contextlib.contextmanager
def _progress(total: int, quiet: bool) -> Iterator[Callable[[], None]]:
    if quiet:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = ("predicting", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("predict", total=total or None)
        yield lambda: bar.advance(task)
