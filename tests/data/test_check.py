from __future__ import annotations

import io
import json

import numpy as np
import pytest
from helpers import cli_captured, cli_subprocess
from rich.console import Console

from keypointer.commands.check import check_command
from keypointer.data.check import (
    BAD_BOX,
    NO_INSTANCES,
    NO_LABELS,
    OUTSIDE,
    SAME_IMAGE,
    UNREAD,
    validate,
)
from keypointer.data.coco import CROWD, write_coco
from keypointer.data.types import Instance, KeypointSet, Sample
from keypointer.errors import DataError
from keypointer.skeleton import Skeleton


def test_clean_set_passes_and_counts(toy_kset):
    report = validate(toy_kset)
    assert report.num_images == 3 and report.num_instances == 3
    assert report.labelled == {"nose": 3, "left_eye": 2, "right_eye": 3, "tail": 2}
    assert report.image_sizes == (40, 48, 64, 50)
    assert report.warnings == [] and report.counts == {}
    assert report.cleaned.skeleton is toy_kset.skeleton


def test_outside_points_become_unlabelled_without_touching_the_input(toy_kset):
    kp = toy_kset.samples[2].instances[0].keypoints
    kp[0, :2] = (45.0, 3.0)  # x beyond the 40 px width
    kp[2, :2] = (-0.9, 49.9)  # within half a pixel of the edge: kept
    report = validate(toy_kset)
    assert report.counts == {OUTSIDE: 1}
    assert report.warnings == ["image c, r3: nose outside the 40x50 image (set unlabelled)"]
    cleaned = report.cleaned.samples[2].instances[0].keypoints
    np.testing.assert_array_equal(cleaned[:, 2], [0, 0, 2, 1])
    assert kp[0, 2] == 2  # the input set is unchanged
    assert report.labelled["nose"] == 2


def test_unlabelled_instances_and_empty_images_are_left_out(toy_kset):
    toy_kset.samples[1].instances[0].keypoints[:, 2] = 0
    toy_kset.samples[0].instances.append(Instance(np.zeros((4, 3)), (1, 1, 0, 5), "r4"))
    toy_kset.samples[2].instances[0].bbox = (2.0, 2.0, 0.0, 5.0)
    toy_kset.dropped = {CROWD: 2}
    report = validate(toy_kset)
    assert report.counts == {CROWD: 2, NO_LABELS: 2, NO_INSTANCES: 1, BAD_BOX: 2}
    assert [s.image.name for s in report.cleaned.samples] == ["a.png", "c.png"]
    assert report.cleaned.samples[1].instances[0].bbox is None
    assert report.num_instances == 2 and report.total_instances == 4


def test_nan_only_matters_when_labelled(toy_kset):
    kp = toy_kset.samples[0].instances[0].keypoints
    kp[3, :2] = np.nan  # unlabelled
    assert validate(toy_kset).cleaned.samples[0].instances[0].keypoints[3].tolist() == [0, 0, 0]
    kp[1, 1] = np.inf
    with pytest.raises(
        DataError, match="'left_eye' is labelled but its coordinates are 14, inf"
    ) as e:
        validate(toy_kset)
    assert e.value.file == str(toy_kset.source)
    assert e.value.record == "image a, r1"


def _set_v(value):
    return lambda k: k.samples[1].instances[0].keypoints.__setitem__((0, 2), value)


def _set(attr, value, on_instance=True):
    def change(k):
        target = k.samples[1].instances[0] if on_instance else k.samples[1]
        setattr(target, attr, value(k) if callable(value) else value)

    return change


@pytest.mark.parametrize(
    "change, message",
    [
        (_set_v(3), "visibility 3"),
        (_set_v(-1), "visibility -1"),
        (_set_v(np.nan), "visibility nan"),
        (_set("keypoints", np.zeros((5, 3))), "5 keypoints but the skeleton has 4"),
        (_set("bbox", (0, np.nan, 1, 1)), "not finite"),
        (_set("id", 1, on_instance=False), "duplicate image id 1"),
        (
            _set("image", lambda k: k.samples[1].image.with_name("gone.png"), on_instance=False),
            "gone.png not found",
        ),
    ],
)
def test_fatal_problems_name_the_record(toy_kset, change, message):
    change(toy_kset)
    with pytest.raises(DataError, match=message) as err:
        validate(toy_kset)
    assert err.value.file == str(toy_kset.source)
    assert err.value.record.startswith("image b")


@pytest.mark.parametrize(
    "skeleton, message",
    [
        (Skeleton(("a", "b"), ((0, 2),)), r"edge \(0, 2\)"),
        (Skeleton(("a", "b"), (), ((1, 5),)), r"flip pair \(1, 5\)"),
        (Skeleton(("a", "b"), (), ((1, 1),)), r"flip pair \(1, 1\) pairs keypoint 'b' with itself"),
        (Skeleton(("a", "a")), "duplicate keypoint names"),
    ],
)
def test_bad_skeleton_is_fatal(skeleton, message):
    kset = KeypointSet(skeleton, [])
    with pytest.raises(DataError, match=message):
        validate(kset)


def test_empty_and_unlabelled_sets_are_fatal(toy_kset):
    with pytest.raises(DataError, match="no images"):
        validate(KeypointSet(toy_kset.skeleton, [], toy_kset.source))
    for s in toy_kset.samples:
        s.instances[0].keypoints[:, 2] = 0
    with pytest.raises(DataError, match="nothing to train on"):
        validate(toy_kset)


