"""``train.grad_clip``: every optimiser step sees gradients whose global norm is at most the
limit, where the same run without it steps on larger ones."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_config
from torch.optim.optimizer import register_optimizer_step_pre_hook

from keypointer.training.loop import train


def step_norms(cfg) -> list[float]:
    """The global gradient norm each optimiser step of ``train(cfg)`` was given."""
    norms: list[float] = []

    def observe(optimizer, args, kwargs) -> None:
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))

    handle = register_optimizer_step_pre_hook(observe)
    try:
        train(cfg)
    finally:
        handle.remove()
    return norms


def test_clipped_steps_never_exceed_the_limit(tiny_data, tmp_path):
    # float32 throughout: a bf16 run would clip the same, but its norms round differently
    free = step_norms(tiny_config(tiny_data, tmp_path / "free", epochs=2, amp="off"))
    limit = min(free) / 10  # every unclipped step is at least 10x over it
    clipped = step_norms(
        tiny_config(tiny_data, tmp_path / "clipped", epochs=2, amp="off", grad_clip=limit)
    )
    assert len(clipped) == len(free) == 4  # 8 images, batches of 4, 2 epochs
    # clip_grad_norm_ scales by limit / (norm + 1e-6): the norm lands on the limit
    assert clipped == pytest.approx([limit] * len(clipped), rel=1e-3)
