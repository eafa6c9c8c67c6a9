"""``keypointer merge``: an image is the image itself (the same file, or the same relative path
AND the same pixels), not its name; clashing COCO ids are renumbered; messages name the file
at fault."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import cli

from keypointer.commands.merge import merge_command
from keypointer.data.formats import load_dataset, write_coco
from keypointer.data.images import read_image
from keypointer.data.synthetic import generate


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory) -> tuple[Path, Path]:
    """Two synthetic sets of 4 images, both images/000000.png.. with ids 1..4: one name, two
    different pictures each."""
    root = tmp_path_factory.mktemp("sets")
    one = generate(root / "s1", num_images=4, seed=1, size=64)
    two = generate(root / "s2", num_images=4, seed=2, size=64)
    return one, two


def _pictures(path: Path) -> list[bytes]:
    return sorted(read_image(s.image).tobytes() for s in load_dataset(path).samples)


@pytest.mark.parametrize("out_name, fmt", [("m.json", None), ("m.csv", None), ("y", "yolo"),
                                           ("d", "dlc")])  # fmt: skip
def test_same_names_different_pictures_are_both_kept(two_sets, tmp_path, out_name, fmt, capsys):
    one, two = two_sets
    out = tmp_path / out_name
    assert cli("merge", one, two, "--out", out, *(["--format", fmt] if fmt else [])) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "0 images of" in printed and "4 added" in printed and "8 images" in printed
    labels = {"y": out / "data.yaml"}.get(out_name, out)
    merged = load_dataset(labels)
    assert len(merged.samples) == 8
    assert len({s.image.resolve() for s in merged.samples}) == 8  # distinct names
    assert _pictures(labels) == sorted(_pictures(one) + _pictures(two))
    assert cli("check", labels) == 0


def test_clashing_coco_ids_are_renumbered(two_sets, tmp_path):
    one, two = two_sets
    result = merge_command(one, two, tmp_path / "m.json", quiet=True)
    assert (result["replaced"], result["added"]) == (0, 4)
    doc = json.loads((tmp_path / "m.json").read_text())
    ids = [img["id"] for img in doc["images"]]
    assert ids[:4] == [1, 2, 3, 4] and sorted(ids) == list(range(1, 9))  # A's ids kept
    by_id = {img["id"]: img["file_name"] for img in doc["images"]}
    assert sorted({a["image_id"] for a in doc["annotations"]}) == list(range(1, 9))
    assert all("s2/" in by_id[i] for i in range(5, 9))


def test_a_copy_elsewhere_is_the_same_image_and_a_changed_one_is_not(two_sets, tmp_path):
    one, _ = two_sets
    copy = tmp_path / "copy"
    shutil.copytree(one.parent, copy)
    # A frame saved again with other PNG settings: other bytes, the same pixels.
    first = copy / "images" / "000000.png"
    cv2.imwrite(str(first), cv2.imread(str(first)), [cv2.IMWRITE_PNG_COMPRESSION, 0])
    assert first.read_bytes() != (one.parent / "images" / "000000.png").read_bytes()
    # Another picture under a shared name.
    changed = copy / "images" / "000001.png"
    cv2.imwrite(str(changed), 255 - cv2.imread(str(changed)))
    result = merge_command(one, copy / one.name, tmp_path / "m.json", quiet=True)
    assert (result["replaced"], result["added"], result["images"]) == (3, 1, 5)
    merged = load_dataset(tmp_path / "m.json")
    files = [s.image.resolve() for s in merged.samples]
    assert changed.resolve() in files and (one.parent / "images" / "000001.png").resolve() in files
    assert len(set(files)) == 5


def test_a_hard_link_is_the_same_image(two_sets, tmp_path):
    one, _ = two_sets
    other = tmp_path / "other"
    (other / "pictures").mkdir(parents=True)
    kset = load_dataset(one)
    linked = []
    for s in kset.samples[:2]:
        target = other / "pictures" / f"linked_{s.image.name}"
        os.link(s.image, target)
        linked.append(replace(s, image=target))
    b = write_coco(replace(kset, samples=linked), other / "b.json")
    result = merge_command(one, b, tmp_path / "m.json", quiet=True)
    assert (result["replaced"], result["added"], result["images"]) == (2, 0, 4)


def test_a_problem_in_b_names_b(two_sets, tmp_path, capsys):
    one, two = two_sets
    bad = tmp_path / "bad"
    shutil.copytree(two.parent, bad)
    doc = json.loads((bad / two.name).read_text())
    doc["annotations"][0]["keypoints"][0] = 1e6  # far outside the image
    (bad / two.name).write_text(json.dumps(doc))
    assert cli("merge", one, bad / two.name, "--out", tmp_path / "m.json") == 2
    err = capsys.readouterr().err
    assert f"error: {bad / two.name}" in err and "far outside" in err
    assert str(one) not in err
    assert not (tmp_path / "m.json").exists()


def test_replaced_labels_are_bs(two_sets, tmp_path):
    one, _ = two_sets
    kset = load_dataset(one)
    moved = [
        replace(s, instances=[replace(i, keypoints=i.keypoints + [1.0, 0.0, 0.0])
                              for i in s.instances])
        for s in kset.samples[:2]
    ]  # fmt: skip
    b = write_coco(replace(kset, samples=moved), one.parent / "b_moved.json")
    merge_command(one, b, tmp_path / "m.json", quiet=True)
    merged = {s.image.name: s for s in load_dataset(tmp_path / "m.json").samples}
    for s in kset.samples:
        expected = s.instances[0].keypoints[:, 0] + (1.0 if s in kset.samples[:2] else 0.0)
        got = merged[s.image.name].instances[0].keypoints[:, 0]
        labelled = s.instances[0].labelled
        np.testing.assert_allclose(got[labelled], expected[labelled])
