"""``data.val_path``: validation scores the separate labels (its metrics are the model's on that
file), and training keeps every image of ``data.path``, with nothing of the validation file
added (it trains exactly as a run that holds nothing out)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import tiny_config

from keypointer.checkpoint import load_checkpoint
from keypointer.commands.eval import eval_command
from keypointer.data.synthetic import generate
from keypointer.training.loop import train

# float32, no EMA: the validated model is the saved one, on every CPU alike
SAME = ("train.amp=off", "train.ema=false", "train.deterministic=true")


@pytest.fixture(scope="module")
def other_labels(tmp_path_factory) -> Path:
    """Three images that are not in ``tiny_data``, with their own labels."""
    return generate(tmp_path_factory.mktemp("val"), num_images=3, seed=11, size=64)


def test_validation_scores_the_separate_labels_and_training_keeps_all_images(
    tiny_data, other_labels, tmp_path
):
    # val_fraction would hold out half of tiny_data; val_path takes its place
    separate = train(
        tiny_config(
            tiny_data,
            tmp_path / "separate",
            *SAME,
            f"data.val_path={other_labels}",
            "data.val_fraction=0.5",
        )
    )
    whole = train(tiny_config(tiny_data, tmp_path / "whole", *SAME))  # trains on all 8 too

    # training: the same batches, so the same losses and weights as the run on all 8 images
    assert separate.metrics[-1]["train_loss"] == whole.metrics[-1]["train_loss"]
    a, b = load_checkpoint(separate.best)["model"], load_checkpoint(whole.best)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)

    # validation: the model scored on the separate file gives what the run logged
    row = separate.metrics[-1]
    on_val = eval_command(
        separate.best,
        other_labels,
        tmp_path / "eval_val",
        alpha=separate.config.train.pck_alpha,
        device="cpu",
        quiet=True,
    )
    on_train = eval_command(
        separate.best, tiny_data, tmp_path / "eval_train", device="cpu", quiet=True
    )
    assert on_val["num_images"] == 3
    assert row["val_mean_px"] == pytest.approx(on_val["mean_px"], rel=1e-4)
    assert row["val_pck"] == pytest.approx(on_val["pck"], abs=1e-6)
    assert row["val_mean_px"] != pytest.approx(on_train["mean_px"], rel=1e-2)
