"""Streaming video prediction (issue 12): frame times (variable frame rates too), --start /
--stop / --every against a sequential read, frame counts that differ from the header, the
read-ahead thread, flip_gap, and clean errors for bad videos and outputs."""

from __future__ import annotations

import os
import re
import struct
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import (
    KP_ATOL_PX,
    CliResult,
    cli_captured,
    cli_subprocess,
    decoded_frames,
    numbered_video,
)
from hypothesis import given
from hypothesis import strategies as st

from keypointer.commands.predict import predict_command
from keypointer.errors import ConfigError, DataError
from keypointer.inference.crops import make_crops
from keypointer.inference.pipeline import Pipeline
from keypointer.inference.runners import TorchRunner, crop_scale
from keypointer.inference.sources import Frame, Source, iter_frames, read_ahead
from keypointer.inference.video import (
    FrameGaps,
    FrameRange,
    frame_time,
    iter_video,
    parse_position,
)

FRAMES = 20
FPS = 10


def _video(path: Path, fourcc: str = "mp4v", frames: int = FRAMES) -> Path:
    return numbered_video(path, frames, fourcc, FPS)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return _video(tmp_path_factory.mktemp("clip") / "clip.mp4")


# --------------------------------------------------------------------------- MP4 editing

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def _boxes(data: bytes):
    i = 0
    while i < len(data):
        size, kind = struct.unpack(">I4s", data[i : i + 8])
        yield kind, data[i + 8 : i + size]
        i += size


def _rewrite(data: bytes, stts: bytes) -> bytes:
    """The MP4 box tree with a new ``stts`` (sample durations) and no edit list (its length
    would cut the longer track). mdat comes before moov in OpenCV's files, so no chunk offset
    moves."""
    out = b""
    for kind, body in _boxes(data):
        if kind == b"edts":
            continue
        body = _rewrite(body, stts) if kind in CONTAINERS else stts if kind == b"stts" else body
        out += struct.pack(">I4s", len(body) + 8, kind) + body
    return out


def variable_rate_video(path: Path, durations: list[int]) -> tuple[Path, np.ndarray]:
    """An mp4v video whose frame i lasts ``durations[i]`` ticks of 1/10240 s (the timescale
    OpenCV writes at 10 frames/s): a variable frame rate. Returns (path, times in s)."""
    _video(path, frames=len(durations))
    data = path.read_bytes()
    stts = struct.pack(">II", 0, len(durations))
    stts += b"".join(struct.pack(">II", 1, d) for d in durations)
    path.write_bytes(_rewrite(data, stts))
    return path, np.concatenate([[0], np.cumsum(durations)[:-1]]) / 10240


# --------------------------------------------------------------------------- times


def test_frames_carry_the_containers_timestamps(clip):
    frames = list(iter_video(clip))
    assert [f.number for f in frames] == list(range(FRAMES))
    np.testing.assert_allclose([f.time for f in frames], np.arange(FRAMES) / FPS, atol=1e-6)
    for f, ref in zip(frames, decoded_frames(clip), strict=True):
        assert np.array_equal(f.image, ref)


def test_variable_frame_rate_keeps_each_frames_own_time(tmp_path):
    durations = [1024 if i % 3 else 4096 for i in range(FRAMES)]  # 0.1 s, every 3rd 0.4 s
    path, times = variable_rate_video(tmp_path / "vfr.mp4", durations)
    frames = list(iter_video(path))
    assert [f.number for f in frames] == list(range(FRAMES))
    np.testing.assert_allclose([f.time for f in frames], times, atol=1e-6)
    assert not np.allclose(times, np.arange(FRAMES) / frames[0].fps)  # fps alone is wrong
    for f, ref in zip(frames, decoded_frames(path), strict=True):
        assert np.array_equal(f.image, ref)
    # A start in seconds compares with these times, not with number / fps.
    picked = list(iter_video(path, FrameRange(start=1.0, stop=2.0)))
    expected = [i for i, t in enumerate(times) if 1.0 <= t < 2.0]
    assert [f.number for f in picked] == expected and expected


class FakeCapture:
    def __init__(self, msec: float):
        self.msec = msec

    def get(self, prop: int) -> float:
        assert prop == cv2.CAP_PROP_POS_MSEC
        return self.msec


