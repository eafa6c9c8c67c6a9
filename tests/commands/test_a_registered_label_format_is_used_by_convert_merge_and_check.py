"""A label format is its reader, its writer and one :data:`REGISTRY` entry: once registered,
``convert``, ``merge``, ``check`` and the loss warnings use it with nothing else changed."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import cli

from keypointer.commands.merge import merge_command
from keypointer.data.coco import read_coco, write_coco
from keypointer.data.formats import REGISTRY, Holds, LabelFormat, convert, load_dataset
from keypointer.data.types import Instance, KeypointSet, Sample
from keypointer.skeleton import Skeleton

# A COCO file under another name and suffix, that keeps no boxes: enough to be a format of
# its own, with a loss to warn about.
TINY = LabelFormat(
    name="tiny",
    title="Tiny",
    read=lambda path, images, split, category: read_coco(path, images, category),
    write=lambda kset, target, scorer: write_coco(kset, target),
    file_name="labels.tiny",
    holds=Holds(boxes=False),
)


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(REGISTRY, "tiny", TINY)


def _labels(folder: Path, n: int, box: bool, shade: int = 0) -> Path:
    skeleton = Skeleton(("a", "b"), ((0, 1),))
    samples = []
    for i in range(n):
        image = folder / f"f{i}.png"
        image.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(image), np.full((16, 16, 3), 30 * i + shade, np.uint8))
        points = np.array([[3.0 + i, 4.0, 2.0], [9.0, 10.0 - i, 2.0]])
        bbox = (1.0, 1.0, 14.0, 14.0) if box else None
        samples.append(Sample(image, 16, 16, [Instance(points, bbox, f"image {i}")], i + 1))
    return write_coco(KeypointSet(skeleton, samples, folder), folder / "l.json")


def test_convert_writes_and_reads_back_a_registered_format(tiny, tmp_path, caplog):
    src = _labels(tmp_path / "src", 3, box=True)
    with caplog.at_level(logging.WARNING, logger="keypointer"):
        out = convert(src, tmp_path / "out", to="tiny")
    assert out == (tmp_path / "out" / "labels.tiny").resolve()  # its file name in a folder
    assert "Tiny has no boxes: the boxes of 3 instances are dropped" in caplog.text
    back = load_dataset(out, format="tiny")
    assert len(back.samples) == 3
    np.testing.assert_allclose(back.samples[1].instances[0].keypoints[:, :2], [[4, 4], [9, 9]])
    assert cli("check", out, "--format", "tiny") == 0


def test_merge_picks_a_registered_format_by_its_file_suffix(tiny, tmp_path):
    a = _labels(tmp_path / "a", 2, box=False)
    b = _labels(tmp_path / "b", 3, box=False, shade=1)  # other pictures: 3 images added
    done = merge_command(a, b, tmp_path / "merged.tiny", quiet=True)
    assert done["out"] == (tmp_path / "merged.tiny").resolve()
    assert (done["replaced"], done["added"]) == (0, 3)
    assert len(load_dataset(done["out"], format="tiny").samples) == 5


def test_an_unregistered_format_is_named_with_the_choices(tmp_path):
    src = _labels(tmp_path / "src", 1, box=True)
    assert cli("convert", src, tmp_path / "out", "--to", "tiny") == 2
    assert "tiny" not in REGISTRY
