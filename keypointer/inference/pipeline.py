"""One inference pipeline: what every door runs (``predict``, ``eval``, ``suggest``, ``demo``
and ``keypointer.load(...).predict``), so that they give the same answer for the same frames.

A :class:`Pipeline` is built once, by :func:`load_pipeline`, from a checkpoint (read once) or
an exported ONNX model (with its ``.locator.onnx``). It holds every setting of the job "find
the animals in these frames and pose them": the pose runner, the optional
:class:`LocatorStage` (its model, centre-score threshold, box ratio and pose-score floor, from
the checkpoint or the ONNX metadata, defaults from :mod:`keypointer.config`), flip test-time
augmentation, the batch size and the most instances to keep per frame. Nothing is attached to
it after it is built: :meth:`Pipeline.with_options` returns a new one.

Per frame:

- given boxes (``predict --boxes``, ``eval`` on labelled boxes): one crop per box;
- a two-stage model: locate (centre score >= the threshold, at most the locator's own top-k),
  pose each box, pose it again in a crop around that first pose (its extent x the box ratio),
  keep it when its mean keypoint score reaches the floor, drop poses found twice (OKS NMS);
- else the whole image, letterboxed.

Then, whatever the source of the instances, ``max_instances`` keeps the N best by instance
score (the tracker then keeps at most N identities).

Looking again: when a two-stage pipeline knows how many animals to expect (``max_instances``)
it first poses only the ``max_instances`` best located boxes (a locator at its threshold finds
more boxes than animals, duplicates mostly, and posing is most of the time: benchmarks/
RESULTS.md, "Where two-stage inference spends its time"). When a frame then holds fewer
animals, it poses more boxes in that frame only, as it poses located ones (two passes), and
adds a pose when it reaches the floor and is no pose already kept (OKS NMS):

- the locator's other boxes over its threshold, then its next peaks, scored under the
  threshold down to :data:`LOOK_AGAIN_FLOOR` of it (at most :data:`LOOK_AGAIN_PEAKS`);
- in a video, where an animal was in the frames just before and is no longer found (the box
  of its last pose, for :data:`LOOK_AGAIN_FRAMES` frames, off by default).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from keypointer.checkpoint import load_checkpoint, locator_from_state, model_from_state
from keypointer.config import Config, from_dict
from keypointer.data import transforms as T
from keypointer.data.boxes import grow_boxes, keypoint_boxes
from keypointer.errors import CheckpointError, ConfigError
from keypointer.export.locator_onnx import OnnxLocator, locator_path
from keypointer.export.onnx_model import OnnxModel
from keypointer.inference.crops import make_crops
from keypointer.inference.locate import Locator, find_boxes, keep_located, new_poses
from keypointer.inference.runners import (
    FramePrediction,
    Gaps,
    Runner,
    TorchRunner,
    crop_scale,
    run_crops,
)
from keypointer.inference.sources import Frame, Source, read_ahead
from keypointer.metrics.tracking import pose_distances
from keypointer.skeleton import Skeleton

FIRST_PASS_SHARE = 0.5
"""Share of the floor (``min_pose_score``) a first pose needs to be posed again (its loose
crop scores lower than the second one will)."""

LOOK_AGAIN_FLOOR = 0.25
"""Looking again (see the module doc): the share of the locator's threshold a next peak
needs to be posed."""
LOOK_AGAIN_PEAKS = 3
"""Looking again: the most next peaks of the locator posed in a frame."""
LOOK_AGAIN_FRAMES = 0
"""Looking again in a video: for how many frames an animal no longer found is looked for
where it was last seen; 0: not at all. Off: on the two-fly clip the locator's next peaks alone
found more flies, and with them the last-seen boxes added identity switches (measured: issue
20 notes)."""

Detection = tuple[Sequence[float], float, int | str | None]
"""A given box: (COCO x, y, w, h in image pixels, score, image id or None)."""
Detections = dict[Path, list[Detection]]
"""Image path -> its given boxes (``predict --boxes``, ``eval``)."""
Poses = np.ndarray | list[np.ndarray]
"""What :meth:`Pipeline.predict` gives: one array, or one per image (see
:meth:`keypointer.Predictor.predict`)."""


@dataclass(frozen=True)
class LocatorStage:
    """The first stage of a two-stage model and its settings, as training measured them.

    ``model``: a :class:`~keypointer.models.locator.LocatorModel` or an
    :class:`~keypointer.export.locator_onnx.OnnxLocator`; ``threshold``: the centre score a
    find needs (``locator.score_threshold``); ``box_ratio``: (w, h) of a labelled box over its
    keypoints' extent, for the second crop (None: no second pass); ``min_pose_score``: the mean
    keypoint score a posed find needs to be kept.
    """

    model: Locator
    threshold: float
    box_ratio: tuple[float, float] | None
    min_pose_score: float


@dataclass(frozen=True)
class Pipeline:
    """The pose runner, the optional locator stage and the run settings (see the module doc).

    ``pose`` follows the runner protocol of :mod:`keypointer.inference.runners`
    (:class:`~keypointer.inference.runners.TorchRunner` or
    :class:`~keypointer.export.onnx_model.OnnxModel`).
    """

    pose: Runner
    locator: LocatorStage | None = None
    flip: bool = False
    batch_size: int = 16
    max_instances: int | None = None
    look_again: bool = True
    source: str = ""
    config: Config | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be 1 or more, not {self.batch_size}")
        if self.max_instances is not None and self.max_instances < 1:
            raise ConfigError(f"--max-instances must be 1 or more, not {self.max_instances}")
        if self.flip and not self.can_flip:
            self.pose.check_flip(self.flip)  # an ONNX graph without flip TTA says why

    def with_options(self, **changes: bool | int | None) -> Pipeline:
        """A copy with other run settings.

        Args:
            changes: new values of ``flip``, ``batch_size``, ``max_instances`` or
                ``look_again``.

        Returns:
            A new :class:`Pipeline` (this one is frozen).
        """
        return dataclasses.replace(self, **changes)

    @property
    def skeleton(self) -> Skeleton:
        return self.pose.skeleton

    @property
    def input_size(self) -> tuple[int, int]:
        """The pose model's input (width, height)."""
        return tuple(self.pose.input_size)

    @property
    def margin(self) -> float:
        """How much a box grows around an instance to its crop (``augment.box_margin``)."""
        return float(self.pose.margin)

    @property
    def two_stage(self) -> bool:
        return self.locator is not None

    @property
    def looks_again(self) -> bool:
        """Whether frames with fewer than ``max_instances`` located animals are looked at
        again (see the module doc)."""
        return self.look_again and self.two_stage and self.max_instances is not None

    @property
    def can_flip(self) -> bool:
        """Whether flip TTA can run as PyTorch runs it: not on an ONNX graph exported without
        it (its outputs are decoded coordinates, not heatmaps to average)."""
        return not isinstance(self.pose, OnnxModel) or bool(self.pose.flip_in_graph)

    @property
    def flips(self) -> bool:
        """Whether predictions are flip-averaged: asked for, or inside an exported graph."""
        return self.flip or bool(getattr(self.pose, "flip_in_graph", False))

    def describe(self) -> str:
        """One line saying what this model is and how it runs."""
        kind = (
            "two-stage (locator, then pose on each instance found)"
            if self.two_stage
            else "single-instance (one pose per image or box)"
        )
        backend = "ONNX Runtime" if isinstance(self.pose, OnnxModel) else "PyTorch"
        extra = ", flip TTA" if self.flips else ""
        limit = f", at most {self.max_instances} per frame" if self.max_instances else ""
        return f"{self.source or 'model'}: {kind}, {backend}{extra}{limit}"

    # ------------------------------------------------------------------ running

    def run(
        self, frames: Iterable[Frame], detections: Detections | None = None
    ) -> Iterator[FramePrediction]:
        """Pose every frame.

        Decoding and cropping run in a background thread, up to ``batch_size`` frames ahead,
        while the model runs on the batch before; crops of several frames run together.

        Args:
            frames: images or video frames, in order.
            detections: the given boxes of images (video frames are never given boxes);
                None: a two-stage pipeline locates, else the whole image is cropped.

        Returns:
            An iterator of one :class:`~keypointer.inference.runners.FramePrediction` per
            frame, in order.
        """
        prepare = (self._prepare(frame, detections) for frame in frames)
        seen = _Seen()  # the animals of the last frames, to look again for
        with contextlib.closing(read_ahead(prepare, self.batch_size)) as prepared:
            pending: list[_Pending] = []
            count = 0
            for item in prepared:
                pending.append(item)
                count += len(item.crops)
                if count >= self.batch_size:
                    yield from self._run_pending(pending, seen)
                    pending, count = [], 0
            if pending:
                yield from self._run_pending(pending, seen)

    def run_image(
        self, image: np.ndarray, boxes: Sequence[Sequence[float]] | None = None
    ) -> FramePrediction:
        """Pose one image, exactly as :meth:`run` does it.

        Args:
            image: RGB (H, W, 3) uint8.
            boxes: COCO (x, y, w, h) boxes to crop instead of locating or taking the whole
                image, or None.

        Returns:
            Its :class:`~keypointer.inference.runners.FramePrediction`.
        """
        frame = Frame(Source(Path("<image>"), "image"), image)
        given = None if boxes is None else {frame.source.path: [(b, 1.0, None) for b in boxes]}
        (pred,) = self.run([frame], given)
        return pred

    def _prepare(self, frame: Frame, detections: Detections | None) -> _Pending:
        located, spare = None, np.zeros((0, 4))
        if detections is not None and frame.number is None:
            dets = detections.get(frame.source.path, [])
        elif self.locator is not None:
            threshold = self.locator.threshold
            floor = LOOK_AGAIN_FLOOR * threshold if self.looks_again else threshold
            ((boxes, scores),) = find_boxes(self.locator.model, [frame.image], floor)
            sure = scores >= threshold  # best first: the same boxes as without the floor
            located, spare = boxes[sure], boxes[~sure][:LOOK_AGAIN_PEAKS]
            if self.looks_again:  # the best max_instances first; the rest only when needed
                most = self.max_instances
                located, spare = located[:most], np.concatenate([located[most:], spare])
            dets = [(b.tolist(), 1.0, None) for b in located]
        else:
            dets = None
        boxes = [d[0] for d in dets] if dets is not None else None
        crops, mats = make_crops(frame.image, self.input_size, boxes, self.margin)
        return _Pending(frame, crops, mats, dets, located, spare)

    def _run_pending(self, pending: list[_Pending], seen: _Seen) -> Iterator[FramePrediction]:
        for item, pred in zip(pending, self._pose_pending(pending), strict=True):
            pred = self._keep(pred, located=item.located is not None)
            if self.looks_again:
                pred = self._look_again(item, pred, seen)
            yield pred

    def _pose_pending(self, pending: list[_Pending]) -> Iterator[FramePrediction]:
        """Each frame's crops posed (two passes around located ones), nothing dropped yet."""
        kp, scores, gaps = self._run_crops(pending)
        if self.locator is not None and self.locator.box_ratio is not None and len(kp):
            pending = [self._recrop(p, kp, scores) for p, kp, scores in _split(pending, kp, scores)]
            kp, scores, gaps = self._run_crops(pending)
        start = 0
        for item in pending:
            end = start + len(item.crops)
            frame_kp = T.apply_affine(kp[start:end], item.mats) if end > start else kp[start:end]
            frame_scores = scores[start:end]
            dets = item.detections
            box_scores = np.array([d[1] for d in dets]) if dets else np.ones(end - start)
            inst = frame_scores.mean(-1) * box_scores
            gap = None if gaps is None else gaps[start:end] * crop_scale(item.mats)[:, None]
            image_id = dets[0][2] if dets else None
            yield FramePrediction(
                frame=item.frame,
                keypoints=frame_kp,
                scores=frame_scores,
                instance_scores=inst,
                image_id=image_id,
                flip_gap=gap,
                located=item.located,
            )
            start = end

    def _look_again(self, item: _Pending, pred: FramePrediction, seen: _Seen) -> FramePrediction:
        """``pred`` with the animals found by looking again (see the module doc) added after
        its own, when it holds fewer than ``max_instances``; ``seen`` learns the result."""
        frame, sigmas = item.frame, self.skeleton.oks_sigmas
        missing = self.max_instances - len(pred.keypoints)
        if missing > 0:
            lost = self._pose_boxes(seen.lost(frame, pred.keypoints, sigmas))
            boxes = np.concatenate([item.spare, lost])
            pred = self._add_found(pred, boxes, missing) if len(boxes) else pred
        seen.saw(frame, pred.keypoints, sigmas)
        return pred

    def _add_found(self, pred: FramePrediction, boxes: np.ndarray, most: int) -> FramePrediction:
        """``pred`` and at most ``most`` new animals posed in ``boxes`` (B, 4) COCO image px."""
        frame = pred.frame
        crops, mats = make_crops(frame.image, self.input_size, boxes, self.margin)
        dets = [(b.tolist(), 1.0, None) for b in boxes]
        more = next(self._pose_pending([_Pending(frame, crops, mats, dets, boxes)]))
        floor, sigmas = self.locator.min_pose_score, self.skeleton.oks_sigmas
        add = new_poses(pred.keypoints, more.keypoints, more.scores, sigmas, floor, most)
        if not len(add):
            return pred
        return _joined(pred, more.select(add), self._pose_boxes(more.keypoints[add]))

    def _pose_boxes(self, poses: np.ndarray) -> np.ndarray:
        """(N, 4) boxes of poses (N, K, 2) image px as the locator gives boxes: their extent
        x the box ratio."""
        boxes = keypoint_boxes(poses)
        ratio = self.locator.box_ratio
        return boxes if ratio is None else grow_boxes(boxes, ratio)

    def _run_crops(self, pending: list[_Pending]) -> tuple[np.ndarray, np.ndarray, Gaps]:
        crops = np.concatenate([p.crops for p in pending])
        return run_crops(self.pose, crops, self.batch_size, self.flips)

    def _recrop(self, item: _Pending, kp: np.ndarray, scores: np.ndarray) -> _Pending:
        """``item`` with its located instances cropped again around the extent of their first
        pose (``kp`` (M, K, 2) input px, ``scores`` (M, K)) grown by the box ratio: the
        locator's boxes are coarse, and a crop off-centre on a crowd may hold the wrong
        animal's limbs (benchmarks/RESULTS.md, "Several instances"). Only first poses kept at
        :data:`FIRST_PASS_SHARE` of the floor go again: a duplicate would give the same second
        crop, and many low-threshold finds are junk."""
        if item.located is None or not len(item.crops):
            return item
        floor = FIRST_PASS_SHARE * self.locator.min_pose_score
        first = T.apply_affine(kp, item.mats)
        keep = keep_located(first, scores, self.skeleton.oks_sigmas, floor)
        boxes = grow_boxes(keypoint_boxes(first[keep]), self.locator.box_ratio)
        crops, mats = make_crops(item.frame.image, self.input_size, boxes, self.margin)
        dets = [item.detections[i] for i in keep]
        return _Pending(item.frame, crops, mats, dets, item.located, item.spare)

    def _keep(self, pred: FramePrediction, located: bool) -> FramePrediction:
        """The instances kept: for located ones the sure ones, one of each found twice; then
        at most ``max_instances``, the best by instance score (in their order)."""
        keep = np.arange(len(pred.keypoints))
        if located:
            floor = self.locator.min_pose_score
            keep = keep_located(pred.keypoints, pred.scores, self.skeleton.oks_sigmas, floor)
        if self.max_instances is not None and len(keep) > self.max_instances:
            best = np.argsort(-pred.instance_scores[keep], kind="stable")[: self.max_instances]
            keep = np.sort(keep[best])
        if len(keep) == len(pred.keypoints):
            return pred
        return pred.select(keep)

    # ------------------------------------------------------------------ the Python API

    def predict(
        self,
        images: np.ndarray | Sequence[np.ndarray],
        boxes: Sequence[Sequence[float]] | None = None,
    ) -> tuple[Poses, Poses]:
        """Keypoints and scores of RGB uint8 images (:meth:`keypointer.Predictor.predict`).

        Args:
            images: one (H, W, 3) image, or a sequence (or (N, H, W, 3) array) of them.
            boxes: COCO boxes to crop (one image only), or None.

        Returns:
            (keypoints, scores) in the images' pixels, shaped as
            :meth:`keypointer.Predictor.predict` says.
        """
        if isinstance(images, np.ndarray) and images.ndim == 3:  # one image
            pred = self.run_image(images, boxes)
            if boxes is None and not self.two_stage:
                return pred.keypoints[0], pred.scores[0]
            return pred.keypoints, pred.scores
        if boxes is not None:
            raise ValueError("boxes are for one image; call once per image")
        frames = [Frame(Source(Path(f"<image {i}>"), "image"), im) for i, im in enumerate(images)]
        preds = list(self.run(frames))
        if self.two_stage:
            return [p.keypoints for p in preds], [p.scores for p in preds]
        if not preds:
            k = self.skeleton.num_keypoints
            return np.zeros((0, k, 2)), np.zeros((0, k))
        return np.stack([p.keypoints[0] for p in preds]), np.stack([p.scores[0] for p in preds])


