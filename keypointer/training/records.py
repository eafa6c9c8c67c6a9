"""What a run records: the checkpoint state (everything a resume needs), best.pt and last.pt,
metrics.csv, curves.png and TensorBoard scalars, and the one-line epoch summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from keypointer._files import write_text_atomic
from keypointer._version import __version__
from keypointer.checkpoint import deployable, save_checkpoint
from keypointer.config import Config
from keypointer.skeleton import Skeleton
from keypointer.viz import plot_curves

METRIC_COLUMNS = (
    "epoch", "step", "train_loss", "lr", "val_pck", "val_mean_px", "seconds", "samples_per_s",
    "elapsed_s",
)  # fmt: skip


def checkpoint_state(
    cfg: Config,
    skeleton: Skeleton,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    ema: AveragedModel | None,
    epoch: int,
    history: list[dict],
) -> dict[str, Any]:
    """Everything a resume needs, as tensors and plain values only (loads with weights_only=True).

    ``model`` is the unwrapped model (no DDP ``module.`` prefixes)."""
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
    state: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    ema: AveragedModel | None,
) -> tuple[int, list[dict]]:
    """Load :func:`checkpoint_state`'s ``state`` into the objects; returns (epochs done, history)."""
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
    run_dir: Path, state: dict, is_best: bool, history: list[dict], tensorboard: Any
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


def write_metrics(run_dir: Path, history: list[dict]) -> None:
    """Rewrite metrics.csv and curves.png from the history kept in the checkpoint.

    Rewriting (rather than appending) keeps the file exact after a resume.
    """
    lines = [",".join(METRIC_COLUMNS)]
    for row in history:
        lines.append(",".join(_fmt(row.get(c, "")) for c in METRIC_COLUMNS))
    write_text_atomic(run_dir / "metrics.csv", "\n".join(lines) + "\n")
    plot_curves(history, run_dir / "curves.png")


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def format_row(row: dict) -> str:
    """One line for the epoch: loss, throughput and, after validation, PCK and mean error."""
    text = (
        f"epoch {row['epoch']}: loss {row['train_loss']:.4g}, {row['samples_per_s']:.0f} samples/s"
    )
    if "step" in row:
        text = f"{text}, step {row['step']}, {row['elapsed_s'] / 60:.1f} min"
    if "val_pck" in row:
        text += f", val PCK {row['val_pck']:.3f}, mean error {row['val_mean_px']:.2f} px"
    return text
