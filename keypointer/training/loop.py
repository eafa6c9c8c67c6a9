"""Training, top to bottom: ``train(cfg)`` -> ``setup`` -> ``fit`` (epochs of
``train_one_epoch`` and ``evaluate_pose``) -> checkpoints.

The loop is the seed notes' ``optimizer.zero_grad(); loss.backward();
optimizer.step()`` with mixed precision, gradient clipping, EMA, DDP and
atomic checkpoints around it; one optimisation step is :func:`train_step`. The run's length,
learning-rate shape and time budget are its :class:`~keypointer.training.schedule.Schedule`
(the locator's loop uses the same). Read ``train`` first; everything it calls is in this file
or one import away (what the loop holds: state.py; the locator that follows the pose model on
labels with crowds: two_stage.py).
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from keypointer.checkpoint import (
    damaged,
    deployable,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from keypointer.config import Config, ConfigError, apply_override, from_dict, save_config
from keypointer.device import make_autocast, resolve_amp, resolve_device
from keypointer.errors import CheckpointError
from keypointer.inference.labelled import predict_batches, quick_metrics, to_device
from keypointer.malloc import tune_malloc
from keypointer.metrics.keypoints import bbox_norm, pck_undefined_reason
from keypointer.tensors import to_float
from keypointer.training import distributed as dist
from keypointer.training import two_stage
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
from keypointer.training.loaders import Batch, build_data, split_data
from keypointer.training.optim import build_optimizer, build_scheduler
from keypointer.training.progress import TrainProgress
from keypointer.training.recipe import plan, print_choices, with_locator_time
from keypointer.training.records import Row, checkpoint_state, format_row, record_epoch, restore
from keypointer.training.run_dir import new_run_dir, remove_run_dir
from keypointer.training.schedule import Schedule, check_loss
from keypointer.training.state import TrainState


@dataclass
class Run:
    """A finished (or stopped) training run: its folder, config and one row per epoch;
    ``locator_metrics``: the locator's validation, when one was trained (two_stage.py)."""

    dir: Path
    config: Config
    metrics: list[Row] = field(default_factory=list)
    locator_metrics: dict[str, float] | None = None

    @property
    def best(self) -> Path:
        return self.dir / "best.pt"

    @property
    def last(self) -> Path:
        return self.dir / "last.pt"


def train(cfg: Config, resume: str | Path | None = None, stop_after: int | None = None) -> Run:
    """Train ``cfg``; with ``resume`` continue the run folder's ``last.pt``.

    Labels with crowds also get the locator, trained after the pose model (two_stage.py).

    Args:
        cfg: the run's config (the recipe fills its unset fields in place).
        resume: a run folder whose last.pt to continue, or None for a new run.
        stop_after: end this session after that many epochs in total (the run can be
            resumed later), as a user pressing Ctrl-C at an epoch boundary would.

    Returns:
        The run: its folder, config, history and the locator's metrics.

    Raises:
        ConfigError: no training data is given.
    """
    if cfg.data.path is None:
        raise ConfigError("no training data: give --data PATH or set data.path in the config")
    tune_malloc()  # CPU steps spend far less time in page faults; see keypointer/malloc.py
    started = time.perf_counter()  # a time budget counts the set-up too
    device = resolve_device(cfg.train.device)
    info = dist.join(device.type)
    try:
        if info.enabled and device.type == "cuda":
            device = torch.device("cuda", info.local_rank)
        state = setup(cfg, device, info, Path(resume) if resume else None, stop_after)
        crowd = two_stage.wants_locator(cfg, state.data)  # a locator is trained after the fit
        if cfg.train.time is not None:
            spent = state.history[-1].get("elapsed_s", 0.0) if state.history else 0.0
            elapsed_s = spent + time.perf_counter() - started
            state.schedule.budget = two_stage.pose_budget(state, elapsed_s, crowd)
        fit(state)
        locator_metrics = two_stage.after_fit(state) if crowd else None
        return Run(state.run_dir, cfg, state.history, locator_metrics)
    finally:
        dist.cleanup()