@dataclass
class _Pending:
    """One frame between preparing and running: its crops (M, H, W, 3) uint8, their matrices
    (M, 2, 3), its detections [(box, score, image_id)] (None: whole image) and the boxes
    the locator found (M0, 4), or None; ``spare``: its next peaks (S, 4), to look again."""

    frame: Frame
    crops: np.ndarray
    mats: np.ndarray
    detections: list[Detection] | None
    located: np.ndarray | None
    spare: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 4)))


def _joined(pred: FramePrediction, more: FramePrediction, boxes: np.ndarray) -> FramePrediction:
    """``pred``'s instances, then ``more``'s; ``boxes`` (A, 4) join the located ones."""
    gap = None
    if pred.flip_gap is not None and more.flip_gap is not None:
        gap = np.concatenate([pred.flip_gap, more.flip_gap])
    located = pred.located if pred.located is not None else np.zeros((0, 4))
    return FramePrediction(
        frame=pred.frame,
        keypoints=np.concatenate([pred.keypoints, more.keypoints]),
        scores=np.concatenate([pred.scores, more.scores]),
        instance_scores=np.concatenate([pred.instance_scores, more.instance_scores]),
        image_id=pred.image_id,
        flip_gap=gap,
        located=np.concatenate([located, boxes]),
    )


