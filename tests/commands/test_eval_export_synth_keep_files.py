"""``eval``, ``export`` and ``synth`` never write over a file they read, or one that exists,
without ``--overwrite``, whatever the path spelling; and they say so before any work."""

from __future__ import annotations

import json
import os
import shutil
from functools import partial
from pathlib import Path

import pytest
from helpers import cli

import keypointer.commands.eval as evaluate


def _copy_run(checkpoint: Path, tmp_path: Path) -> Path:
    """A private copy of the session's checkpoint (this test writes beside it)."""
    run = tmp_path / "run"
    run.mkdir()
    return Path(shutil.copy(checkpoint, run / "best.pt"))


def _no_work(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the evaluation ran before the outputs were checked")

    monkeypatch.setattr(evaluate, "predict_instances", refuse)


def test_eval_into_a_folder_with_an_earlier_evaluation_needs_overwrite(
    checkpoint, synth, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "eval.json").write_text("earlier")
    _no_work(monkeypatch)
    assert cli("eval", checkpoint, "--data", synth, "--out", out, "--device", "cpu") == 2
    err = capsys.readouterr().err
    assert "eval.json" in err and "--overwrite" in err
    assert (out / "eval.json").read_text() == "earlier"
    assert sorted(p.name for p in out.iterdir()) == ["eval.json"]


def test_eval_with_overwrite_replaces_the_earlier_evaluation(checkpoint, synth, tmp_path):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "eval.json").write_text("earlier")
    assert cli("eval", checkpoint, "--data", synth, "--out", out, "--overwrite") == 0
    assert json.loads((out / "eval.json").read_text())["num_images"] == 8


def test_eval_never_writes_over_its_labels_even_with_overwrite(
    checkpoint, synth, tmp_path, monkeypatch, capsys
):
    data = tmp_path / "labels"
    shutil.copytree(synth.parent, data)
    labels = data / "eval.json"  # labels that happen to be named like the output
    (data / "annotations.json").rename(labels)
    before = labels.read_bytes()
    _no_work(monkeypatch)
    spelled = tmp_path / "nowhere" / ".." / "labels"  # through a folder that does not exist
    code = cli("eval", checkpoint, "--data", labels, "--out", spelled, "--overwrite")
    assert code == 2
    assert "input" in capsys.readouterr().err
    assert labels.read_bytes() == before
    assert not (tmp_path / "nowhere").exists()


def test_eval_default_folder_keeps_the_earlier_evaluation(checkpoint, synth, tmp_path):
    best = _copy_run(checkpoint, tmp_path)
    assert cli("eval", best, "--data", synth) == 0
    assert cli("eval", best, "--data", synth) == 0
    folders = sorted(p.name for p in best.parent.iterdir() if p.is_dir())
    assert len(folders) == 2 and folders[1] == f"{folders[0]}-2"
    for name in folders:
        assert (best.parent / name / "eval.json").is_file()


def test_export_never_writes_over_an_existing_file_or_its_checkpoint(checkpoint, tmp_path, capsys):
    best = _copy_run(checkpoint, tmp_path)
    before = best.read_bytes()
    os.link(best, tmp_path / "hard.onnx")  # another name for the checkpoint itself
    for out in (best, tmp_path / "missing" / ".." / "run" / "best.pt", tmp_path / "hard.onnx"):
        assert cli("export", best, "--out", out, "--overwrite") == 2
        assert "input" in capsys.readouterr().err
    assert best.read_bytes() == before
    onnx = tmp_path / "run" / "best.onnx"
    onnx.write_text("someone's model")
    assert cli("export", best) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert onnx.read_text() == "someone's model"


@pytest.mark.slow
def test_export_with_overwrite_replaces_an_earlier_export(checkpoint, tmp_path, monkeypatch):
    # what is tested is the overwrite, not the exporter: the fast TorchScript one (the default
    # dynamo exporter is checked against PyTorch in tests/export/test_onnx.py)
    import keypointer.commands.export as export_module

    fast = partial(export_module.export_onnx, exporter="torchscript")
    monkeypatch.setattr(export_module, "export_onnx", fast)
    best = _copy_run(checkpoint, tmp_path)
    onnx = best.with_suffix(".onnx")
    onnx.write_text("earlier")
    assert cli("export", best, "--overwrite") == 0
    assert onnx.stat().st_size > 1000


@pytest.mark.parametrize("video", [False, True])
def test_synth_never_renders_over_a_folder_of_labels(video, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    name = "truth.json" if video else "annotations.json"
    (out / name).write_text("my labels")
    args = ["synth", out, "--num-images", 2] + (["--video", "--frames", 3] if video else [])
    assert cli(*args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / name).read_text() == "my labels"
    assert sorted(p.name for p in out.iterdir()) == [name]  # nothing rendered
    assert cli(*args, "--overwrite") == 0
    assert (out / name).read_text() != "my labels"


def test_synth_refuses_a_folder_of_images(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "000000.png").write_bytes(b"mine")
    assert cli("synth", tmp_path, "--num-images", 2) == 2
    assert "images" in capsys.readouterr().err
    assert (tmp_path / "images" / "000000.png").read_bytes() == b"mine"


def test_demo_never_empties_a_folder_it_did_not_fill(tmp_path, capsys):
    mine = tmp_path / "data" / "mice"
    mine.mkdir(parents=True)
    (mine / "labels.csv").write_text("my labels")
    assert cli("demo", "--out", tmp_path) == 2
    assert "choose another --out" in capsys.readouterr().err
    assert (mine / "labels.csv").read_text() == "my labels"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_demo_folder_of_an_earlier_demo_is_accepted(tmp_path):
    from keypointer.commands.demo import check_demo_folder
    from keypointer.data.synthetic import generate

    generate(tmp_path / "data" / "train", num_images=1, size=32)
    (tmp_path / "predictions").mkdir()
    (tmp_path / "predictions" / "gallery.png").write_bytes(b"")
    check_demo_folder(tmp_path)  # no error: all of it is the demo's own
