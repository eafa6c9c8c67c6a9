"""The run's plan in optimiser steps, shared by both loops (the pose model's, loop.py; the
locator's, locator.py): how many steps, how many are done, the learning-rate shape over them,
and, with a time budget (budget.py), the re-planning that fits the run into it.

A time budget re-plans the length after every step from the measured step time; the LR shape
(:class:`~keypointer.training.optim.LRShape`) and the progress bar stretch with it. Under
torchrun every process must stop at the same step, so the main process's plan is shared.
"""

from __future__ import annotations

import math

import torch

from keypointer.config import VALIDATION_STEP_COST
from keypointer.errors import TrainingError
from keypointer.training import distributed as dist
from keypointer.training.budget import TimeBudget
from keypointer.training.optim import LRShape
from keypointer.training.progress import TrainProgress

SHARE_EVERY = 10  # steps between exchanges of the plan under torchrun: the exchange costs nothing


class Schedule:
    """The run's length in optimiser steps and the LR shape over it.

    ``total`` starts as the shape's length (a resumed run's shape keeps its re-planned length)
    and changes only when ``budget`` (a :class:`TimeBudget`, None: no time limit) re-plans it.
    ``epochs``: the epoch to stop after, None when only the steps end the run (a time budget,
    or the locator's loop). ``validation_batches``: the final validation's size, kept back
    from a budget at :data:`~keypointer.config.VALIDATION_STEP_COST` steps a batch.
    ``warmup_share``: keep the warm-up this share of the re-planned length while it lasts
    (None: the warm-up is fixed in epochs, as ``train.warmup_epochs`` says).
    """

    def __init__(
        self,
        shape: LRShape,
        *,
        done: int = 0,
        epochs: int | None = None,
        validation_batches: int = 0,
        warmup_share: float | None = None,
        info: dist.DistInfo | None = None,
        device: torch.device | None = None,
    ) -> None:
        self.shape = shape
        self.done = done
        self.total = max(shape.total, done)
        self.epochs = epochs
        self.reserve_steps = validation_batches * VALIDATION_STEP_COST
        self.warmup_share = warmup_share
        self.info = info or dist.DistInfo()
        self.device = device or torch.device("cpu")
        self.budget: TimeBudget | None = None
        self.progress: TrainProgress | None = None

    @property
    def finished(self) -> bool:
        """Every planned step is done."""
        return self.done >= self.total

    def epoch_due(self, epoch: int) -> bool:
        """Epoch ``epoch`` (from 0) is to run: within the epoch bound, with steps left."""
        return (self.epochs is None or epoch < self.epochs) and not self.finished

    def last_epoch(self, epoch: int) -> bool:
        """Epoch ``epoch`` (from 0), just run, ends the run."""
        return epoch + 1 == self.epochs or self.finished

    def advance(
        self, seconds: float, *, epoch: int, loss: float, lr: float, samples_per_s: float
    ) -> None:
        """Count one optimiser step, re-plan from its wall time and show it on the bar.

        Args:
            seconds: the step's wall time, from the end of the step before.
            epoch: the epoch it belongs to, from 1 (shown).
            loss: its loss (shown).
            lr: the learning rate it used (shown).
            samples_per_s: the throughput to show.
        """
        self.done += 1
        if self.budget is not None:
            self.budget.observe_step(seconds)
            self.replan()
        if self.progress is not None:
            self.progress.step(epoch, loss, lr, samples_per_s)

    def observe_validation(self, seconds: float) -> None:
        """Record what a validation and the saves after it cost (the budget keeps it back)."""
        if self.budget is not None:
            self.budget.observe_finish(seconds)

    def elapsed(self) -> float | None:
        """Wall seconds the budget has counted (earlier sessions included); None without one."""
        return self.budget.elapsed() if self.budget is not None else None

    def replan(self) -> None:
        """Re-plan ``total`` from the budget: the LR shape stretches with it (and its warm-up
        with ``warmup_share``), the bar follows. Nothing changes before a step was timed."""
        if self.budget is None or (self.info.enabled and self.done % SHARE_EVERY):
            return
        total = self.budget.total_steps(self.done, self.reserve_steps) if self.info.is_main else 0
        if self.info.enabled:
            shared = torch.tensor([float(total or 0)], device=self.device)
            total = int(dist.sum_across(shared, self.info)[0]) or None
        if total is None:
            return
        if self.warmup_share is not None and self.done < self.shape.warmup:
            self.shape.warmup_epochs = self.warmup_share * total / self.shape.steps_per_epoch
        self.total = max(total, self.done)
        self.shape.set_total(self.total)
        if self.progress is not None:
            self.progress.set_total(self.total)


def check_loss(loss: float, *, subject: str, where: str = "", advice: str) -> None:
    """Stop training on a loss that is no longer finite.

    Args:
        loss: the step's loss.
        subject: what became non-finite ("the loss").
        where: where it happened (" at epoch 3, step 7"), or "".
        advice: what to do, after a semicolon.

    Raises:
        TrainingError: ``loss`` is NaN or infinite.
    """
    if not math.isfinite(loss):
        raise TrainingError(f"{subject} became {loss}{where}; {advice}")