class _Seen:
    """The poses of one video's last frames, to look again where an animal was
    (:data:`LOOK_AGAIN_FRAMES`); a frame of another source, or not the next one, forgets them."""

    def __init__(self) -> None:
        self.key: tuple[Path, int] | None = None
        self.poses = np.zeros((0, 0, 2))  # (N, K, 2) image px
        self.ages = np.zeros(0, int)  # (N,) frames since each was found

    def lost(self, frame: Frame, found: np.ndarray, sigmas: Sequence[float]) -> np.ndarray:
        """(L, K, 2) the recent poses that no pose ``found`` (M, K, 2) matches."""
        if not (LOOK_AGAIN_FRAMES and self._follows(frame)):
            return self.poses[:0]
        return self.poses[self._unmatched(found, sigmas)]

    def saw(self, frame: Frame, found: np.ndarray, sigmas: Sequence[float]) -> None:
        """Remember the poses ``found`` (M, K, 2) in ``frame``, and for a while the
        unmatched earlier ones."""
        old = self._unmatched(found, sigmas) if self._follows(frame) else np.zeros(0, int)
        old = old[self.ages[old] < LOOK_AGAIN_FRAMES]
        self.poses = np.concatenate([found, self.poses[old]]) if len(old) else found
        self.ages = np.concatenate([np.zeros(len(found), int), self.ages[old] + 1])
        self.key = None if frame.number is None else (frame.source.path, frame.number)

    def _follows(self, frame: Frame) -> bool:
        return (
            self.key is not None
            and frame.number is not None
            and self.key[0] == frame.source.path
            and self.key[1] < frame.number
        )

    def _unmatched(self, found: np.ndarray, sigmas: Sequence[float]) -> np.ndarray:
        """Indices of the remembered poses left when each pose found takes the closest."""
        left = list(range(len(self.poses)))
        if len(found) and left:
            dist = pose_distances(self.poses, np.asarray(found, np.float64), sigmas=sigmas)
            for j in range(dist.shape[1]):
                if not left:
                    break
                left.remove(left[int(np.argmin(dist[left, j]))])
        return np.array(left, dtype=int)


