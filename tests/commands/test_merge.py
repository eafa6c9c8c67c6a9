"""``keypointer merge``: B's labels win on shared images, counts, formats, skeleton mismatch,
existing outputs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import cli

from keypointer.commands.merge import merge_command
from keypointer.data.formats import load_dataset, write_coco, write_csv, write_dlc
from keypointer.data.types import KeypointSet
from keypointer.errors import ConfigError, DataError
from keypointer.skeleton import Skeleton


@pytest.fixture(scope="module")
def base(synth) -> KeypointSet:
    return load_dataset(synth)


def _shifted(kset: KeypointSet, dx: float) -> KeypointSet:
    """The same images with every labelled point moved dx px to the right."""
    samples = []
    for s in kset.samples:
        insts = []
        for inst in s.instances:
            kp = inst.keypoints.copy()
            kp[kp[:, 2] > 0, 0] += dx
            insts.append(replace(inst, keypoints=kp))
        samples.append(replace(s, instances=insts))
    return replace(kset, samples=samples)


def _xs(kset: KeypointSet) -> dict[str, np.ndarray]:
    return {s.image.name: s.instances[0].keypoints[:, 0] for s in kset.samples}


def test_b_wins_on_shared_images_and_the_rest_is_added(base, synth, tmp_path, capsys):
    a = write_coco(base.subset(range(0, 6)), synth.parent / "a.json")
    b = write_csv(_shifted(base, 0.5).subset(range(4, 8)), synth.parent / "b.csv")
    out = tmp_path / "merged.json"
    assert cli("merge", a, b, "--out", out) == 0
    printed = capsys.readouterr().out
    assert "2 images of" in printed and "relabelled" in printed and "2 added" in printed
    merged = load_dataset(out)
    assert len(merged.samples) == 8
    xs, before = _xs(merged), _xs(base)
    for i, s in enumerate(base.samples):
        name = s.image.name
        expected = before[name] + (0.5 if i >= 4 else 0.0) * (s.instances[0].labelled)
        np.testing.assert_allclose(xs[name], expected)
    assert cli("check", out) == 0


def test_the_output_format_follows_the_extension_or_format(base, synth, tmp_path):
    a = write_coco(base.subset(range(0, 3)), synth.parent / "a3.json")
    b = write_coco(base.subset(range(3, 5)), synth.parent / "b3.json")
    result = merge_command(a, b, tmp_path / "m.csv", quiet=True)
    assert result == {"replaced": 0, "added": 2, "images": 5, "out": tmp_path / "m.csv"}
    assert len(load_dataset(tmp_path / "m.csv", "csv").samples) == 5
    folder = tmp_path / "yolo"
    merge_command(a, b, folder, format="yolo", quiet=True)
    assert len(load_dataset(folder / "data.yaml").samples) == 5
    # A folder without --format: A's format (COCO: annotations.json inside it).
    merge_command(a, b, tmp_path / "plain", quiet=True)
    assert (tmp_path / "plain" / "annotations.json").is_file()


def test_two_deeplabcut_projects_stay_one_video_folder(base, tmp_path, capsys):
    project_a = write_dlc(base.subset(range(0, 5)), tmp_path / "project")
    project_b = write_dlc(_shifted(base, 1.0).subset(range(3, 8)), tmp_path / "suggested")
    out = tmp_path / "merged"
    result = merge_command(project_a, project_b, out, quiet=True)
    assert (result["replaced"], result["added"], result["images"]) == (2, 3, 8)
    assert [p.name for p in (out / "labeled-data").iterdir()] == ["images"]
    merged = load_dataset(out)
    xs, before = _xs(merged), _xs(base)
    for i, s in enumerate(base.samples):
        moved = 1.0 if i >= 3 else 0.0
        np.testing.assert_allclose(
            xs[s.image.name], before[s.image.name] + moved * s.instances[0].labelled
        )
    assert cli("check", out) == 0
    assert not list(out.glob(".merge-*"))  # the staging tree is gone


def test_same_names_in_another_order_are_reordered(base, synth, tmp_path):
    k = base.skeleton.num_keypoints
    order = list(reversed(range(k)))
    flipped = replace(
        _shifted(base, 0.0).subset(range(0, 2)),
        skeleton=Skeleton(tuple(base.skeleton.names[i] for i in order)),
    )
    flipped.samples = [
        replace(s, instances=[replace(i, keypoints=i.keypoints[order]) for i in s.instances])
        for s in flipped.samples
    ]
    a = write_coco(base.subset(range(0, 2)), synth.parent / "a_order.json")
    b = write_coco(flipped, synth.parent / "b_order.json")
    result = merge_command(a, b, tmp_path / "m.json", quiet=True)
    assert result["replaced"] == 2
    merged = load_dataset(tmp_path / "m.json")
    assert merged.skeleton.names == base.skeleton.names
    for m, s in zip(merged.samples, base.samples[:2], strict=True):
        np.testing.assert_allclose(m.instances[0].keypoints, s.instances[0].keypoints)


def test_different_skeletons_exit_2_naming_both(base, synth, tmp_path, capsys):
    a = write_coco(base.subset(range(0, 2)), synth.parent / "a_sk.json")
    other = replace(
        base.subset(range(2, 4)), skeleton=Skeleton(("nose",) + base.skeleton.names[1:])
    )
    b = write_coco(other, synth.parent / "b_sk.json")
    assert cli("merge", a, b, "--out", tmp_path / "m.json") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert str(a) in err and str(b) in err and "different skeletons" in err
    assert "'nose'" in err and "'head'" in err
    assert not (tmp_path / "m.json").exists()


def test_existing_output_needs_overwrite_and_inputs_are_never_replaced(base, synth, tmp_path):
    a = write_coco(base.subset(range(0, 2)), synth.parent / "a_ow.json")
    b = write_coco(base.subset(range(2, 4)), synth.parent / "b_ow.json")
    out = tmp_path / "m.json"
    out.write_text("mine")
    with pytest.raises(DataError, match="--overwrite"):
        merge_command(a, b, out, quiet=True)
    assert out.read_text() == "mine"
    merge_command(a, b, out, overwrite=True, quiet=True)
    assert len(load_dataset(out).samples) == 4
    with pytest.raises(DataError, match="input"):
        merge_command(a, b, a, overwrite=True, quiet=True)
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    with pytest.raises(DataError, match="not empty"):
        merge_command(a, b, full, format="dlc", quiet=True)
    with pytest.raises(ConfigError, match="unknown format"):
        merge_command(a, b, tmp_path / "z", format="bogus", quiet=True)
    assert cli("merge", a, tmp_path / "missing.json", "--out", tmp_path / "n.json") == 2


def test_relative_keys_match_across_folders(base, tmp_path):
    """A copy of project A elsewhere still names the same images (labeled-data/<v>/<file>)."""
    one = write_dlc(base.subset(range(0, 2)), tmp_path / "one")
    two = write_dlc(_shifted(base, 2.0).subset(range(0, 2)), tmp_path / "two")
    result = merge_command(one, two, tmp_path / "m.json", quiet=True)
    assert (result["replaced"], result["added"]) == (2, 0)
    assert Path(tmp_path / "m.json").is_file()