def test_corrupt_image_fatal_in_check_and_read_only_when_needed_otherwise(toy_kset):
    bad = toy_kset.samples[1].image
    bad.write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="b.png cannot be read") as err:
        validate(toy_kset)
    assert err.value.record == "image b"
    # Without check_images its size (known from the labels) is enough: not read at all.
    assert validate(toy_kset, check_images=False).warnings == []
    toy_kset.samples[1].width = 0
    report = validate(toy_kset, check_images=False)
    assert report.counts == {UNREAD: 1}
    assert report.warnings == [
        "image b: image file cannot be read: not a readable image (corrupt or unsupported format)"
    ]


def test_sizes_come_from_the_files(toy_kset):
    toy_kset.samples[0].width, toy_kset.samples[0].height = 0, 0
    toy_kset.samples[2].width = 41
    report = validate(toy_kset)
    assert (report.cleaned.samples[0].width, report.cleaned.samples[0].height) == (64, 48)
    assert report.cleaned.samples[2].width == 40
    assert report.warnings == [
        "image c: the labels say 41x50 but the image is 40x50; using the image's size"
    ]


def test_check_command_prints_summary(tmp_path, toy_kset):
    toy_kset.samples[0].instances[0].keypoints[0, :2] = (70, 5)  # just outside: a warning
    path = write_coco(toy_kset, tmp_path / "src" / "labels.json")
    doc = json.loads(path.read_text())
    doc["annotations"].append(dict(doc["annotations"][0], id=99, iscrowd=1))
    path.write_text(json.dumps(doc))
    out = io.StringIO()
    report = check_command(path, console=Console(file=out, width=120))
    text = out.getvalue()
    assert report.counts == {CROWD: 1, OUTSIDE: 1}
    for expected in ("images", "3 to train on (3 in the labels)", "40x48 .. 64x50", "left_eye",
                     CROWD, "annotation id 1: nose outside the 64x48 image", "OK"):  # fmt: skip
        assert expected in text, expected


def test_cli_check_exit_codes(tmp_path, toy_kset):
    path = write_coco(toy_kset, tmp_path / "src" / "labels.json")
    ok = cli_subprocess("check", path, timeout=120)
    assert ok.code == 0, ok.err
    assert "no problems found" in ok.out
    toy_kset.samples[2].image.unlink()
    bad = cli_subprocess("check", path, timeout=120)
    assert bad.code == 2
    assert "Traceback" not in bad.err
    assert bad.err.strip().splitlines() == [
        f"error: {path} (image id 3 (cam2/c.png)): image file {toy_kset.samples[2].image} not found"
    ]


def test_many_images_with_progress(tmp_path, png):
    img = png(tmp_path / "one.png", 8, 8)
    samples = [
        Sample(
            img, 8, 8, [Instance(np.array([[1.0, 1.0, 2.0]]), None, f"line {i}")], i, f"line {i}"
        )
        for i in range(150)
    ]
    report = validate(KeypointSet(Skeleton(("p",)), samples, tmp_path / "l.csv"), progress=True)
    assert report.num_instances == 150


def test_a_box_that_misses_the_image_or_its_keypoints_is_fatal(toy_kset):
    inst = toy_kset.samples[0].instances[0]  # image a: 64x48, keypoints near (10, 11)
    inst.bbox = (500.0, 500.0, 20.0, 20.0)
    with pytest.raises(
        DataError, match=r"box \[500, 500, 20, 20\] lies entirely outside the 64x48"
    ):
        validate(toy_kset)
    inst.bbox = (40.0, 30.0, 20.0, 15.0)  # inside the image, away from every keypoint
    with pytest.raises(DataError, match="holds none of the instance's 3 labelled keypoints") as e:
        validate(toy_kset)
    assert e.value.record == "image a, r1"
    inst.bbox = (11.0, 13.0, 2.0, 2.0)  # tight: the keypoints just outside it are fine
    assert validate(toy_kset).warnings == []


def test_the_same_image_under_two_ids_is_a_warning(toy_kset):
    toy_kset.samples[2].image = toy_kset.samples[0].image.parent / ".." / "cam1" / "a.png"
    toy_kset.samples[2].width, toy_kset.samples[2].height = 64, 48
    report = validate(toy_kset)
    assert report.warnings == [
        "image c: image file a.png is also listed as image a; its labels count twice"
    ]
    assert report.counts == {SAME_IMAGE: 1}
    assert report.num_instances == 3


def _cli_check(path, capsys) -> tuple[int, str]:
    result = cli_captured(capsys, "check", path)
    return result.code, result.out + result.err


def _person_file(tmp_path, png, keypoints, skeleton) -> object:
    png(tmp_path / "a.png", 64, 48)
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "keypoints": keypoints}],
        "categories": [{"id": 1, "name": "person", "keypoints": [f"p{i}" for i in range(14)],
                        "skeleton": skeleton}],
    }  # fmt: skip
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(doc))
    return path


def test_cli_check_reads_nested_triplets_and_warns_once_about_edges(tmp_path, png, capsys):
    nested = [[10 + i, 20, 2] for i in range(14)]
    code, out = _cli_check(_person_file(tmp_path, png, nested, [[1, 2]]), capsys)
    assert code == 0, out
    assert "no problems found" in out
    coco17 = [[16, 14], [14, 12], [17, 15], [15, 13], [1, 2]]
    path = _person_file(tmp_path, png, [v for t in nested for v in t], coco17)
    code, out = _cli_check(path, capsys)
    assert code == 0, out
    warnings = [line for line in out.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1, out
    flat = " ".join(out.split())  # rich wraps long lines
    assert "category id 1 'person'" in flat and "[17, 15]" in flat and "OK: 1 warning" in flat
