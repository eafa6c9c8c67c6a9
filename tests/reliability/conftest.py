"""Fixtures of the reliability tests: one valid copy of a tiny synthetic set in each label
format, and an in-process CLI runner that keeps what it printed."""

from __future__ import annotations

import shutil
from collections.abc import Callable

import pytest
from helpers import CliResult, cli_captured

from .corpus import Bases


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


@pytest.fixture
def cli(capsys) -> Callable[..., CliResult]:
    """Run ``keypointer <argv>`` in this process (torch is imported once): code, out, err."""
    return lambda *argv: cli_captured(capsys, *argv)
