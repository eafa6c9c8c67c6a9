from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from keypointer.codecs import HeatmapCodec
from keypointer.config import AugmentConfig, LoaderConfig
from keypointer.data import transforms as T
from keypointer.data.dataset import KeypointDataset, default_num_workers, make_loader
from keypointer.data.images import read_image
from keypointer.data.types import Instance, KeypointSet, Sample
from keypointer.errors import DataError
from keypointer.skeleton import Skeleton, guess_flip_pairs

NAMES = ("nose", "left_eye", "right_eye", "left_foot", "right_foot")
SKELETON = Skeleton(NAMES, ((0, 1), (0, 2), (3, 4)), guess_flip_pairs(NAMES))
POINTS = np.array([[60.3, 40.7], [80.6, 30.2], [40.0, 30.45], [75.25, 75.5], [45.5, 80.0]])
NO_JITTER = dict(brightness=0, contrast=0, saturation=0, hue=0)


@dataclass(frozen=True)
class TupleCodec:
    """A SimCC-like codec (tuple target) standing in for the real ones in collate tests."""

    input_size: tuple[int, int]

    def encode(self, keypoints, visible):
        kps = torch.as_tensor(keypoints, dtype=torch.float32)
        return (kps[..., 0] / self.input_size[0], kps[..., 1]), torch.as_tensor(visible).float()


