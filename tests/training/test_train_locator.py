"""train_locator: the focal loss, the loop (steps, time budget) and that it learns on crowds."""

from __future__ import annotations

import math
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import FakeClock, tiny_locator_config

from keypointer.data import synthetic
from keypointer.data.types import Instance, KeypointSet, Sample
from keypointer.errors import DataError
from keypointer.models.locator import LocatorModel
from keypointer.skeleton import Skeleton
from keypointer.training import locator as locator_module
from keypointer.training.locator import (
    centre_focal_loss,
    data_long_side,
    evaluate_locator,
    locator_loss,
    median_aspect,
    train_locator,
)


def crowd_set(out: Path, n: int, seed: int = 0, tile: int = 64, grid: int = 2) -> KeypointSet:
    """n images of grid x grid tiles on a noisy canvas; 1 to grid^2 tiles hold a single-figure
    render (:func:`keypointer.data.synthetic.render`), each with its box and keypoints."""
    out.mkdir(parents=True, exist_ok=True)
    side, samples = tile * grid, []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        canvas = rng.normal(rng.uniform(40, 200, 3), 20, (side, side, 3))
        canvas = np.clip(canvas, 0, 255).astype(np.uint8)
        instances = []
        for cell in rng.permutation(grid * grid)[: int(rng.integers(1, grid * grid + 1))]:
            x0, y0 = (cell % grid) * tile, (cell // grid) * tile
            image, kps, (bx, by, bw, bh) = synthetic.render(rng, tile)
            canvas[y0 : y0 + tile, x0 : x0 + tile] = image
            kps = kps.copy()
            kps[:, :2] += (x0, y0)
            instances.append(Instance(kps, (bx + x0, by + y0, bw, bh), f"cell {cell}"))
        path = out / f"{i:04d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
        samples.append(Sample(path, side, side, instances, id=i))
    return KeypointSet(Skeleton(synthetic.NAMES, synthetic.EDGES), samples, source=out)


def centernet_neg_loss(pred, gt, pos):
    """CenterNet's _neg_loss (src/lib/models/losses.py) on probabilities, positives from ``pos``."""
    neg = ~pos
    pos_loss = (torch.log(pred) * (1 - pred) ** 2)[pos].sum()
    neg_loss = (torch.log(1 - pred) * pred**2 * (1 - gt) ** 4)[neg].sum()
    return -(pos_loss + neg_loss)


def test_focal_loss_matches_centernet_and_stays_finite():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 8, 8, generator=g) * 3
    gt = torch.rand(2, 1, 8, 8, generator=g)
    mask = torch.zeros(2, 1, 8, 8)
    mask[0, 0, 2, 3] = mask[1, 0, 5, 5] = 1
    want = centernet_neg_loss(torch.sigmoid(logits.double()), gt.double(), mask > 0)
    got = centre_focal_loss(logits, gt, mask > 0)
    assert float(got) == pytest.approx(float(want), rel=1e-4)
    # saturated logits: CenterNet clamps p to [1e-4, 1 - 1e-4]; logsigmoid needs no clamp
    big = torch.tensor([[[[60.0, -60.0]]]], requires_grad=True)
    loss = centre_focal_loss(big, torch.zeros(1, 1, 1, 2), torch.tensor([[[[False, True]]]]))
    loss.backward()
    assert loss.item() == pytest.approx(120.0, rel=1e-3) and torch.isfinite(big.grad).all()


def test_locator_loss_normalises_by_instances_and_handles_empty_batches():
    out = torch.zeros(2, 3, 4, 4)
    heatmap, size, mask = torch.zeros(2, 1, 4, 4), torch.zeros(2, 2, 4, 4), torch.zeros(2, 1, 4, 4)
    loss, parts = locator_loss(out, heatmap, size, mask)  # no instance: negatives only
    assert parts["size"] == 0 and parts["centre"] == pytest.approx(32 * 0.25 * math.log(2))
    mask[0, 0, 1, 1] = mask[1, 0, 2, 2] = 1
    size[:, :, 1, 1] = 1.0
    _, parts = locator_loss(out, heatmap, size, mask)
    assert parts["size"] == pytest.approx(0.5)  # |0 - 1| on (w, h) of one of two instances
    assert parts["loss"] == pytest.approx(parts["centre"] + parts["size"])
    # a size region (weights below 1) weighs the size mean, not the centres' count
    mask[0, 0, 1, 2] = 0.5
    size[:, :, 1, 2] = 3.0
    _, dense = locator_loss(out, heatmap, size, mask)
    assert dense["size"] == pytest.approx((1 + 0.5 * 3) / 2.5)
    assert dense["centre"] == pytest.approx(parts["centre"])


