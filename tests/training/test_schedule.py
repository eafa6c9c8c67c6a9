"""The shared schedule: length in steps, epoch bound, re-planning from a time budget."""

from __future__ import annotations

import math

import pytest
from helpers import FakeClock

from keypointer.config import Config
from keypointer.errors import TrainingError
from keypointer.training import budget as budget_module
from keypointer.training.budget import TimeBudget
from keypointer.training.optim import LRShape
from keypointer.training.schedule import Schedule, check_loss


def cosine_shape(total: int, steps_per_epoch: int = 10, warmup_epochs: float = 0.0) -> LRShape:
    update = {"schedule": "cosine", "warmup_epochs": warmup_epochs}
    return LRShape(Config().train.model_copy(update=update), steps_per_epoch, total)


def run_steps(schedule: Schedule, clock: FakeClock, n: int, seconds: float) -> None:
    for _ in range(n):
        clock.now += seconds
        schedule.advance(seconds, epoch=1, loss=1.0, lr=1e-3, samples_per_s=1.0)


def test_without_a_budget_the_plan_and_the_epoch_bound_end_the_run():
    schedule = Schedule(cosine_shape(30), epochs=2)
    assert schedule.epoch_due(1) and not schedule.epoch_due(2)
    assert schedule.last_epoch(1) and not schedule.last_epoch(0)
    unbounded = Schedule(cosine_shape(30))  # no epoch bound: only the steps end it
    assert unbounded.epoch_due(10**6)
    run_steps(unbounded, FakeClock(), 30, 1.0)
    assert unbounded.finished and not unbounded.epoch_due(3) and unbounded.total == 30


def test_a_resumed_run_keeps_its_replanned_length():
    shape = cosine_shape(30)
    shape.set_total(500)  # what a budget re-planned before the run was stopped
    assert Schedule(shape, done=120).total == 500
    assert Schedule(cosine_shape(30), done=40).finished  # never shorter than what was done


def test_a_budget_replans_the_length_the_lr_shape_and_the_warmup_share(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(budget_module.time, "perf_counter", clock)
    shape = cosine_shape(1000, warmup_epochs=5.0)  # 50 of 1000 steps
    schedule = Schedule(shape, validation_batches=4, warmup_share=0.05)
    schedule.budget = TimeBudget(minutes=1.0)
    run_steps(schedule, clock, budget_module.SKIP, 0.5)
    assert schedule.total == 1000  # no step timed yet
    run_steps(schedule, clock, 1, 0.5)
    # 58.5 s left at 0.5 s a step, less the final validation (4 batches at half a step) and
    # the guessed second for its saves
    left = 60.0 - 0.5 * (budget_module.SKIP + 1)
    want = budget_module.SKIP + 1 + int((left - 4 * 0.5 * 0.5 - 1.0) / 0.5)
    assert schedule.total == shape.total == want
    assert shape.warmup == round(0.05 * want)  # the warm-up stays its share of the run
    fixed = Schedule(cosine_shape(1000, warmup_epochs=2.0))  # warm-up fixed in epochs
    fixed.budget = TimeBudget(minutes=1.0)
    run_steps(fixed, clock, budget_module.SKIP + 1, 0.5)
    assert fixed.total > want and fixed.shape.warmup == 20  # no validation kept back


def test_a_loss_that_is_no_longer_finite_stops_training():
    check_loss(1.5, subject="the loss", advice="fine")
    with pytest.raises(TrainingError, match="the loss became nan at epoch 2; try less"):
        check_loss(math.nan, subject="the loss", where=" at epoch 2", advice="try less")
