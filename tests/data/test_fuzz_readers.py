"""Readers fed random bytes and random JSON/CSV/YAML structures raise DataError and nothing else.

When a read succeeds, ``validate`` (without decoding images) must also raise nothing but
DataError.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keypointer.data.check import validate
from keypointer.data.coco import read_coco
from keypointer.data.csv_format import read_csv
from keypointer.data.dlc import read_dlc
from keypointer.data.formats import load_dataset
from keypointer.data.sleap import read_sleap
from keypointer.data.yolo import read_yolo
from keypointer.errors import DataError

FUZZ = settings(
    deadline=None,
    max_examples=int(os.environ.get("KEYPOINTER_FUZZ_EXAMPLES", "40")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
# Path-like text without "/" or "..": a random absolute path could make a reader list "/".
WORD = st.text("abxyv_.0123", max_size=6)
NUMBER = st.one_of(st.integers(-3, 300), st.floats(allow_nan=True, allow_infinity=True))
JUNK = st.one_of(st.none(), st.booleans(), NUMBER, WORD, st.integers(10**18, 10**30))
JSONISH = st.recursive(
    JUNK, lambda c: st.lists(c, max_size=4) | st.dictionaries(WORD, c, max_size=3), max_leaves=12
)


def mostly(good):
    """``good`` seven times in eight, else any JSON-like value: deep enough to reach the checks."""
    return st.integers(0, 7).flatmap(lambda i: JSONISH if i == 0 else good)


ID = mostly(st.integers(0, 3) | st.sampled_from(["1", "a"]))
NUMBERS = mostly(st.lists(st.integers(0, 9) | NUMBER, min_size=3, max_size=12))
PAIRS = mostly(st.lists(st.lists(st.integers(-1, 5), min_size=2, max_size=3), max_size=4))
COCO_DOC = st.fixed_dictionaries(
    {
        "images": mostly(st.lists(st.fixed_dictionaries({
            "id": ID, "file_name": mostly(st.sampled_from(["a.png", "b.png", "c.png"])),
        }, optional={
            "width": mostly(st.integers(0, 20)), "height": mostly(st.integers(0, 20)),
        }), max_size=3)),
        "annotations": mostly(st.lists(st.fixed_dictionaries({
            "id": ID, "image_id": ID, "category_id": ID, "keypoints": NUMBERS,
        }, optional={
            "bbox": mostly(st.lists(NUMBER, min_size=4, max_size=4)),
            "iscrowd": mostly(st.integers(0, 1)), "center": JSONISH,
        }), max_size=4)),
    },
    optional={
        "categories": mostly(st.lists(st.fixed_dictionaries({
            "id": ID, "keypoints": mostly(st.lists(WORD, max_size=4)),
        }, optional={
            "name": JSONISH, "skeleton": PAIRS, "flip_pairs": PAIRS, "sigmas": NUMBERS,
        }), max_size=3)),
    },
)  # fmt: skip

CELL = st.one_of(
    st.sampled_from(
        [
            "",
            "1.5",
            "nan",
            "x",
            "y",
            "v",
            "likelihood",
            "image",
            "a_x",
            "a_y",
            "a_v",
            "b_x",
            "b_y",
            "scorer",
            "bodyparts",
            "coords",
            "individuals",
            "a",
            "b",
            "labeled-data",
            "a.png",
            "2",
        ]
    ),  # fmt: skip
    WORD,
    NUMBER.map(str),
)
ROWS = st.lists(st.lists(CELL, max_size=7), max_size=6)
DLC_HEADER = st.sampled_from(
    [
        [
            ["scorer", "s", "s", "s", "s"],
            ["bodyparts", "a", "a", "b", "b"],
            ["coords", "x", "y", "x", "y"],
        ],
        [
            ["scorer", "s", "s", "s", "s", "s", "s"],
            ["individuals", "m1", "m1", "m2", "m2", "single", "single"],
            ["bodyparts", "a", "a", "a", "a", "b", "b"],
            ["coords", "x", "y", "x", "y", "x", "y"],
        ],
    ]
)
NAMES = mostly(
    st.lists(st.sampled_from(["a", "b", "c"]), max_size=3, unique=True) | st.just("MULTI!")
)
DLC_CONFIG = st.fixed_dictionaries({"bodyparts": NAMES}, optional={
    "skeleton": mostly(st.lists(NAMES, max_size=3)), "multianimalproject": mostly(st.booleans()),
    "multianimalbodyparts": NAMES, "uniquebodyparts": NAMES, "individuals": NAMES,
})  # fmt: skip
YOLO_DATA = st.fixed_dictionaries({
    "kpt_shape": mostly(st.tuples(st.integers(1, 3), st.sampled_from([2, 3])).map(list)),
    "train": mostly(st.sampled_from(["images/train", "train.txt", "nope", "images"])),
}, optional={
    "flip_idx": mostly(st.lists(st.integers(-1, 3), max_size=4)),
    "kpt_names": mostly(st.lists(WORD, max_size=4) | st.dictionaries(st.integers(0, 1), NAMES)),
    "path": mostly(st.sampled_from([".", "sub", ""])),
    "skeleton": PAIRS,
})  # fmt: skip
TOKEN = st.sampled_from(["0", "0.5", "1", "2", "nan", "-1", "1e999"]) | WORD
# Up to 5 + 3 keypoints x 3: the right column count for kpt_shape [1..3, 2..3] comes up often.
LABEL_LINE = st.integers(0, 14).flatmap(lambda n: st.lists(TOKEN, min_size=n, max_size=n))


def _csv_text(rows) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


def _read(reader, *args, **kwargs):
    """Run a reader, and validate what it returns: DataError is the only exception allowed."""
    try:
        kset = reader(*args, **kwargs)
    except DataError:
        return
    try:
        validate(kset, check_images=False)
    except DataError:
        pass


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    for name in ("a.png", "b.png", "images/train/a.png", "labeled-data/v/a.png"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / name), np.zeros((12, 16, 3), np.uint8))
    (root / "c.png").write_bytes(b"corrupt")
    (root / "train.txt").write_text("images/train/a.png\nc.png\n")
    return root


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes(root, data):
    readers = [("r.json", read_coco), ("r.csv", read_csv), ("d.csv", read_dlc)]
    readers += [("r.slp", read_sleap)] if importlib.util.find_spec("sleap_io") else []
    for name, reader in readers:
        (root / name).write_bytes(data)
        _read(reader, root / name)
        _read(load_dataset, root / name)
    (root / "data.yaml").write_bytes(data)
    _read(read_yolo, root / "data.yaml")
    (root / "config.yaml").write_bytes(data)
    _read(read_dlc, root)


@FUZZ
@given(doc=mostly(COCO_DOC))
def test_random_coco_json(root, doc):
    (root / "r.json").write_text(json.dumps(doc))
    _read(read_coco, root / "r.json")
    _read(read_coco, root / "r.json", category="1")


@FUZZ
@given(rows=ROWS, dlc_header=DLC_HEADER, use_header=st.booleans())
def test_random_csv(root, rows, dlc_header, use_header):
    (root / "r.csv").write_text(_csv_text(rows))
    _read(read_csv, root / "r.csv")
    (root / "d.csv").write_text(_csv_text((dlc_header if use_header else []) + rows))
    _read(read_dlc, root / "d.csv")
    _read(load_dataset, root / "d.csv")


@FUZZ
@given(config=mostly(DLC_CONFIG), rows=ROWS, use_header=st.booleans())
def test_random_dlc_project(root, config, rows, use_header):
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    header = [["scorer", "s", "s"], ["bodyparts", "a", "a"], ["coords", "x", "y"]]
    if config.get("multianimalproject") if isinstance(config, dict) else False:
        header.insert(1, ["individuals", "m1", "m1"])
    text = _csv_text((header if use_header else []) + rows)
    (root / "labeled-data" / "v" / "CollectedData_s.csv").write_text(text)
    _read(read_dlc, root)


@FUZZ
@given(data=mostly(YOLO_DATA), lines=st.lists(LABEL_LINE, max_size=3))
def test_random_yolo(root, data, lines):
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "train" / "a.txt").write_text("\n".join(" ".join(t) for t in lines))
    _read(read_yolo, root / "data.yaml")
    _read(read_yolo, root, split="val")
