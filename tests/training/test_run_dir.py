from datetime import datetime

import pytest

from keypointer.training.run_dir import new_run_dir


def test_run_folder_uses_the_seed_time_format_and_suffixes_collisions(tmp_path):
    now = datetime(2026, 11, 26, 9, 5)
    a = new_run_dir(tmp_path, "my run", now)
    b = new_run_dir(tmp_path, "my run", now)
    c = new_run_dir(tmp_path, "my run", now)
    assert a == tmp_path / "my_run" / "2026-11-26-09-05"
    assert b.name == "2026-11-26-09-05-2"
    assert c.name == "2026-11-26-09-05-3"
    assert a.is_dir() and b.is_dir() and c.is_dir()


def test_unsafe_names_stay_inside_the_root(tmp_path):
    d = new_run_dir(tmp_path, "../../etc", datetime(2026, 1, 1))
    assert tmp_path in d.parents


def test_a_full_minute_of_runs_is_a_user_error_that_names_the_folder(tmp_path, monkeypatch):
    from keypointer.errors import ConfigError
    from keypointer.training import run_dir

    monkeypatch.setattr(run_dir, "MAX_RUNS_PER_MINUTE", 3)  # suffixes tried: none, -2
    now = datetime(2026, 11, 26, 9, 5)
    new_run_dir(tmp_path, "busy", now)
    new_run_dir(tmp_path, "busy", now)
    with pytest.raises(ConfigError, match="run.root: .*busy already holds 2 runs started at"):
        new_run_dir(tmp_path, "busy", now)
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == [
        "2026-11-26-09-05",
        "2026-11-26-09-05-2",
    ]
