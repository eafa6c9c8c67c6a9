"""What the pose model's loop works with (:class:`TrainState`), made by
:func:`keypointer.training.loop.setup` and read by the loop and the second stage (two_stage.py)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.optim.swa_utils import AveragedModel

from keypointer.config import Config
from keypointer.training import distributed as dist
from keypointer.training.loaders import TrainData
from keypointer.training.locator import LocatorEntry
from keypointer.training.progress import TrainProgress
from keypointer.training.records import Row, ScalarWriter
from keypointer.training.schedule import Schedule


@dataclass(kw_only=True)
class TrainState:
    """Everything the loop works with.

    ``model`` is the plain model, ``wrapped`` the one that trains (DDP or ``model`` itself).
    ``schedule`` holds the run's length in steps and its time budget. ``history`` holds one
    row per epoch done (resumed ones included); ``best`` is the best validation PCK so far
    (-1 before any). Epochs from ``start_epoch`` on remain, as long as ``schedule`` says.
    """

    cfg: Config
    device: torch.device
    info: dist.DistInfo
    data: TrainData
    model: nn.Module
    wrapped: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: LambdaLR
    scaler: torch.amp.GradScaler
    ema: AveragedModel | None
    autocast: contextlib.AbstractContextManager
    schedule: Schedule
    progress: TrainProgress
    run_dir: Path
    resume: Path | None = None
    history: list[Row] = field(default_factory=list)
    start_epoch: int = 0
    best: float = -1.0
    tensorboard: ScalarWriter | None = None
    warned: bool = False  # the learned-nothing warning was given
    pck_warned: bool = False  # the undefined-PCK warning was given
    locator_entry: LocatorEntry | None = None  # the resumed last.pt's locator (two_stage.py)
    locator_step_s: float | None = None  # a locator step's seconds, timed in setup (or None)

    @property
    def eval_model(self) -> nn.Module:
        """What validation and best.pt use: the EMA weights when kept."""
        return self.ema.module if self.ema is not None else self.model
