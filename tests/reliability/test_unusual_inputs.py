"""Inputs that are merely unusual must work: grayscale, RGBA and 16-bit images, JPEG, non-ASCII
and space-containing file and folder names, a CSV with a byte-order mark and CRLF line ends."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import run_folders

from .corpus import Bases, copy_base, train_args


def _recode(folder: Path, doc: dict, index: int, image: np.ndarray, name: str | None = None):
    entry = doc["images"][index]
    old = folder / entry["file_name"]
    new = old.with_name(name) if name else old
    old.unlink()
    assert cv2.imencode(new.suffix, image)[0]
    new.write_bytes(cv2.imencode(new.suffix, image)[1].tobytes())  # cv2.imwrite: ASCII paths only
    entry["file_name"] = new.relative_to(folder).as_posix()


def grayscale(folder, doc, i, img):
    _recode(folder, doc, i, cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))


def rgba(folder, doc, i, img):
    alpha = np.full(img.shape[:2], 128, np.uint8)
    _recode(folder, doc, i, np.dstack([img, alpha]))


def sixteen_bit(folder, doc, i, img):
    _recode(folder, doc, i, img.astype(np.uint16) * 257)


def sixteen_bit_gray(folder, doc, i, img):
    _recode(folder, doc, i, cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257)


def grayscale_jpeg(folder, doc, i, img):
    _recode(folder, doc, i, cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), f"gray {i}.jpg")


def non_ascii_name(folder, doc, i, img):
    _recode(folder, doc, i, img, f"\u00e9t\u00e9_\u732b_\u0444\u043e\u0442\u043e_{i}.png")


def spaces_in_name(folder, doc, i, img):
    _recode(folder, doc, i, img, f"my image {i}.png")


UNUSUAL = {
    "grayscale": grayscale,
    "rgba": rgba,
    "16-bit": sixteen_bit,
    "16-bit grayscale": sixteen_bit_gray,
    "grayscale jpeg": grayscale_jpeg,
    "non-ascii file names": non_ascii_name,
    "spaces in file names": spaces_in_name,
}


def unusual_set(bases: Bases, folder: Path, kinds: list[str]) -> Path:
    """The base set in ``folder`` with image i re-encoded as ``kinds[i % len(kinds)]``."""
    copy_base(bases.coco, folder)
    path = folder / "annotations.json"
    doc = json.loads(path.read_text())
    for i, entry in enumerate(doc["images"]):
        img = cv2.imread(str(folder / entry["file_name"]))
        UNUSUAL[kinds[i % len(kinds)]](folder, doc, i, img)
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", list(UNUSUAL))
def test_unusual_images_pass_check(kind, bases, cli, tmp_path):
    data = unusual_set(bases, tmp_path / "d\u00e4ta set", [kind])
    result = cli("check", data)
    assert result.code == 0, result.err
    assert "OK" in result.out and "8" in result.out
    assert "cannot be read" not in result.out + result.err


def test_unusual_images_train(bases, cli, tmp_path, caplog):
    """One run over every unusual kind at once, in folders with spaces and non-ASCII names."""
    data = unusual_set(bases, tmp_path / "my d\u00e4ta \u732b", [*UNUSUAL])
    root = tmp_path / "r\u00fcns with spaces"
    result = cli(*train_args(data, root, []))
    assert result.code == 0, result.err
    (run,) = run_folders(root)
    assert (run / "last.pt").is_file() and (run / "best.pt").is_file()
    assert "skipping unreadable image" not in caplog.text + result.err


def test_unusual_images_in_other_formats(bases, cli, tmp_path):
    """A CSV with a BOM and CRLF line ends, and a DLC project in a path with spaces, pass check."""
    folder = copy_base(bases.csv, tmp_path / "csv")
    path = folder / "labels.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    assert cli("check", path).code == 0
    project = copy_base(bases.dlc, tmp_path / "my project \u00e9")
    result = cli("check", project)
    assert result.code == 0, result.err
    shutil.rmtree(project)


def test_unquoted_off_in_yaml_is_the_value_off(tmp_path):
    """YAML 1.1 reads ``off`` as false; train.amp's "off" must still work unquoted."""
    from keypointer.config import load_config

    assert load_config(None, ["train.amp=off"]).train.amp == "off"
    path = tmp_path / "config.yaml"
    path.write_text("train:\n  amp: off\n")
    assert load_config(path).train.amp == "off"
