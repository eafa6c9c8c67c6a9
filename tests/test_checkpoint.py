import os
import pickle

import pytest
import torch
from helpers import tiny_locator_config

from keypointer.checkpoint import load_checkpoint, save_checkpoint
from keypointer.errors import CheckpointError


def test_save_is_atomic_and_loads_with_weights_only(tmp_path):
    path = tmp_path / "last.pt"
    state = {"model": {"w": torch.arange(3.0)}, "config": {"a": 1}, "history": [{"x": 1.5}]}
    save_checkpoint(state, path)
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["model"]["w"], torch.arange(3.0))
    assert loaded["history"] == [{"x": 1.5}]


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"model": {}, "config": {"v": 1}}, path)

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"model": {}, "config": {"v": 2}}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["config"] == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        torch.save({"model": {}, "config": {}, "x": _Payload()}, f, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()


def test_garbage_and_missing_files(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(1)}, plain)
    with pytest.raises(CheckpointError, match="not a keypointer checkpoint"):
        load_checkpoint(plain)


def _with_locator(path, cfg, entry):
    save_checkpoint({"model": {}, "config": cfg.to_dict(), "locator": entry}, path)
    return path


def test_load_locator_rebuilds_the_stored_locator(tmp_path):
    from keypointer.checkpoint import load_locator
    from keypointer.models.locator import build_locator

    cfg = tiny_locator_config(max_instances=5)
    torch.manual_seed(0)
    model = build_locator(cfg, (96, 64)).eval()
    entry = {"model": model.state_dict(), "build_info": model.build_info, "metrics": {"a": 1.0}}
    path = _with_locator(tmp_path / "best.pt", cfg, entry)
    loaded = load_locator(path)
    assert loaded is not None and not loaded.training
    assert loaded.input_size == (96, 64) and loaded.max_instances == 5
    image = torch.rand(1, 3, 64, 96)
    with torch.inference_mode():
        assert torch.equal(loaded(image), model(image))
    # a checkpoint without one (single-instance labels): None
    save_checkpoint({"model": {}, "config": cfg.to_dict()}, tmp_path / "plain.pt")
    assert load_locator(tmp_path / "plain.pt") is None


@pytest.mark.parametrize(
    "entry",
    [
        "not a mapping",
        {"model": {}, "build_info": {"input_size": [96, 64]}},  # weights missing
        {"build_info": {"input_size": [96, 64]}},  # no model entry
        {"model": {}, "build_info": {}},  # no input size
        {"model": {}, "build_info": {"input_size": [96]}},
        {"model": {}, "build_info": {"input_size": [100000, 64]}},  # would not fit in memory
        {"model": {}, "build_info": {"input_size": [4, 4]}},  # too small for any locator
        {"model": {}, "build_info": {"input_size": ["a", 64]}},
    ],
)
def test_load_locator_names_the_file_of_a_damaged_entry(tmp_path, entry):
    from keypointer.checkpoint import load_locator

    path = _with_locator(tmp_path / "best.pt", tiny_locator_config(max_instances=5), entry)
    with pytest.raises(CheckpointError, match="best.pt"):
        load_locator(path)


@pytest.mark.parametrize(
    "mismatch",
    [
        lambda: {}["model"],  # a missing entry
        lambda: int("three"),  # an entry of the wrong form
        lambda: torch.nn.Linear(2, 2).load_state_dict({"weight": torch.zeros(3, 3)}),  # shapes
    ],
)
def test_damaged_turns_a_mismatched_checkpoint_into_a_checkpoint_error(tmp_path, mismatch):
    from keypointer.checkpoint import damaged

    path = tmp_path / "last.pt"
    save_checkpoint({"model": {}, "config": {}}, path)  # an intact file: the contents are wrong
    with pytest.raises(CheckpointError, match="cannot restore from this checkpoint"), damaged(path):
        mismatch()


@pytest.mark.parametrize("bug", [AttributeError, NameError, AssertionError, ZeroDivisionError])
def test_damaged_lets_a_bug_in_the_restoring_code_keep_its_traceback(tmp_path, bug):
    from keypointer.checkpoint import damaged

    path = tmp_path / "last.pt"
    save_checkpoint({"model": {}, "config": {}}, path)
    with pytest.raises(bug), damaged(path):
        raise bug("a bug in keypointer, not in the file")


@pytest.mark.parametrize("weights", ["not a mapping", [1, 2], None])
def test_weights_that_are_no_mapping_name_the_file(tmp_path, weights):
    from keypointer.checkpoint import load_model
    from keypointer.config import Config
    from keypointer.skeleton import Skeleton

    path = tmp_path / "best.pt"
    skeleton = Skeleton(("a", "b")).to_dict()
    save_checkpoint({"model": weights, "config": Config().to_dict(), "skeleton": skeleton}, path)
    with pytest.raises(CheckpointError, match="best.pt"):
        load_model(path)
