from __future__ import annotations

import numpy as np
import pytest
import yaml
from helpers import cli

from keypointer.data.formats import convert, detect_format, load_dataset
from keypointer.data.yolo import label_path, read_yolo, write_yolo
from keypointer.errors import DataError

DATA = {
    "path": ".",
    "train": "images/train",
    "val": "images/val",
    "kpt_shape": [3, 3],
    "flip_idx": [0, 2, 1],
    "names": {0: "animal"},
}


def dataset(tmp_path, png, data=None, labels=None, ndim=3):
    data = dict(DATA if data is None else data)
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(data))
    png(tmp_path / "images/train/a.png", 100, 50)
    png(tmp_path / "images/train/b.png", 100, 50)
    png(tmp_path / "images/val/c.png", 20, 10)
    (tmp_path / "labels/train").mkdir(parents=True, exist_ok=True)
    (tmp_path / "labels/val").mkdir(parents=True, exist_ok=True)
    default = (
        "0 0.5 0.5 0.2 0.4 0.1 0.2 2 0.3 0.4 1 0 0 0\n"
        "\n"
        "1 0.5 0.5 1 1 0.5 0.5 2 0.6 0.5 2 0.4 0.5 2\n"
    )
    (tmp_path / "labels/train/a.txt").write_text(labels or default)
    (tmp_path / "labels/val/c.txt").write_text("0 0.5 0.5 1 1 0.25 0.5 2 0.5 0.5 2 0.75 0.5 2\n")
    return tmp_path / "data.yaml"


def test_reads_normalised_labels_in_pixels(tmp_path, png):
    path = dataset(tmp_path, png)
    assert detect_format(path) == "yolo" and detect_format(tmp_path) == "yolo"
    kset = load_dataset(tmp_path)
    assert kset.skeleton.names == ("kp0", "kp1", "kp2")
    assert kset.skeleton.flip_pairs == ((1, 2),)
    assert [s.id for s in kset.samples] == ["images/train/a.png", "images/train/b.png"]
    a, b = kset.samples
    assert (a.width, a.height) == (100, 50)
    assert [i.record for i in a.instances] == [
        "labels/train/a.txt line 1",
        "labels/train/a.txt line 3",
    ]
    np.testing.assert_allclose(a.instances[0].keypoints, [[10, 10, 2], [30, 20, 1], [0, 0, 0]])
    np.testing.assert_allclose(a.instances[0].bbox, (40, 15, 20, 20))
    assert b.instances == []  # no label file: an image without objects
    val = load_dataset(path, split="val")
    assert val.samples[0].id == "images/val/c.png"
    np.testing.assert_allclose(val.samples[0].instances[0].keypoints[:, 0], [5, 10, 15])


def test_two_dim_keypoints_zero_means_unlabelled(tmp_path, png):
    data = dict(DATA, kpt_shape=[3, 2], kpt_names=["head", "left", "right"])
    path = dataset(tmp_path, png, data, labels="0 0.5 0.5 1 1 0.1 0.2 0 0 0.5 0.5\n")
    kset = read_yolo(path)
    assert kset.skeleton.names == ("head", "left", "right")
    np.testing.assert_allclose(kset.samples[0].instances[0].keypoints[:, 2], [2, 0, 2])


def test_image_list_file(tmp_path, png):
    dataset(tmp_path, png)
    (tmp_path / "train.txt").write_text("./images/train/a.png\n\n")
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(dict(DATA, train="train.txt")))
    kset = read_yolo(tmp_path / "data.yaml")
    assert [s.image.name for s in kset.samples] == ["a.png"]


def test_label_path_rule(tmp_path):
    assert label_path(tmp_path / "images/x/images/a.b.jpg") == tmp_path / "images/x/labels/a.b.txt"
    assert label_path(tmp_path / "pics/a.jpg") == tmp_path / "pics/a.txt"


@pytest.mark.parametrize(
    "change, record, message",
    [
        (lambda d: d.pop("kpt_shape"), "kpt_shape", "kpt_shape"),
        (lambda d: d.update(kpt_shape=[3, 4]), "kpt_shape", "kpt_shape"),
        (lambda d: d.pop("train"), "train", "no 'train' key"),
        (lambda d: d.update(flip_idx=[0, 2, 2]), "flip_idx", "flip_idx"),
        (lambda d: d.update(kpt_names=["a"]), "kpt_names", "3 names"),
        (lambda d: d.update(train="nowhere"), "train", "not found"),
        (lambda d: d.update(skeleton=[[0, 7]]), "skeleton", "outside"),
    ],
)
def test_bad_data_yaml_names_the_key(tmp_path, png, change, record, message):
    data = dict(DATA)
    change(data)
    path = dataset(tmp_path, png, data)
    with pytest.raises(DataError, match=message) as err:
        read_yolo(path)
    assert err.value.file == str(path)
    assert err.value.record == record


@pytest.mark.parametrize(
    "labels, message",
    [
        ("0 0.5 0.5 1 1 0.1 0.2 2\n0 0.5 0.5 1 1 0.1 0.2 2 0.1 0.1 2\n", "8 columns; expected"),
        ("0 0.5 0.5 1 1 0.1 0.2 2 0.3 0.4 1 0 0 zero\n", "not a number"),
    ],
)
def test_bad_label_line_names_file_and_line(tmp_path, png, labels, message):
    dataset(tmp_path, png, labels=labels)
    with pytest.raises(DataError, match=message) as err:
        read_yolo(tmp_path)
    assert err.value.file == str(tmp_path / "labels/train/a.txt")
    assert err.value.record == "line 1"


def test_round_trip(tmp_path, toy_kset, same_points):
    yaml_path = write_yolo(toy_kset, tmp_path / "yolo")
    data = yaml.safe_load(yaml_path.read_text())
    assert data["kpt_shape"] == [4, 3] and data["flip_idx"] == [0, 2, 1, 3]
    assert data["val"] == "images/train"
    back = read_yolo(yaml_path)
    # 6 decimals of a coordinate normalised by a <= 64 px side.
    same_points(toy_kset, back, atol=64e-6)
    assert back.skeleton == toy_kset.skeleton
    assert [s.image.name for s in back.samples] == ["a.png", "b.png", "c.png"]
    np.testing.assert_allclose(back.samples[0].instances[0].bbox, (4, 8, 12, 8), atol=1e-4)
    np.testing.assert_allclose(back.samples[1].instances[0].bbox, (27, 18, 23, 22), atol=1e-4)


def test_write_val_split_and_name_clashes(tmp_path, toy_kset):
    toy_kset.samples[2].image = toy_kset.samples[2].image.rename(
        toy_kset.samples[2].image.with_name("a.png")
    )
    train, val = toy_kset.subset([0, 2]), toy_kset.subset([1])
    path = write_yolo(train, tmp_path / "y", val=val)
    assert sorted(p.name for p in (tmp_path / "y/images/train").iterdir()) == [
        "a.png",
        "cam2_a.png",
    ]
    assert len(read_yolo(path, split="val")) == 1


def test_convert_cli_round_trip(tmp_path, toy_kset, same_points):
    from keypointer.data.coco import write_coco

    src = write_coco(toy_kset, tmp_path / "src" / "c.json")
    assert cli("convert", src, tmp_path / "out", "--to", "yolo") == 0
    same_points(toy_kset, load_dataset(tmp_path / "out"), atol=64e-6)
    path = convert(tmp_path / "out", tmp_path / "back.json")
    same_points(toy_kset, load_dataset(path), atol=64e-6)