@pytest.mark.parametrize(
    "msec, number, expected",
    [(40.0, 1, 0.04), (0.0, 0, 0.0), (0.0, 7, 0.28), (float("nan"), 3, 0.12), (-5.0, 2, 0.08)],
)
def test_frame_time_falls_back_to_number_over_fps(msec, number, expected):
    """No timestamp (0 past the first frame, NaN, negative): number / fps."""
    assert frame_time(FakeCapture(msec), number, 25.0) == pytest.approx(expected)


def test_frame_time_is_rounded_to_the_microsecond():
    assert frame_time(FakeCapture(3.9999999999995), 1, 250.0) == 0.004


# --------------------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    "start, stop, every",
    [(None, None, 1), (3, 11, 1), (5, None, 4), (None, 7, 3), (0.45, 1.2, 2), (2, 1.05, 1),
     (0.3, 15, 5), (19, None, 1)],
)  # fmt: skip
def test_a_range_gives_the_sequential_reads_frames(clip, start, stop, every):
    """Frame numbers and pixels equal those of a plain read from the start (no seeking)."""
    reference = decoded_frames(clip)
    got = list(iter_video(clip, FrameRange(start, stop, every)))

    def inside(i: int) -> bool:
        t = i / FPS
        lo = start is None or (i >= start if isinstance(start, int) else t >= start - 1e-9)
        hi = stop is None or (i < stop if isinstance(stop, int) else t < stop - 1e-9)
        return lo and hi

    in_range = [i for i in range(FRAMES) if inside(i)]
    expected = in_range[::every]
    assert [f.number for f in got] == expected
    for f in got:
        assert np.array_equal(f.image, reference[f.number])


@pytest.mark.parametrize(
    "pick, says",
    [(FrameRange(start=50), "no frame in frames 50: (the video has 20)"),
     (FrameRange(start=1.5, stop=5), "no frame in frames 1.5s:5 (it stops before it starts")],
)  # fmt: skip
def test_a_range_without_frames_warns_and_gives_nothing(clip, caplog, pick, says):
    assert list(iter_video(clip, pick)) == []
    (message,) = [r.getMessage() for r in caplog.records]
    assert says in message


@pytest.mark.parametrize(
    "text, value",
    [("300", 300), ("0", 0), ("12.5s", 12.5), ("12s", 12.0), (" 7 ", 7), ("0.5S", 0.5),
     (42, 42), (1.5, 1.5), (None, None)],
)  # fmt: skip
def test_parse_position(text, value):
    got = parse_position(text, "--start")
    assert got == value and type(got) is type(value)


@given(st.integers(0, 10**9))
def test_parse_position_frames_round_trip(n):
    assert parse_position(str(n), "--start") == n


@given(st.floats(0, 1e6, allow_nan=False))
def test_parse_position_seconds_round_trip(t):
    assert parse_position(f"{t!r}s", "--stop") == t


