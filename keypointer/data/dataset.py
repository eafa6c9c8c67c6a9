"""Training samples: top-down crops of each labelled instance, and the DataLoader around them.

Reproducibility: every item is asked for by a key ``(seed, epoch, index)`` that
the sampler builds in the main process, and the item's random numbers come from
``SeedSequence([seed, epoch, index])`` alone. So a batch does not depend on the
number of workers, on which worker made it, or on workers that persist across
epochs and never see the main process's ``set_epoch``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from keypointer.codecs import Codec
from keypointer.config import BOX_MARGIN, AugmentConfig, LoaderConfig
from keypointer.data import transforms as T
from keypointer.data.boxes import Box, crop_box, keypoint_crop_box
from keypointer.data.frames import cache_frames
from keypointer.data.types import Instance, KeypointSet, Sample
from keypointer.errors import DataError

log = logging.getLogger("keypointer")

ItemKey = tuple[int, int, int]  # (seed, epoch, index)
Item = dict[str, torch.Tensor | tuple[torch.Tensor, ...]]  # an item or a batch, by name


class KeypointDataset(Dataset):
    """One item per labelled instance, cropped to ``input_size`` = (W, H) around its box.

    The crop is the instance's box; without a box, the extent of its labelled
    keypoints; and the whole image when every image holds a single unboxed
    instance. Both grow by ``box_margin`` (not the whole image) to the input's aspect ratio.
    ``augment`` None (or ``train=False``) means validation: no randomness at all.
    Frames of videos are decoded once, here (:func:`cache_video_frames`; ``progress`` shows
    a bar), so that items read them from memory, also in forked loader workers.

    An item is a dict: "image" (3, H, W) float32 normalised RGB; "target" as
    ``codec.encode`` gives it for one sample; "weights" (K,) float32;
    "keypoints" (K, 2) float32 input pixels (0 where unlabelled); "visible" (K,)
    bool, labelled and inside the input; "affine" (2, 3) float64 mapping input
    pixels to original-image pixels; "index" int64, the item's position here;
    "image_id" int64, the image's position in ``kset.samples``.
    """

    def __init__(
        self,
        kset: KeypointSet,
        codec: Codec,
        input_size: tuple[int, int],
        augment: AugmentConfig | None = None,
        *,
        train: bool = True,
        box_margin: float = BOX_MARGIN,
        progress: bool = False,
    ):
        self.kset = kset
        self.codec = codec
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.augment = augment if train else None
        self.box_margin = float(box_margin)
        self.flip_index = np.array(kset.skeleton.flip_index(), dtype=np.int64)
        self.seed = 0
        self.epoch = 0
        samples = kset.samples
        self.whole_image = kset.whole_image
        pairs = [
            (si, ii)
            for si, s in enumerate(samples)
            for ii, inst in enumerate(s.instances)
            if _labelled(inst).any()
        ]
        self.skipped_instances = kset.num_instances - len(pairs)
        cache_video_frames(kset, progress)
        self._entries = np.array(pairs, dtype=np.int64).reshape(-1, 2)
        # Shared memory, so that images found corrupt inside workers are known to the main process.
        self._bad = torch.zeros(max(len(samples), 1), dtype=torch.bool).share_memory_()

    def __len__(self) -> int:
        return len(self._entries)

    def set_epoch(self, epoch: int) -> None:
        """Epoch for the augmentation of later items (the loader's sampler reads it too)."""
        self.epoch = int(epoch)

    def position(self, index: int) -> tuple[int, int]:
        """Item ``index``'s image position in ``kset.samples`` and instance position in it."""
        si, ii = self._entries[index]
        return int(si), int(ii)

    def entry(self, index: int) -> tuple[Sample, Instance]:
        """The image and instance behind item ``index``."""
        si, ii = self.position(index)
        sample = self.kset.samples[si]
        return sample, sample.instances[ii]

    @property
    def bad_images(self) -> list:
        """Paths of images that could not be decoded (and were skipped), in any process."""
        return [self.kset.samples[i].image for i in torch.nonzero(self._bad).flatten().tolist()]

    def __getitem__(self, key: int | ItemKey) -> Item:
        seed, epoch, index = key if isinstance(key, tuple) else (self.seed, self.epoch, key)
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} items")
        for step in range(n):
            i = (int(index) + step) % n
            si = int(self._entries[i, 0])
            if self._bad[si]:
                continue
            path = self.kset.samples[si].image
            try:
                image = self.kset.samples[si].read()  # an image file, or a video's frame
            except DataError as err:
                self._bad[si] = True
                log.warning("skipping unreadable image %s: %s", path, err.message)
                continue
            return self._item(image, i, seed, epoch)
        raise DataError("none of the images could be read", file=self.kset.source)

    def _item(self, image: np.ndarray, index: int, seed: int, epoch: int) -> Item:
        si, ii = (int(v) for v in self._entries[index])
        inst = self.kset.samples[si].instances[ii]
        points = inst.keypoints[:, :2].astype(np.float64)
        labelled = _labelled(inst)
        aug = self.augment
        rng = np.random.default_rng([seed, epoch, index]) if aug is not None else None
        matrix, flip = self._affine(image.shape, inst, points, labelled, rng)
        crop = T.warp_image(image, matrix, self.input_size)
        pts = T.apply_affine(points, T.invert_affine(matrix))
        if flip:
            pts, labelled = pts[self.flip_index], labelled[self.flip_index]
        pts = np.where(labelled[:, None], pts, 0.0)
        w, h = self.input_size
        inside = (pts[:, 0] >= -0.5) & (pts[:, 0] < w - 0.5) & (pts[:, 1] >= -0.5)
        visible = labelled & inside & (pts[:, 1] < h - 0.5)
        if rng is not None:
            crop = T.color_jitter(crop, rng, aug.brightness, aug.contrast, aug.saturation, aug.hue)
            if rng.random() < aug.erase:
                crop = T.random_erase(crop, pts, visible, rng)
        kps32 = pts.astype(np.float32)
        with _one_torch_thread():
            target, weights = self.codec.encode(kps32[None], visible[None])
        target = tuple(t[0] for t in target) if isinstance(target, tuple) else target[0]
        return {
            "image": torch.from_numpy(T.to_chw_normalized(crop)),
            "target": target,
            "weights": torch.as_tensor(weights[0], dtype=torch.float32),
            "keypoints": torch.from_numpy(kps32),
            "visible": torch.from_numpy(visible),
            "affine": torch.from_numpy(matrix),
            "index": torch.tensor(index, dtype=torch.int64),
            "image_id": torch.tensor(si, dtype=torch.int64),
        }

    def _affine(
        self,
        shape: tuple[int, ...],
        inst: Instance,
        points: np.ndarray,
        labelled: np.ndarray,
        rng: np.random.Generator | None,
    ) -> tuple[np.ndarray, bool]:
        """The (2, 3) input-to-image matrix of this item, and whether it flips."""
        center, size = self._base_crop(shape, inst)
        if rng is None:
            return T.crop_affine(center, size, self.input_size), False
        aug = self.augment
        p = T.sample_params(rng, aug)
        if rng.random() < aug.half_body:
            half = T.half_body_points(points, labelled, rng)
            box = keypoint_crop_box(half) if half is not None else None
            if box is not None:
                center, size = T.bbox_crop(box)
                size = T.fit_aspect(size, self.input_size, self.box_margin)
        center = center + np.array(p.shift) * size
        size = size * p.scale
        return T.crop_affine(center, size, self.input_size, p.rotation, p.flip), p.flip

    def crop_box(self, index: int) -> Box | None:
        """The COCO (x, y, w, h) box item ``index`` is cropped around without augmentation
        (:func:`~keypointer.data.boxes.crop_box`: before ``box_margin`` and the input's aspect
        ratio), None for the whole image: what ``predict --boxes`` would be given to crop this
        instance alike."""
        _, inst = self.entry(index)
        return crop_box(inst, self.whole_image)

    def _base_crop(self, shape: tuple[int, ...], inst: Instance) -> tuple[np.ndarray, np.ndarray]:
        box = crop_box(inst, self.whole_image)
        if box is None:  # the whole image: nothing to crop by, or nothing else to see
            center, size = T.image_crop(shape[1], shape[0])
            return center, T.fit_aspect(size, self.input_size)
        center, size = T.bbox_crop(box)
        return center, T.fit_aspect(size, self.input_size, self.box_margin)


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """One intra-op thread for loading work in the main process (workers already have one).

    With 0 workers, torch would split each sample's tiny ops, and the batch's stacking, across
    its OpenMP threads; on a CPU that other processes keep busy those threads wait for each
    other and the loader slows several times (measured: benchmarks/RESULTS.md, "Data
    loading"). Alone, each of these runs as fast on one thread. Switching costs under a
    microsecond.
    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def cache_video_frames(kset: KeypointSet, progress: bool = False) -> int:
    """Decode the video frames that ``kset``'s samples point into, once, in order
    (:func:`~keypointer.data.frames.cache_frames`): a sample's ``read`` then takes its frame
    from memory instead of seeking in the video (a seek decodes from the last key frame).

    Args:
        kset: the labels; samples of image files are left alone.
        progress: show a progress bar while decoding.

    Returns:
        The number of frames decoded now (0 when all are cached already or none is a frame).
    """
    frames = [(s.image, s.frame) for s in kset.samples if s.frame is not None]
    return cache_frames(frames, progress=progress) if frames else 0


def _labelled(inst: Instance) -> np.ndarray:
    kps = inst.keypoints
    return (kps[:, 2] > 0) & np.isfinite(kps[:, :2]).all(axis=1)


class KeyedSampler(Sampler):
    """Yields ``(seed, epoch, index)`` keys for :class:`KeypointDataset`.

    The epoch is read from ``dataset.epoch`` at the start of each pass (set it
    with ``dataset.set_epoch`` or this sampler's ``set_epoch``). Without a
    ``sampler`` the order is a permutation seeded by (seed, epoch) when
    ``shuffle``; with one (e.g. a ``DistributedSampler``) its order is used and
    its ``set_epoch`` is called with the same epoch.
    """

    def __init__(
        self, dataset: KeypointDataset, shuffle: bool, seed: int = 0, sampler: Sampler | None = None
    ):
        self.dataset = dataset
        self.shuffle = shuffle
        self.seed = int(seed)
        self.sampler = sampler

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler) if self.sampler is not None else len(self.dataset)

    def __iter__(self) -> Iterator[ItemKey]:
        epoch = self.dataset.epoch
        if self.sampler is not None:
            if hasattr(self.sampler, "set_epoch"):
                self.sampler.set_epoch(epoch)
            order = iter(self.sampler)
        elif self.shuffle:
            gen = torch.Generator().manual_seed(_mix(self.seed, epoch))
            order = torch.randperm(len(self.dataset), generator=gen).tolist()
        else:
            order = range(len(self.dataset))
        for i in order:
            yield (self.seed, epoch, int(i))


def _mix(*values: int) -> int:
    return int(np.random.SeedSequence(list(values)).generate_state(1)[0])


def collate(batch: list[Item]) -> Item:
    """``default_collate`` with one torch thread, keeping a tuple target (SimCC's x, y) a tuple."""
    with _one_torch_thread():
        out = default_collate(batch)
    if isinstance(batch[0]["target"], tuple):
        out["target"] = tuple(out["target"])
    return out


def default_num_workers() -> int:
    """Loader processes for this machine: none on <= 2 cores, else one per spare core, up to 8.

    On 2 cores, 2 workers made CPU training steps no faster (they take the cores the step's
    threads use) and sometimes 3-10x slower; see "Data loading" in benchmarks/RESULTS.md.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(8, cores - 1)


def _is_cuda(device: str | torch.device) -> bool:
    if str(device) == "auto":
        return torch.cuda.is_available()
    return torch.device(device).type == "cuda"


def make_loader(
    dataset: KeypointDataset,
    cfg: LoaderConfig,
    train: bool,
    device: str | torch.device = "cpu",
    seed: int = 0,
    sampler: Sampler | None = None,
) -> DataLoader:
    """DataLoader over ``dataset``: shuffled (and dropping the last short batch) when ``train``.

    ``num_workers`` None picks :func:`default_num_workers`; ``pin_memory`` None
    pins on CUDA. Call ``dataset.set_epoch(e)`` (or ``loader.sampler.set_epoch(e)``)
    before each epoch: batches then depend only on (seed, epoch). A given
    ``sampler`` (e.g. ``DistributedSampler``) sets the order instead of ``shuffle``.
    """
    workers = default_num_workers() if cfg.num_workers is None else cfg.num_workers
    pin = _is_cuda(device) if cfg.pin_memory is None else cfg.pin_memory
    keyed = KeyedSampler(dataset, shuffle=train, seed=seed, sampler=sampler)
    if workers > 0:
        # Forked workers must not inherit OpenCV's thread pool: its threads do not exist in the
        # child, and OpenCV then deadlocks there. The workers are the parallelism anyway.
        cv2.setNumThreads(0)
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=keyed,
        num_workers=workers,
        pin_memory=pin,
        # Never drop the only batch of a dataset smaller than one batch.
        drop_last=train and cfg.drop_last and len(keyed) >= cfg.batch_size,
        persistent_workers=cfg.persistent_workers and workers > 0,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(_mix(seed)),
    )
