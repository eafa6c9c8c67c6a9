"""What a run records: the checkpoint state (everything a resume needs), best.pt and last.pt,
metrics.csv, curves.png and TensorBoard scalars, and the one-line epoch summary."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.optim.swa_utils import AveragedModel

from keypointer.checkpoint import deployable, save_checkpoint
from keypointer.config import Config
from keypointer.files import write_text_atomic
from keypointer.skeleton import Skeleton
from keypointer.version import __version__
from keypointer.viz import plot_curves

METRIC_COLUMNS = (
    "epoch",
    "step",
    "train_loss",
    "lr",
    "val_pck",
    "val_mean_px",
    "seconds",
    "samples_per_s",
    "elapsed_s",
)

Row = dict[str, float]
"""One epoch of the history: "epoch", "step", "train_loss", "lr", validation figures..."""


class ScalarWriter(Protocol):
    """What a run writes TensorBoard scalars through (a ``SummaryWriter``)."""

    def add_scalar(self, tag: str, scalar_value: float, global_step: int) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def checkpoint_state(
    cfg: Config,
    skeleton: Skeleton,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: LambdaLR,
    scaler: torch.amp.GradScaler,
    ema: AveragedModel | None,
    epoch: int,
    history: list[Row],
) -> dict[str, object]:
    """Everything a resume needs, as tensors and plain values only (loads with weights_only=True).

    Args:
        cfg: the run's config.
        skeleton: the keypoints' names, edges and flip pairs.
        model: the unwrapped model (no DDP ``module.`` prefixes).
        optimizer: its optimiser.
        scheduler: the per-step LR schedule (its shape holds the re-planned length).
        scaler: the mixed-precision gradient scaler.
        ema: the EMA copy of the model, or None.
        epoch: epochs done.
        history: one row per epoch done.

    Returns:
        The checkpoint as a mapping from entry name to tensors and plain values.
    """
    return {
        "keypointer_version": __version__,
        "config": cfg.to_dict(),
        "skeleton": skeleton.to_dict(),
        "model": model.state_dict(),
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


def restore(
    state: dict,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: LambdaLR,
    scaler: torch.amp.GradScaler,
    ema: AveragedModel | None,
) -> tuple[int, list[Row]]:
    """Load :func:`checkpoint_state`'s ``state`` into the objects.

    Args:
        state: a loaded last.pt.
        model, optimizer, scheduler, scaler, ema: the objects to load it into (as for
            :func:`checkpoint_state`).

    Returns:
        (epochs done, history).
    """
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


def record_epoch(
    run_dir: Path,
    state: dict[str, object],
    is_best: bool,
    history: list[Row],
    tensorboard: ScalarWriter | None,
) -> None:
    """Checkpoints, metrics.csv, curves.png and TensorBoard scalars for the epoch just done.

    best.pt is written first: last.pt is the commit point a resume starts from, so a kill
    between the two saves re-runs this epoch and writes best.pt again.

    Args:
        run_dir: the run folder.
        state: the checkpoint (:func:`checkpoint_state`).
        is_best: validation improved: best.pt is written too.
        history: every epoch's row, this one last.
        tensorboard: where the scalars go, or None.
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


def write_metrics(run_dir: Path, history: list[Row]) -> None:
    """Rewrite metrics.csv and curves.png from the history kept in the checkpoint.

    Rewriting (rather than appending) keeps the file exact after a resume.

    Args:
        run_dir: the run folder.
        history: every epoch's row.
    """
    lines = [",".join(METRIC_COLUMNS)]
    for row in history:
        lines.append(",".join(_fmt(row.get(c, "")) for c in METRIC_COLUMNS))
    write_text_atomic(run_dir / "metrics.csv", "\n".join(lines) + "\n")
    plot_curves(history, run_dir / "curves.png")


def _fmt(v: object) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def format_row(row: Row) -> str:
    """One line for the epoch: loss, throughput and, after validation, PCK and mean error.

    Args:
        row: the epoch's row of the history.

    Returns:
        The line, without a newline.
    """
    text = (
        f"epoch {row['epoch']}: loss {row['train_loss']:.4g}, {row['samples_per_s']:.0f} samples/s"
    )
    if "step" in row:
        text = f"{text}, step {row['step']}, {row['elapsed_s'] / 60:.1f} min"
    if "val_pck" in row:
        text += f", val PCK {row['val_pck']:.3f}, mean error {row['val_mean_px']:.2f} px"
    return text