def _codec(input_size):
    w, h = input_size
    return HeatmapCodec(input_size=(w, h), heatmap_size=(w // 4, h // 4), sigma=2.0)


def _blobs(points: np.ndarray, width: int, height: int, sigma: float = 1.5) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.zeros((height, width))
    for x, y in points:
        img += np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    return np.repeat((np.clip(img, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)


def _kset(
    tmp_path: Path, n: int = 3, bbox=(30.0, 20.0, 60.0, 70.0), size=(120, 100)
) -> KeypointSet:
    samples = []
    for i in range(n):
        pts = POINTS + i  # different per image
        path = tmp_path / f"img{i}.png"
        cv2.imwrite(str(path), _blobs(pts, *size))
        kps = np.column_stack([pts, np.full(len(pts), 2.0)])
        inst = Instance(kps, bbox=bbox, record=f"annotation id {i}")
        samples.append(Sample(path, size[0], size[1], [inst], id=i + 100))
    return KeypointSet(SKELETON, samples, tmp_path)


def _centroid(img: np.ndarray, x: float, y: float, r: int = 5) -> np.ndarray:
    x0, y0 = int(round(x)) - r, int(round(y)) - r
    win = img[y0 : y0 + 2 * r + 1, x0 : x0 + 2 * r + 1].astype(np.float64)
    ys, xs = np.mgrid[0 : win.shape[0], 0 : win.shape[1]]
    return np.array([(win * xs).sum() / win.sum() + x0, (win * ys).sum() / win.sum() + y0])


def _red(image: torch.Tensor) -> np.ndarray:
    """Channel 0 of a normalised image, back in 0..255."""
    return image[0].numpy() * 0.229 * 255 + 0.485 * 255


def test_item_shapes_and_types(tmp_path):
    ds = KeypointDataset(_kset(tmp_path), _codec((64, 48)), (64, 48), AugmentConfig())
    item = ds[1]
    assert item["image"].shape == (3, 48, 64) and item["image"].dtype == torch.float32
    assert item["target"].shape == (5, 12, 16) and item["target"].dtype == torch.float32
    assert item["weights"].shape == (5,) and item["weights"].dtype == torch.float32
    assert item["keypoints"].shape == (5, 2) and item["keypoints"].dtype == torch.float32
    assert item["visible"].shape == (5,) and item["visible"].dtype == torch.bool
    assert item["affine"].shape == (2, 3) and item["affine"].dtype == torch.float64
    assert item["index"].item() == 1 and item["image_id"].item() == 1
    assert ds.entry(1)[0].id == 101 and ds.position(1) == (1, 0)
    assert len(ds) == 3 and ds.skipped_instances == 0


def test_val_crop_maps_box_centre_to_input_centre(tmp_path):
    ds = KeypointDataset(_kset(tmp_path), _codec((64, 64)), (64, 64))
    item = ds[0]
    # box (30, 20, 60, 70): centre (59.5, 54.5); size 70 * 1.25 across 64 input pixels
    np.testing.assert_allclose(T.apply_affine([31.5, 31.5], item["affine"].numpy()), [59.5, 54.5])
    np.testing.assert_allclose(item["affine"].numpy()[:, :2], np.eye(2) * 70 * 1.25 / 64)
    assert torch.equal(item["image"], ds[0]["image"])  # validation has no randomness
    assert item["visible"].all() and (item["weights"] > 0).all()


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_affine_round_trip_and_dots_follow_keypoints(tmp_path, flip):
    aug = AugmentConfig(scale=(0.9, 1.1), rotation=40, shift=0.05, flip=flip, **NO_JITTER)
    ds = KeypointDataset(_kset(tmp_path), _codec((96, 96)), (96, 96), aug)
    perm = SKELETON.flip_index() if flip else list(range(5))
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            original = POINTS + i
            back = T.apply_affine(item["keypoints"].numpy(), item["affine"].numpy())
            np.testing.assert_allclose(back, original[perm], atol=1e-4)
            red = _red(item["image"])
            for x, y in item["keypoints"][item["visible"]].numpy():
                if 6 <= x <= 89 and 6 <= y <= 89:
                    np.testing.assert_allclose(_centroid(red, x, y), [x, y], atol=0.5)


def test_flip_swaps_pairs(tmp_path):
    still = AugmentConfig(scale=(1, 1), rotation=0, shift=0, flip=0.0, **NO_JITTER)
    flipped = still.model_copy(update={"flip": 1.0})
    kset = _kset(tmp_path)
    a = KeypointDataset(kset, _codec((64, 64)), (64, 64), still)[0]["keypoints"].numpy()
    b = KeypointDataset(kset, _codec((64, 64)), (64, 64), flipped)[0]["keypoints"].numpy()
    left, right = NAMES.index("left_eye"), NAMES.index("right_eye")
    assert a[left, 0] > 31.5 > a[right, 0]  # the subject's left eye is on our right
    np.testing.assert_allclose(b[right], [63 - a[left, 0], a[left, 1]], atol=1e-4)
    np.testing.assert_allclose(b[0], [63 - a[0, 0], a[0, 1]], atol=1e-4)  # nose stays the nose


def test_augmentation_depends_on_seed_epoch_and_index_only(tmp_path):
    ds = KeypointDataset(_kset(tmp_path), _codec((64, 64)), (64, 64), AugmentConfig())
    a = ds[(0, 3, 1)]
    b = ds[(0, 3, 1)]
    c = ds[(0, 4, 1)]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["affine"], b["affine"])
    assert not torch.equal(a["affine"], c["affine"])
    ds.set_epoch(3)
    assert torch.equal(ds[1]["affine"], a["affine"])


def test_crop_by_keypoints_without_box_and_whole_image(tmp_path):
    kset = _kset(tmp_path, n=2, bbox=None)
    ds = KeypointDataset(kset, _codec((64, 64)), (64, 64))
    assert ds.whole_image  # one unboxed instance per image: the network sees it all
    np.testing.assert_allclose(T.apply_affine([31.5, 31.5], ds[0]["affine"].numpy()), [59.5, 49.5])
    np.testing.assert_allclose(ds[0]["affine"].numpy()[0, 0], 120 / 64)
    # two unboxed instances in one image: each is cropped by its keypoints' extent
    kset.samples[0].instances.append(Instance(kset.samples[1].instances[0].keypoints.copy()))
    ds = KeypointDataset(kset, _codec((64, 64)), (64, 64), box_margin=1.5)
    assert not ds.whole_image
    lo, hi = POINTS.min(axis=0), POINTS.max(axis=0)
    m = ds[0]["affine"].numpy()
    np.testing.assert_allclose(T.apply_affine([31.5, 31.5], m), (lo + hi) / 2)
    np.testing.assert_allclose(m[0, 0], (hi - lo + 1).max() * 1.5 / 64)


def test_instances_without_labels_are_skipped_and_counted(tmp_path):
    kset = _kset(tmp_path)
    kset.samples[1].instances.append(Instance(np.zeros((5, 3)), bbox=(0, 0, 10, 10)))
    kset.samples[2].instances[0].keypoints[:, 2] = 0
    kset.samples[0].instances[0].keypoints[1, 2] = 0  # one unlabelled point is fine
    ds = KeypointDataset(kset, _codec((64, 64)), (64, 64))
    assert len(ds) == 2 and ds.skipped_instances == 2
    item = ds[0]
    assert not item["visible"][1] and item["weights"][1] == 0
    assert torch.equal(item["keypoints"][1], torch.zeros(2))


def test_keypoints_outside_the_crop_are_not_visible(tmp_path):
    ds = KeypointDataset(_kset(tmp_path, bbox=(30.0, 20.0, 30.0, 30.0)), _codec((64, 64)), (64, 64))
    item = ds[0]
    inside = ((item["keypoints"] >= -0.5) & (item["keypoints"] < 63.5)).all(dim=1)
    assert torch.equal(item["visible"], inside) and not inside.all() and inside.any()


@pytest.mark.parametrize("kind", ["gray", "rgba", "gray16", "rgb16", "jpeg"])
def test_read_image_any_type(tmp_path, kind):
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50  # R, G, B
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    data, want = {
        "gray": (np.full((6, 8), 77, np.uint8), [77, 77, 77]),
        "rgba": (np.dstack([bgr, np.full((6, 8), 10, np.uint8)]), [200, 100, 50]),
        "gray16": (np.full((6, 8), 77 * 257, np.uint16), [77, 77, 77]),
        "rgb16": (bgr.astype(np.uint16) * 257, [200, 100, 50]),
        "jpeg": (bgr, [200, 100, 50]),
    }[kind]
    path = tmp_path / ("imäge.jpg" if kind == "jpeg" else "imäge.png")  # non-ASCII path
    ok, buf = cv2.imencode(path.suffix, data)
    buf.tofile(path)
    img = read_image(path)
    assert img.shape == (6, 8, 3) and img.dtype == np.uint8
    np.testing.assert_allclose(img[3, 4], want, atol=3 if kind == "jpeg" else 1)


def test_read_image_float_tiff(tmp_path):
    data = np.zeros((4, 5, 3), np.float32)
    data[..., 2] = 0.5  # red, as OpenCV stores BGR
    path = tmp_path / "f.tiff"
    assert cv2.imwrite(str(path), data)
    img = read_image(path)
    np.testing.assert_allclose(img[0, 0], [128, 0, 0], atol=1)


@pytest.mark.parametrize("content", [b"", b"not an image at all", None])
def test_read_image_errors_name_the_file(tmp_path, content):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError) as err:
        read_image(path)
    assert err.value.file == str(path)


def test_corrupt_image_is_reported_and_skipped(tmp_path, caplog):
    kset = _kset(tmp_path)
    bad = kset.samples[1].image
    bad.write_bytes(b"\x89PNG garbage")
    ds = KeypointDataset(kset, _codec((64, 64)), (64, 64))
    with caplog.at_level(logging.WARNING, logger="keypointer"):
        item = ds[1]
    assert item["index"].item() == 2  # the next item stands in
    assert ds.bad_images == [bad]
    assert str(bad) in caplog.text
    for s in kset.samples:
        s.image.write_bytes(b"")
    with pytest.raises(DataError, match="none of the images"):
        ds[0]


def test_corrupt_image_found_in_a_worker_is_known_to_the_main_process(tmp_path):
    kset = _kset(tmp_path, n=4, size=(48, 40), bbox=(5.0, 5.0, 30.0, 30.0))
    kset.samples[2].image.write_bytes(b"")
    ds = KeypointDataset(kset, _codec((32, 32)), (32, 32), AugmentConfig())
    loader = make_loader(ds, LoaderConfig(batch_size=2, num_workers=2), train=False)
    assert sum(len(b["index"]) for b in loader) == 4  # the item after it stands in
    assert ds.bad_images == [kset.samples[2].image]


def test_main_process_loading_uses_one_torch_thread(tmp_path, monkeypatch):
    """Per-sample encoding and collation switch to one thread and back (no OpenMP stalls)."""
    ds = KeypointDataset(_kset(tmp_path, n=2), _codec((32, 32)), (32, 32))
    calls = []
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # as on a multi-core machine
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    (batch,) = list(make_loader(ds, LoaderConfig(batch_size=2, num_workers=0), train=False))
    assert calls == [1, 2] * 3  # two items and one collate
    assert batch["image"].shape == (2, 3, 32, 32)


def _batches(loader, epoch):
    loader.sampler.set_epoch(epoch)
    return [b for b in loader]


def _same(a, b):
    return len(a) == len(b) and all(
        torch.equal(x[k], y[k]) for x, y in zip(a, b, strict=True) for k in ("image", "index")
    )


def test_loader_reproducible_across_workers_and_epochs(tmp_path):
    kset = _kset(tmp_path, n=8, size=(48, 40), bbox=(5.0, 5.0, 30.0, 30.0))
    ds = KeypointDataset(kset, _codec((32, 32)), (32, 32), AugmentConfig())
    cfg0 = LoaderConfig(batch_size=3, num_workers=0)
    cfg2 = LoaderConfig(batch_size=3, num_workers=2, persistent_workers=True)
    l0, l2 = make_loader(ds, cfg0, train=True, seed=7), make_loader(ds, cfg2, train=True, seed=7)
    assert len(l0) == 2  # drop_last
    e0, e1 = _batches(l0, 0), _batches(l0, 1)
    assert _same(_batches(l2, 0), e0)
    assert _same(_batches(l2, 1), e1)  # persistent workers see the new epoch
    assert not torch.equal(e0[0]["index"], e1[0]["index"])
    assert not torch.equal(e0[0]["image"], e1[0]["image"])
    other = make_loader(ds, cfg0, train=True, seed=8)
    assert not _same(_batches(other, 0), e0)


def test_val_loader_is_ordered_and_complete(tmp_path):
    ds = KeypointDataset(_kset(tmp_path, n=5), _codec((32, 32)), (32, 32))
    loader = make_loader(ds, LoaderConfig(batch_size=2, num_workers=0), train=False)
    batches = list(loader)
    assert [b["index"].tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    assert batches[0]["target"].shape == (2, 5, 8, 8)
    assert not loader.pin_memory


def test_loader_keeps_tuple_targets_and_small_sets(tmp_path):
    ds = KeypointDataset(_kset(tmp_path, n=3), TupleCodec((32, 32)), (32, 32), AugmentConfig())
    loader = make_loader(ds, LoaderConfig(batch_size=8, num_workers=0), train=True)
    (batch,) = list(loader)  # fewer items than a batch: drop_last does not drop them all
    assert isinstance(batch["target"], tuple) and batch["target"][0].shape == (3, 5)


def test_loader_with_distributed_sampler(tmp_path):
    ds = KeypointDataset(_kset(tmp_path, n=6), _codec((32, 32)), (32, 32), AugmentConfig())
    cfg = LoaderConfig(batch_size=1, num_workers=0)
    seen = []
    for rank in (0, 1):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=3)
        loader = make_loader(ds, cfg, train=True, sampler=sampler)
        ds.set_epoch(2)
        seen += [b["index"].item() for b in loader]
        assert sampler.epoch == 2
    assert sorted(seen) == list(range(6))


def test_default_workers_and_pinning(tmp_path, monkeypatch):
    ds = KeypointDataset(_kset(tmp_path, n=2), _codec((32, 32)), (32, 32))
    cfg = LoaderConfig(batch_size=1)
    monkeypatch.setattr("os.sched_getaffinity", lambda _: {0, 1}, raising=False)
    assert default_num_workers() == 0
    monkeypatch.setattr("os.sched_getaffinity", lambda _: set(range(16)), raising=False)
    assert default_num_workers() == 8
    assert make_loader(ds, cfg, train=False, device="cuda").pin_memory
    assert not make_loader(ds, cfg, train=False, device="cpu").pin_memory
    assert not make_loader(
        ds, cfg.model_copy(update={"pin_memory": False}), False, "cuda"
    ).pin_memory
