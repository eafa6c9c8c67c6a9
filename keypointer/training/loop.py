"""Training, top to bottom: ``train(cfg)`` -> ``setup`` -> ``fit`` (epochs of
``train_one_epoch`` and ``validate``) -> checkpoints.

The loop is the seed notes' ``optimizer.zero_grad(); loss.backward();
optimizer.step()`` with mixed precision, gradient clipping, EMA, DDP and
atomic checkpoints around it; one optimisation step is :func:`train_step`.
Read ``train`` first; everything it calls is in this file or one import away (the locator
that follows the pose model on labels with crowds: two_stage.py).
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from keypointer._malloc import tune_malloc
from keypointer._tensors import to_float
from keypointer.checkpoint import (
    damaged,
    deployable,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from keypointer.config import Config, ConfigError, apply_override, from_dict, save_config
from keypointer.device import make_autocast, resolve_amp, resolve_device
from keypointer.errors import CheckpointError, TrainingError
from keypointer.inference.loader import predict_loader, quick_metrics, to_device
from keypointer.metrics.keypoints import bbox_norm, pck_undefined_reason
from keypointer.training import distributed as dist
from keypointer.training import two_stage
from keypointer.training.budget import TimeBudget
from keypointer.training.components import (
    build_model_for,
    check_tensorboard,
    configure_backends,
    freeze_setup_objects,
    make_ema,
    open_tensorboard,
    seed_everything,
    unwrap,
    wrap_ddp,
)
from keypointer.training.guard import learned_nothing_message
from keypointer.training.loaders import TrainData, build_data
from keypointer.training.optim import build_optimizer, build_scheduler
from keypointer.training.progress import TrainProgress
from keypointer.training.recipe import print_choices
from keypointer.training.records import checkpoint_state, format_row, record_epoch, restore
from keypointer.training.run_dir import new_run_dir, remove_run_dir


@dataclass
class Run:
    """A finished (or stopped) training run."""

    dir: Path
    config: Config
    metrics: list[dict[str, Any]] = field(default_factory=list)
    locator: dict[str, float] | None = None  # the locator's metrics, when one was trained

    @property
    def best(self) -> Path:
        return self.dir / "best.pt"

    @property
    def last(self) -> Path:
        return self.dir / "last.pt"


@dataclass
class TrainState:
    """Everything the loop works with, made by :func:`setup`.

    ``model`` is the plain model, ``wrapped`` the one that trains (DDP or ``model`` itself).
    ``history`` holds one row per epoch done (resumed ones included); ``best`` is the best
    validation PCK so far (-1 before any). Epochs ``start_epoch`` to ``last_epoch`` - 1 remain.
    """

    cfg: Config
    device: torch.device
    info: dist.DistInfo
    data: TrainData
    model: nn.Module
    wrapped: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    ema: AveragedModel | None
    autocast: contextlib.AbstractContextManager
    progress: TrainProgress
    run_dir: Path
    resume: Path | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    start_epoch: int = 0
    last_epoch: int = 0
    best: float = -1.0
    tensorboard: Any = None
    total_steps: int = 0  # the run's planned length; a time budget re-plans it
    done_steps: int = 0
    budget: TimeBudget | None = None
    warned: bool = False  # the learned-nothing warning was given
    pck_warned: bool = False  # the undefined-PCK warning was given
    locator: dict[str, Any] | None = None  # the resumed last.pt's locator entry (two_stage.py)

    @property
    def eval_model(self) -> nn.Module:
        """What validation and best.pt use: the EMA weights when kept."""
        return self.ema.module if self.ema is not None else self.model


def train(cfg: Config, resume: str | Path | None = None, stop_after: int | None = None) -> Run:
    """Train ``cfg``; with ``resume`` continue the run folder's ``last.pt``.

    ``stop_after`` ends this session after that many epochs in total (the run
    can be resumed later), as a user pressing Ctrl-C at an epoch boundary would.
    Labels with crowds also get the locator, trained after the pose model (two_stage.py).
    """
    if cfg.data.path is None:
        raise ConfigError("no training data: give --data PATH or set data.path in the config")
    tune_malloc()  # CPU steps spend far less time in page faults; see keypointer/_malloc.py
    started = time.perf_counter()  # a time budget counts the set-up too
    device = resolve_device(cfg.train.device)
    info = dist.setup(device.type)
    try:
        if info.enabled and device.type == "cuda":
            device = torch.device("cuda", info.local_rank)
        state = setup(cfg, device, info, Path(resume) if resume else None, stop_after)
        crowd = two_stage.wants_locator(cfg, state.data)  # a locator is trained after the fit
        if cfg.train.time is not None:
            spent = state.history[-1].get("elapsed_s", 0.0) if state.history else 0.0
            state.budget = two_stage.pose_budget(
                state, spent + time.perf_counter() - started, crowd
            )
        fit(state)
        found = two_stage.after_fit(state) if crowd else None
        return Run(state.run_dir, cfg, state.history, found)
    finally:
        dist.cleanup()


def resume_config(run_dir: Path, overrides: list[str]) -> Config:
    """The config stored in ``run_dir/last.pt``, with ``key=value`` overrides applied."""
    state = load_checkpoint(Path(run_dir) / "last.pt")
    d = state["config"]
    if not isinstance(d, dict):
        raise CheckpointError(f"{run_dir}/last.pt: damaged checkpoint (its config is no mapping)")
    for item in overrides:
        apply_override(d, item)
    return from_dict(d, source=f"{run_dir}/last.pt")


# --------------------------------------------------------------------------- setup


def setup(
    cfg: Config,
    device: torch.device,
    info: dist.DistInfo,
    resume: Path | None = None,
    stop_after: int | None = None,
) -> TrainState:
    """Data, model, optimiser, schedule, precision, EMA, resumed state and the run folder.

    Data is loaded and validated before anything is written: bad input leaves no run folder.
    """
    check_tensorboard(cfg)
    seed_everything(cfg.train.seed)
    configure_backends(cfg, device)
    data = build_data(cfg, device, info, plan_recipe=cfg.train.recipe and resume is None)
    if info.is_main and data.choices:
        print_choices(data.choices)
    model = build_model_for(cfg, data, device)
    optimizer = build_optimizer(model, cfg.train)
    scheduler = build_scheduler(optimizer, cfg.train, len(data.train_loader))
    amp_dtype = resolve_amp(cfg.train.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    ema = make_ema(model, cfg) if cfg.train.ema else None
    saved = load_checkpoint(resume / "last.pt") if resume else None
    start_epoch, history = 0, []
    if saved is not None:
        with damaged(resume / "last.pt"):
            start_epoch, history = restore(saved, model, optimizer, scheduler, scaler, ema)
    wrapped = wrap_ddp(model, cfg, device, info)
    run_dir = open_run_dir(cfg, resume) if info.is_main else resume
    steps = len(data.train_loader)
    done = int(history[-1].get("step", start_epoch * steps)) if history else 0
    total = max(scheduler.lr_lambdas[0].total, done)  # a resumed run keeps its re-planned length
    progress = TrainProgress(total, done, quiet=cfg.run.quiet, enabled=info.is_main)
    return TrainState(
        cfg, device, info, data, model, wrapped, optimizer, scheduler, scaler, ema,
        autocast=make_autocast(device, amp_dtype), progress=progress, run_dir=run_dir,
        resume=resume, history=history, start_epoch=start_epoch,
        last_epoch=stop_after or (cfg.train.epochs if cfg.train.time is None else 10**9),
        best=max((r["val_pck"] for r in history if "val_pck" in r), default=-1.0),
        total_steps=total, done_steps=done, locator=saved.get("locator") if saved else None,
    )  # fmt: skip


def open_run_dir(cfg: Config, resume: Path | None) -> Path:
    """A new run folder, or the resumed one cleared of a save that a kill interrupted."""
    if resume is not None:
        remove_stale_temporaries(resume)
        return resume
    try:
        return new_run_dir(cfg.run.root, cfg.run.name)
    except OSError as err:
        raise ConfigError(
            f"run.root: cannot create a run folder in {cfg.run.root}: {err.strerror or err}"
        ) from None


# --------------------------------------------------------------------------- fit


def fit(state: TrainState) -> None:
    """The remaining epochs: train, validate when due, record; best.pt at the end."""
    cfg, info, run_dir = state.cfg, state.info, state.run_dir
    frozen = freeze_setup_objects()
    try:
        if info.is_main:
            save_config(cfg, run_dir / "config.yaml")
            state.tensorboard = open_tensorboard(cfg, run_dir)
        epoch = state.start_epoch
        while epoch < state.last_epoch and state.done_steps < state.total_steps:
            state.data.set_epoch(epoch)
            row = {"epoch": epoch + 1, **train_one_epoch(state, epoch)}
            last = epoch + 1 == state.last_epoch or state.done_steps >= state.total_steps
            finish = time.perf_counter()
            if info.is_main and validation_due(cfg, epoch, last):
                row.update(validate(state))
            row.update(step=state.done_steps, elapsed_s=_elapsed(state, row))
            state.history.append(row)
            if info.is_main and ("val_pck" in row or last):
                save_epoch(state, row)
            if state.budget is not None and "val_pck" in row:
                state.budget.observe_finish(time.perf_counter() - finish)
            dist.barrier(info)
            epoch += 1
            gc.collect()  # the epoch's cyclic garbage (a plot's figure): a flat memory profile
    except BaseException:
        if info.is_main and state.resume is None and not (run_dir / "last.pt").exists():
            # Nothing to resume from: leave no half-written run folder behind.
            remove_run_dir(run_dir, cfg.run.root)
        raise
    finally:
        state.progress.close()
        if state.tensorboard is not None:
            state.tensorboard.close()
        if frozen:
            gc.unfreeze()
    if info.is_main and not (run_dir / "best.pt").exists() and (run_dir / "last.pt").exists():
        save_checkpoint(deployable(load_checkpoint(run_dir / "last.pt")), run_dir / "best.pt")


def validation_due(cfg: Config, epoch: int, last: bool = False) -> bool:
    """Validate every ``train.val_every`` epochs and after the last one (``last``)."""
    planned_end = cfg.train.time is None and epoch + 1 == cfg.train.epochs
    return (epoch + 1) % cfg.train.val_every == 0 or planned_end or last


def _elapsed(state: TrainState, row: dict[str, Any]) -> float:
    """Wall seconds of the run so far, across resumed sessions (what a time budget counts)."""
    if state.budget is not None:
        return state.budget.elapsed()
    before = state.history[-1].get("elapsed_s", 0.0) if state.history else 0.0
    return float(before) + row["seconds"]


def validate(state: TrainState) -> dict[str, float]:
    """PCK@``train.pck_alpha``, mean pixel error and the median instance score (mean over its
    keypoints) on the validation set (EMA weights if kept)."""
    cfg = state.cfg
    pred = predict_loader(
        state.eval_model, state.data.val_loader, state.device, state.autocast,
        cfg.train.channels_last,
    )  # fmt: skip
    m = quick_metrics(pred, cfg.train.pck_alpha)
    # Judged from half-way on: the heatmap loss's early plateau is normal before that.
    if not state.warned and state.done_steps >= state.total_steps // 2:
        message = learned_nothing_message(m["mean_px"], state.data.baseline_px)
        if message:
            state.warned = True
            state.progress.log(f"warning: {message}")
    if not state.pck_warned and math.isnan(m["pck"]):
        reason = pck_undefined_reason(pred.gt, pred.visible, bbox_norm(pred.bboxes))
        if reason:
            state.pck_warned = True
            state.progress.log(f"warning: validation {reason}")
    # The typical labelled animal's mean keypoint score: located instances scoring far under
    # it are dropped (keypointer.training.two_stage.min_pose_score).
    score = float(np.median(pred.scores.mean(-1))) if len(pred.scores) else math.nan
    return {"val_pck": m["pck"], "val_mean_px": m["mean_px"], "val_score": score}


def save_epoch(state: TrainState, row: dict[str, Any]) -> None:
    """best.pt when validation improved, last.pt, metrics.csv, curves.png, a log line."""
    saved = checkpoint_state(
        state.cfg, state.data.skeleton, unwrap(state.model), state.optimizer, state.scheduler,
        state.scaler, state.ema, row["epoch"], state.history,
    )  # fmt: skip
    if state.locator is not None:  # a resumed run keeps the locator it trained before
        saved["locator"] = state.locator
    is_best = row.get("val_pck", -math.inf) > state.best
    state.best = row["val_pck"] if is_best else state.best
    record_epoch(state.run_dir, saved, is_best, state.history, state.tensorboard)
    state.progress.log(format_row(row))


# --------------------------------------------------------------------------- one epoch, one step


def train_one_epoch(state: TrainState, epoch: int) -> dict[str, float]:
    """One pass over the training data; returns the mean loss, lr, time and throughput."""
    state.wrapped.train()
    total_loss, n_steps, n_samples = 0.0, 0, 0
    t0 = tick = time.perf_counter()
    for batch in state.data.train_loader:
        loss_value = train_step(state, batch, epoch, n_steps)
        n = batch["image"].shape[0] * state.info.world_size
        total_loss, n_steps, n_samples = total_loss + loss_value, n_steps + 1, n_samples + n
        state.done_steps += 1
        now = time.perf_counter()
        if state.budget is not None:
            state.budget.observe_step(now - tick)
            replan(state)
        tick, elapsed = now, now - t0
        lr = state.optimizer.param_groups[0]["lr"]
        state.progress.step(epoch + 1, loss_value, lr, n_samples / elapsed)
        if state.done_steps >= state.total_steps:
            break
    seconds = time.perf_counter() - t0
    return {
        "train_loss": total_loss / max(n_steps, 1),
        "lr": state.optimizer.param_groups[0]["lr"],
        "seconds": seconds,
        "samples_per_s": n_samples / max(seconds, 1e-9),
    }


def replan(state: TrainState) -> None:
    """Re-plan the run's length from the time budget (the schedule stretches with it). Under
    torchrun every process must stop at the same step: the main process's plan is shared,
    every 10 steps so the exchange costs nothing."""
    if state.info.enabled and state.done_steps % 10:
        return
    val_steps = len(state.data.val_loader) * 0.5  # a validation batch ~ half a training step
    total = state.budget.total_steps(state.done_steps, val_steps) if state.info.is_main else 0
    if state.info.enabled:
        shared = torch.tensor([float(total or 0)], device=state.device)
        total = int(dist.sum_across(shared, state.info)[0]) or None
    if total is None:
        return
    state.total_steps = max(total, state.done_steps)
    state.scheduler.lr_lambdas[0].set_total(state.total_steps)
    state.progress.set_total(state.total_steps)


def train_step(state: TrainState, batch: dict[str, Any], epoch: int, step: int) -> float:
    """Forward, loss, backward, clip, optimiser and schedule step, EMA update for one batch
    (``step`` counts from 0 within ``epoch``); returns the global mean loss."""
    cfg, optimizer, scaler = state.cfg, state.optimizer, state.scaler
    batch = to_device(batch, state.device, cfg.train.channels_last)
    with state.autocast:
        output = state.wrapped(batch["image"])
    loss, loss_value = global_mean_loss(state.data.loss_fn, output, batch, state.info)
    if not math.isfinite(loss_value):
        raise TrainingError(
            f"the loss became {loss_value} at epoch {epoch + 1}, step {step + 1}; "
            "training stopped. The last good checkpoint is kept (try a lower train.lr "
            "or train.grad_clip)."
        )
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if cfg.train.grad_clip:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(state.wrapped.parameters(), cfg.train.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    state.scheduler.step()
    if state.ema is not None:
        state.ema.update_parameters(unwrap(state.wrapped))
    return loss_value


def global_mean_loss(
    loss_fn: nn.Module, output: Any, batch: dict[str, Any], info: dist.DistInfo
) -> tuple[torch.Tensor, float]:
    """The loss averaged over every labelled keypoint of the *global* batch.

    Each process sums its loss and divides by the labelled count of all processes
    (times the process count, since DDP averages gradients), so N processes give
    exactly the gradients of one process with the whole batch, even when
    processes hold different numbers of labelled keypoints. Returns the tensor
    to backpropagate and the global mean loss for logging.
    """
    loss_sum = loss_fn(to_float(output), batch["target"], batch["weights"])
    local = torch.stack([loss_sum.detach(), (batch["weights"] > 0).sum().to(loss_sum.dtype)])
    total = dist.sum_across(local, info)
    count = total[1].clamp(min=1)
    return loss_sum * info.world_size / count, float(total[0] / count)
