"""Warm-up and milestone arithmetic of build_scheduler: epochs converted to steps."""

import pytest
import torch

from keypointer.config import TrainConfig
from keypointer.training.optim import build_optimizer, build_scheduler


def _lrs(cfg: TrainConfig, steps_per_epoch: int) -> list[float]:
    model = torch.nn.Linear(2, 2)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
    lrs = []
    for _ in range(cfg.epochs * steps_per_epoch):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_fractional_warm_up_is_rounded_to_steps_and_ramps_linearly():
    cfg = TrainConfig(epochs=4, lr=1.0, warmup_epochs=0.5, schedule="constant")
    lrs = _lrs(cfg, steps_per_epoch=10)  # warm-up: round(0.5 * 10) = 5 steps
    assert lrs[0] == pytest.approx(1e-3)
    assert lrs[1] < lrs[2] < lrs[3] < lrs[4] < 1.0
    assert lrs[5:] == pytest.approx([1.0] * 35)


def test_milestones_in_epochs_and_as_fractions_count_from_the_start_of_training():
    # Milestones 2 (epochs) and 0.75 (of 4 epochs = epoch 3), at 10 steps per epoch; the
    # 5-step warm-up is subtracted so the drops land at steps 20 and 30 of the whole run.
    cfg = TrainConfig(
        epochs=4, lr=1.0, warmup_epochs=0.5, schedule="multistep", milestones=[2, 0.75], gamma=0.1
    )
    lrs = _lrs(cfg, steps_per_epoch=10)
    assert lrs[19] == pytest.approx(1.0) and lrs[20] == pytest.approx(0.1)
    assert lrs[29] == pytest.approx(0.1) and lrs[30] == pytest.approx(0.01)


def test_warm_up_never_takes_the_whole_run():
    cfg = TrainConfig(epochs=3, lr=1.0, warmup_epochs=5, schedule="constant")
    lrs = _lrs(cfg, steps_per_epoch=10)  # capped at a third of the 30 steps
    assert lrs[9] < 1.0 and lrs[10:] == pytest.approx([1.0] * 20)


def test_cosine_decays_to_zero_after_warm_up():
    cfg = TrainConfig(epochs=2, lr=1.0, warmup_epochs=0, schedule="cosine")
    lrs = _lrs(cfg, steps_per_epoch=5)
    assert lrs[0] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False))
    assert lrs[5] == pytest.approx(0.5)
