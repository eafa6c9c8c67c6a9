"""End-to-end training on tiny synthetic data: overfitting, resume, DDP, bad losses."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch
from helpers import TINY_TRAINING, read_metrics, set_options
from helpers import tiny_config as shared_tiny_config

from keypointer.checkpoint import load_checkpoint
from keypointer.config import Config
from keypointer.errors import TrainingError
from keypointer.training.distributed import DistInfo
from keypointer.training.loaders import build_data, split_data
from keypointer.training.loop import train


def tiny_config(data: Path, root: Path, **train) -> Config:
    """The shared tiny run, deterministic: a resumed run must equal an uninterrupted one."""
    return shared_tiny_config(data, root, "train.deterministic=true", **train)


def test_run_folder_holds_config_metrics_curves_and_checkpoints(
    tiny_data, tmp_path, real_training_curves
):
    run = train(tiny_config(tiny_data, tmp_path, epochs=2))
    names = {p.name for p in run.dir.iterdir()}
    assert {"config.yaml", "metrics.csv", "curves.png", "best.pt", "last.pt"} <= names
    curves = cv2.imread(str(run.dir / "curves.png"))
    assert curves is not None and min(curves.shape[:2]) > 300  # drawn, not a placeholder
    rows = read_metrics(run.dir)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(float(r["train_loss"]) > 0 for r in rows)
    assert 0.0 <= float(rows[-1]["val_pck"]) <= 1.0
    state = load_checkpoint(run.last)
    assert state["epoch"] == 2
    assert state["config"]["model"]["input_size"] == [64, 64]


@pytest.mark.slow
def test_tiny_model_overfits_eight_images(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, tmp_path, epochs=60, lr=2e-3, schedule="constant")
    cfg.loader.batch_size = 8
    cfg.augment.rotation = 0
    cfg.augment.scale = (1.0, 1.0)
    cfg.augment.shift = 0
    cfg.augment.flip = 0
    cfg.train.val_every = 20
    run = train(cfg)
    assert run.metrics[-1]["val_pck"] == pytest.approx(1.0)


def test_stop_and_resume_equals_an_uninterrupted_run(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, tmp_path / "a", epochs=3, ema="true")
    whole = train(cfg)
    cfg_b = tiny_config(tiny_data, tmp_path / "b", epochs=3, ema="true")
    part = train(cfg_b, stop_after=1)
    assert load_checkpoint(part.last)["epoch"] == 1
    resumed = train(cfg_b, resume=part.dir)
    a, b = load_checkpoint(whole.last), load_checkpoint(resumed.last)
    assert a["epoch"] == b["epoch"] == 3
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for key in a["ema_model"]:
        assert torch.equal(a["ema_model"][key], b["ema_model"][key]), key
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]
    assert len(read_metrics(resumed.dir)) == 3


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(
    tiny_data, tmp_path, monkeypatch
):
    cfg = tiny_config(tiny_data, tmp_path, epochs=2)
    run = train(cfg, stop_after=1)
    import keypointer.training.loop as engine

    real = engine.global_mean_loss

    def poisoned(*args):
        loss, _ = real(*args)
        return loss * float("nan"), float("nan")

    monkeypatch.setattr(engine, "global_mean_loss", poisoned)
    with pytest.raises(TrainingError, match="loss became nan"):
        train(cfg, resume=run.dir)
    assert load_checkpoint(run.last)["epoch"] == 1


@pytest.mark.parametrize("head", ["heatmap", "regression", "simcc", "integral"])
def test_each_head_trains_a_step(tiny_data, tmp_path, head):
    cfg = tiny_config(tiny_data, tmp_path, epochs=1)
    cfg.model.head = head
    run = train(cfg)
    loss = run.metrics[0]["train_loss"]
    assert loss > 0 and loss == loss


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_matches_one_process(tiny_data, tmp_path):
    # convnext_atto (LayerNorm) with the regression head has no BatchNorm, so per-process
    # batch statistics cannot differ (SyncBatchNorm, which fixes that, needs CUDA).
    sets = [
        *TINY_TRAINING,
        "model.backbone=convnext_atto",
        "train.epochs=2",
        "train.deterministic=true",
        "train.channels_last=false",
        "train.amp=off",
        "model.head=regression",
    ]
    # the one-process run in this process (one python and torch start-up fewer)
    single = train(shared_tiny_config(tiny_data, tmp_path / "single", *sets))
    common = ["--data", str(tiny_data), "--quiet", *set_options(sets)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = tmp_path / "ddp"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    subprocess.run(
        [*torchrun, f"--master_port={_free_port()}", "-m", "keypointer", "train", *common]
        + ["--set", f"run.root={ddp}"],
        check=True,
        env=env,
        timeout=300,
    )
    (b,) = ddp.glob("*/*/metrics.csv")
    la = [float(r["train_loss"]) for r in read_metrics(single.dir)]
    lb = [float(r["train_loss"]) for r in csv.DictReader(open(b))]
    assert len(la) == len(lb) == 2
    assert lb == pytest.approx(la, rel=1e-4)


def test_building_the_data_leaves_the_config_as_the_recipe_planned_it(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, tmp_path, recipe="true")  # the recipe runs in setup, not here
    before = cfg.to_dict()
    train_kset, val_kset = split_data(cfg)
    data = build_data(cfg, train_kset, val_kset, torch.device("cpu"), DistInfo())
    assert cfg.to_dict() == before
    assert data.train_loader.batch_size == cfg.loader.batch_size == 4
