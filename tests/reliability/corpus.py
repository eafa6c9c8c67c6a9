"""The bad-input corpus: each entry writes one malformed input (from a valid base set in each
label format) and says what the error message must name. Used by test_bad_inputs.py."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from helpers import TINY_TRAINING, CliResult, set_options


@dataclass
class Bases:
    """One valid copy of the same 8 synthetic images in each label format."""

    coco: Path  # folder: annotations.json + images/
    csv: Path  # folder: labels.csv + images/
    dlc: Path  # DeepLabCut project folder
    yolo: Path  # folder: data.yaml + images/train + labels/train


def copy_base(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def train_args(data: Path, root: Path, extra: list[str]) -> list[str]:
    """``keypointer train`` on ``data`` with the TINY_TRAINING settings, runs under ``root``."""
    sets = set_options([*TINY_TRAINING, f"run.root={root}"])
    return ["train", "--data", data, *sets, "--quiet", *extra]


Build = Callable[[Path, Bases], tuple[Path, list[str]]]


@dataclass(frozen=True)
class Bad:
    build: Build  # writes the input under a fresh folder; returns (--data path, extra train args)
    file: str | None  # the message names this file (None: a --set value, no file involved)
    record: str | None  # ... and this record, where there is one
    says: str  # ... and says this
    commands: tuple[str, ...] = ("check", "train")


def assert_one_clear_error(result: CliResult, bad: Bad) -> None:
    """Exit code 2 and one message, no traceback, naming what ``bad`` says it must."""
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    errors = [line for line in result.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.err
    # The message starts at "error: " and ends stderr (config errors list one field per line).
    message = result.err[result.err.index("error: ") :]
    if bad.file:
        assert bad.file in message, message
    if bad.record:
        assert bad.record in message, message
    assert bad.says in message, message


# --------------------------------------------------------------------------- builders


def coco(change: Callable[[dict, Path], None]) -> Build:
    """The base COCO set with ``change(doc, folder)`` applied to its JSON."""

    def build(tmp: Path, b: Bases) -> tuple[Path, list[str]]:
        folder = copy_base(b.coco, tmp / "coco")
        path = folder / "annotations.json"
        doc = json.loads(path.read_text())
        change(doc, folder)
        path.write_text(json.dumps(doc))  # NaN and Infinity are written as JSON's extensions
        return path, []

    return build


def coco_text(text: Callable[[str], str | bytes]) -> Build:
    def build(tmp: Path, b: Bases) -> tuple[Path, list[str]]:
        path = copy_base(b.coco, tmp / "coco") / "annotations.json"
        new = text(path.read_text())
        path.write_bytes(new if isinstance(new, bytes) else new.encode())
        return path, []

    return build


def keypoint(ann: int, k: int, x=None, y=None, v=None) -> Build:
    def change(doc: dict, folder: Path) -> None:
        kp = doc["annotations"][ann]["keypoints"]
        for offset, value in ((0, x), (1, y), (2, v)):
            if value is not None:
                kp[3 * k + offset] = value

    return coco(change)


def image(damage: Callable[[Path], None], index: int = 3, jpeg: bool = False) -> Build:
    """The base COCO set with image ``index`` damaged (re-encoded as JPEG first if asked)."""

    def change(doc: dict, folder: Path) -> None:
        entry = doc["images"][index]
        path = folder / entry["file_name"]
        if jpeg:
            jpg = path.with_suffix(".jpg")
            cv2.imwrite(str(jpg), cv2.imread(str(path)))
            path.unlink()
            entry["file_name"] = jpg.relative_to(folder).as_posix()
            path = jpg
        damage(path)

    return coco(change)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def scramble(keep: int) -> Callable[[Path], None]:
    """Random bytes after the first ``keep`` bytes (the signature survives, the rest does not)."""

    def damage(path: Path) -> None:
        data = path.read_bytes()
        noise = np.random.default_rng(0).integers(0, 256, len(data) - keep, dtype=np.uint8)
        path.write_bytes(data[:keep] + noise.tobytes())

    return damage


def tiny_image(path: Path) -> None:
    cv2.imwrite(str(path), np.zeros((1, 1, 3), np.uint8))


def text_file(path: Path) -> None:
    path.write_text("this is not an image\n")


def csv_lines(change: Callable[[list[str]], list[str]], encoding: str = "utf-8") -> Build:
    def build(tmp: Path, b: Bases) -> tuple[Path, list[str]]:
        path = copy_base(b.csv, tmp / "csv") / "labels.csv"
        lines = change(path.read_text().splitlines())
        path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
        return path, []

    return build


def csv_cell(line: int, column: int, value: str) -> Build:
    def change(lines: list[str]) -> list[str]:
        cells = lines[line - 1].split(",")
        cells[column] = value
        lines[line - 1] = ",".join(cells)
        return lines

    return csv_lines(change)


def latin1_name(lines: list[str]) -> list[str]:
    lines[2] = lines[2].replace("images/000001.png", "images/caf\u00e9.png")
    return lines


DLC_CSV = "labeled-data/images/CollectedData_keypointer.csv"


def dlc(change: Callable[[Path], None]) -> Build:
    def build(tmp: Path, b: Bases) -> tuple[Path, list[str]]:
        folder = copy_base(b.dlc, tmp / "dlc")
        change(folder)
        return folder, []

    return build


def dlc_csv(change: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        path = folder / DLC_CSV
        path.write_text("\n".join(change(path.read_text().splitlines())) + "\n")

    return edit


def dlc_config(old: str, new: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        path = folder / "config.yaml"
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new))

    return edit


def yolo(change: Callable[[Path], None]) -> Build:
    def build(tmp: Path, b: Bases) -> tuple[Path, list[str]]:
        folder = copy_base(b.yolo, tmp / "yolo")
        change(folder)
        return folder / "data.yaml", []

    return build


def yolo_label(edit: Callable[[list[str]], list[str]], name: str = "000002") -> Callable:
    def change(folder: Path) -> None:
        path = folder / "labels" / "train" / f"{name}.txt"
        tokens = path.read_text().split()
        path.write_text(" ".join(edit(tokens)) + "\n")

    return change


def set_token(i: int, value: str) -> Callable[[list[str]], list[str]]:
    return lambda t: t[:i] + [value] + t[i + 1 :]


def file_at(name: str, content: str | bytes) -> Build:
    def build(tmp: Path, b: Bases) -> tuple[Path, list[str]]:
        path = tmp / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return path, []

    return build


def config(text: str) -> Build:
    """The valid base set, trained with ``--config`` holding ``text``."""

    def build(tmp: Path, b: Bases) -> tuple[Path, list[str]]:
        path = tmp / "my config.yaml"
        path.write_text(text)
        return b.coco / "annotations.json", ["--config", str(path)]

    return build


def overrides(*items: str) -> Build:
    def build(tmp: Path, b: Bases) -> tuple[Path, list[str]]:
        return b.coco / "annotations.json", [a for i in items for a in ("--set", i)]

    return build


def run_root_is_a_file(tmp: Path, b: Bases) -> tuple[Path, list[str]]:
    (tmp / "a file").write_text("")
    return b.coco / "annotations.json", ["--set", f"run.root={tmp / 'a file'}"]


def resume_empty(tmp: Path, b: Bases) -> tuple[Path, list[str]]:
    (tmp / "old run").mkdir()
    return b.coco / "annotations.json", ["--resume", str(tmp / "old run")]


def clear_visibility(doc: dict, folder: Path) -> None:
    for ann in doc["annotations"]:
        ann["keypoints"][2::3] = [0] * (len(ann["keypoints"]) // 3)


def no_images(doc: dict, folder: Path) -> None:
    doc["images"], doc["annotations"] = [], []


def set_path(*keys, value) -> Callable[[dict, Path], None]:
    def change(doc: dict, folder: Path) -> None:
        node = doc
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value

    return change


def cut_keypoints(ann: int, k: int) -> Build:
    def change(doc: dict, folder: Path) -> None:
        kp = doc["annotations"][ann]["keypoints"]
        doc["annotations"][ann]["keypoints"] = kp[: 3 * k]

    return coco(change)


def longer_row(line: int) -> Callable[[list[str]], list[str]]:
    def change(lines: list[str]) -> list[str]:
        lines[line - 1] += ",1,2"
        return lines

    return change


def rename_last_bodypart(lines: list[str]) -> list[str]:
    return [lines[0], lines[1].replace("right_foot", "tail"), *lines[2:]]


def yolo_yaml(old: str, new: str) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        path = folder / "data.yaml"
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new))

    return change


# --------------------------------------------------------------------------- the corpus

J, C, Y, CFG = "annotations.json", "labels.csv", "data.yaml", "my config.yaml"
DLC_FILE, YOLO2 = "CollectedData_keypointer.csv", "000002.txt"
P3, J3 = "000003.png", "000003.jpg"
IMG4, JPG4 = "image id 4 (images/000003.png)", "image id 4 (images/000003.jpg)"
T = ("train",)  # configs: check takes no config
NAN, INF = float("nan"), float("inf")

CORPUS: dict[str, Bad] = {
    # COCO JSON: syntax, structure, types, values
    "json truncated": Bad(coco_text(lambda t: t[: len(t) // 2]), J, "line 1", "invalid JSON"),
    "json invalid": Bad(coco_text(lambda t: "{'images': [1,\n}"), J, "line 1", "invalid JSON"),
    "json empty file": Bad(coco_text(lambda t: b""), J, None, "invalid JSON"),
    "json not utf-8": Bad(coco_text(lambda t: t.encode("utf-16")), J, "line 1", "not UTF-8"),
    "json top level is a list": Bad(coco_text(lambda t: "[]"), J, None, "not a COCO keypoint"),
    "keypoints are a string": Bad(
        coco(set_path("annotations", 2, "keypoints", value="1 2 2")), J, "annotation id 3",
        "must be a list of numbers"),
    "image id is a list": Bad(
        coco(set_path("images", 1, "id", value=[2])), J, "images[1]", "must be an integer"),
    "width is a string": Bad(
        coco(set_path("images", 0, "width", value="64")), J, "image id 1 (images/000000.png)",
        "'width' must be a non-negative number"),
    "keypoint count differs from skeleton": Bad(
        cut_keypoints(3, 10), J, f"{IMG4}, annotation id 4",
        "10 keypoints but the skeleton has 11"),
    "nan coordinate": Bad(keypoint(1, 2, x=NAN), J, "annotation id 2", "coordinates are nan"),
    "infinite coordinate": Bad(
        keypoint(1, 0, y=INF), J, "annotation id 2", "coordinates are 32.8125, inf"),
    "negative coordinates": Bad(
        keypoint(4, 5, x=-500.0), J, "annotation id 5", "far outside the 64x64 image"),
    "huge coordinates": Bad(
        keypoint(5, 0, x=1e300, y=1e300), J, "annotation id 6", "far outside the 64x64 image"),
    "visibility out of range": Bad(keypoint(0, 0, v=7), J, "annotation id 1", "visibility 7"),
    "box not finite": Bad(
        coco(set_path("annotations", 6, "bbox", value=[1.0, NAN, 10.0, 10.0])), J,
        "annotation id 7", "not finite"),
    "duplicate image id": Bad(
        coco(set_path("images", 5, "id", value=1)), J, "image id 1", "duplicate image id"),
    "annotation of an unknown image": Bad(
        coco(set_path("annotations", 7, "image_id", value=99)), J, "annotation id 8",
        "image_id 99"),
    "empty dataset": Bad(coco(no_images), J, None, "no images"),
    "every keypoint unlabelled": Bad(coco(clear_visibility), J, None, "nothing to train on", T),
    # image files
    "image missing": Bad(image(Path.unlink), J, IMG4, "not found"),
    "image zero bytes": Bad(image(lambda p: p.write_bytes(b"")), P3, IMG4, "empty (0 bytes)"),
    "png truncated": Bad(image(truncate), P3, IMG4, "cannot be read"),
    "png corrupt": Bad(image(scramble(60)), P3, IMG4, "cannot be read"),
    "jpeg truncated": Bad(image(truncate, jpeg=True), J3, JPG4, "cannot be read"),
    "jpeg corrupt": Bad(image(scramble(20), jpeg=True), J3, JPG4, "cannot be read"),
    "text file named .jpg": Bad(image(text_file, jpeg=True), J3, JPG4, "cannot be read"),
    "1x1 image": Bad(image(tiny_image), P3, IMG4, "is 1x1 pixels: too small"),
    # plain CSV
    "csv not utf-8": Bad(csv_lines(latin1_name, "latin-1"), C, "line 3", "not UTF-8"),
    "csv cell not a number": Bad(csv_cell(4, 1, "abc"), C, "line 4", "'abc' is not a number"),
    "csv infinite coordinate": Bad(csv_cell(5, 2, "inf"), C, "line 5", "coordinates are"),
    "csv without image column": Bad(csv_cell(1, 0, "file"), C, "line 1", "must be 'image'"),
    "csv row too long": Bad(csv_lines(longer_row(4)), C, "line 4", "36 cells; the header has 34"),
    # DeepLabCut
    "dlc header rows wrong": Bad(
        dlc(dlc_csv(lambda ls: [ls[0], ls[2], ls[1]] + ls[3:])), DLC_FILE, None,
        "three header rows"),
    "dlc header rows missing": Bad(
        dlc(dlc_csv(lambda ls: ls[3:])), DLC_FILE, None, "three header rows"),
    "dlc body part not in config": Bad(
        dlc(dlc_csv(rename_last_bodypart)), DLC_FILE, "line 2", "'tail' is not in config.yaml"),
    "dlc config without bodyparts": Bad(
        dlc(dlc_config("bodyparts:", "body_parts:")), "config.yaml", "bodyparts", "'bodyparts'"),
    "dlc config invalid yaml": Bad(
        dlc(dlc_config("bodyparts: [head,", "bodyparts: [[head,")), "config.yaml", "line 11",
        "invalid YAML"),
    # YOLO
    "yolo too few columns": Bad(
        yolo(yolo_label(lambda t: t[:-1])), YOLO2, "line 1", "37 columns; expected 5 + 11"),
    "yolo too many columns": Bad(
        yolo(yolo_label(lambda t: [*t, "0.5"])), YOLO2, "line 1", "39 columns; expected 5 + 11"),
    "yolo column not a number": Bad(
        yolo(yolo_label(set_token(7, "x"))), YOLO2, "line 1", "not a number"),
    "yolo coordinates not normalised": Bad(
        yolo(yolo_label(set_token(8, "40.0"))), Y, "labels/train/000002.txt line 1", "far outside"),
    "yolo bad kpt_shape": Bad(
        yolo(yolo_yaml("[11, 3]", "[11]")), Y, "kpt_shape", "'kpt_shape' must be"),
    # paths
    "data path missing": Bad(lambda tmp, b: (tmp / "nope.json", []), "nope.json", None, "no such"),
    "unknown label format": Bad(file_at("labels.txt", "a b\n"), "labels.txt", None, "cannot tell"),
    # configs, overrides, run folders
    "config unknown key": Bad(config("train:\n  lrr: 0.01\n"), CFG, "train.lrr", "unknown key", T),
    "config unknown section": Bad(config("trian:\n  lr: 0.1\n"), CFG, "trian", "unknown key", T),
    "config wrong type": Bad(config("train:\n  lr: fast\n"), CFG, "train.lr", "valid number", T),
    "config negative learning rate": Bad(
        config("train:\n  lr: -0.001\n"), CFG, "train.lr", "greater than 0", T),
    "config invalid yaml": Bad(config("train: [1, 2\n"), CFG, "line 2", "not valid YAML", T),
    "config not a mapping": Bad(config("- train\n- lr\n"), CFG, None, "a mapping of sections", T),
    "override negative learning rate": Bad(
        overrides("train.lr=-0.1"), "--set", "train.lr", "greater than 0", T),
    "override wrong type": Bad(
        overrides("loader.batch_size=[4]"), "--set", "loader.batch_size", "valid integer", T),
    "override without value": Bad(
        overrides("train.lr"), "--set", "train.lr", "expected key=value", T),
    "device not a device": Bad(
        overrides("train.device=banana"), None, "train.device", "not a device", T),
    "run root is a file": Bad(
        run_root_is_a_file, "a file", "run.root", "cannot create a run folder", T),
    "resume without checkpoint": Bad(resume_empty, "last.pt", None, "checkpoint not found", T),
}  # fmt: skip
assert len(CORPUS) >= 30
