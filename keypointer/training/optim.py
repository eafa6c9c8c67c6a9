"""Optimisers and learning-rate schedules, built from ``cfg.train``.

Schedules step once per iteration so warm-up can be fractional; milestones and
cosine length are given in epochs (or fractions of the run) and converted to steps here.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim import lr_scheduler

from keypointer.config import TrainConfig


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD (Nesterov) at ``cfg.lr`` as ``cfg.optimizer`` says.

    Args:
        model: the model to optimise (its trainable parameters).
        cfg: ``train``'s settings.

    Returns:
        The optimiser, with two parameter groups: weights with ``cfg.weight_decay``, and norm
        weights and biases (1-D parameters) without.
    """
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


class LRShape:
    """The learning-rate factor at step ``step``: linear warm-up from 1e-3, then MultiStepLR
    (the seed notes'), cosine to zero, or constant, over ``total`` steps.

    ``total`` may change while training (a time budget re-plans it from the measured step
    time): the cosine and the milestones given as fractions stretch with it. A plain object,
    so ``LambdaLR.state_dict`` saves it and a resumed run continues the same shape.
    """

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int, total: int) -> None:
        self.schedule = cfg.schedule
        self.gamma = cfg.gamma
        self.warmup_epochs = cfg.warmup_epochs
        self.steps_per_epoch = steps_per_epoch
        # Milestones below 1 are fractions of the run; others are epochs, fixed in steps.
        self.fractions = [m for m in cfg.milestones if m < 1]
        self.fixed = [int(round(m * steps_per_epoch)) for m in cfg.milestones if m >= 1]
        self.total = self.warmup = 0
        self.set_total(total)

    def set_total(self, total: int) -> None:
        """Re-plan the run to ``total`` steps. Warm-up never takes more than a third of the
        run, so that a run a time budget cut short still decays (a full warm-up is
        rarely worth more than the steps it leaves to the decay)."""
        self.total = max(int(total), 1)
        wanted = int(round(self.warmup_epochs * self.steps_per_epoch))
        self.warmup = min(wanted, max(self.total - 1, 0), self.total // 3)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return 1e-3 + (1 - 1e-3) * step / self.warmup
        if self.schedule == "cosine":
            span = max(self.total - self.warmup, 1)
            return 0.5 * (1 + math.cos(math.pi * min(step - self.warmup, span) / span))
        if self.schedule == "multistep":
            milestones = self.fixed + [int(round(f * self.total)) for f in self.fractions]
            return self.gamma ** sum(step >= m for m in milestones)
        return 1.0


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> lr_scheduler.LambdaLR:
    """Per-step schedule of :class:`LRShape` over ``epochs`` x ``steps_per_epoch`` steps.

    Args:
        optimizer: the optimiser whose learning rate it sets.
        cfg: ``train``'s settings.
        steps_per_epoch: optimiser steps in one epoch.

    Returns:
        The scheduler; ``scheduler.lr_lambdas[0]`` is the shape, for re-planning.
    """
    shape = LRShape(cfg, steps_per_epoch, cfg.epochs * steps_per_epoch)
    return lr_scheduler.LambdaLR(optimizer, shape)
