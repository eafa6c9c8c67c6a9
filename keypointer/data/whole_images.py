"""Whole images for the locator: each image letterboxed into the locator's input, with the boxes
of its instances mapped along and encoded by a :class:`~keypointer.codecs.centers.CenterCodec`.

Boxes are COCO (x, y, w, h) with edges on pixel edges, in image pixels (``instance_boxes``) or
input pixels (items). Items use the same keys as :class:`~keypointer.data.dataset.KeypointDataset`
("image", "target", "affine", "index"), so :func:`~keypointer.data.dataset.make_loader` and its
(seed, epoch, index) reproducibility serve both.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import Dataset

from keypointer.codecs.centers import CenterCodec
from keypointer.config import AugmentConfig
from keypointer.data import transforms as T
from keypointer.data.boxes import instance_box, keypoint_boxes, labelled_box, labelled_points
from keypointer.data.dataset import Item, ItemKey, cache_video_frames
from keypointer.data.types import KeypointSet, Sample

MIN_SIDE = 2.0
"""Boxes cut to less than this (input px) by the input's edge are dropped from the targets."""


def instance_boxes(sample: Sample) -> np.ndarray:
    """(N, 4) float64 COCO boxes (:func:`~keypointer.data.boxes.instance_box`) of ``sample``'s
    instances, in image pixels: what the locator learns to find. Instances with no box and
    nothing labelled are left out."""
    boxes = [box for inst in sample.instances if (box := instance_box(inst)) is not None]
    return np.asarray(boxes, np.float64).reshape(-1, 4)


def keypoint_box_ratio(kset: KeypointSet) -> tuple[float, float]:
    """Median (width, height) of the labelled boxes over the boxes of their keypoints' pixels
    (:func:`~keypointer.data.boxes.keypoint_box`), over instances with a box and at least two
    labelled points; (1, 1) when none has a box. A box drawn around an animal is wider than
    its keypoints (the body around them): this ratio turns the keypoint box of predicted
    keypoints back into a box of the labels' kind
    (:func:`~keypointer.data.boxes.grow_boxes`), for a second, better centred crop."""
    ratios = []
    for sample in kset.samples:
        for inst in sample.instances:
            box, pts = labelled_box(inst), labelled_points(inst)
            if box is None or len(pts) < 2:
                continue
            ratios.append(np.asarray(box[2:], np.float64) / keypoint_boxes(pts[None])[0, 2:])
    if not ratios:
        return (1.0, 1.0)
    rx, ry = np.median(np.asarray(ratios), 0)
    return (float(rx), float(ry))


def letterbox(width: int, height: int, input_size: tuple[int, int]) -> np.ndarray:
    """(2, 3) matrix from input pixels to the pixels of a ``width`` x ``height`` image placed
    whole, centred, aspect kept (black bars), into ``input_size`` (W, H)."""
    center, size = T.image_crop(width, height)
    return T.crop_affine(center, T.fit_aspect(size, input_size), input_size)


def map_boxes(boxes: npt.ArrayLike, matrix: npt.ArrayLike) -> np.ndarray:
    """COCO boxes (N, 4) through a (2, 3) affine matrix -> the boxes (N, 4) enclosing the
    mapped corners (exact for scale, shift and flip; enclosing under rotation)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    lo = b[:, :2] - 0.5  # edges -> pixel-centre coordinates
    hi = lo + b[:, 2:]
    corners = np.stack(
        [lo, np.stack([hi[:, 0], lo[:, 1]], 1), np.stack([lo[:, 0], hi[:, 1]], 1), hi], 1
    )
    mapped = T.apply_affine(corners, matrix)  # (N, 4, 2)
    new_lo, new_hi = mapped.min(1), mapped.max(1)
    return np.concatenate([new_lo + 0.5, new_hi - new_lo], 1)


def clip_boxes(boxes: np.ndarray, size: tuple[int, int], min_side: float = MIN_SIDE) -> np.ndarray:
    """COCO boxes cut to the area of an image of ``size`` (W, H); those left thinner than
    ``min_side`` (or not finite) are dropped."""
    lo = np.clip(boxes[:, :2], 0, size)
    hi = np.clip(boxes[:, :2] + boxes[:, 2:], 0, size)
    out = np.concatenate([lo, hi - lo], 1)
    keep = np.isfinite(out).all(1) & (out[:, 2:] >= min_side).all(1)
    return out[keep]


class WholeImageDataset(Dataset):
    """One item per image of ``kset``: the whole image letterboxed into ``codec.input_size``.

    With ``augment`` (training): a random scale and shift of the letterbox, a horizontal flip
    with probability ``augment.flip`` and colour jitter; no rotation (an axis-aligned box
    does not survive it). An item: "image" (3, H, W) float32 normalised; "target" the tuple
    ``codec.encode`` gives (heatmap (1, h, w), size (2, h, w), mask (1, h, w)); "boxes" is not
    batched (counts differ): ``self.boxes[index]`` holds the image-pixel boxes; "affine" (2, 3)
    input -> image pixels; "index" int64. Images with no instance are negatives (empty maps).
    Frames of videos are decoded once, here, as the pose dataset does (``progress``: a bar).
    """

    def __init__(
        self,
        kset: KeypointSet,
        codec: CenterCodec,
        augment: AugmentConfig | None = None,
        *,
        progress: bool = False,
    ) -> None:
        cache_video_frames(kset, progress)
        self.kset = kset
        self.codec = codec
        self.augment = augment
        self.boxes = [instance_boxes(s) for s in kset.samples]
        self.seed = 0
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.kset.samples)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, key: int | ItemKey) -> Item:
        seed, epoch, index = key if isinstance(key, tuple) else (self.seed, self.epoch, key)
        image = self.kset.samples[index].read()  # an image file, or a video's frame
        aug = self.augment
        rng = np.random.default_rng([seed, epoch, index]) if aug is not None else None
        matrix = self.affine(image.shape[1], image.shape[0], rng)
        size = self.codec.input_size
        crop = T.warp_image(image, matrix, size)
        boxes = clip_boxes(map_boxes(self.boxes[index], T.invert_affine(matrix)), size)
        if rng is not None:
            crop = T.color_jitter(crop, rng, aug.brightness, aug.contrast, aug.saturation, aug.hue)
        target = self.codec.encode(boxes.astype(np.float32))
        return {
            "image": torch.from_numpy(T.to_chw_normalized(crop)),
            "target": target,
            "affine": torch.from_numpy(matrix),
            "index": torch.tensor(index, dtype=torch.int64),
        }

    def affine(self, width: int, height: int, rng: np.random.Generator | None) -> np.ndarray:
        """(2, 3) input -> image matrix: the letterbox, randomly scaled, shifted and flipped."""
        if rng is None:
            return letterbox(width, height, self.codec.input_size)
        p = T.sample_params(rng, self.augment)
        center, size = T.image_crop(width, height)
        size = T.fit_aspect(size, self.codec.input_size)
        center = center + np.array(p.shift) * size
        return T.crop_affine(center, size * p.scale, self.codec.input_size, 0.0, p.flip)