def resume_config(run_dir: Path, overrides: list[str]) -> Config:
    """The config stored in a run's last.pt, with overrides applied.

    Args:
        run_dir: the run folder.
        overrides: ``key=value`` items, as ``--set`` takes them.

    Returns:
        The config.

    Raises:
        CheckpointError: last.pt holds no config mapping.
    """
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
    """Data, recipe, model, optimiser, schedule, precision, EMA, resumed state and run folder.

    Data is loaded and validated before anything is written: bad input leaves no run folder.

    Args:
        cfg: the run's config; a new run with ``train.recipe`` gets its unset fields filled.
        device: where training runs.
        info: the process group.
        resume: the run folder to continue, or None.
        stop_after: the epoch to stop after, or None.

    Returns:
        The state the loop works with.
    """
    check_tensorboard(cfg)
    seed_everything(cfg.train.seed)
    configure_backends(cfg, device)
    quiet = cfg.run.quiet
    train_kset, val_kset = split_data(cfg, progress=info.is_main and not quiet, say=info.is_main)
    # The recipe fills the fields the user left unset, from the training labels; a resumed
    # run keeps the config it stored.
    choices = plan(cfg, train_kset, device.type) if cfg.train.recipe and resume is None else []
    data = build_data(cfg, train_kset, val_kset, device, info)
    locator_step_s = None
    if info.is_main and choices and two_stage.wants_locator(cfg, data):
        # Say up front what the second stage costs: a few locator steps timed now (a time
        # budget's split reuses the figure).
        locator_step_s = two_stage.probe_step_s(train_kset, cfg, device)
        choices = with_locator_time(choices, locator_step_s)
    if info.is_main and choices:
        print_choices(choices)
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
    # The shape restored from last.pt holds the length a time budget re-planned.
    schedule = Schedule(
        scheduler.lr_lambdas[0],
        done=done,
        epochs=stop_after or (cfg.train.epochs if cfg.train.time is None else None),
        validation_batches=len(data.val_loader),
        info=info,
        device=device,
    )
    progress = TrainProgress(schedule.total, done, quiet=cfg.run.quiet, enabled=info.is_main)
    schedule.progress = progress
    return TrainState(
        cfg=cfg,
        device=device,
        info=info,
        data=data,
        model=model,
        wrapped=wrapped,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        ema=ema,
        autocast=make_autocast(device, amp_dtype),
        schedule=schedule,
        progress=progress,
        run_dir=run_dir,
        resume=resume,
        history=history,
        start_epoch=start_epoch,
        best=max((r["val_pck"] for r in history if "val_pck" in r), default=-1.0),
        locator_entry=saved.get("locator") if saved else None,
        locator_step_s=locator_step_s,
    )


def open_run_dir(cfg: Config, resume: Path | None) -> Path:
    """A new run folder, or the resumed one cleared of a save that a kill interrupted.

    Args:
        cfg: the run's config (``run.root``, ``run.name``).
        resume: the resumed run folder, or None.

    Returns:
        The run folder.

    Raises:
        ConfigError: the folder cannot be created.
    """
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
    """The remaining epochs: train, validate when due, record; best.pt at the end.

    Args:
        state: what :func:`setup` made; its history, schedule and best grow as epochs end.
    """
    cfg, info, run_dir, schedule = state.cfg, state.info, state.run_dir, state.schedule
    frozen = freeze_setup_objects()
    try:
        if info.is_main:
            save_config(cfg, run_dir / "config.yaml")
            state.tensorboard = open_tensorboard(cfg, run_dir)
        epoch = state.start_epoch
        while schedule.epoch_due(epoch):
            state.data.set_epoch(epoch)
            row = {"epoch": epoch + 1, **train_one_epoch(state, epoch)}
            last = schedule.last_epoch(epoch)
            finish = time.perf_counter()
            if info.is_main and validation_due(cfg, epoch, last):
                row.update(evaluate_pose(state))
            row.update(step=schedule.done, elapsed_s=run_seconds(state, row))
            state.history.append(row)
            if info.is_main and ("val_pck" in row or last):
                save_epoch(state, row)
            if "val_pck" in row:
                schedule.observe_validation(time.perf_counter() - finish)
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
    """Validate every ``train.val_every`` epochs and after the last one.

    Args:
        cfg: the run's config.
        epoch: the epoch just trained, from 0.
        last: it ends the run.

    Returns:
        Whether to validate now.
    """
    planned_end = cfg.train.time is None and epoch + 1 == cfg.train.epochs
    return (epoch + 1) % cfg.train.val_every == 0 or planned_end or last


def run_seconds(state: TrainState, row: Row) -> float:
    """Wall seconds of the run so far, across resumed sessions (what a time budget counts).

    Args:
        state: the loop's state (its history holds the epochs before ``row``).
        row: the epoch just trained.

    Returns:
        Seconds.
    """
    elapsed = state.schedule.elapsed()
    if elapsed is not None:
        return elapsed
    before = state.history[-1].get("elapsed_s", 0.0) if state.history else 0.0
    return float(before) + row["seconds"]


def evaluate_pose(state: TrainState) -> dict[str, float]:
    """Validate the pose model (EMA weights if kept); warn once when it learned nothing yet
    or when PCK is undefined.

    Args:
        state: the loop's state.

    Returns:
        "val_pck" (PCK@``train.pck_alpha``), "val_mean_px" (mean pixel error) and
        "val_score" (the median instance score: the mean over its keypoints).
    """
    cfg = state.cfg
    pred = predict_batches(
        state.eval_model,
        state.data.val_loader,
        state.device,
        autocast=state.autocast,
        channels_last=cfg.train.channels_last,
    )
    m = quick_metrics(pred, cfg.train.pck_alpha)
    # Judged from half-way on: the heatmap loss's early plateau is normal before that.
    if not state.warned and state.schedule.done >= state.schedule.total // 2:
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


