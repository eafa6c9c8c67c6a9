"""Training, top to bottom: data -> model -> loop -> checkpoints.

The loop is the seed notes' ``optimizer.zero_grad(); loss.backward();
optimizer.step()`` with mixed precision, gradient clipping, EMA, DDP and
atomic checkpoints around it. Read ``train`` first; everything it calls is in
this file or one import away.
"""

from __future__ import annotations

import gc
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from keypointer import __version__
from keypointer.config import Config, ConfigError, from_dict, load_config, save_config
from keypointer.engine import distributed as dist
from keypointer.engine.checkpoint import (
    damaged,
    deployable,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from keypointer.engine.data import build_data
from keypointer.engine.evaluate import predict_loader, quick_metrics, to_device
from keypointer.engine.optim import build_optimizer, build_scheduler
from keypointer.engine.progress import TrainProgress
from keypointer.engine.rundir import new_run_dir, remove_run_dir
from keypointer.engine.setup import (
    build_model_for,
    check_tensorboard,
    configure_backends,
    make_autocast,
    make_ema,
    open_tensorboard,
    resolve_amp,
    resolve_device,
    seed_everything,
    unwrap,
    wrap_ddp,
)
from keypointer.errors import CheckpointError, KeypointerError


class TrainingError(KeypointerError):
    """Training cannot go on (for example the loss is no longer finite)."""


@dataclass
class Run:
    """A finished (or stopped) training run."""

    dir: Path
    config: Config
    metrics: list[dict[str, Any]] = field(default_factory=list)

    @property
    def best(self) -> Path:
        return self.dir / "best.pt"

    @property
    def last(self) -> Path:
        return self.dir / "last.pt"


def train_command(
    data: Path | None, config: Path | None, overrides: list[str], resume: Path | None, quiet: bool
) -> Run:
    """What ``keypointer train`` does: resolve the config, train, print where things are."""
    if resume is not None:
        cfg = resume_config(resume, overrides)
    else:
        cfg = load_config(config, overrides)
        if data is not None:
            cfg.data.path = str(data)
    if quiet:
        cfg.run.quiet = True
    run = train(cfg, resume=resume)
    if run.dir is not None:
        print(f"run folder: {run.dir}\nbest checkpoint: {run.best}")
    return run


def resume_config(run_dir: Path, overrides: list[str]) -> Config:
    state = load_checkpoint(Path(run_dir) / "last.pt")
    d = state["config"]
    if not isinstance(d, dict):
        raise CheckpointError(f"{run_dir}/last.pt: damaged checkpoint (its config is no mapping)")
    from keypointer.config import apply_override

    for item in overrides:
        apply_override(d, item)
    return from_dict(d, source=f"{run_dir}/last.pt")


def train(cfg: Config, resume: str | Path | None = None, stop_after: int | None = None) -> Run:
    """Train ``cfg``; with ``resume`` continue the run folder's ``last.pt``.

    ``stop_after`` ends this session after that many epochs in total (the run
    can be resumed later), as a user pressing Ctrl-C at an epoch boundary would.
    """
    if cfg.data.path is None:
        raise ConfigError("no training data: give --data PATH or set data.path in the config")
    device = resolve_device(cfg.train.device)
    info = dist.setup(device.type)
    try:
        if info.enabled and device.type == "cuda":
            device = torch.device("cuda", info.local_rank)
        return _train(cfg, device, info, Path(resume) if resume else None, stop_after)
    finally:
        dist.cleanup()


def _train(
    cfg: Config,
    device: torch.device,
    info: dist.DistInfo,
    resume: Path | None,
    stop_after: int | None,
) -> Run:
    check_tensorboard(cfg)
    seed_everything(cfg.train.seed)
    configure_backends(cfg, device)
    # Data is loaded and validated before anything is written: bad input leaves no run folder.
    data = build_data(cfg, device, info)
    model = build_model_for(cfg, data, device)
    optimizer = build_optimizer(model, cfg.train)
    scheduler = build_scheduler(optimizer, cfg.train, len(data.train_loader))
    amp_dtype = resolve_amp(cfg.train.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    ema = make_ema(model, cfg) if cfg.train.ema else None
    state = load_checkpoint(resume / "last.pt") if resume else None
    start_epoch, history = 0, []
    if state is not None:
        with damaged(resume / "last.pt"):
            start_epoch, history = restore(state, model, optimizer, scheduler, scaler, ema)
    wrapped = wrap_ddp(model, cfg, device, info)
    run_dir = open_run_dir(cfg, resume) if info.is_main else resume
    run = Run(run_dir, cfg, history)
    loss_fn = data.loss_fn
    autocast = make_autocast(device, amp_dtype)
    last_epoch = min(cfg.train.epochs, stop_after) if stop_after else cfg.train.epochs
    steps = len(data.train_loader)
    progress = TrainProgress(
        cfg.train.epochs * steps, start_epoch * steps, quiet=cfg.run.quiet, enabled=info.is_main
    )
    best = max((r["val_pck"] for r in history if "val_pck" in r), default=-1.0)
    tensorboard = None
    frozen = freeze_setup_objects()
    try:
        if info.is_main:
            save_config(cfg, run_dir / "config.yaml")
            tensorboard = open_tensorboard(cfg, run_dir)
        for epoch in range(start_epoch, last_epoch):
            data.set_epoch(epoch)
            stats = train_one_epoch(
                wrapped, data.train_loader, loss_fn, optimizer, scheduler, scaler, ema,
                autocast, cfg, device, info, progress, epoch,
            )  # fmt: skip
            row = {"epoch": epoch + 1, **stats}
            if info.is_main and (
                (epoch + 1) % cfg.train.val_every == 0 or epoch + 1 == cfg.train.epochs
            ):
                eval_model = ema.module if ema is not None else model
                pred = predict_loader(
                    eval_model, data.val_loader, device, autocast, cfg.train.channels_last
                )
                m = quick_metrics(pred, cfg.train.pck_alpha)
                row.update(val_pck=m["pck"], val_mean_px=m["mean_px"])
            history.append(row)
            if info.is_main:
                state = make_state(
                    cfg, data, model, optimizer, scheduler, scaler, ema, epoch + 1, history
                )
                is_best = row.get("val_pck", -math.inf) > best
                best = row["val_pck"] if is_best else best
                record_epoch(run_dir, state, is_best, history, tensorboard)
                progress.log(format_row(row))
            dist.barrier(info)
            gc.collect()  # the epoch's cyclic garbage (a plot's figure): a flat memory profile
    except BaseException:
        if info.is_main and resume is None and not (run_dir / "last.pt").exists():
            # Nothing to resume from: leave no half-written run folder behind.
            remove_run_dir(run_dir, cfg.run.root)
        raise
    finally:
        progress.close()
        if tensorboard is not None:
            tensorboard.close()
        if frozen:
            gc.unfreeze()
    if info.is_main and not (run_dir / "best.pt").exists() and (run_dir / "last.pt").exists():
        save_checkpoint(deployable(load_checkpoint(run_dir / "last.pt")), run_dir / "best.pt")
    return run


def record_epoch(
    run_dir: Path, state: dict, is_best: bool, history: list[dict], tensorboard
) -> None:
    """Checkpoints, metrics.csv, curves.png and TensorBoard scalars for the epoch just done.

    best.pt is written first: last.pt is the commit point a resume starts from, so a kill
    between the two saves re-runs this epoch and writes best.pt again.
    """
    if is_best:  # weights only: the optimiser state is for resuming, from last.pt
        save_checkpoint(deployable(state), run_dir / "best.pt")
    save_checkpoint(state, run_dir / "last.pt")
    write_metrics(run_dir, history)
    if tensorboard is not None:
        row = history[-1]
        for key, value in row.items():
            if key != "epoch":
                tensorboard.add_scalar(key, value, row["epoch"])
        tensorboard.flush()


def freeze_setup_objects() -> bool:
    """Move everything alive now (modules, model, dataset) out of the collector's sight, so
    that the full collection after each epoch costs ~10 ms instead of ~200 ms. Without one,
    each epoch's curves.png figure (a reference cycle) waits for a rare full collection and
    resident memory creeps up by ~6 MiB per epoch (benchmarks/memory.py). False when
    someone else froze objects already: theirs are not ours to unfreeze."""
    if gc.get_freeze_count():
        return False
    gc.collect()
    gc.freeze()
    return True


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


def train_one_epoch(
    model: nn.Module,
    loader,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    scaler: torch.amp.GradScaler,
    ema: AveragedModel | None,
    autocast,
    cfg: Config,
    device: torch.device,
    info: dist.DistInfo,
    progress: TrainProgress,
    epoch: int,
) -> dict[str, float]:
    """One pass over the training data; returns the mean loss, lr, time and throughput."""
    model.train()
    total_loss, n_steps, n_samples = 0.0, 0, 0
    t0 = time.perf_counter()
    for batch in loader:
        batch = to_device(batch, device, cfg.train.channels_last)
        with autocast:
            output = model(batch["image"])
        loss, loss_value = global_mean_loss(loss_fn, output, batch, info)
        if not math.isfinite(loss_value):
            raise TrainingError(
                f"the loss became {loss_value} at epoch {epoch + 1}, step {n_steps + 1}; "
                "training stopped. The last good checkpoint is kept (try a lower train.lr "
                "or train.grad_clip)."
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.train.grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if ema is not None:
            ema.update_parameters(unwrap(model))
        n = batch["image"].shape[0] * info.world_size
        total_loss, n_steps, n_samples = total_loss + loss_value, n_steps + 1, n_samples + n
        elapsed = time.perf_counter() - t0
        progress.step(epoch + 1, loss_value, optimizer.param_groups[0]["lr"], n_samples / elapsed)
    seconds = time.perf_counter() - t0
    return {
        "train_loss": total_loss / max(n_steps, 1),
        "lr": optimizer.param_groups[0]["lr"],
        "seconds": seconds,
        "samples_per_s": n_samples / max(seconds, 1e-9),
    }


def global_mean_loss(loss_fn, output, batch, info: dist.DistInfo) -> tuple[torch.Tensor, float]:
    """The loss averaged over every labelled keypoint of the *global* batch.

    Each process sums its loss and divides by the labelled count of all processes
    (times the process count, since DDP averages gradients), so N processes give
    exactly the gradients of one process with the whole batch, even when
    processes hold different numbers of labelled keypoints. Returns the tensor
    to backpropagate and the global mean loss for logging.
    """
    loss_sum = loss_fn(as_float(output), batch["target"], batch["weights"])
    local = torch.stack([loss_sum.detach(), (batch["weights"] > 0).sum().to(loss_sum.dtype)])
    total = dist.sum_across(local, info)
    count = total[1].clamp(min=1)
    return loss_sum * info.world_size / count, float(total[0] / count)


def as_float(output):
    """Losses are computed in float32 even when the forward pass ran in bf16/fp16."""
    if isinstance(output, (tuple, list)):
        return type(output)(o.float() for o in output)
    return output.float()


# --------------------------------------------------------------------------- state


def make_state(cfg, data, model, optimizer, scheduler, scaler, ema, epoch, history) -> dict:
    """Everything a resume needs, as tensors and plain values only (loads with weights_only=True)."""
    return {
        "keypointer_version": __version__,
        "config": cfg.to_dict(),
        "skeleton": data.skeleton.to_dict(),
        "model": unwrap(model).state_dict(),
        "ema_model": ema.module.state_dict() if ema is not None else None,
        "ema_n_averaged": ema.n_averaged.clone() if ema is not None else None,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "epoch": epoch,
        "history": history,
        "rng_torch": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore(state, model, optimizer, scheduler, scaler, ema) -> tuple[int, list[dict]]:
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    if ema is not None and state.get("ema_model") is not None:
        ema.module.load_state_dict(state["ema_model"])
        ema.n_averaged.copy_(state["ema_n_averaged"])
    torch.set_rng_state(state["rng_torch"])
    if state.get("rng_cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    return int(state["epoch"]), list(state["history"])


METRIC_COLUMNS = ("epoch", "train_loss", "lr", "val_pck", "val_mean_px", "seconds", "samples_per_s")


def write_metrics(run_dir: Path, history: list[dict]) -> None:
    """Rewrite metrics.csv and curves.png from the history kept in the checkpoint.

    Rewriting (rather than appending) keeps the file exact after a resume.
    """
    from keypointer.viz import plot_curves

    lines = [",".join(METRIC_COLUMNS)]
    for row in history:
        lines.append(",".join(_fmt(row.get(c, "")) for c in METRIC_COLUMNS))
    tmp = run_dir / ".metrics.csv.tmp"
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(run_dir / "metrics.csv")
    plot_curves(history, run_dir / "curves.png")


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def format_row(row: dict) -> str:
    text = (
        f"epoch {row['epoch']}: loss {row['train_loss']:.4g}, {row['samples_per_s']:.0f} samples/s"
    )
    if "val_pck" in row:
        text += f", val PCK {row['val_pck']:.3f}, mean error {row['val_mean_px']:.2f} px"
    return text
