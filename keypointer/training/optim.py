"""Optimisers and learning-rate schedules, built from ``cfg.train``.

Schedules step once per iteration so warm-up can be fractional; milestones and
cosine length are given in epochs and converted here.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim import lr_scheduler

from keypointer.config import TrainConfig


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    # Norm weights and biases get no weight decay (standard practice for AdamW/SGD).
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> lr_scheduler.LRScheduler:
    """Linear warm-up, then MultiStepLR (the seed notes'), cosine, or constant."""
    total = cfg.epochs * steps_per_epoch
    warmup = min(int(round(cfg.warmup_epochs * steps_per_epoch)), max(total - 1, 0))
    if cfg.schedule == "multistep":
        milestones = sorted(
            int(round((m * cfg.epochs if m < 1 else m) * steps_per_epoch)) - warmup
            for m in cfg.milestones
        )
        main = lr_scheduler.MultiStepLR(optimizer, [m for m in milestones if m > 0], cfg.gamma)
    elif cfg.schedule == "cosine":
        main = lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total - warmup, 1))
    else:
        main = lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if warmup == 0:
        return main
    warm = lr_scheduler.LinearLR(optimizer, start_factor=1e-3, end_factor=1.0, total_iters=warmup)
    return lr_scheduler.SequentialLR(optimizer, [warm, main], milestones=[warmup])
