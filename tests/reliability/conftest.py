"""Shared fixtures for the reliability tests: tiny synthetic datasets and a CLI runner."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from keypointer.cli import main

# The smallest training that still runs the whole pipeline: 8 images of 64 px, 1 epoch, 2 steps.
TINY = [
    "--set", "model.input_size=[64,64]", "--set", "train.epochs=1",
    "--set", "loader.batch_size=4", "--set", "loader.num_workers=0",
    "--set", "data.val_fraction=0",
]  # fmt: skip


def train_args(data: Path, root: Path, extra: list[str]) -> list[str]:
    """``keypointer train`` on ``data`` with the TINY settings, runs under ``root``."""
    return ["train", "--data", data, *TINY, "--set", f"run.root={root}", "--quiet", *extra]


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Bases:
    """One valid copy of the same 8 synthetic images in each label format."""

    coco: Path  # folder: annotations.json + images/
    csv: Path  # folder: labels.csv + images/
    dlc: Path  # DeepLabCut project folder
    yolo: Path  # folder: data.yaml + images/train + labels/train


@pytest.fixture(scope="session")
def bases(tmp_path_factory) -> Bases:
    from keypointer.data.formats import convert
    from keypointer.data.synthetic import generate

    root = tmp_path_factory.mktemp("bases")
    coco = generate(root / "coco", num_images=8, seed=0, size=64).parent
    csv = shutil.copytree(coco, root / "csv")  # image paths in the CSV stay relative
    convert(csv / "annotations.json", csv / "labels.csv", to="csv")
    (csv / "annotations.json").unlink()
    convert(coco / "annotations.json", root / "dlc", to="dlc")
    convert(coco / "annotations.json", root / "yolo", to="yolo")
    return Bases(coco, csv, root / "dlc", root / "yolo")


def copy_base(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture
def cli(capsys):
    """Run ``keypointer <argv>`` in this process (torch is imported once); returns a Result."""

    def run(*argv: str) -> Result:
        capsys.readouterr()
        try:
            main([str(a) for a in argv])
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def run_subprocess(*argv: str, timeout: float = 300, cwd: Path | None = None) -> Result:
    """Run ``python -m keypointer <argv>`` as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "keypointer", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def run_folders(root: Path) -> list[Path]:
    """Every run folder (``<root>/<name>/<time>/``) under ``root``."""
    return [p for p in root.glob("*/*") if p.is_dir()] if root.exists() else []
