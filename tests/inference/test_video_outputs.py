"""A video's predictions after the model: tracks, flags, smoothing, and the files they go to."""

import csv
import json

import cv2
import numpy as np
import pytest
from helpers import write_video

from keypointer.inference.runners import FramePrediction
from keypointer.inference.sources import Frame, Source
from keypointer.inference.tracks import PostProcess, VideoTable, finish
from keypointer.inference.video_outputs import write_dlc_video_csv
from keypointer.inference.writers import Outputs
from keypointer.skeleton import Skeleton

K = 3
SKELETON = Skeleton(("nose", "left_ear", "right_ear"), ((0, 1), (0, 2)))
T = 60
FPS = 30.0


def _path(t: np.ndarray, offset: float) -> np.ndarray:
    """(T, K, 2) a smooth path: keypoints around a centre moving on a line."""
    centre = np.stack([40 + 2.0 * t + offset, 60 + 0.0 * t], -1)
    return centre[:, None, :] + np.array([[0, 0], [-5, -5], [5, -5]], float)


def _preds(truth: list[np.ndarray], src: Source, noise: float = 0.0, seed: int = 0):
    """FramePredictions of instances ``truth`` (each (T, K, 2)), shuffled within frames."""
    rng = np.random.default_rng(seed)
    image = np.zeros((120, 200, 3), np.uint8)
    for f in range(T):
        kp = np.stack([tr[f] for tr in truth]) + rng.normal(0, noise, (len(truth), K, 2))
        order = rng.permutation(len(truth))
        frame = Frame(src, image, number=f, fps=FPS, time=f / FPS)
        scores = np.full((len(truth), K), 0.9)
        yield FramePrediction(frame, kp[order], scores, np.full(len(truth), 0.9))


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_single_animal_video_writes_dlc_csv_frames_csv_and_json(tmp_path):
    src = Source(tmp_path / "clip.mp4", "video")
    truth = _path(np.arange(T), 0.0)
    out = Outputs(tmp_path / "out", SKELETON, draw=False, post=PostProcess(smooth="kalman"))
    for pred in _preds([truth], src, noise=1.0):
        out.add(pred)
    out.close()
    rows = _rows(tmp_path / "out" / "clip.csv")
    assert [r[0] for r in rows[:3]] == ["scorer", "bodyparts", "coords"]  # DLC single animal
    assert rows[2][1:4] == ["x", "y", "likelihood"] and len(rows) == 3 + T
    assert [int(r[0]) for r in rows[3:]] == list(range(T))
    final = np.array([[float(v) for v in r[1:]] for r in rows[3:]]).reshape(T, K, 3)
    frames = _rows(tmp_path / "out" / "clip.frames.csv")
    head = frames[0]
    assert head[:3] == ["frame", "time_s", "track"]
    assert {"nose_x_raw", "nose_low_score", "nose_jump", "nose_flip"} <= set(head)
    raw = np.array([[float(r[head.index(f"{n}_{c}_raw")]) for n in SKELETON.names for c in "xy"]
                    for r in frames[1:]]).reshape(T, K, 2)  # fmt: skip
    raw_err = np.abs(raw - truth).mean()  # smoothing brings the track nearer the truth
    assert np.abs(final[..., :2] - truth).mean() < raw_err
    assert float(frames[1 + 5][1]) == pytest.approx(5 / FPS, abs=1e-6)
    results = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert len(results) == T and results[7]["frame"] == 7 and results[7]["track"] == "individual0"
    assert results[7]["time"] == pytest.approx(7 / FPS, abs=1e-6)
    assert set(results[7]["flags"]) == {"low_score", "jump", "flip"}
    assert len(results[7]["keypoints_raw"]) == 3 * K
    images = json.loads((tmp_path / "out" / "images.json").read_text())
    assert [im["frame"] for im in images] == list(range(T))


def test_two_animals_keep_their_tracks_in_the_multi_animal_csv(tmp_path):
    src = Source(tmp_path / "pair.mp4", "video")
    a, b = _path(np.arange(T), 0.0), _path(np.arange(T), 0.0) + [0.0, 40.0]
    out = Outputs(tmp_path / "out", SKELETON, draw=False)
    for pred in _preds([a, b], src, noise=0.5):
        out.add(pred)
    out.close()
    rows = _rows(tmp_path / "out" / "pair.csv")
    assert [r[0] for r in rows[:4]] == ["scorer", "individuals", "bodyparts", "coords"]
    assert sorted(set(rows[1][1:])) == ["track0", "track1"]
    values = np.array([[float(v) for v in r[1:]] for r in rows[4:]]).reshape(T, 2, K, 3)
    # each column stays one animal although the instances came in shuffled order
    nose_y = values[:, :, 0, 1]
    assert (np.abs(nose_y - nose_y[:1]) < 5).all()
    assert abs(nose_y[0, 0] - nose_y[0, 1]) > 30