def _split(
    pending: list[_Pending], kp: np.ndarray, scores: np.ndarray
) -> Iterator[tuple[_Pending, np.ndarray, np.ndarray]]:
    start = 0
    for item in pending:
        end = start + len(item.crops)
        yield item, kp[start:end], scores[start:end]
        start = end


# ---------------------------------------------------------------------- loading


def load_pipeline(
    path: str | Path,
    device: str | torch.device = "cpu",
    *,
    flip: bool = False,
    batch_size: int = 16,
    max_instances: int | None = None,
) -> Pipeline:
    """The pipeline of a trained model.

    Args:
        path: a checkpoint (``.pt`` or run folder; read once) or an exported ``.onnx`` file. An
            ONNX export of a two-stage model is a pair, ``<name>.onnx`` and
            ``<name>.locator.onnx``: a missing partner stops with a :class:`CheckpointError`
            naming it.
        device: where a PyTorch model runs.
        flip: flip test-time augmentation.
        batch_size: the most crops per model call.
        max_instances: keep at most this many instances per frame; None: all.

    Returns:
        The :class:`Pipeline`.
    """
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        pose = OnnxModel(path)
        cfg = from_dict(pose.config or {}, source=f"{path} (metadata)")
        locator = _onnx_locator(path, pose)
    else:
        state = load_checkpoint(path, map_location="cpu")
        model = model_from_state(state, path, device)
        pose = TorchRunner(model, device)
        cfg = model.config
        locator = locator_from_state(state, path, device)
    stage = None
    if locator is not None:
        stage = LocatorStage(
            model=locator,
            threshold=cfg.locator.score_threshold,
            box_ratio=getattr(locator, "box_ratio", None),
            min_pose_score=float(getattr(locator, "min_pose_score", 0.0)),
        )
    return Pipeline(
        pose=pose,
        locator=stage,
        flip=flip,
        batch_size=batch_size,
        max_instances=max_instances,
        source=str(path),
        config=cfg,
    )


def _onnx_locator(path: Path, pose: OnnxModel) -> OnnxLocator | None:
    """The locator beside a pose export: required when the export says it has one."""
    side = locator_path(path)
    partner = getattr(pose, "locator_file", None)  # what the export wrote down
    if partner is not None:
        side = path.with_name(partner)
        if not side.is_file():
            raise CheckpointError(
                f"{path} is the pose stage of a two-stage model; its locator {side.name} "
                f"must be beside it (copy both files: {path.name} and {side.name})"
            )
    return OnnxLocator(side) if side.is_file() else None
