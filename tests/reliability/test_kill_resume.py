"""SIGKILL a deterministic CPU training at random moments, resume each time, and get the weights
of an uninterrupted run, bit for bit. After every kill each checkpoint on disk must load.

Three kinds of kill, in turn: early (during start-up, often before the run folder exists: the
next start is then a fresh one), during training (a random delay after the run's config.yaml
is written), and during a checkpoint save (as soon as the k-th temporary ``.last.pt.*.tmp`` /
``.best.pt.*.tmp`` appears).
"""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import TINY_TRAINING, set_options

from keypointer.checkpoint import load_checkpoint

EPOCHS = 12
MIN_KILLS = 6
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # same maths in every run


def command(data: Path, root: Path, resume: Path | None) -> list[str]:
    args = [sys.executable, "-m", "keypointer", "train", "--quiet"]
    if resume is not None:
        return [*args, "--resume", str(resume)]
    sets = [
        *TINY_TRAINING,
        f"train.epochs={EPOCHS}",
        "train.deterministic=true",
        f"run.root={root}",
    ]
    return [*args, "--data", str(data), *set_options(sets)]


def start(data: Path, root: Path, resume: Path | None, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(command(data, root, resume), stdout=out, stderr=out, env=ENV)


def resumable(root: Path) -> Path | None:
    """The run folder holding a last.pt (at most one: a fresh start happens only without one)."""
    runs = [p.parent for p in root.glob("*/*/last.pt")]
    assert len(runs) <= 1, runs
    return runs[0] if runs else None


def wait_until(proc: subprocess.Popen, condition, timeout: float = 60.0) -> bool:
    """Poll ``condition`` every ~2 ms; False when the process ended first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    raise AssertionError("timed out")


def kill_at_random(proc, kind: str, rng: random.Random, root: Path, since: float) -> None:
    if kind == "early":
        time.sleep(rng.uniform(0.2, 2.5))
    elif kind == "training":
        started = wait_until(
            proc,
            lambda: any(p.stat().st_mtime >= since for p in root.glob("*/*/config.yaml")),
        )
        if started:
            time.sleep(rng.uniform(0.3, 2.5))
    else:  # during the k-th checkpoint save of this session
        k = rng.randint(1, 5)
        seen: set[Path] = set()

        def kth_save() -> bool:
            seen.update(root.glob("*/*/.*.pt.*.tmp"))
            return len(seen) >= k

        wait_until(proc, kth_save)
    proc.kill()  # SIGKILL
    proc.wait()


def assert_every_checkpoint_loads(root: Path) -> None:
    for path in root.glob("*/*/*.pt"):
        state = load_checkpoint(path)  # raises CheckpointError on a torn file
        assert state["epoch"] >= 1


def metric_rows(run: Path) -> list[tuple[str, str, str]]:
    with open(run / "metrics.csv") as f:
        return [(r["epoch"], r["train_loss"], r["val_pck"]) for r in csv.DictReader(f)]


def assert_same_state(a: dict, b: dict) -> None:
    assert a["epoch"] == b["epoch"]
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert ("optimizer" in a) == ("optimizer" in b)  # best.pt carries no resume state
    for sa, sb in zip(
        a.get("optimizer", {"state": {}})["state"].values(),
        b.get("optimizer", {"state": {}})["state"].values(),
        strict=True,
    ):
        for key in sa:
            assert torch.equal(torch.as_tensor(sa[key]), torch.as_tensor(sb[key])), key
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]


@pytest.mark.slow
def test_sigkill_and_resume_gives_the_uninterrupted_weights(bases, tmp_path):
    data = bases.coco / "annotations.json"
    log = tmp_path / "log.txt"
    reference = tmp_path / "reference"
    assert start(data, reference, None, log).wait(timeout=300) == 0, log.read_text()
    (ref_run,) = [p.parent for p in reference.glob("*/*/last.pt")]

    rng = random.Random(int(os.environ.get("KEYPOINTER_KILL_SEED", "6")))
    root = tmp_path / "killed"
    kinds = ["early", "save", "training"]
    kills, torn, cycle, leftovers = [], 0, 0, set()
    while True:
        run = resumable(root)
        proc = start(data, root, run, log)
        # Enough kills, one inside a save, at several points of the run (a loaded machine can
        # slow the run so that the first kills land close together: then kill on).
        spread = len({epoch for _, epoch in kills}) >= 3
        if len(kills) >= MIN_KILLS and torn >= 1 and spread:
            assert proc.wait(timeout=300) == 0, log.read_text()
            break
        kind = kinds[cycle % len(kinds)]
        cycle += 1
        assert cycle < 30, kills
        kill_at_random(proc, kind, rng, root, time.time() - 0.01)
        if proc.returncode == 0:  # finished before the kill: too few epochs for this seed
            pytest.fail(f"training ended after only {len(kills)} kills: {kills}")
        epoch = load_checkpoint(resumable(root) / "last.pt")["epoch"] if resumable(root) else 0
        tmp = set(root.glob("*/*/.*.pt.*.tmp"))
        torn += bool(tmp - leftovers)  # this kill landed in the middle of a save
        leftovers |= tmp
        kills.append((kind, epoch))
        assert_every_checkpoint_loads(root)

    print(f"kills (kind, last.pt epoch after it): {kills}; {torn} left a torn save")
    assert torn >= 1, kills  # at least one kill landed inside a checkpoint save
    assert len({epoch for _, epoch in kills}) >= 3, kills  # kills at several points of the run
    run = resumable(root)
    assert not list(run.glob(".*.tmp"))  # what the torn saves left was cleared on resume
    assert_same_state(load_checkpoint(run / "last.pt"), load_checkpoint(ref_run / "last.pt"))
    assert_same_state(load_checkpoint(run / "best.pt"), load_checkpoint(ref_run / "best.pt"))
    assert metric_rows(run) == metric_rows(ref_run)
    assert len(metric_rows(run)) == EPOCHS


def test_resume_clears_what_a_killed_save_left(tmp_path):
    from keypointer.checkpoint import save_checkpoint
    from keypointer.config import Config
    from keypointer.training.loop import open_run_dir

    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint({"model": {}, "config": {}, "epoch": 1}, run / "last.pt")
    for name in (".last.pt.k1ll3d.tmp", ".best.pt.x.tmp", ".metrics.csv.tmp"):
        (run / name).write_bytes(b"torn")
    assert open_run_dir(Config(), run) == run
    assert sorted(p.name for p in run.iterdir()) == ["last.pt"]


def test_checkpoints_get_the_usual_file_permissions(tmp_path):
    """mkstemp makes owner-only files; a saved checkpoint follows the umask like any file."""
    from keypointer.checkpoint import save_checkpoint

    mask = os.umask(0o022)
    try:
        save_checkpoint({"model": {}, "config": {}}, tmp_path / "last.pt")
    finally:
        os.umask(mask)
    assert (tmp_path / "last.pt").stat().st_mode & 0o777 == 0o644
