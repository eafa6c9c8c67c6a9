"""Fuzzing what tests/data/test_fuzz_readers.py leaves out.

That file feeds each reader random bytes and random structures in its own format. Here:
``keypointer check`` (load_dataset with detection or any forced format, then validation
that decodes the images) on random files and folders; the config loader (file and --set);
the image decoder; and the checkpoint loader. The only exception that may escape is the
project's own: DataError for data, ConfigError for configs, CheckpointError for checkpoints.
"""

from __future__ import annotations

import io
import json
import os
import string

import cv2
import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from rich.console import Console

from keypointer.checkpoint import load_checkpoint
from keypointer.commands.check import check_command
from keypointer.config import Config, from_dict, load_config
from keypointer.data.images import read_image
from keypointer.errors import CheckpointError, ConfigError, DataError

FUZZ = settings(
    deadline=None,
    max_examples=int(os.environ.get("KEYPOINTER_FUZZ_EXAMPLES", "30")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
FORMATS = st.sampled_from([None, "coco", "dlc", "yolo", "csv"])
SUFFIXES = st.sampled_from([".json", ".csv", ".yaml", ".yml", ".txt", ""])
WORD = st.text("abxy_.01", max_size=5)
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    WORD,
)
STRUCTURE = st.recursive(
    SCALAR, lambda c: st.lists(c, max_size=4) | st.dictionaries(WORD, c, max_size=4), max_leaves=15
)


def check(path, fmt=None) -> None:
    """``keypointer check`` without the printing to a terminal; DataError is allowed."""
    try:
        check_command(path, format=fmt, console=Console(file=io.StringIO()))
    except DataError:
        pass


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    for name in ("a.png", "images/a.png", "images/train/a.png", "labeled-data/v/a.png"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / name), np.full((12, 16, 3), 90, np.uint8))
    return root


# --------------------------------------------------------------------------- datasets


@FUZZ
@given(data=st.binary(max_size=400), suffix=SUFFIXES, fmt=FORMATS)
def test_check_random_bytes_in_any_format(root, data, suffix, fmt):
    path = root / f"labels{suffix}"
    path.write_bytes(data)
    check(path, fmt)


@FUZZ
@given(doc=STRUCTURE, fmt=FORMATS)
def test_check_random_structures_in_any_format(root, doc, fmt):
    """The same structure as JSON and as YAML, read by every reader (mostly the wrong one)."""
    (root / "labels.json").write_text(json.dumps(doc))
    check(root / "labels.json", fmt)
    (root / "data.yaml").write_text(yaml.safe_dump(doc))
    check(root / "data.yaml", fmt)


PROJECT_FILES = (
    "config.yaml data.yaml labeled-data/v/CollectedData_s.csv labeled-data/v/CollectedData_s.h5 "
    "labels/train/a.txt images/train"
).split()


@FUZZ
@given(
    files=st.dictionaries(
        st.sampled_from(PROJECT_FILES),
        st.binary(max_size=200) | STRUCTURE.map(lambda d: yaml.safe_dump(d).encode()),
        max_size=4,
    ),
    fmt=FORMATS,
)
def test_check_random_project_folders(tmp_path_factory, files, fmt):
    """A folder with some of the files a DeepLabCut or YOLO project holds, each random."""
    folder = tmp_path_factory.mktemp("project")
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        if name == "images/train":
            (folder / name).mkdir(exist_ok=True)
            cv2.imwrite(str(folder / name / "a.png"), np.zeros((9, 9, 3), np.uint8))
        else:
            (folder / name).write_bytes(content)
    check(folder, fmt)


# --------------------------------------------------------------------------- configs

SECTIONS = {name: type(field.default_factory()) for name, field in Config.model_fields.items()}
FIELDS = sorted(
    f"{section}.{name}" for section, model in SECTIONS.items() for name in model.model_fields
)
KEYS = st.sampled_from(FIELDS) | st.text(string.ascii_lowercase + "._", max_size=12)
VALUES = ["", "null", "true", "-1", "0", "1e-3", "1e999", "nan", "[64, 64]", "[1]", "{a: 1}", "'"]
VALUE_TEXT = st.one_of(
    st.sampled_from([*VALUES, "!!python/object/apply:os.system ['true']"]), st.text(max_size=12)
)


def load(path=None, overrides=None) -> None:
    try:
        cfg = load_config(path, overrides)
    except ConfigError:
        return
    # Whatever was accepted is a valid config: it survives a round trip through its dict
    # (what a checkpoint stores) unchanged, and every number in it is finite.
    d = cfg.to_dict()
    assert from_dict(d).to_dict() == d
    assert all(np.isfinite(v) for v in _numbers(d))


