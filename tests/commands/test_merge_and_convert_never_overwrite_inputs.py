"""``merge`` and ``convert`` never write over a file they read, whatever the spelling of the
output path, not even with ``--overwrite``; the output path is checked by identity."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import cli

from keypointer.data.formats import load_dataset, write_coco, write_csv, write_dlc


@pytest.fixture
def inputs(synth, tmp_path, monkeypatch) -> tuple[Path, Path]:
    """a.json and b.csv in the current folder (tmp_path), each two of the synthetic images."""
    kset = load_dataset(synth)
    monkeypatch.chdir(tmp_path)
    a = write_coco(kset.subset(range(0, 2)), tmp_path / "a.json")
    b = write_csv(kset.subset(range(2, 4)), tmp_path / "b.csv")
    return a, b


SPELLINGS = {
    "through a missing folder": lambda p: f"nosub/../{p.name}",
    "dot slash": lambda p: f"./{p.name}",
    "absolute": lambda p: str(p.resolve()),
    "trailing slash": lambda p: f"{p.name}/",
    "symlink": lambda p: _link(p, os.symlink, "sym"),
    "hard link": lambda p: _link(p, os.link, "hard"),
}


def _link(target: Path, make, kind: str) -> str:
    name = f"{kind}{target.suffix}"
    make(target.name, name) if make is os.symlink else make(target, name)
    return name


def _refused(capsys, *args) -> None:
    code = cli(*args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "refusing to overwrite" in err and "Traceback" not in err


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_no_spelling_of_an_input_is_written(inputs, spelling, capsys, tmp_path):
    a, b = inputs
    before = {p: p.read_bytes() for p in (a, b)}
    for target in (a, b):
        out = SPELLINGS[spelling](target)
        _refused(capsys, "merge", a, b, "--out", out, "--overwrite")
        _refused(capsys, "convert", target, out, "--to", target.suffix[1:].replace("json", "coco"),
                 "--overwrite")  # fmt: skip
        assert {p: p.read_bytes() for p in (a, b)} == before
        for link in ("sym" + target.suffix, "hard" + target.suffix):
            Path(link).unlink(missing_ok=True)
    assert not (tmp_path / "nosub").exists()


def test_a_project_s_label_file_and_folder_are_not_written(synth, tmp_path, capsys):
    project = write_dlc(load_dataset(synth).subset(range(0, 3)), tmp_path / "project")
    csv = project / "labeled-data" / "images" / "CollectedData_keypointer.csv"
    before = csv.read_bytes()
    _refused(capsys, "convert", project, tmp_path / "nosub" / ".." / "project" / csv.relative_to(
        project), "--to", "csv", "--overwrite")  # fmt: skip
    assert csv.read_bytes() == before
    # The project folder through a missing folder is still the project: not empty.
    assert cli("convert", synth, tmp_path / "nosub" / ".." / "project", "--to", "dlc") == 2
    assert "not empty" in capsys.readouterr().err
    assert csv.read_bytes() == before
    assert not (tmp_path / "nosub").exists()


def test_a_new_name_through_a_missing_folder_is_written_where_it_points(inputs, tmp_path):
    a, b = inputs
    assert cli("merge", a, b, "--out", "nosub/../m.json") == 0
    assert len(load_dataset(tmp_path / "m.json").samples) == 4
    assert not (tmp_path / "nosub").exists()  # no stray folder made on the way
