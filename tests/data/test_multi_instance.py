"""Several instances per image, with identities, through every reader and writer, and what
``keypointer check`` says about them."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from keypointer.commands.check import check_command, per_image_text, tracks_text
from keypointer.data.check import SAME_TRACK, validate
from keypointer.data.coco import read_coco, write_coco
from keypointer.data.csv_format import read_csv, write_csv
from keypointer.data.formats import convert, load_dataset
from keypointer.data.types import Instance, KeypointSet, Sample
from keypointer.data.yolo import read_yolo, write_yolo
from keypointer.errors import DataError
from keypointer.skeleton import Skeleton

W, H = 40, 30


def write_png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((H, W, 3), 90, np.uint8))
    return path


def make_kset(root: Path, images: list[list[tuple[str | None, list]]]) -> KeypointSet:
    samples = []
    for n, insts in enumerate(images):
        image = write_png(root / "src" / f"f{n}.png")
        made = [
            Instance(np.array(p, float), None, f"r{n}.{j}", t) for j, (t, p) in enumerate(insts)
        ]
        samples.append(Sample(image, W, H, made, n + 1, f"image {n}"))
    return KeypointSet(Skeleton(("a", "b", "c"), ((0, 1),)), samples, root / "src" / "x.json")


def labelled_instances(kset: KeypointSet) -> list[list[tuple]]:
    """Per image: (track, labelled mask, labelled x/y) of the instances with a labelled point."""
    return [
        [
            (i.track, tuple(i.labelled), np.round(i.keypoints[i.labelled, :2], 4).tolist())
            for i in s.instances
            if i.labelled.any()
        ]
        for s in kset.samples
    ]


COORD = st.floats(0, W - 1, allow_nan=False).map(lambda v: round(v, 2))
POINT = st.tuples(COORD, COORD, st.sampled_from([0, 1, 2]))
INSTANCE = st.lists(POINT, min_size=3, max_size=3).filter(lambda p: any(v for *_, v in p))
TRACK = st.sampled_from(["1", "7", "mouse A", "b,c", None])
IMAGES = st.lists(st.lists(st.tuples(TRACK, INSTANCE), min_size=1, max_size=4), min_size=1,
                  max_size=4)  # fmt: skip
FILE_IO = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))


@FILE_IO
@given(images=IMAGES)
def test_coco_round_trip_keeps_instances_order_and_track_ids(images):
    with tempfile.TemporaryDirectory() as tmp:
        kset = make_kset(Path(tmp), images)
        path = write_coco(kset, Path(tmp) / "src" / "out.json")
        doc = json.loads(path.read_text())
        back = read_coco(path)
    assert labelled_instances(back) == labelled_instances(kset)
    assert [i.keypoints[:, 2].tolist() for s in back.samples for i in s.instances] == [
        i.keypoints[:, 2].tolist() for s in kset.samples for i in s.instances
    ]
    ids = [a.get("track_id") for a in doc["annotations"]]
    want = [i.track for s in kset.samples for i in s.instances]
    assert ids == [int(t) if t in ("1", "7") else t for t in want]  # numbers as numbers


@FILE_IO
@given(images=IMAGES)
def test_csv_round_trip_keeps_instances_order_and_tracks(images):
    with tempfile.TemporaryDirectory() as tmp:
        kset = make_kset(Path(tmp), images)
        back = read_csv(write_csv(kset, Path(tmp) / "src" / "out.csv"))
    assert labelled_instances(back) == labelled_instances(kset)


@FILE_IO
@given(images=IMAGES)
def test_yolo_round_trip_keeps_every_instance(images):
    with tempfile.TemporaryDirectory() as tmp:
        kset = make_kset(Path(tmp), images)
        back = read_yolo(write_yolo(kset, Path(tmp) / "yolo"))
    by_name = {s.image.name: s for s in back.samples}
    for sample in kset.samples:
        got = by_name[sample.image.name].instances
        assert len(got) == len(sample.instances) and all(i.track is None for i in got)
        for a, b in zip(sample.instances, got, strict=True):
            np.testing.assert_array_equal(a.keypoints[:, 2], b.keypoints[:, 2])
            lab = a.labelled
            np.testing.assert_allclose(a.keypoints[lab, :2], b.keypoints[lab, :2], atol=1e-4)


def test_coco_track_ids_read_as_text_and_bad_ones_are_refused(tmp_path):
    write_png(tmp_path / "a.png")
    doc = {
        "images": [{"id": 1, "file_name": "a.png"}],
        "annotations": [
            {"id": i, "image_id": 1, "category_id": 1, "keypoints": [1, 2, 2], **extra}
            for i, extra in enumerate([{"track_id": 4}, {"track_id": "x"}, {}, {"track_id": None}])
        ],
        "categories": [{"id": 1, "keypoints": ["a"]}],
    }
    (tmp_path / "a.json").write_text(json.dumps(doc))
    kset = read_coco(tmp_path / "a.json")
    assert [i.track for i in kset.samples[0].instances] == ["4", "x", None, None]
    doc["annotations"][0]["track_id"] = 1.5
    (tmp_path / "a.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="track_id must be an integer or a string") as err:
        read_coco(tmp_path / "a.json")
    assert err.value.record == "annotation id 0"


@pytest.mark.parametrize("column", ["track", "Individual"])
def test_csv_identity_column_anywhere(tmp_path, column):
    write_png(tmp_path / "a.png")
    text = f"image,a_x,a_y,{column},b_x,b_y\na.png,1,2,m1,3,4\na.png,5,6,,7,8\na.png,9,9,m2,,\n"
    (tmp_path / "l.csv").write_text(text)
    kset = read_csv(tmp_path / "l.csv")
    assert kset.skeleton.names == ("a", "b")
    assert [i.track for i in kset.samples[0].instances] == ["m1", None, "m2"]
    np.testing.assert_array_equal(kset.samples[0].instances[1].keypoints, [[5, 6, 2], [7, 8, 2]])
    (tmp_path / "l.csv").write_text("image,track,individual,a_x,a_y\na.png,1,2,3,4\n")
    with pytest.raises(DataError, match="two identity columns"):
        read_csv(tmp_path / "l.csv")


def test_check_counts_instances_per_image_tracks_and_a_repeated_track(tmp_path):
    p = [[1, 2, 2], [3, 4, 2], [0, 0, 0]]
    kset = make_kset(tmp_path, [[("x", p), ("y", p)], [("x", p)], [("x", p), ("x", p)], []])
    report = validate(kset)
    assert report.per_image == {0: 1, 1: 1, 2: 2}
    assert report.tracks == {"x": 4, "y": 1}
    assert report.counts[SAME_TRACK] == 1
    assert any("image 2: track 'x' names 2 instances of one image" in w for w in report.warnings)
    assert per_image_text(report.per_image) == (
        "min 0 / median 1.5 / max 2: 0 x 1 image, 1 x 1 image, 2 x 2 images"
    )
    assert tracks_text(report.tracks) == "2: x (4 instances), y (1)"
    assert tracks_text({}) == "none (no identities in the labels)"
    many = {f"t{i}": 10 - i for i in range(10)}
    assert tracks_text(many, shown=2) == "10: t0 (10 instances), t1 (9), and 8 more"


def test_check_command_prints_them(tmp_path):
    p = [[1, 2, 2], [3, 4, 2], [0, 0, 0]]
    kset = make_kset(tmp_path, [[("x", p), (None, p)], [("x", p)]])
    path = write_coco(kset, tmp_path / "src" / "l.json")
    console = Console(width=200, record=True)
    check_command(path, console=console)
    text = console.export_text()
    assert "instances per image │ min 1 / median 1.5 / max 2: 1 x 1 image, 2 x 1 image" in text
    assert "tracks              │ 1: x (2 instances)" in text


def test_convert_keeps_tracks_through_every_format_but_yolo(tmp_path, caplog):
    p = [[1, 2, 2], [3, 4, 2], [0, 0, 0]]
    kset = make_kset(tmp_path, [[("m1", p), ("m2", p)], [("m2", p)]])
    src = write_coco(kset, tmp_path / "src" / "l.json")
    csv_path = convert(src, tmp_path / "c" / "l.csv", to="csv")
    dlc = convert(csv_path, tmp_path / "dlc", to="dlc")
    coco = convert(dlc, tmp_path / "back.json", to="coco")
    for path in (csv_path, dlc, coco):
        assert labelled_instances(load_dataset(path)) == labelled_instances(kset)
    with caplog.at_level(logging.WARNING, logger="keypointer"):
        yolo = convert(coco, tmp_path / "yolo", to="yolo")
    assert "YOLO pose labels have no identity" in caplog.text
    assert load_dataset(yolo).num_instances == 3
