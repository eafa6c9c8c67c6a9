"""``keypointer demo`` beyond --help: its config, and the whole flow with tiny counts."""

import json

import pytest

from keypointer.commands import demo
from keypointer.config import Config


def test_demo_config_points_at_the_synthetic_data(tmp_path):
    cfg = demo.demo_config(tmp_path, quiet=True)
    assert cfg.data.path == str(tmp_path / "data" / "train" / "annotations.json")
    assert cfg.run.root == str(tmp_path / "runs") and cfg.run.name == "demo"
    assert cfg.run.quiet is True
    assert (cfg.train.epochs, cfg.train.schedule, cfg.train.warmup_epochs) == (12, "cosine", 0.5)
    assert cfg.model == Config().model  # the default model


@pytest.mark.slow
def test_demo_with_tiny_counts(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "DEMO_TRAIN_IMAGES", 12)
    monkeypatch.setattr(demo, "DEMO_TEST_IMAGES", 4)
    real = demo.demo_config

    def tiny(out, quiet):
        cfg = real(out, quiet)
        cfg.model.input_size = (64, 64)
        cfg.train.epochs = 1
        cfg.loader.batch_size = 4
        cfg.loader.num_workers = 0
        return cfg

    monkeypatch.setattr(demo, "demo_config", tiny)
    result = demo.demo_command(tmp_path, quiet=True)
    assert 0.0 <= result["pck"] <= 1.0 and result["instances"] == 4
    assert (tmp_path / "predictions" / "gallery.png").is_file()
    run_dir = next((tmp_path / "runs" / "demo").iterdir())
    assert json.loads((run_dir / "demo.json").read_text())["instances"] == 4
    assert "held-out PCK@0.05" in capsys.readouterr().out
