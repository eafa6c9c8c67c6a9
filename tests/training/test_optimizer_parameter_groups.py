"""build_optimizer: weights decay, norms and biases do not (AdamW and SGD); SGD steps with the
configured momentum, Nesterov style; frozen parameters are left out."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from keypointer.config import TrainConfig
from keypointer.training.optim import build_optimizer

LR, DECAY, MOMENTUM = 0.1, 0.05, 0.8


def small_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.LayerNorm(16),
        nn.Linear(16, 2),
    )


def kept_and_decayed(net: nn.Module) -> tuple[set[str], set[str]]:
    """(names of the weights that must decay, names of norms and biases that must not)."""
    decayed = {n for n, p in net.named_parameters() if n.endswith("weight") and p.ndim > 1}
    return decayed, {n for n, _ in net.named_parameters()} - decayed


def step_with_zero_gradients(net: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Each parameter's value before and after one step on zero gradients: only weight decay
    can move it."""
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    return {n: (before[n], p.detach()) for n, p in net.named_parameters()}


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_only_weights_decay(name):
    net = small_net()
    cfg = TrainConfig(optimizer=name, lr=LR, weight_decay=DECAY, momentum=MOMENTUM)
    decayed, kept = kept_and_decayed(net)
    assert {"0.weight", "5.weight"} == decayed and {"1.weight", "4.weight", "0.bias"} <= kept
    moved = step_with_zero_gradients(net, build_optimizer(net, cfg))
    # AdamW and SGD both shrink a decayed weight by lr * decay on a zero gradient (SGD: the
    # decay term is its gradient, and a first step's momentum buffer is that gradient; with
    # Nesterov the step is (1 + momentum) times it)
    shrink = 1 - LR * DECAY * (1 + MOMENTUM if name == "sgd" else 1)
    for n in decayed:
        before, after = moved[n]
        torch.testing.assert_close(after, before * shrink)
    for n in kept:
        before, after = moved[n]
        torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_sgd_uses_the_configured_momentum_with_nesterov():
    net = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    cfg = TrainConfig(optimizer="sgd", lr=LR, weight_decay=0.0, momentum=MOMENTUM)
    optimizer = build_optimizer(net, cfg)
    assert {(g["momentum"], g["nesterov"]) for g in optimizer.param_groups} == {(MOMENTUM, True)}
    # Two steps on a constant gradient 1: buffers 1 and 1 + m; Nesterov steps by g + m * buf,
    # that is 1 + m, then 1 + m (1 + m). Plain momentum would step 1, then 1 + m.
    for _ in range(2):
        net.weight.grad = torch.ones_like(net.weight)
        optimizer.step()
    moved = LR * ((1 + MOMENTUM) + (1 + MOMENTUM * (1 + MOMENTUM)))
    torch.testing.assert_close(net.weight.detach(), torch.full((1, 3), 1.0 - moved))


def test_frozen_parameters_are_left_out():
    net = small_net()
    net[0].requires_grad_(False)  # a frozen stem
    optimizer = build_optimizer(net, TrainConfig(optimizer="adamw", weight_decay=DECAY))
    given = [p for g in optimizer.param_groups for p in g["params"]]
    assert len(given) == len({id(p) for p in given})  # each once
    assert {id(p) for p in given} == {id(p) for p in net.parameters() if p.requires_grad}
