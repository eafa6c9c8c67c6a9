import os
import pickle

import pytest
import torch

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
