"""Bad label data: the cases of corpus_labels.py as test_bad_inputs.py runs its corpus,
plus a check that they leave every file as it was; then the inputs that must now pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_folders

from .corpus import Bases, assert_one_clear_error, copy_base, train_args
from .corpus_labels import CORPUS9


def _cases():
    return [
        pytest.param(name, command, id=f"{command}: {name}")
        for name, bad in CORPUS9.items()
        for command in bad.commands
    ]


def _files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _argv(command: str, data: Path, extra: list[str], root: Path) -> list:
    if command == "train":
        return train_args(data, root, extra)
    return [command, data, *extra]


@pytest.mark.parametrize("name, command", _cases())
def test_bad_input_exits_2_and_changes_nothing(name, command, bases, cli, tmp_path):
    bad = CORPUS9[name]
    data, extra = bad.build(tmp_path, bases)
    before = _files(tmp_path)
    root = tmp_path / "runs"
    result = cli(*_argv(command, data, extra, root))
    assert_one_clear_error(result, bad)
    assert run_folders(root) == []
    assert _files(tmp_path) == before  # nothing overwritten, nothing half-written


def _check(cli, path) -> tuple[int, str]:
    result = cli("check", path)
    assert "Traceback" not in result.err
    return result.code, " ".join((result.out + result.err).split())  # rich wraps long lines


def _warnings(text: str) -> int:
    return text.count("warning ")


def test_convert_overwrites_when_told(bases, cli, tmp_path):
    dst = tmp_path / "mine.json"
    dst.write_text('{"my": "own labels"}')
    result = cli("convert", bases.coco / "annotations.json", dst, "--to", "coco", "--overwrite")
    assert result.code == 0, result.err
    assert json.loads(dst.read_text())["annotations"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.json"]  # no temporary file left


def test_convert_help_lists_every_target(cli):
    result = cli("convert", "--help")
    assert result.code == 0
    assert "coco | yolo | dlc | csv" in " ".join(result.out.split())
    assert "--overwrite" in result.out


def test_csv_from_a_spreadsheet_passes(bases: Bases, cli, tmp_path):
    """Semicolons and empty trailing columns, as spreadsheet programs write CSV."""
    path = copy_base(bases.csv, tmp_path / "csv") / "labels.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(line.replace(",", ";") + ";;" for line in lines) + "\n")
    code, text = _check(cli, path)
    assert code == 0, text
    assert "8 to train on" in text and "no problems found" in text


def test_same_image_under_two_ids_is_one_warning(bases, cli, tmp_path):
    folder = copy_base(bases.coco, tmp_path / "coco")
    path = folder / "annotations.json"
    doc = json.loads(path.read_text())
    doc["images"][5]["file_name"] = doc["images"][0]["file_name"]
    path.write_text(json.dumps(doc))
    code, text = _check(cli, path)
    assert code == 0, text
    assert _warnings(text) == 1, text
    assert (
        "image id 6 (images/000000.png): image file 000000.png is also listed as image id 1" in text
    )


def test_lightning_pose_folder_passes_check(shared_data, cli):
    code, text = _check(cli, shared_data / "lp-mirror-mouse")
    assert code == 0, text
    assert "90 to train on" in text and "(dlc)" in text