def test_missing_frames_and_instances_are_empty_cells_not_zeros(tmp_path):
    table = VideoTable(tmp_path / "v.mp4", FPS)
    preds = list(_preds([_path(np.arange(T), 0.0)], Source(table.source, "video")))
    for p in preds[:10] + preds[15:]:  # frames 10-14 could not be read
        table.add(p)
    empty = Frame(preds[0].frame.source, preds[0].frame.image, number=T, fps=FPS, time=T / FPS)
    table.add(FramePrediction(empty, np.zeros((0, K, 2)), np.zeros((0, K)), np.zeros(0)))
    tracks = finish(table, PostProcess())
    assert list(tracks.numbers[:11]) == list(range(10)) + [15]
    assert np.isnan(tracks.final[-1]).all() and np.isfinite(tracks.final[:-1]).all()
    write_dlc_video_csv(tmp_path / "v.csv", tracks, SKELETON, "me")
    rows = _rows(tmp_path / "v.csv")[3:]
    assert [int(r[0]) for r in rows] == list(range(T + 1))  # row i is frame i, as DLC has it
    assert rows[12][1:] == ["NaN"] * 3 * K and rows[T][1:] == ["NaN"] * 3 * K
    assert rows[15][1] != ""


def test_a_jump_is_flagged(tmp_path):
    truth = _path(np.arange(T), 0.0)
    truth[30, 0] += 60.0  # one wild nose prediction
    table = VideoTable(tmp_path / "v.mp4", FPS)
    for p in _preds([truth], Source(table.source, "video"), noise=0.3):
        table.add(p)
    flags = finish(table, PostProcess()).flags["jump"][:, 0]
    assert flags[30, 0] and flags[:, 1:].sum() == 0 and flags[:25, 0].sum() == 0


def test_h5_has_the_csv_values(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("tables")
    src = Source(tmp_path / "clip.mp4", "video")
    out = Outputs(tmp_path / "out", SKELETON, draw=False, h5=True)
    for pred in _preds([_path(np.arange(T), 0.0)], src):
        out.add(pred)
    out.close()
    df = pd.read_hdf(tmp_path / "out" / "clip.h5", "df_with_missing")
    assert list(df.columns.names) == ["scorer", "bodyparts", "coords"]
    rows = _rows(tmp_path / "out" / "clip.csv")
    assert df.to_numpy()[4, 0] == pytest.approx(float(rows[3 + 4][1]), abs=1e-4)


def test_drawn_video_keeps_every_nth_frame(tmp_path):
    path = write_video(tmp_path / "clip.mp4", [np.full((120, 200, 3), 90, np.uint8)] * T, FPS)
    src = Source(path, "video")
    out = Outputs(tmp_path / "out", SKELETON, draw=True)
    for pred in list(_preds([_path(np.arange(T), 0.0)], src))[::3]:  # as --every 3 gives
        out.add(pred)
    out.close()
    cap = cv2.VideoCapture(str(tmp_path / "out" / "drawn" / "clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == T // 3
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS / 3, rel=0.01)


@pytest.mark.parametrize("animals", [1, 2])
def test_csv_reads_as_movement_reads_dlc_files(tmp_path, animals):
    """movement (python >= 3.12, so not installable here; see benchmarks/movement_check.py)
    reads a DLC CSV with pandas: header rows as column levels, first column as index, and then
    takes row i as frame i."""
    pd = pytest.importorskip("pandas")
    src = Source(tmp_path / "clip.mp4", "video")
    truth = [_path(np.arange(T), 40.0 * i) for i in range(animals)]
    out = Outputs(tmp_path / "out", SKELETON, draw=False)
    for pred in list(_preds(truth, src))[2:]:  # the first two frames have no prediction
        out.add(pred)
    out.close()
    levels = 4 if animals > 1 else 3
    df = pd.read_csv(tmp_path / "out" / "clip.csv", header=list(range(levels)), index_col=0)
    names = (
        ["scorer", "individuals", "bodyparts", "coords"]
        if animals > 1
        else ["scorer", "bodyparts", "coords"]
    )
    assert list(df.columns.names) == names
    assert len(df) == T and df.iloc[:2].isna().all().all()
    x = df.xs("x", level="coords", axis=1).to_numpy().reshape(T, animals, K)
    found = np.sort(x[10, :, 0])
    assert found == pytest.approx(np.sort([tr[10, 0, 0] for tr in truth]), abs=1e-3)
