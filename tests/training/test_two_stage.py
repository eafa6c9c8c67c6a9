"""Two-stage training: crowds get a locator in the same run and checkpoints; single-instance
labels stay as they were; a time budget is shared and kept; a resume does not retrain."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from helpers import TINY_LOCATOR, TINY_TRAINING, FakeClock, set_options
from helpers import tiny_config as shared_tiny_config

from keypointer.checkpoint import load_checkpoint, load_locator, load_model
from keypointer.config import Config
from keypointer.data.formats import load_dataset
from keypointer.data.whole_images import keypoint_box_ratio
from keypointer.training import locator as locator_module
from keypointer.training import loop as loop_module
from keypointer.training import two_stage
from keypointer.training.loop import resume_config, train

POSE_KEYS = {
    *("keypointer_version", "config", "skeleton", "model", "ema_model", "ema_n_averaged"),
    *("optimizer", "scheduler", "scaler", "epoch", "history", "rng_torch", "rng_cuda"),
}


@pytest.fixture(scope="module")
def crowd_data(tmp_path_factory) -> Path:
    from keypointer.data.synthetic import generate

    return generate(
        tmp_path_factory.mktemp("crowd"), num_images=6, seed=1, size=96, instances=(1, 3)
    )


@pytest.fixture(scope="module")
def single_data(tmp_path_factory) -> Path:
    from keypointer.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("single"), num_images=6, seed=1, size=64)


def tiny_config(data: Path, root: Path, *extra: str) -> Config:
    """A pose model and a locator small enough to train a few steps in seconds on one core."""
    sets = (*TINY_LOCATOR, "train.epochs=2", "train.deterministic=true")
    return shared_tiny_config(data, root, *sets, *extra)


def never(*args, **kwargs):
    raise AssertionError("no locator should be trained")


def train_without_a_locator(cfg: Config, **kwargs):
    """``train(cfg, **kwargs)``, failing if it trains or times a locator."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(two_stage, "train_locator", never)
        patch.setattr(two_stage, "probe_step_s", never)
        return train(cfg, **kwargs)


# The runs below are trained once for the module's tests, which only read them.
@pytest.fixture(scope="module")
def crowd_run(crowd_data, tmp_path_factory):
    return train(tiny_config(crowd_data, tmp_path_factory.mktemp("crowd_run")))


@pytest.fixture(scope="module")
def crowd_run_turned_off(crowd_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("crowd_off")
    return train_without_a_locator(tiny_config(crowd_data, root, "locator.enabled=false"))


@pytest.fixture(scope="module")
def single_run(single_data, tmp_path_factory):
    return train_without_a_locator(tiny_config(single_data, tmp_path_factory.mktemp("single")))


def test_crowds_get_a_locator_in_best_and_last(crowd_data, crowd_run):
    run = crowd_run
    for path in (run.best, run.last):
        state = torch.load(path, weights_only=True)  # plain values and tensors only
        entry = state["locator"]
        assert set(entry) == {"model", "build_info", "metrics"}
        info = entry["build_info"]
        assert set(info) == {"input_size", "box_ratio", "min_pose_score"}
        assert info["input_size"] == [64, 64]
        # synthetic boxes hold the limbs' width around the keypoints: wider than their extent
        assert info["box_ratio"] == pytest.approx(keypoint_box_ratio(load_dataset(crowd_data)))
        assert min(info["box_ratio"]) > 1.0 and info["min_pose_score"] > 0
        assert entry["metrics"]["steps"] == 2.0
        assert 0.0 <= entry["metrics"]["val_recall"] <= 1.0
        assert set(state) - {"locator"} <= POSE_KEYS
    stored = load_checkpoint(run.best)["locator"]["metrics"]
    assert run.locator_metrics == pytest.approx(stored, nan_ok=True)
    written = json.loads((run.dir / "locator_metrics.json").read_text())  # NaN written as null
    written = {k: float("nan") if v is None else v for k, v in written.items()}
    assert written == pytest.approx(run.locator_metrics, nan_ok=True)
    locator = load_locator(run.best)
    assert locator is not None and locator.input_size == (64, 64)
    assert locator.box_ratio == pytest.approx(tuple(info["box_ratio"]))
    assert locator.min_pose_score == info["min_pose_score"]
    boxes, scores = locator.predict(torch.rand(2, 3, 64, 64))
    assert boxes.shape == (2, locator.max_instances, 4) and scores.shape == boxes.shape[:2]
    weights = load_checkpoint(run.last)["locator"]["model"]
    assert all(torch.equal(v, weights[k]) for k, v in locator.state_dict().items())
    pose = load_model(run.best)  # the pose model loads as before
    assert pose.predict(torch.rand(1, 3, 64, 64))[0].shape[:2] == (1, pose.skeleton.num_keypoints)


@pytest.mark.parametrize("which", ["single_run", "crowd_run_turned_off"])
def test_no_locator_for_single_instances_or_when_turned_off(which, request):
    run = request.getfixturevalue(which)  # trained without a locator (train_without_a_locator)
    assert run.locator_metrics is None
    assert not (run.dir / "locator_metrics.json").exists()
    for path in (run.best, run.last):
        assert set(load_checkpoint(path)) <= POSE_KEYS
    assert set(load_checkpoint(run.last)) == POSE_KEYS
    assert load_locator(run.best) is None


def test_the_pose_model_is_the_same_with_or_without_a_locator(crowd_run, crowd_run_turned_off):
    a, b = load_checkpoint(crowd_run.last), load_checkpoint(crowd_run_turned_off.last)
    assert "locator" in a and "locator" not in b
    assert all(torch.equal(v, b["model"][k]) for k, v in a["model"].items())
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]