def save_epoch(state: TrainState, row: Row) -> None:
    """best.pt when validation improved, last.pt, metrics.csv, curves.png, a log line.

    Args:
        state: the loop's state (``best`` follows the validation).
        row: the epoch just done, already in the history.
    """
    saved = checkpoint_state(
        cfg=state.cfg,
        skeleton=state.data.skeleton,
        model=unwrap(state.model),
        optimizer=state.optimizer,
        scheduler=state.scheduler,
        scaler=state.scaler,
        ema=state.ema,
        epoch=int(row["epoch"]),
        history=state.history,
    )
    if state.locator_entry is not None:  # a resumed run keeps the locator it trained before
        saved[two_stage.KEY] = state.locator_entry
    is_best = row.get("val_pck", -math.inf) > state.best
    state.best = row["val_pck"] if is_best else state.best
    record_epoch(state.run_dir, saved, is_best, state.history, state.tensorboard)
    state.progress.log(format_row(row))


# --------------------------------------------------------------------------- one epoch, one step


def train_one_epoch(state: TrainState, epoch: int) -> dict[str, float]:
    """One pass over the training data, or what is left of the schedule.

    Args:
        state: the loop's state.
        epoch: the epoch, from 0.

    Returns:
        "train_loss" (the mean), "lr" (at its end), "seconds" and "samples_per_s".
    """
    state.wrapped.train()
    total_loss, n_steps, n_samples = 0.0, 0, 0
    t0 = tick = time.perf_counter()
    for batch in state.data.train_loader:
        loss_value = train_step(state, batch, epoch, n_steps)
        n = batch["image"].shape[0] * state.info.world_size
        total_loss, n_steps, n_samples = total_loss + loss_value, n_steps + 1, n_samples + n
        now = time.perf_counter()
        state.schedule.advance(
            now - tick,
            epoch=epoch + 1,
            loss=loss_value,
            lr=state.optimizer.param_groups[0]["lr"],
            samples_per_s=n_samples / (now - t0),
        )
        tick = now
        if state.schedule.finished:
            break
    seconds = time.perf_counter() - t0
    return {
        "train_loss": total_loss / max(n_steps, 1),
        "lr": state.optimizer.param_groups[0]["lr"],
        "seconds": seconds,
        "samples_per_s": n_samples / max(seconds, 1e-9),
    }


def train_step(state: TrainState, batch: Batch, epoch: int, step: int) -> float:
    """Forward, loss, backward, clip, optimiser and schedule step, EMA update for one batch.

    Args:
        state: the loop's state.
        batch: the batch, on any device.
        epoch: the epoch, from 0 (for the message of a non-finite loss).
        step: the step within ``epoch``, from 0 (likewise).

    Returns:
        The global mean loss.

    Raises:
        TrainingError: the loss is no longer finite.
    """
    cfg, optimizer, scaler = state.cfg, state.optimizer, state.scaler
    batch = to_device(batch, state.device, cfg.train.channels_last)
    with state.autocast:
        output = state.wrapped(batch["image"])
    loss, loss_value = global_mean_loss(state.data.loss_fn, output, batch, state.info)
    check_loss(
        loss_value,
        subject="the loss",
        where=f" at epoch {epoch + 1}, step {step + 1}",
        advice="training stopped. The last good checkpoint is kept (try a lower train.lr "
        "or train.grad_clip).",
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
    loss_fn: nn.Module,
    output: torch.Tensor | Sequence[torch.Tensor],
    batch: Batch,
    info: dist.DistInfo,
) -> tuple[torch.Tensor, float]:
    """The loss averaged over every labelled keypoint of the *global* batch.

    Each process sums its loss and divides by the labelled count of all processes
    (times the process count, since DDP averages gradients), so N processes give
    exactly the gradients of one process with the whole batch, even when
    processes hold different numbers of labelled keypoints.

    Args:
        loss_fn: the head's loss, summed over labelled keypoints.
        output: the model's output (a tensor, or the head's parts).
        batch: the batch on the model's device ("target", "weights" (N, K)).
        info: the process group.

    Returns:
        The tensor to backpropagate and the global mean loss for logging.
    """
    loss_sum = loss_fn(to_float(output), batch["target"], batch["weights"])
    local = torch.stack([loss_sum.detach(), (batch["weights"] > 0).sum().to(loss_sum.dtype)])
    total = dist.sum_across(local, info)
    count = total[1].clamp(min=1)
    return loss_sum * info.world_size / count, float(total[0] / count)