def _numbers(x) -> list[float]:
    if isinstance(x, dict):
        return [v for value in x.values() for v in _numbers(value)]
    if isinstance(x, (list, tuple)):
        return [v for value in x for v in _numbers(value)]
    return [x] if isinstance(x, (int, float)) and not isinstance(x, bool) else []


@FUZZ
@given(data=st.binary(max_size=400))
def test_config_file_random_bytes(root, data):
    (root / "config.yaml").write_bytes(data)
    load(root / "config.yaml")


def _nest(items: dict) -> dict:
    out: dict = {}
    for key, value in items.items():
        node = out
        *parents, last = key.split(".")
        for p in parents:
            child = node.setdefault(p, {})
            node = child if isinstance(child, dict) else {}
        node[last] = value
    return out


@FUZZ
@given(
    items=st.dictionaries(KEYS, SCALAR | STRUCTURE, max_size=5),
    top=st.none() | STRUCTURE,
)
def test_config_file_random_structures(root, items, top):
    """Known and unknown keys with values of any type, and anything at all at the top level."""
    for doc in (_nest(items), top):
        (root / "config.yaml").write_text(yaml.safe_dump(doc))
        load(root / "config.yaml")


@FUZZ
@given(
    overrides=st.lists(st.tuples(KEYS, VALUE_TEXT).map("=".join) | st.text(max_size=20), max_size=4)
)
def test_config_random_overrides(overrides):
    load(None, overrides)


def test_config_nested_too_deeply(root):
    """PyYAML recurses per nesting level: a RecursionError must not escape either way."""
    deep = "[" * 5000
    (root / "config.yaml").write_text(f"train:\n  lr: {deep}\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(root / "config.yaml")
    with pytest.raises(ConfigError, match="train.lr"):
        load_config(None, [f"train.lr={deep}"])


# --------------------------------------------------------------------------- images


def _encoded(ext: str) -> bytes:
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), (5, 5), 2)
    return cv2.imencode(ext, img)[1].tobytes()


VALID = {ext: _encoded(ext) for ext in (".png", ".jpg", ".bmp", ".tiff", ".webp")}


def _body_start(ext: str, data: bytes) -> int:
    """Where mutations may go: not into a header whose size fields are not checksummed, so that
    the fuzzer does not make the decoder allocate gigabytes for a claimed 30000x30000 image."""
    if ext == ".jpg":
        return data.index(b"\xff\xda") + 2  # after start-of-scan: entropy-coded data
    if ext == ".png":
        return 8  # every chunk, the header included, has a CRC
    return min(len(data) // 2, 200)


@FUZZ
@given(
    ext=st.sampled_from(sorted(VALID)),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=6),
    cut=st.none() | st.floats(0, 1),
)
def test_image_decoder_damaged_files(root, ext, edits, cut):
    data = bytearray(VALID[ext])
    start = _body_start(ext, data)
    for where, value in edits:
        data[start + int(where * (len(data) - start))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    path = root / f"damaged{ext}"
    path.write_bytes(bytes(data))
    try:
        img = read_image(path)
    except DataError as err:
        assert err.file == str(path)
        return
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3


@FUZZ
@given(data=st.binary(max_size=300), ext=st.sampled_from([".png", ".jpg", ".tif", ".txt"]))
def test_image_decoder_random_bytes(root, data, ext):
    assume(len(data) < 2 or data[:2] not in (b"BM", b"II", b"MM"))  # unchecked size headers
    path = root / f"random{ext}"
    path.write_bytes(data)
    try:
        img = read_image(path)
    except DataError:
        return
    assert img.dtype == np.uint8 and img.ndim == 3


# --------------------------------------------------------------------------- checkpoints


def _checkpoint() -> bytes:
    buf = io.BytesIO()
    state = {
        "model": {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(2)},
        "config": {"train": {"lr": 0.001}},
        "history": [{"epoch": 1, "train_loss": 0.5}],
        "rng_torch": torch.get_rng_state(),
    }
    torch.save(state, buf)
    return buf.getvalue()


CHECKPOINT = _checkpoint()


@FUZZ
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(CHECKPOINT) - 1), st.integers(0, 255)), min_size=1, max_size=8
    ),
    cut=st.none() | st.integers(0, len(CHECKPOINT)),
)
def test_checkpoint_loader_damaged_files(root, edits, cut):
    data = bytearray(CHECKPOINT)
    for where, value in edits:
        data[where] = value
    path = root / "damaged.pt"
    path.write_bytes(bytes(data[:cut]))
    try:
        state = load_checkpoint(path)
    except CheckpointError as err:
        assert str(path) in str(err)
        return
    assert isinstance(state, dict) and "model" in state and "config" in state


@FUZZ
@given(data=st.binary(max_size=300))
def test_checkpoint_loader_random_bytes(root, data):
    path = root / "random.pt"
    path.write_bytes(data)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