def test_train_a_few_steps_returns_model_and_metrics(tmp_path):
    kset = crowd_set(tmp_path / "crowd", 6)
    train, val = kset.subset(range(4)), kset.subset(range(4, 6))
    torch.manual_seed(0)
    model, metrics = train_locator(train, val, tiny_locator_config(), steps=3)
    assert isinstance(model, LocatorModel) and not model.training
    assert model.input_size == (128, 128)
    assert metrics["steps"] == 3 and metrics["val_instances"] == sum(
        len(s.instances) for s in val.samples
    )
    for key in ("val_recall", "val_precision", "val_mean_iou", "train_loss", "seconds"):
        assert key in metrics
    assert math.isfinite(metrics["train_loss"]) and 0 <= metrics["val_recall"] <= 1
    with pytest.raises(DataError):
        train_locator(train.subset([]), val, tiny_locator_config(), steps=1)


def test_time_budget_ends_the_run_on_time(tmp_path, monkeypatch):
    """On a fake clock where a step takes 0.5 s and nothing else takes time: the 100000-step
    plan shrinks to what fits into 4 s, less the final validation's reserve (a guessed second
    for the saves, plus half a step per validation batch), whatever this machine's speed."""
    clock = FakeClock()
    monkeypatch.setattr(time, "perf_counter", clock)
    monkeypatch.setattr(
        locator_module, "locator_step", clock.ticking(locator_module.locator_step, 0.5)
    )
    kset = crowd_set(tmp_path / "crowd", 4)
    model, metrics = train_locator(
        kset, kset, tiny_locator_config(steps=100_000), time_budget_s=4.0
    )
    assert 4 <= metrics["steps"] <= 6
    assert metrics["seconds"] == 0.5 * metrics["steps"] <= 4.0


def _boxed(width, height, *long_sides):
    instances = [Instance(np.zeros((1, 3)), (0.0, 0.0, side / 2, side)) for side in long_sides]
    return Sample(Path("x.png"), width, height, instances)


def test_long_side_from_the_data():
    sk = Skeleton(("a",))
    # median box 100 px in 640 px images: 64 / 100 of 640 = 409.6 -> 416
    assert data_long_side(KeypointSet(sk, [_boxed(640, 480, 90, 100, 110)])) == 416
    # tiny boxes: capped at 512, big ones: at least 128
    assert data_long_side(KeypointSet(sk, [_boxed(640, 480, 20)])) == 512
    assert data_long_side(KeypointSet(sk, [_boxed(640, 480, 600)])) == 128
    # never more than the images' own size (rounded up to 32)
    assert data_long_side(KeypointSet(sk, [_boxed(200, 100, 10)])) == 224
    assert data_long_side(KeypointSet(sk, [Sample(Path("x.png"))])) == 256


def test_median_aspect():
    samples = [Sample(Path("a"), 640, 480), Sample(Path("b"), 640, 480), Sample(Path("c"))]
    assert median_aspect(KeypointSet(Skeleton(("a",)), samples)) == pytest.approx(4 / 3)
    assert median_aspect(KeypointSet(Skeleton(("a",)), [])) == 1.0


@pytest.mark.slow
def test_learns_to_find_figures_in_crowds(tmp_path):
    """About a minute on one core: most figures found at IoU 0.5 on held-out crowd images.

    At these settings (the sweep's: the defaults have moved since), training seeds 0-5 on one
    core gave recall 0.78-0.84, precision 0.52-0.75 and mean IoU
    0.66-0.69 (250 steps on 40 images gave recall 0.41-0.71: too close to call, and another
    CPU's rounding failed it). The bounds leave room for other CPUs; untrained, recall is ~0."""
    kset = crowd_set(tmp_path / "crowd", 96, tile=64)
    train, val = kset.subset(range(80)), kset.subset(range(80, 96))
    cfg = tiny_locator_config(
        batch_size=8, channels=32, backbone="lcnet_050", score_threshold=0.3, lr=2e-3
    )
    torch.manual_seed(0)
    model, metrics = train_locator(train, val, cfg, steps=500)
    assert metrics["val_recall"] >= 0.6, metrics
    assert metrics["val_precision"] >= 0.4, metrics
    assert metrics["val_mean_iou"] >= 0.55, metrics
    again = evaluate_locator(model, val, threshold=cfg.locator.score_threshold)
    assert again["val_recall"] == metrics["val_recall"]
