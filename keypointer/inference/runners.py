"""Runners: a KeypointModel (PyTorch) or an exported ONNX file behind one call, uint8 crops in,
keypoints in crop pixels out; and on top of them keypoints in the pixels of whole images or
boxes (:func:`predict_image`) and of a stream of frames (:func:`predict_frames`).

A runner is called as ``runner(crops (N, H, W, 3) uint8, flip) -> keypoints (N, K, 2) input px,
scores (N, K)`` (numpy) and has ``skeleton``, ``input_size`` and ``margin``; the two here also
have ``run_with_gap(crops, flip) -> (keypoints, scores, flip gap (N, K) input px or None)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from keypointer.checkpoint import load_locator, load_model
from keypointer.config import BOX_MARGIN
from keypointer.data import transforms as T
from keypointer.data.whole_images import keypoints_to_boxes
from keypointer.export.locator_onnx import OnnxLocator, locator_path
from keypointer.export.onnx_model import OnnxModel
from keypointer.inference.crops import make_crops
from keypointer.inference.locate import keep_located, locate
from keypointer.inference.sources import Frame, Source, read_ahead
from keypointer.models.flip import predict_batch, predict_batch_with_gap
from keypointer.skeleton import Skeleton

FIRST_PASS_SHARE = 0.5
"""Share of the locator's ``min_pose_score`` a first pose needs to be posed again (its loose
crop scores lower than the second one will)."""


class TorchRunner:
    """Runs a :class:`~keypointer.models.model.KeypointModel` on uint8 crops."""

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu"):
        self.model = model
        self.device = torch.device(device)
        self.skeleton = getattr(model, "skeleton", None)
        if self.skeleton is None:  # a model from build_model: no names, no flip pairs
            k = (model.build_info or {}).get("num_keypoints", 0)
            self.skeleton = Skeleton(tuple(f"keypoint{i}" for i in range(k)))
        self.input_size = tuple(model.codec.input_size)
        cfg = getattr(model, "config", None)
        self.margin = cfg.augment.box_margin if cfg is not None else BOX_MARGIN

    def __call__(self, crops: np.ndarray, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Crops (N, H, W, 3) uint8 RGB -> keypoints (N, K, 2) input px, scores (N, K)."""
        flip_index = self.skeleton.flip_index() if flip else None
        kp, scores = predict_batch(self.model, self._tensor(crops), flip_index)
        return _numpy(kp), _numpy(scores)

    def run_with_gap(
        self, crops: np.ndarray, flip: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Like calling it (the same keypoints and scores), plus the flip gap (N, K): input
        pixels between the keypoints of the crops and those of their mirror images mirrored
        back. None without flip or without flip pairs."""
        if not (flip and self.skeleton.flip_pairs):
            return (*self(crops, flip), None)
        flip_index = self.skeleton.flip_index()
        kp, scores, gap = predict_batch_with_gap(self.model, self._tensor(crops), flip_index)
        return _numpy(kp), _numpy(scores), _numpy(gap)

    def _tensor(self, crops: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.stack([T.to_chw_normalized(c) for c in crops])).to(self.device)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.float().cpu().numpy()


def load_runner(path: str | Path, device: str | torch.device = "cpu") -> Any:
    """A runner for a checkpoint (``.pt`` or run folder) or an exported ``.onnx`` file.

    A model trained on several instances per image comes with its locator (in the checkpoint,
    or as ``<name>.locator.onnx`` beside the export): ``runner.locator`` then finds the
    instances of every image and frame that has no boxes given, with
    ``runner.locator_threshold`` and at most ``runner.max_instances``; else it is None.
    """
    if Path(path).suffix.lower() == ".onnx":
        runner = OnnxModel(path)
        side = locator_path(path)
        runner.locator = OnnxLocator(side) if side.is_file() else None
        config = runner.config or {}
    else:
        runner = TorchRunner(load_model(path, device), device)
        runner.locator = load_locator(path, device)
        config = runner.model.config.to_dict()
    section = config.get("locator") or {}
    runner.locator_threshold = float(section.get("score_threshold", 0.3))
    runner.max_instances = section.get("max_instances")
    return runner


def as_runner(model: Any) -> Any:
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
    runner = as_runner(model)
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
    kp = T.apply_affine(kp, mats_all)
    if single and boxes is None:
        return kp[0], scores[0]
    return kp, scores


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
    return image


@dataclass
class FramePrediction:
    """What the model found in one image or video frame (M instances, K keypoints).

    ``keypoints`` (M, K, 2) in the frame's pixels, ``scores`` (M, K), ``instance_scores``
    (M,); ``image_id`` from a boxes file, else None; ``flip_gap`` (M, K): pixels between the
    unflipped and the flipped-back prediction, when flip TTA ran on a skeleton with flip
    pairs and the runner could tell them apart, else None.
    """

    frame: Any  # a keypointer.inference.sources.Frame
    keypoints: np.ndarray
    scores: np.ndarray
    instance_scores: np.ndarray
    image_id: int | str | None = None
    flip_gap: np.ndarray | None = None


def predict_frames(
    frames: Iterable[Any],
    runner: Any,
    detections: dict | None = None,
    batch_size: int = 16,
    flip: bool = False,
) -> Iterator[FramePrediction]:
    """Frames (:class:`~keypointer.inference.sources.Frame`) -> one
    :class:`FramePrediction` per frame, in order.

    Crops of several frames run together, ``batch_size`` at a time. With ``detections``
    (image path -> boxes), images get one crop per box (none when they have no box) and an
    instance score of box score x mean keypoint score; video frames are always whole. Without
    them, a runner with a ``locator`` finds the instances of every image and frame, and each is
    posed twice (:func:`recrop`), scored by its mean keypoint score and kept or not
    (:func:`~keypointer.inference.locate.keep_located`).
    Reading ``frames`` (decoding) and cropping run in a background thread, up to
    ``batch_size`` frames ahead, while the model runs on the batch before.
    """
    prepare = (_prepare(frame, runner, detections) for frame in frames)
    located = detections is None and getattr(runner, "locator", None) is not None
    with contextlib.closing(read_ahead(prepare, batch_size)) as prepared:
        pending: list[tuple[Any, np.ndarray, np.ndarray, list | None]] = []
        count = 0
        for item in prepared:
            pending.append(item)
            count += len(item[1])
            if count >= batch_size:
                yield from _run_pending(pending, runner, batch_size, flip, located)
                pending, count = [], 0
        if pending:
            yield from _run_pending(pending, runner, batch_size, flip, located)


def predict_located(
    runner: Any, image: np.ndarray, flip: bool = False, batch_size: int = 16
) -> tuple[np.ndarray, FramePrediction]:
    """One RGB (H, W, 3) uint8 image through both stages, exactly as ``predict`` runs them
    (``runner`` has a ``locator``): the boxes the locator found (M0, 4) COCO image px, and the
    :class:`FramePrediction` of the instances kept (M <= M0)."""
    frame = Frame(Source(Path("<image>"), "image"), _rgb(image))
    item = _prepare(frame, runner, None)
    boxes = np.array([d[0] for d in item[3]], np.float64).reshape(-1, 4)
    (pred,) = _run_pending([item], runner, batch_size, flip, located=True)
    return boxes, pred


def _prepare(frame: Any, runner: Any, detections: dict | None) -> tuple:
    """(frame, crops (M, H, W, 3), crop matrices (M, 2, 3), detections or None)."""
    dets = None
    if detections is not None and frame.number is None:
        dets = detections.get(frame.source.path, [])
    elif detections is None and getattr(runner, "locator", None) is not None:
        limit = runner.max_instances
        ((boxes, scores),) = locate(runner.locator, [frame.image], runner.locator_threshold, limit)
        dets = [(b.tolist(), float(sc), None) for b, sc in zip(boxes, scores, strict=True)]
    boxes = [d[0] for d in dets] if dets is not None else None
    crops, mats = make_crops(frame.image, runner.input_size, boxes, runner.margin)
    return frame, crops, mats, dets


def _run_pending(
    pending: list, runner: Any, batch_size: int, flip: bool, located: bool = False
) -> Iterator[FramePrediction]:
    """Run the pending frames' crops in batches. ``located``: the boxes came from the locator,
    so each instance is cropped again around its first pose (:func:`recrop`) and run again,
    its score is its mean keypoint score, and :func:`~keypointer.inference.locate.keep_located`
    drops the unsure ones and keeps one of an animal found twice."""
    kp, scores, gaps = _run_crops(runner, np.concatenate([p[1] for p in pending]), batch_size, flip)
    ratio = getattr(runner.locator, "box_ratio", None) if located else None
    if ratio is not None and len(kp):
        pending = recrop(pending, kp, scores, ratio, runner)
        kp, scores, gaps = _run_crops(
            runner, np.concatenate([p[1] for p in pending]), batch_size, flip
        )
    start = 0
    for frame, c, mats, dets in pending:
        end = start + len(c)
        frame_kp = T.apply_affine(kp[start:end], mats) if end > start else kp[start:end]
        frame_scores = scores[start:end]
        box_scores = (
            np.array([d[1] for d in dets]) if dets and not located else np.ones(end - start)
        )
        image_id = dets[0][2] if dets else None
        inst = frame_scores.mean(-1) * box_scores
        gap = None if gaps is None else gaps[start:end] * crop_scale(mats)[:, None]
        pred = FramePrediction(frame, frame_kp, frame_scores, inst, image_id, gap)
        yield _kept(pred, runner) if located else pred
        start = end


def _run_crops(runner: Any, crops: np.ndarray, batch_size: int, flip: bool) -> tuple:
    """Crops (N, H, W, 3) in batches -> keypoints (N, K, 2) input px, scores (N, K) float64,
    flip gaps (N, K) or None."""
    k = runner.skeleton.num_keypoints
    if not len(crops):
        return np.zeros((0, k, 2)), np.zeros((0, k)), _no_gap(runner, flip, k)
    parts = [
        _run(runner, crops[i : i + batch_size], flip) for i in range(0, len(crops), batch_size)
    ]
    kp = np.concatenate([p[0] for p in parts])
    scores = np.concatenate([p[1] for p in parts]).astype(np.float64)
    gaps = None
    if all(p[2] is not None for p in parts):
        gaps = np.concatenate([p[2] for p in parts]).astype(np.float64)
    return kp, scores, gaps


def recrop(
    pending: list, keypoints: np.ndarray, scores: np.ndarray, ratio: Sequence[float], runner: Any
) -> list:
    """Pending frames with their located instances cropped again: each around the extent of
    its first pose (``keypoints`` (N, K, 2) input px and ``scores`` (N, K) of all the pending
    crops) grown by the locator's ``box_ratio``
    (:func:`~keypointer.data.whole_images.keypoints_to_boxes`). The locator's boxes are coarse
    (stride 4 at low resolution) and a crop off-centre on a crowd may hold the wrong animal's
    limbs; the pose finds the animal better than the box did (measured: benchmarks/RESULTS.md,
    "Several instances"). Only instances that :func:`~keypointer.inference.locate.keep_located`
    keeps at :data:`FIRST_PASS_SHARE` of the floor go again: a duplicate would give the same
    second crop, and many low-threshold finds are junk (on synthetic crowds this cut the time
    per frame by 17% at the same AP)."""
    floor = FIRST_PASS_SHARE * float(getattr(runner.locator, "min_pose_score", 0.0))
    out, start = [], 0
    for frame, c, mats, dets in pending:
        end = start + len(c)
        if end > start:
            first = T.apply_affine(keypoints[start:end], mats)
            keep = keep_located(first, scores[start:end], runner.skeleton.oks_sigmas, floor)
            boxes = keypoints_to_boxes(first[keep], ratio)
            c, mats = make_crops(frame.image, runner.input_size, boxes, runner.margin)
            dets = [dets[i] for i in keep]
        out.append((frame, c, mats, dets))
        start = end
    return out


def _kept(pred: FramePrediction, runner: Any) -> FramePrediction:
    floor = float(getattr(runner.locator, "min_pose_score", 0.0))
    keep = keep_located(pred.keypoints, pred.scores, runner.skeleton.oks_sigmas, floor)
    gap = None if pred.flip_gap is None else pred.flip_gap[keep]
    return FramePrediction(pred.frame, pred.keypoints[keep], pred.scores[keep],
                           pred.instance_scores[keep], pred.image_id, gap)  # fmt: skip


def _run(runner: Any, crops: np.ndarray, flip: bool) -> tuple:
    """(keypoints, scores, flip gap or None) from a runner with or without ``run_with_gap``."""
    if flip and hasattr(runner, "run_with_gap"):
        return runner.run_with_gap(crops, flip)
    return (*runner(crops, flip), None)


def _no_gap(runner: Any, flip: bool, k: int) -> np.ndarray | None:
    """The flip gap of a batch without crops: empty where the runner would give one."""
    gives = flip and bool(runner.skeleton.flip_pairs) and hasattr(runner, "run_with_gap")
    return np.zeros((0, k)) if gives and not getattr(runner, "flip_in_graph", False) else None


def crop_scale(mats: np.ndarray) -> np.ndarray:
    """(M,) image pixels per input pixel of crop matrices (M, 2, 3) (letterbox and box crops
    scale alike along x and y: the square root of the determinant)."""
    return np.sqrt(np.abs(np.linalg.det(np.asarray(mats, np.float64)[:, :, :2])))
