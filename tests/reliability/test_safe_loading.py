"""Safe loading through the CLI: a checkpoint carrying a pickle payload is refused before its code
can run, and every YAML (config, DeepLabCut config.yaml, YOLO data.yaml) is read with the safe
loader, so a ``!!python/...`` tag is an error, never a call."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from helpers import TINY_TRAINING, cli_subprocess, run_folders, set_options

from .corpus import copy_base


class Payload:
    """Unpickling this calls ``os.system(command)``: what a malicious checkpoint would do."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def evil_checkpoint(path: Path, marker: Path) -> Path:
    """A file that looks like ours (model, config, skeleton) plus code to run on loading."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model": {"w": torch.zeros(2)},
        "config": {"train": {"lr": 0.001}},
        "skeleton": {"names": ["a"]},
        "epoch": 1,
        "extra": Payload(f"touch '{marker}'"),
    }
    with open(path, "wb") as f:
        torch.save(state, f, pickle_module=pickle)
    return path


def test_the_payload_is_live(tmp_path):
    """Guard for the tests below: plain pickle loading of the file does run the payload."""
    marker = tmp_path / "PWNED"
    path = evil_checkpoint(tmp_path / "evil.pt", marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


def assert_refused(result, path: Path, marker: Path) -> None:
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert f"error: {path}: refused to load" in result.err
    assert "Only load checkpoints you trust" in result.err
    assert not marker.exists()


def test_train_resume_from_an_evil_checkpoint(bases, tmp_path):
    """As a user would run it: the real CLI in a subprocess."""
    marker = tmp_path / "PWNED"
    run = tmp_path / "runs" / "keypointer" / "2024-01-01-00-00"
    evil_checkpoint(run / "last.pt", marker)
    result = cli_subprocess("train", "--resume", run, "--quiet", cwd=tmp_path)
    assert_refused(result, run / "last.pt", marker)
    assert sorted(p.name for p in run.iterdir()) == ["last.pt"]  # nothing written


@pytest.fixture
def evil(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "PWNED"
    return evil_checkpoint(tmp_path / "evil.pt", marker), marker


def test_eval_an_evil_checkpoint(evil, bases, cli, tmp_path):
    path, marker = evil
    data = bases.coco / "annotations.json"
    result = cli("eval", path, "--data", data, "--out", tmp_path / "eval", "--device", "cpu")
    assert_refused(result, path, marker)
    assert not (tmp_path / "eval").exists()


def test_eval_a_run_folder_with_an_evil_best_checkpoint(bases, cli, tmp_path):
    marker = tmp_path / "PWNED"
    run = tmp_path / "run"
    evil_checkpoint(run / "best.pt", marker)
    result = cli("eval", run, "--data", bases.coco / "annotations.json", "--device", "cpu")
    assert_refused(result, run / "best.pt", marker)


def test_predict_with_an_evil_checkpoint(evil, bases, cli, tmp_path):
    path, marker = evil
    image = bases.coco / "images" / "000000.png"
    result = cli("predict", path, image, "--out", tmp_path / "pred", "--device", "cpu", "--quiet")
    assert_refused(result, path, marker)


def test_export_an_evil_checkpoint(evil, cli):
    path, marker = evil
    result = cli("export", path)
    assert_refused(result, path, marker)
    assert not path.with_suffix(".onnx").exists()


# --------------------------------------------------------------------------- YAML

TAG = "!!python/object/apply:os.system"


def test_config_with_a_python_tag_is_an_error(bases, cli, tmp_path):
    marker = tmp_path / "PWNED"
    config = tmp_path / "config.yaml"
    config.write_text(f"train:\n  lr: {TAG} ['touch {marker}']\n")
    root = tmp_path / "runs"
    data = bases.coco / "annotations.json"
    sets = set_options([*TINY_TRAINING, f"run.root={root}"])
    result = cli("train", "--data", data, "--config", config, *sets)
    assert result.code == 2 and "Traceback" not in result.err
    assert f"error: {config}: not valid YAML" in result.err
    assert "python/object/apply:os.system" in result.err
    assert not marker.exists() and run_folders(root) == []


def test_override_with_a_python_tag_is_a_plain_string(bases, cli, tmp_path):
    marker = tmp_path / "PWNED"
    root = tmp_path / "runs"
    data = bases.coco / "annotations.json"
    evil = f"train.lr={TAG} ['touch {marker}']"
    result = cli("train", "--data", data, *set_options([*TINY_TRAINING, f"run.root={root}", evil]))
    assert result.code == 2 and "Traceback" not in result.err
    assert "train.lr: Input should be a valid number" in result.err
    assert not marker.exists() and run_folders(root) == []


@pytest.mark.parametrize("fmt", ["dlc", "yolo"])
def test_dataset_yaml_with_a_python_tag_is_an_error(fmt, bases, cli, tmp_path):
    marker = tmp_path / "PWNED"
    folder = copy_base(getattr(bases, fmt), tmp_path / fmt)
    name = "config.yaml" if fmt == "dlc" else "data.yaml"
    yaml_file = folder / name
    yaml_file.write_text(f"x: {TAG} ['touch {marker}']\n" + yaml_file.read_text())
    result = cli("check", folder, "--format", fmt)
    assert result.code == 2 and "Traceback" not in result.err
    assert f"error: {yaml_file}" in result.err and "invalid YAML" in result.err
    assert not marker.exists()