def test_stopped_run_trains_no_locator_and_resume_never_retrains(crowd_data, tmp_path):
    cfg = tiny_config(crowd_data, tmp_path)
    part = train(cfg, stop_after=1)  # the pose model is not done: no locator yet
    assert part.locator_metrics is None and "locator" not in load_checkpoint(part.last)
    done = train(resume_config(part.dir, []), resume=part.dir)
    entry = load_checkpoint(done.last)["locator"]
    assert load_checkpoint(done.last)["epoch"] == 2 and done.locator_metrics is not None
    again = train_without_a_locator(resume_config(done.dir, []), resume=done.dir)  # not again
    assert again.locator_metrics == pytest.approx(done.locator_metrics, nan_ok=True)
    for path in (again.best, again.last):
        kept = load_checkpoint(path)["locator"]
        assert all(torch.equal(v, kept["model"][k]) for k, v in entry["model"].items())


def test_locator_gets_its_default_cost_at_most_max_share():
    assert two_stage.locator_share(10.0, 100.0) == pytest.approx(0.1)  # its default fits
    assert two_stage.locator_share(300.0, 100.0) == two_stage.MAX_SHARE
    assert two_stage.locator_share(30.0, 0.0) == two_stage.MAX_SHARE  # nothing left: no crash


@pytest.mark.slow
def test_time_budget_is_shared_and_kept(crowd_data, tmp_path, monkeypatch):
    """--time 0.5 (30 s) with a pose model and a locator that would run far longer, on a fake
    clock (a pose step takes 1 s, a locator step 0.5 s, a validation 1 s, its saves 0.5 s,
    nothing else any time): the sharing's arithmetic, the same on any machine."""
    clock = FakeClock()
    monkeypatch.setattr(time, "perf_counter", clock)
    for module, name, seconds in (
        (loop_module, "train_step", 1.0),
        (loop_module, "evaluate_pose", 1.0),
        (loop_module, "save_epoch", 0.5),
        (locator_module, "locator_step", 0.5),
        (two_stage, "locator_step", 0.5),  # the probe of the locator's step time
    ):
        monkeypatch.setattr(module, name, clock.ticking(getattr(module, name), seconds))
    budget_s = 30.0
    cfg = tiny_config(crowd_data, tmp_path, f"train.time={budget_s / 60}", "locator.steps=100000")
    cfg.train.epochs = 10_000  # only the first plan: the budget re-plans it
    started = clock.now
    run = train(cfg)
    assert clock.now - started <= budget_s
    pose_s = run.metrics[-1]["elapsed_s"]
    assert 3 <= run.locator_metrics["steps"] < 100_000
    assert run.locator_metrics["time_budget_s"] > 0 and pose_s < budget_s
    assert run.locator_metrics["seconds"] <= run.locator_metrics["time_budget_s"]
    # the locator's default (100000 steps) does not fit: it gets the most it may, 40% of what
    # was left after the probe, less the re-saves' reserve; alone, the pose model would have
    # used all 30 s
    assert run.locator_metrics["time_budget_s"] >= 0.3 * budget_s and pose_s <= 0.65 * budget_s


