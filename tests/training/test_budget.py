"""train.time: the schedule is re-planned from measured step times and ends on time."""

from __future__ import annotations

import time

import pytest
import yaml
from test_loop import read_metrics, tiny_config, tiny_data  # noqa: F401  (fixture)

from keypointer.checkpoint import load_checkpoint
from keypointer.training import budget as budget_module
from keypointer.training.budget import TimeBudget
from keypointer.training.loop import train


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_steps_that_fit_follow_the_measured_step_time(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(budget_module.time, "perf_counter", clock)
    b = TimeBudget(minutes=1.0, elapsed=10.0)  # 50 s left
    for _ in range(budget_module.SKIP):
        b.observe_step(5.0)  # start-up steps are not counted
    assert b.total_steps(done=2) is None
    b.observe_step(0.5)
    assert b.total_steps(done=3) == 3 + 100
    b.observe_finish(5.0)  # a validation and the saves: kept back
    assert b.total_steps(done=3) == 3 + 90
    clock.now += 20.0  # time passes: fewer steps left
    assert b.total_steps(done=3) == 3 + 50
    assert b.total_steps(done=3, guess_reserve_steps=40) == 3 + 20  # an unmeasured validation
    clock.now += 100.0
    assert b.total_steps(done=7) == 7  # over budget: stop now


@pytest.mark.slow
def test_a_20_second_budget_ends_on_time_with_best_pt(tiny_data, tmp_path):  # noqa: F811
    # epochs is only the first plan: the budget stretches a 2-epoch plan to 20 seconds.
    cfg = tiny_config(tiny_data, tmp_path, epochs=2, time=20 / 60, schedule="cosine")
    t0 = time.perf_counter()
    run = train(cfg)
    seconds = time.perf_counter() - t0
    assert 18.0 <= seconds <= 22.0, seconds
    rows = read_metrics(run.dir)
    assert rows[-1]["val_pck"] != ""  # the last epoch was validated
    # The cosine reached its end: the lr logged at the last epoch's end is near zero. (The plan
    # is re-made every step from measured step times, so on a loaded machine the last few
    # steps may go unplanned: 10%, not 0; a run cut off mid-cosine would log far more.)
    assert float(rows[-1]["lr"]) < 0.1 * cfg.train.lr
    # Stretched: more than twice the 2-epoch plan's 4 steps. (Not a rate: a slow CI machine ran
    # only 19 steps, ~1 per second, in these 20 s, where it had run more than 20 before.)
    assert int(rows[-1]["step"]) > 8
    assert load_checkpoint(run.best)["epoch"] >= 1


def test_recipe_fills_unset_fields_and_stores_them(tiny_data, tmp_path, capsys):  # noqa: F811
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


def test_no_recipe_keeps_the_defaults(tiny_data, tmp_path, capsys):  # noqa: F811
    cfg = tiny_config(tiny_data, tmp_path, epochs=1, recipe=False)
    run = train(cfg)
    saved = yaml.safe_load((run.dir / "config.yaml").read_text())
    assert saved["train"]["schedule"] == "multistep"
    assert "settings (recipe" not in capsys.readouterr().err
