"""train.time: the schedule is re-planned from measured step times and ends on time."""

from __future__ import annotations

import time

import pytest
import yaml
from helpers import FakeClock, read_metrics, tiny_config

from keypointer.checkpoint import load_checkpoint
from keypointer.training import budget as budget_module
from keypointer.training import loop as loop_module
from keypointer.training.budget import TimeBudget
from keypointer.training.loop import train


def test_steps_that_fit_follow_the_measured_step_time(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(budget_module.time, "perf_counter", clock)
    b = TimeBudget(minutes=1.0, elapsed=10.0)  # 50 s left
    for _ in range(budget_module.SKIP):
        b.observe_step(5.0)  # start-up steps are not counted
    assert b.total_steps(done=2) is None
    b.observe_step(0.5)
    assert b.total_steps(done=3) == 3 + 98  # (50 - 1 s for the final saves) / 0.5 s a step
    for _ in range(7):
        b.observe_step(0.5)
    b.observe_finish(5.0)  # a validation and the saves after 10 steps: kept back, and spread
    assert b.total_steps(done=10) == 10 + 50  # 50 s at 0.5 + 5/10 s a step, the last val included
    clock.now += 20.0  # time passes: fewer steps left
    assert b.total_steps(done=10) == 10 + 30
    # An unmeasured validation's guess (20 s) bounds it: the steps alone must leave room for it.
    assert b.total_steps(done=10, guess_reserve_steps=40) == 10 + 20
    clock.now += 100.0
    assert b.total_steps(done=7) == 7  # over budget: stop now


def test_a_run_validating_after_every_short_epoch_plans_its_end_early(monkeypatch):
    # 2-step epochs of 0.5-s steps, each followed by a 1-s validation: half the time is spent
    # between steps. Counting steps only, the plan was twice too long until near the end, so
    # the cosine was cut off mid-way (a slow CI machine ended at 23% of the peak lr); with the
    # validations spread over the steps, the plans after the first few are the run's length.
    clock = FakeClock()
    monkeypatch.setattr(budget_module.time, "perf_counter", clock)
    b = TimeBudget(minutes=1.0)
    done, total, plans = 0, 4, []
    while done < total:
        for _ in range(2):
            clock.now += 0.5
            done += 1
            b.observe_step(0.5)
            total = b.total_steps(done) or total
            plans.append(total)
            if done >= total:
                break
        clock.now += 1.0
        b.observe_finish(1.0)
    assert 57.0 <= clock.now - 1000.0 <= 60.0
    assert 57 <= done <= 60  # ~1 s a step, validations included
    assert all(abs(plan - done) <= 0.1 * done for plan in plans[10:]), plans  # counted: ~100


@pytest.mark.slow
def test_a_20_second_budget_ends_on_time_with_best_pt(tiny_data, tmp_path, monkeypatch):
    """On a fake clock (a step takes 1 s, a validation 1 s, its saves 0.5 s, nothing else
    any time): the arithmetic of the plan, the same on any machine, however fast or loaded."""
    clock = FakeClock()
    monkeypatch.setattr(time, "perf_counter", clock)
    for name, seconds in (("train_step", 1.0), ("evaluate_pose", 1.0), ("save_epoch", 0.5)):
        monkeypatch.setattr(loop_module, name, clock.ticking(getattr(loop_module, name), seconds))
    # epochs is only the first plan: the budget stretches a 2-epoch plan to 20 seconds.
    cfg = tiny_config(tiny_data, tmp_path, epochs=2, time=20 / 60, schedule="cosine")
    t0 = clock.now
    run = train(cfg)
    seconds = clock.now - t0
    assert 17.5 <= seconds <= 20.0, seconds  # within a step and a validation of the end
    rows = read_metrics(run.dir)
    assert rows[-1]["val_pck"] != ""  # the last epoch was validated
    # The cosine reached its end: the lr logged at the last epoch's end (the one the plan
    # before the last step gave) is near zero; a run cut off mid-cosine logs far more.
    assert float(rows[-1]["lr"]) < 0.2 * cfg.train.lr
    # Stretched: more than 1.5 times the 2-epoch plan's 4 steps.
    assert int(rows[-1]["step"]) > 6
    assert load_checkpoint(run.best)["epoch"] >= 1


def test_recipe_fills_unset_fields_and_stores_them(tiny_data, tmp_path, capsys):
    cfg = tiny_config(tiny_data, tmp_path, epochs=1)
    cfg.train.recipe = True
    run = train(cfg)
    saved = yaml.safe_load((run.dir / "config.yaml").read_text())
    assert saved["model"]["input_size"] == [64, 64]  # set by the test: kept
    assert saved["train"]["epochs"] == 1
    assert saved["train"]["schedule"] == "cosine"  # the recipe's
    assert saved["codec"]["sigma"] == 2.0 and saved["augment"]["flip"] == 0.5  # flip pairs
    err = capsys.readouterr().err
    assert "settings (recipe" in err and "set by you" in err and "train.schedule" in err


def test_no_recipe_keeps_the_defaults(tiny_data, tmp_path, capsys):
    cfg = tiny_config(tiny_data, tmp_path, epochs=1, recipe=False)
    run = train(cfg)
    saved = yaml.safe_load((run.dir / "config.yaml").read_text())
    assert saved["train"]["schedule"] == "multistep"
    assert "settings (recipe" not in capsys.readouterr().err
