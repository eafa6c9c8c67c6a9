"""The bad-input corpus (corpus.py) through ``keypointer check`` and ``keypointer train``.

Each input must end with exit code 2 and one message on stderr that names the file and, where
there is one, the record; no traceback; and no run folder. Most cases run the CLI in this
process (``keypointer.cli.main``) to keep the corpus fast; a few run ``python -m keypointer``.
"""

from __future__ import annotations

import pytest
from helpers import cli_subprocess, run_folders, tiny_config

from keypointer.errors import TrainingError

from .corpus import CORPUS, assert_one_clear_error, copy_base, train_args


def _cases():
    return [
        pytest.param(name, command, id=f"{command}: {name}")
        for name, bad in CORPUS.items()
        for command in bad.commands
    ]


@pytest.mark.parametrize("name, command", _cases())
def test_bad_input_exits_2_with_one_message(name, command, bases, cli, tmp_path):
    bad = CORPUS[name]
    data, extra = bad.build(tmp_path, bases)
    root = tmp_path / "runs"
    args = ["check", data] if command == "check" else train_args(data, root, extra)
    result = cli(*args)
    assert_one_clear_error(result, bad)
    assert run_folders(root) == []


CODEC_NOISE = ("libpng ", "Corrupt JPEG data", "Premature end of JPEG")


@pytest.mark.parametrize(
    "name, command",
    [("json truncated", "check"), ("png corrupt", "train"), ("config unknown key", "train")],
)
def test_bad_input_as_a_subprocess(name, command, bases, tmp_path):
    """The same through ``python -m keypointer``: nothing but our message reaches the user."""
    bad = CORPUS[name]
    data, extra = bad.build(tmp_path, bases)
    root = tmp_path / "runs"
    args = ["check", data] if command == "check" else train_args(data, root, extra)
    result = cli_subprocess(*args)
    assert_one_clear_error(result, bad)
    # Before our message, only what the C image decoders print themselves (libpng cannot be
    # told to keep quiet): no Python warnings, no log lines, no OpenCV warnings.
    before = result.err[: result.err.index("error: ")].splitlines()
    assert all(line.startswith(CODEC_NOISE) for line in before), result.err
    assert run_folders(root) == [] and not root.exists()


# --------------------------------------------------------------------------- during training


def test_failure_in_the_first_epoch_leaves_no_run_folder(bases, tmp_path, monkeypatch):
    import keypointer.training.loop as engine

    def poisoned(*args):
        loss, _ = real(*args)
        return loss * float("nan"), float("nan")

    real = engine.global_mean_loss
    monkeypatch.setattr(engine, "global_mean_loss", poisoned)
    root = tmp_path / "runs"
    with pytest.raises(TrainingError, match="loss became nan"):
        engine.train(tiny_config(bases.coco / "annotations.json", root))
    # Neither the run folder nor the empty <root>/<name> and <root> it created are left.
    assert run_folders(root) == [] and not root.exists()


def test_image_that_goes_bad_during_training_is_reported_and_skipped(
    bases, tmp_path, monkeypatch, caplog
):
    """Validation decodes every image; one that breaks after it is logged by path and skipped."""
    import keypointer.training.loaders as engine_data
    import keypointer.training.loop as engine

    folder = copy_base(bases.coco, tmp_path / "coco")
    victim = folder / "images" / "000005.png"
    real = engine_data.read_checked

    def read_then_break(*args, **kwargs):
        kset = real(*args, **kwargs)
        victim.write_bytes(b"broken after the check")
        return kset

    monkeypatch.setattr(engine_data, "read_checked", read_then_break)
    run = engine.train(tiny_config(folder / "annotations.json", tmp_path / "runs"))
    assert (run.dir / "last.pt").is_file()
    skipped = [r.getMessage() for r in caplog.records if "skipping unreadable image" in r.message]
    assert skipped and all(str(victim) in m for m in skipped)
