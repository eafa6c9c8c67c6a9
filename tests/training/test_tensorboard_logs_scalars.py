"""``run.tensorboard=true``: the run folder gets TensorBoard events holding each epoch's train
loss and validation scalars, the values metrics.csv holds; without the tensorboard package
the run stops before it starts, saying what to install."""

from __future__ import annotations

import sys

import pytest
from helpers import read_metrics, run_folders, tiny_config

from keypointer.errors import ConfigError
from keypointer.training.loop import train


def test_events_hold_the_train_loss_and_validation_scalars(tiny_data, tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard package is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = train(tiny_config(tiny_data, tmp_path, "run.tensorboard=true", epochs=2))
    assert list(run.dir.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(run.dir))
    events.Reload()
    assert len(read_metrics(run.dir)) == len(run.metrics) == 2
    for tag in ("train_loss", "val_pck", "val_mean_px"):
        logged = events.Scalars(tag)
        assert [e.step for e in logged] == [1, 2], tag
        want = [row[tag] for row in run.metrics]  # events hold float32
        assert [e.value for e in logged] == pytest.approx(want, rel=1e-6, nan_ok=True), tag


def test_without_the_package_the_run_stops_before_its_folder_exists(
    tiny_data, tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard: ImportError
    with pytest.raises(ConfigError, match="run.tensorboard.*pip install tensorboard"):
        train(tiny_config(tiny_data, tmp_path, "run.tensorboard=true"))
    assert run_folders(tmp_path) == []


class _RecordingWriter:
    """Stands in for ``torch.utils.tensorboard.SummaryWriter`` where the package is missing:
    what the run writes through it is what a real writer would put in its events."""

    made: list[_RecordingWriter] = []

    def __init__(self, log_dir: str) -> None:
        self.log_dir, self.scalars, self.closed = log_dir, [], False
        _RecordingWriter.made.append(self)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, float(value), int(step)))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_each_epochs_scalars_go_through_the_writer_even_without_the_package(
    tiny_data, tmp_path, monkeypatch
):
    """Runs on every machine (the package is optional): the writer opened on the run folder
    gets each epoch's train loss and validation figures, at the epoch's number, and is closed."""
    import types

    _RecordingWriter.made = []
    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = _RecordingWriter
    monkeypatch.setitem(sys.modules, "tensorboard", types.ModuleType("tensorboard"))
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    run = train(tiny_config(tiny_data, tmp_path, "run.tensorboard=true", epochs=2))
    (writer,) = _RecordingWriter.made
    assert writer.log_dir == str(run.dir) and writer.closed
    for tag in ("train_loss", "val_pck", "val_mean_px"):
        logged = [(value, step) for name, value, step in writer.scalars if name == tag]
        want = [(float(row[tag]), row["epoch"]) for row in run.metrics]
        assert [s for _, s in logged] == [1, 2], tag
        assert [v for v, _ in logged] == pytest.approx([v for v, _ in want], nan_ok=True), tag