@pytest.mark.parametrize(
    "start, stop, every, message",
    [("-1", None, 1, "--start '-1': must be a finite number, 0 or more"),
     (None, "-2.5s", 1, "--stop '-2.5s'"),
     ("abc", None, 1, "expected a frame number"),
     ("3.5", None, 1, "expected a frame number"),
     ("infs", None, 1, "finite"),
     ("10", "10", 1, "--stop 10 must be after --start 10"),
     ("2s", "1.5s", 1, "must be after"),
     (None, None, 0, "--every 0: must be a whole number, 1 or more"),
     (None, None, -3, "--every -3"),
     (None, None, True, "--every True")],
)  # fmt: skip
def test_bad_ranges_are_config_errors(start, stop, every, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        FrameRange.parse(start, stop, every)


def test_frame_range_count_estimates_the_picked_frames():
    assert FrameRange().count(994, 250.0) == 994
    assert FrameRange(100, 200, 10).count(994, 250.0) == 10
    assert FrameRange(0.4, 0.8).count(994, 250.0) == 100  # frames 100-199
    assert FrameRange(990, None, 3).count(994, 250.0) == 2  # 990, 993
    assert FrameRange(2000).count(994, 250.0) == 0


@given(
    st.integers(1, 5),
    st.integers(0, 4),
    st.lists(st.integers(0, 200), max_size=40),
)
def test_frame_gaps_hold_exactly_the_picked_numbers(step, anchor, numbers):
    gaps = FrameGaps(step, anchor)
    for n in sorted(set(numbers)):
        gaps.add(n)
    picked = {n for n in numbers if (n - anchor) % step == 0}
    held = {n for a, b in gaps.ranges for n in range(a, b + 1, step)}
    assert held == picked and len(gaps) == len(picked)


# --------------------------------------------------------------------------- damaged and odd


def avi_with_declared_count(src: Path, dst: Path, declared: int) -> Path:
    """``src`` (MJPG AVI) with a header that declares ``declared`` frames."""
    data = bytearray(src.read_bytes())
    for tag, offset in ((b"avih", 16), (b"strh", 32)):  # dwTotalFrames, dwLength
        i = data.index(tag) + 8 + offset
        data[i : i + 4] = struct.pack("<I", declared)
    dst.write_bytes(bytes(data))
    return dst


def test_frames_past_a_short_header_count_are_read(tmp_path, caplog):
    avi = _video(tmp_path / "clip.avi", "MJPG")
    short = avi_with_declared_count(avi, tmp_path / "short.avi", 8)
    assert int(cv2.VideoCapture(str(short)).get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    assert [f.number for f in iter_video(short)] == list(range(FRAMES))
    assert not caplog.records


def test_a_long_header_count_names_the_frames_never_found(tmp_path, caplog):
    avi = _video(tmp_path / "clip.avi", "MJPG")
    long = avi_with_declared_count(avi, tmp_path / "long.avi", 30)
    assert [f.number for f in iter_video(long)] == list(range(FRAMES))
    (message,) = [r.getMessage() for r in caplog.records]
    assert "10 of 30 frames could not be read" in message and "frames 20-29 " in message


def truncated_avi(tmp_path: Path) -> Path:
    """An MJPG AVI cut inside frame 12 (as a copy that stopped early)."""
    avi = _video(tmp_path / "cut.avi", "MJPG")
    data = avi.read_bytes()
    start = data.index(b"00dc", data.index(b"movi"))
    for _ in range(12):  # skip 12 chunks: the 13th starts here
        size = int.from_bytes(data[start + 4 : start + 8], "little")
        start += 8 + size + size % 2
    avi.write_bytes(data[: start + 20])
    return avi


@pytest.mark.parametrize(
    "pick, numbers, says",
    [(FrameRange(stop=15), range(12), "3 of 15 frames could not be read and have no "
      "predictions: frames 12-14 (numbered"),
     (FrameRange(every=2), range(0, 12, 2), "4 of 10 frames could not be read and have no "
      "predictions: frames 12-18 (every 2 frames from frame 0) (numbered"),
     (FrameRange(start=5, every=3), [5, 8, 11], "2 of 5 frames could not be read and have no "
      "predictions: frames 14-17 (every 3 frames from frame 5)")],
)  # fmt: skip
def test_a_video_that_ends_early_names_only_the_picked_frames_it_lacks(
    tmp_path, caplog, pick, numbers, says
):
    video = truncated_avi(tmp_path)
    assert [f.number for f in iter_video(video, pick)] == list(numbers)
    (message,) = [r.getMessage() for r in caplog.records]
    assert says in message


# --------------------------------------------------------------------------- read-ahead


def test_read_ahead_keeps_order_and_bounds_what_it_holds():
    produced: list[int] = []

    def items():
        for i in range(100):
            produced.append(i)
            yield i

    ahead = read_ahead(items(), 4)
    got = [next(ahead)]
    time.sleep(0.2)  # the thread fills the queue and must then wait
    assert len(produced) <= 1 + 4 + 1  # taken, queued, and one waiting to be put
    got += list(ahead)
    assert got == list(range(100))


def test_read_ahead_raises_where_the_item_would_have_come():
    def items():
        yield 1
        yield 2
        raise DataError("broken frame", "clip.mp4")

    ahead = read_ahead(items(), 8)
    assert next(ahead) == 1 and next(ahead) == 2
    with pytest.raises(DataError, match="clip.mp4: broken frame"):
        next(ahead)


def test_closing_read_ahead_stops_the_thread_and_closes_the_source():
    closed = threading.Event()

    def items():
        try:
            yield from range(10**9)
        finally:
            closed.set()

    before = threading.active_count()
    ahead = read_ahead(items(), 2)
    assert next(ahead) == 0
    ahead.close()
    assert closed.is_set()  # in the thread, before close() returned
    assert threading.active_count() == before


def test_a_failing_consumer_releases_the_video(clip, checkpoint, tmp_path, monkeypatch):
    """An error while writing stops the reading thread: no thread is left reading."""
    import keypointer.commands.predict as predict_module

    def broken_write(*args, **kwargs):
        raise DataError("disk full", tmp_path / "out")

    monkeypatch.setattr(predict_module, "_write_all", broken_write)
    before = threading.active_count()
    with pytest.raises(DataError, match="disk full"):
        predict_command(checkpoint, [clip], tmp_path / "out", quiet=True, device="cpu")
    assert threading.active_count() == before
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- flip gap


def test_run_with_gap_keeps_the_averaged_keypoints_exactly(model, clip):
    runner = TorchRunner(model)
    crops = np.stack([cv2.resize(f, (64, 64)) for f in decoded_frames(clip)[:4]])
    kp, scores = runner(crops, flip=True)
    kp2, scores2, gap = runner.run_with_gap(crops, flip=True)
    assert np.array_equal(kp, kp2) and np.array_equal(scores, scores2)
    # The gap is the distance between the halves, each decoded alone: the crops, and their
    # mirror images mirrored back.
    alone, _ = runner(crops)
    mirrored, _ = runner(crops[:, :, ::-1].copy())
    back = mirrored[:, model.skeleton.flip_index()]
    back[..., 0] = 63 - back[..., 0]
    expected = np.linalg.norm(alone - back, axis=-1)
    assert gap.shape == (4, model.skeleton.num_keypoints)
    np.testing.assert_allclose(gap, expected, atol=2 * KP_ATOL_PX)
    assert gap.max() > 0.01  # an untrained model disagrees with itself: the test can fail
    assert runner.run_with_gap(crops, flip=False)[2] is None


def test_flip_gap_is_in_image_pixels(model, clip):
    """A 128x96 frame letterboxed into 64x64: two image pixels per input pixel."""
    runner = TorchRunner(model)
    image = cv2.resize(decoded_frames(clip)[3], (128, 96))
    frame = Frame(Source(clip, "video"), image, 3, FPS, 0.3)
    (pred,) = Pipeline(runner, flip=True).run([frame])
    crops, mats = make_crops(image, (64, 64))
    np.testing.assert_allclose(crop_scale(mats), [2.0])
    *_, gap = runner.run_with_gap(crops, flip=True)
    assert pred.flip_gap.shape == (1, model.skeleton.num_keypoints)
    np.testing.assert_allclose(pred.flip_gap, 2 * gap, atol=0.05)
    assert pred.frame.time == 0.3


def test_flip_gap_is_none_without_flip_or_flip_pairs(model, clip):
    frames = list(iter_frames([Source(clip, "video")], FrameRange(stop=2)))
    runner = TorchRunner(model)
    assert all(p.flip_gap is None for p in Pipeline(runner).run(frames))
    with_flip = list(Pipeline(runner, flip=True).run(frames))
    assert all(p.flip_gap.shape == (1, 11) for p in with_flip)
    no_pairs = TorchRunner(model)
    no_pairs.skeleton = type(model.skeleton)(model.skeleton.names)
    assert all(p.flip_gap is None for p in Pipeline(no_pairs, flip=True).run(frames))


def test_crop_scale():
    mats = np.array([[[2.0, 0, 5], [0, 2.0, 1]], [[0.5, 0, 0], [0, 0.5, 0]]])
    np.testing.assert_allclose(crop_scale(mats), [2.0, 0.5])


@pytest.fixture(scope="module")
def onnx_files(model, tmp_path_factory) -> tuple[Path, Path]:
    from keypointer.export import export_onnx

    folder = tmp_path_factory.mktemp("onnx")
    plain, flipped = folder / "plain.onnx", folder / "flip.onnx"
    export_onnx(model, plain, exporter="torchscript", check=False)
    export_onnx(model, flipped, flip=True, exporter="torchscript", check=False)
    return plain, flipped


def test_onnx_flip_gap_matches_pytorch_and_plain_export_refuses_flip(model, clip, onnx_files):
    from keypointer.errors import ConfigError
    from keypointer.export import OnnxModel

    plain, flipped = (OnnxModel(p) for p in onnx_files)
    crops = np.stack([cv2.resize(f, (64, 64)) for f in decoded_frames(clip)[:3]])
    _, _, torch_gap = TorchRunner(model).run_with_gap(crops, flip=True)
    kp, scores, gap = flipped.run_with_gap(crops, flip=True)  # the graph's flip_gap output
    np.testing.assert_allclose(gap, torch_gap, atol=0.05)  # ORT vs PyTorch kernels
    assert np.array_equal(kp, flipped(crops, flip=True)[0])
    with pytest.raises(ConfigError, match="exported without flip"):
        plain.run_with_gap(crops, flip=True)  # it could not flip as PyTorch does
    assert plain.run_with_gap(crops, flip=False)[2] is None


# --------------------------------------------------------------------------- the command


def test_predict_command_range_and_rate_line(checkpoint, clip, tmp_path, capsys):
    summary = predict_command(
        checkpoint, [clip], tmp_path / "out", draw=False, device="cpu", start="0.3s",
        stop=15, every=4,
    )  # fmt: skip
    assert summary["frames"] == 3  # frames 3, 7, 11
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"3 frames in \d+\.\d s, \d+\.\d frames/s", lines[-1]), lines


@pytest.fixture
def cli(capsys):
    """``keypointer predict ...`` in this process (torch imported once): code, out, err."""
    return lambda *argv: cli_captured(capsys, "predict", *argv)


def assert_one_error(proc: CliResult, *says: str) -> None:
    assert proc.code == 2, proc.err
    lines = proc.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.err
    for text in says:
        assert text in lines[0], lines[0]


def half_of(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


def test_a_missing_video_ends_with_one_line(checkpoint, tmp_path, cli):
    video = tmp_path / "missing.mp4"
    out = tmp_path / "new" / "out"
    assert_one_error(cli(checkpoint, video, "--out", out), str(video), "no such file or folder")
    assert not (tmp_path / "new").exists()


def unopenable(kind: str, clip: Path, tmp_path: Path) -> Path:
    """Text saved as .mp4, or the first half of an mp4 (its index, the moov box, is at the
    end, so the half has none)."""
    if kind == "half":
        return half_of(clip, tmp_path / "half.mp4")
    video = tmp_path / "notes.mp4"
    video.write_text("these are my notes, not a video\n" * 50)
    return video


@pytest.mark.parametrize("kind", ["text", "half"])
def test_a_video_that_does_not_open_ends_with_one_line(checkpoint, clip, tmp_path, cli, kind):
    video = unopenable(kind, clip, tmp_path)
    out = tmp_path / "new" / "out"
    assert_one_error(cli(checkpoint, video, "--out", out), str(video), "cannot open this video")
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["text", "half"])
def test_a_video_that_does_not_open_as_a_subprocess(checkpoint, clip, tmp_path, kind):
    """As a user runs it (FFmpeg's own lines, were any printed, would show on its stderr; in
    this process they bypass pytest's capture): FFmpeg prints none of its own lines."""
    video = unopenable(kind, clip, tmp_path)
    out = tmp_path / "out"
    proc = cli_subprocess("predict", checkpoint, video, "--out", out, "--device", "cpu")
    assert_one_error(proc, str(video), "cannot open this video")
    assert not (tmp_path / "out").exists()


def test_half_of_the_real_video_ends_with_one_line(checkpoint, shared_data, tmp_path, cli):
    video = shared_data / "lp-mirror-mouse" / "videos" / "test_vid.mp4"
    video = half_of(video, tmp_path / "h.mp4")
    proc = cli(checkpoint, video, "--out", tmp_path / "out", "--device", "cpu")
    assert_one_error(proc, str(video), "cannot open this video")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["too long", "in /proc"])
