"""Outputs and videos: predict into a folder that does not exist
yet, damaged videos that lose no frames silently, wrong ``--out`` paths and absurd config
values that end with one message before any work, and failures that leave nothing behind."""

from __future__ import annotations

import csv
import json
import typing
from pathlib import Path

import pytest
from helpers import cli_subprocess, frame_count, numbered_video

from keypointer.config import Config, load_config
from keypointer.errors import ConfigError
from keypointer.inference.video import FrameGaps

from .corpus import Bad, assert_one_clear_error, overrides, train_args

FRAMES = 20
# The damaged AVI's frames whose JPEG data is cut: which of them a decoder still reads
# depends on the FFmpeg build (one read frame 8 as well, another did not), so tests check
# that the frames named match the rows missing, not which frames those are. The last one
# loses all its data: no decoder can read it, so every machine has a loss to report.
DAMAGED = (7, 8, 9, 14)


def expect(file: str, record: str | None, says: str) -> Bad:
    """What the one error message must name and say (no input to build: the test makes it)."""
    return Bad(lambda tmp, bases: (tmp, []), file, record, says)


# --------------------------------------------------------------------------- videos


def avi_frame_chunks(data: bytes) -> list[tuple[int, int]]:
    """(payload offset, size) of each video frame chunk ("00dc") in an AVI's movi list."""
    pos = data.index(b"movi") + 4
    chunks = []
    while pos + 8 <= len(data):
        tag, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if tag == b"idx1":
            break
        if tag == b"00dc":
            chunks.append((pos + 8, size))
        pos += 8 + size + size % 2
    return chunks