@pytest.mark.slow
def test_ddp_main_process_trains_the_locator_while_the_other_waits(crowd_data, tmp_path):
    """About 30 s: two CPU processes under torchrun; rank 0 trains the locator, rank 1 waits at
    the barrier; one run folder, whose checkpoints hold it."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sets = [*TINY_TRAINING, *TINY_LOCATOR, f"run.root={tmp_path}"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    train_args = ["train", "--data", str(crowd_data), "--quiet", *set_options(sets)]
    subprocess.run(
        [*torchrun, f"--master_port={port}", "-m", "keypointer", *train_args],
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    (run_dir,) = tmp_path.glob("*/*/")
    assert load_locator(run_dir / "best.pt") is not None
    assert load_checkpoint(run_dir / "last.pt")["locator"]["metrics"]["steps"] == 2.0
    assert (run_dir / "locator_metrics.json").is_file()


def test_min_pose_score_is_a_share_of_the_best_epochs_median_instance_score(crowd_run_turned_off):
    share = two_stage.MIN_POSE_SHARE
    run = crowd_run_turned_off
    assert all(0 < r["val_score"] <= 1.5 for r in run.metrics if "val_pck" in r)
    best = max((r for r in run.metrics if "val_pck" in r), key=lambda r: r["val_pck"])
    assert two_stage.min_pose_score(run.metrics) == share * best["val_score"]
    history = [{"val_pck": 0.2, "val_score": 0.4}, {"val_pck": 0.9, "val_score": 0.8}, {}]
    assert two_stage.min_pose_score(history) == pytest.approx(share * 0.8)  # the best epoch's
    assert two_stage.min_pose_score([{"val_pck": 0.5}]) == 0.0  # runs from before it existed


def test_a_users_short_epochs_give_a_short_locator_shown_up_front(
    crowd_data, tmp_path, monkeypatch, capsys
):
    """No locator.steps given: the recipe's locator length, scaled by the user's train.epochs
    (2) to the recipe's, is what trains, and the table says so with its time (a fake clock:
    a locator step takes 0.5 s, a pose step 1 s)."""
    from keypointer.training.recipe import plan

    clock = FakeClock()
    monkeypatch.setattr(time, "perf_counter", clock)
    monkeypatch.setattr(two_stage, "locator_step", clock.ticking(two_stage.locator_step, 0.5))
    monkeypatch.setattr(loop_module, "train_step", clock.ticking(loop_module.train_step, 1.0))
    cfg = tiny_config(crowd_data, tmp_path)
    cfg.locator.model_fields_set.discard("steps")  # the recipe's to choose
    reference = tiny_config(crowd_data, tmp_path)
    reference.locator.model_fields_set.discard("steps")
    reference.train.model_fields_set.discard("epochs")
    full = {c.field: c.value for c in plan(reference, load_dataset(crowd_data))}
    run = train(cfg)
    steps = run.locator_metrics["steps"]
    assert steps == pytest.approx(full["locator.steps"] * 2 / full["train.epochs"], abs=1)
    assert 1 <= steps < full["locator.steps"] / 10
    table = " ".join(capsys.readouterr().err.replace("│", " ").split())
    assert f"locator.steps {steps:.0f} " in table
    assert f"~{steps * 0.5 / 60:.1f} min at 0.50 s/step" in table
