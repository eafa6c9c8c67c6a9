"""Small tensor helpers shared by models, inference and training."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn


def to_float(output: Any) -> Any:
    """A model output (a tensor, or a tuple/list of them) in float32: losses and decoding run
    in float32 even when the forward pass ran in bf16/fp16."""
    if isinstance(output, (tuple, list)):
        return type(output)(o.float() for o in output)
    return output.float()


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode inside the block; its previous mode (train or eval) after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