def test_an_out_that_cannot_be_written_ends_with_one_line(checkpoint, clip, tmp_path, cli, where):
    out = tmp_path / ("x" * 300) / "out" if where == "too long" else Path("/proc/keypointer-out")
    proc = cli(checkpoint, clip, "--out", out, "--device", "cpu")
    assert_one_error(proc, str(out))
    assert not any(tmp_path.iterdir())  # nothing made on the way
    assert where == "too long" or not out.exists()


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes in read-only folders"
)
def test_an_out_in_a_read_only_folder_ends_with_one_line(checkpoint, clip, tmp_path, cli):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        proc = cli(checkpoint, clip, "--out", folder / "out", "--device", "cpu")
        assert_one_error(proc, "permission denied")
        assert not (folder / "out").exists()
    finally:
        folder.chmod(0o700)


@pytest.mark.parametrize(
    "args, says",
    [(["--start", "-5"], "--start '-5'"), (["--start", "10", "--stop", "4"], "must be after"),
     (["--every", "0"], "--every 0"), (["--stop", "soon"], "expected a frame number")],
)  # fmt: skip
def test_bad_range_options_end_with_one_line(checkpoint, clip, tmp_path, cli, args, says):
    assert_one_error(cli(checkpoint, clip, "--out", tmp_path / "out", *args), says)
    assert not (tmp_path / "out").exists()