def damage_avi(path: Path, frames: tuple[int, ...]) -> None:
    """Zero the middle third of the JPEG data of ``frames``, all of it for the last one (the
    container stays intact)."""
    data = bytearray(path.read_bytes())
    chunks = avi_frame_chunks(bytes(data))
    assert len(chunks) == FRAMES
    for i in frames:
        start, size = chunks[i]
        data[start + size // 3 : start + 2 * size // 3] = bytes(2 * size // 3 - size // 3)
    start, size = chunks[frames[-1]]
    data[start : start + size] = bytes(size)
    path.write_bytes(bytes(data))


def lost_frames(rows: list[int]) -> list[int]:
    """The frames of the damaged AVI without a prediction, checked against what can hold on
    any machine: the erased frame is among them, and only damaged frames are (MJPG frames
    decode independently)."""
    lost = sorted(set(range(FRAMES)) - set(rows))
    assert DAMAGED[-1] in lost and set(lost) <= set(DAMAGED), lost
    return lost


def csv_frames(path: Path) -> list[int]:
    """The frames with a prediction in a video's DLC CSV (row i is frame i; a frame without
    one, e.g. an unreadable frame, has a row of NaN)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))[3:]
    assert [int(r[0]) for r in rows] == list(range(len(rows))), "row i must be frame i"
    return [int(r[0]) for r in rows if any(c not in ("", "NaN") for c in r[1:])]


@pytest.fixture(scope="module")
def onnx_model(model, tmp_path_factory) -> Path:
    from keypointer.export import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(model, path, exporter="torchscript", check=False)  # 20x faster than dynamo
    return path


@pytest.fixture(params=["checkpoint", "onnx"])
def any_model(request, checkpoint, onnx_model) -> Path:
    return checkpoint if request.param == "checkpoint" else onnx_model


# --------------------------------------------------------------------------- item 7


def test_predict_video_into_a_new_nested_folder(any_model, cli, tmp_path, caplog):
    video = numbered_video(tmp_path / "clip.mp4", FRAMES, "mp4v")
    out = tmp_path / "a" / "new" / "folder"
    result = cli("predict", any_model, video, "--out", out, "--device", "cpu", "--quiet")
    assert result.code == 0, result.err
    assert not caplog.records, "a sound video gives no warning"
    assert csv_frames(out / "clip.csv") == list(range(FRAMES))
    assert len(json.loads((out / "predictions.json").read_text())) == FRAMES
    assert frame_count(out / "drawn" / "clip.mp4") == FRAMES
    assert not list(out.glob(".*")), "a temporary file was left behind"


def test_video_opencv_cannot_write_is_a_warning_and_predictions_are_kept(
    checkpoint, cli, tmp_path, monkeypatch, caplog
):
    import keypointer.inference.video as video_module

    monkeypatch.setattr(video_module, "FOURCC", "XXXX")  # no such encoder
    video = numbered_video(tmp_path / "clip.mp4", FRAMES, "mp4v")
    out = tmp_path / "out"
    result = cli("predict", checkpoint, video, "--out", out, "--device", "cpu", "--quiet")
    assert result.code == 0, result.err
    warnings = [r.getMessage() for r in caplog.records if "drawn video not written" in r.message]
    assert len(warnings) == 1 and str(out / "drawn" / "clip.mp4") in warnings[0]
    assert "cannot encode 'XXXX'" in warnings[0]
    assert csv_frames(out / "clip.csv") == list(range(FRAMES))
    assert (out / "predictions.json").is_file()
    written = sorted(p.name for p in out.iterdir())
    assert written == ["clip.csv", "clip.frames.csv", "images.json", "predictions.json"]


@pytest.mark.slow
def test_predict_the_real_video_into_a_new_folder(any_model, shared_data, cli, tmp_path):
    """The acceptance check of item 7 on lp-mirror-mouse's 994-frame clip."""
    video = shared_data / "lp-mirror-mouse" / "videos" / "test_vid.mp4"
    out = tmp_path / "a" / "new" / "folder"
    result = cli("predict", any_model, video, "--out", out, "--device", "cpu", "--quiet")
    assert result.code == 0, result.err
    assert csv_frames(out / "test_vid.csv") == list(range(994))
    assert frame_count(out / "drawn" / "test_vid.mp4") == 994


# --------------------------------------------------------------------------- item 10


def unreadable_warning(caplog, video: Path) -> str:
    lines = [r.getMessage() for r in caplog.records if "could not be read" in r.message]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{video}: "), lines[0]
    return lines[0]


def test_damaged_avi_frames_are_skipped_named_and_the_rest_kept(checkpoint, cli, tmp_path, caplog):
    """MJPG frames decode independently: reading resumes after each damaged frame, and the
    frames after it keep their numbers (rows, JSON and drawn video)."""
    video = numbered_video(tmp_path / "clip.avi", FRAMES, "MJPG")
    damage_avi(video, DAMAGED)
    out = tmp_path / "out"
    result = cli("predict", checkpoint, video, "--out", out, "--device", "cpu")
    assert result.code == 0, result.err
    message = unreadable_warning(caplog, video)
    kept = csv_frames(out / "clip.csv")
    lost = lost_frames(kept)
    assert f"{len(lost)} of {FRAMES} frames" in message
    assert f"frames {frame_ranges(lost)} " in message
    images = json.loads((out / "images.json").read_text())
    assert [im["frame"] for im in images] == kept
    assert f"{len(kept)} images/frames" in result.out
    assert (
        frame_count(out / "drawn" / "clip.mp4") == FRAMES
    )  # black frames stand in for the lost ones


def test_damaged_mp4_loses_no_frame_silently(checkpoint, cli, tmp_path, caplog):
    """The issue's case: bytes zeroed in the middle of an MPEG-4 clip. Every frame is either
    predicted or named in the warning, whether or not the decoder resumes."""
    video = numbered_video(tmp_path / "clip.mp4", FRAMES, "mp4v")
    data = bytearray(video.read_bytes())
    n = len(data)
    data[int(n * 0.3) : int(n * 0.7)] = bytes(int(n * 0.7) - int(n * 0.3))
    video.write_bytes(bytes(data))
    out = tmp_path / "out"
    result = cli("predict", checkpoint, video, "--out", out, "--device", "cpu", "--quiet")
    assert result.code == 0, result.err
    rows = csv_frames(out / "clip.csv")
    lost = sorted(set(range(FRAMES)) - set(rows))
    message = unreadable_warning(caplog, video)
    assert lost and f"{len(lost)} of {FRAMES} frames" in message
    assert f"frames {frame_ranges(lost)} " in message


def test_truncated_video_names_the_missing_tail(checkpoint, cli, tmp_path, caplog):
    video = numbered_video(tmp_path / "clip.avi", FRAMES, "MJPG")
    data = video.read_bytes()
    start, _ = avi_frame_chunks(data)[12]
    video.write_bytes(data[:start])  # frames 12-19 and the index are gone
    out = tmp_path / "out"
    result = cli("predict", checkpoint, video, "--out", out, "--device", "cpu", "--quiet")
    assert result.code == 0, result.err
    assert "frames 12-19 " in unreadable_warning(caplog, video)
    assert csv_frames(out / "clip.csv") == list(range(12))


def frame_ranges(numbers) -> str:
    """Frame numbers as the unreadable-frames warning lists them (through FrameGaps)."""
    gaps = FrameGaps()
    for n in sorted(numbers):
        gaps.add(n)
    return str(gaps)


def test_frame_ranges_are_compressed_and_capped():
    assert frame_ranges([3, 4, 5, 9, 12, 13]) == "3-5, 9, 12-13"
    assert frame_ranges(list(range(0, 40, 2))).endswith(", 22, ...")
    gaps = FrameGaps()  # a bogus frame count: one range, not 10**18 numbers
    gaps.add(3)
    gaps.add(4, 10**18)
    assert len(gaps) == 10**18 - 2 and str(gaps) == f"3-{10**18}"


def test_failure_after_some_frames_leaves_no_output_folder(checkpoint, cli, tmp_path):
    """A bad image after a video: one message, and the new folder (with its half-drawn video)
    is gone."""
    video = numbered_video(tmp_path / "clip.mp4", FRAMES, "mp4v")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    out = tmp_path / "new" / "out"
    result = cli("predict", checkpoint, video, bad, "--out", out, "--device", "cpu", "--quiet")
    assert_one_clear_error(result, expect("bad.png", None, "image"))
    assert not (tmp_path / "new").exists()


# --------------------------------------------------------------------------- item 12: --out


@pytest.mark.parametrize("draw", ["--draw", "--no-draw"])
def test_predict_out_is_an_existing_file(checkpoint, synth, cli, tmp_path, draw):
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    image = synth.parent / "images" / "000000.png"
    result = cli("predict", checkpoint, image, "--out", target, draw, "--device", "cpu")
    assert_one_clear_error(result, expect("results.txt", None, "is a file, not a folder"))
    assert target.read_text() == "keep me"


def test_eval_out_is_an_existing_file_fails_before_evaluating(
    checkpoint, synth, cli, tmp_path, monkeypatch
):
    import keypointer.commands.eval as evaluate

    def no_evaluation(*args, **kwargs):
        raise AssertionError("the evaluation ran before --out was checked")

    monkeypatch.setattr(evaluate, "predict_instances", no_evaluation)
    target = tmp_path / "eval.txt"
    target.write_text("keep me")
    result = cli("eval", checkpoint, "--data", synth, "--out", target, "--device", "cpu")
    assert_one_clear_error(result, expect("eval.txt", None, "is a file, not a folder"))
    assert target.read_text() == "keep me"


def test_export_out_is_an_existing_folder(checkpoint, cli, tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    result = cli("export", checkpoint, "--out", folder)
    assert_one_clear_error(result, expect("exports", None, "is a folder; give the file"))
    assert str(folder / "best.onnx") in result.err  # the message suggests a file name
    assert list(folder.iterdir()) == []


def test_predict_out_inside_a_file(checkpoint, synth, cli, tmp_path):
    (tmp_path / "a file").write_text("")
    image = synth.parent / "images" / "000000.png"
    result = cli("predict", checkpoint, image, "--out", tmp_path / "a file" / "sub")
    assert_one_clear_error(result, expect("a file", None, "it is a file"))


# --------------------------------------------------------------------------- item 12: config

ABSURD: dict[str, Bad] = {
    "huge learning rate": Bad(
        overrides("train.lr=1e300"), "--set", "train.lr", "less than or equal to 10"
    ),
    "infinite learning rate": Bad(overrides("train.lr=inf"), "--set", "train.lr", "finite number"),
    "infinite learning rate (YAML .inf)": Bad(
        overrides("train.lr=.inf"), "--set", "train.lr", "finite number"
    ),
    "overflowing weight decay": Bad(
        overrides("train.weight_decay=1e400"), "--set", "train.weight_decay", "finite number"
    ),
    "infinite scale in a tuple": Bad(
        overrides("augment.scale=[0.5, .inf]"), "--set", "augment.scale.1", "finite number"
    ),
    "nan milestone": Bad(
        overrides("train.milestones=[.nan]"), "--set", "train.milestones.0", "finite number"
    ),
}


@pytest.mark.parametrize("name", list(ABSURD))
def test_absurd_config_values_are_refused_before_the_run_folder(name, bases, cli, tmp_path):
    bad = ABSURD[name]
    data, extra = bad.build(tmp_path, bases)
    root = tmp_path / "runs"
    assert_one_clear_error(cli(*train_args(data, root, extra)), bad)
    assert not root.exists()


def _float_fields() -> list[tuple[str, str, bool]]:
    """(section, field, is a tuple) of every float field of the config."""
    found = []
    for section, info in Config.model_fields.items():
        for name, field in info.annotation.model_fields.items():
            hint = field.annotation
            args = typing.get_args(hint)
            if hint is float or float in args and type(None) in args:
                found.append((section, name, False))
            elif typing.get_origin(hint) is tuple and float in args:
                found.append((section, name, True))
    return found


@pytest.mark.parametrize("section, name, is_tuple", _float_fields())
def test_every_float_field_refuses_infinity(section, name, is_tuple):
    value = "[.inf, .inf]" if is_tuple else ".inf"
    with pytest.raises(ConfigError, match=rf"{section}\.{name}.*finite number"):
        load_config(None, [f"{section}.{name}={value}"])


def test_float_fields_are_found():
    assert len(_float_fields()) >= 20  # the check above covers the config, not a handful


def test_damaged_video_as_a_subprocess_prints_one_warning(checkpoint, tmp_path):
    """Through ``python -m keypointer``: FFmpeg's line per damaged packet stays quiet; the
    user sees our one warning."""
    video = numbered_video(tmp_path / "clip.avi", FRAMES, "MJPG")
    damage_avi(video, DAMAGED)
    out = tmp_path / "out"
    result = cli_subprocess(
        "predict", checkpoint, video, "--out", out, "--device", "cpu", "--quiet"
    )
    assert result.code == 0, result.err
    lost = lost_frames(csv_frames(out / "clip.csv"))
    assert result.err.splitlines() == [
        f"{video}: {len(lost)} of {FRAMES} frames could not be read and have no predictions: "
        f"frames {frame_ranges(lost)} (numbered from 0, as in the outputs)"
    ]
