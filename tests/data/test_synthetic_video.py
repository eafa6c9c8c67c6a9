from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from helpers import decoded_frames

from keypointer.data import synthetic
from keypointer.data.synthetic_video import generate_video, load_truth, render_video
from keypointer.errors import DataError

FRAMES, SIZE = 150, 256


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Two figures, 5 s at 30 fps: the video, its truth, and the decoded RGB frames."""
    out = tmp_path_factory.mktemp("clip")
    video = generate_video(out, num_frames=FRAMES, instances=2, seed=3, size=SIZE)
    return out, load_truth(out / "truth.json"), decoded_frames(video)


def _steps(keypoints: np.ndarray) -> np.ndarray:
    """(T-1, M) largest keypoint displacement of each track between consecutive frames."""
    return np.linalg.norm(np.diff(keypoints[..., :2], axis=0), axis=-1).max(axis=-1)


def test_files_frame_count_and_truth_layout(clip):
    out, truth, frames = clip
    assert sorted(p.name for p in out.iterdir()) == ["truth.csv", "truth.json", "video.mp4"]
    assert len(frames) == FRAMES and frames[0].shape == (SIZE, SIZE, 3)
    assert truth.keypoints.shape == (FRAMES, 2, len(synthetic.NAMES), 3)
    np.testing.assert_array_equal(truth.frames, np.arange(FRAMES))
    np.testing.assert_allclose(truth.times, np.arange(FRAMES) / 30.0)
    assert truth.tracks == ["figure0", "figure1"] and truth.fps == 30.0 and truth.size == (256, 256)
    assert truth.names == synthetic.NAMES and truth.skeleton.edges == synthetic.EDGES
    assert len(truth.skeleton.flip_pairs) == 4
    assert set(np.unique(truth.keypoints[..., 2])) <= {0.0, 1.0, 2.0}
    assert np.isfinite(truth.keypoints).all()  # every track is in every frame


def test_boxes_hold_their_keypoints(clip):
    _, truth, _ = clip
    x, y, w, h = np.moveaxis(truth.boxes, -1, 0)[..., None]
    kx, ky, v = np.moveaxis(truth.keypoints, -1, 0)
    inside = (kx >= x) & (kx <= x + w) & (ky >= y) & (ky <= y + h)
    assert inside[v > 0].all()
    assert (x >= 0).all() and (x + w <= SIZE + 1e-6).all()


def test_motion_is_smooth_except_in_bursts(clip):
    _, truth, _ = clip
    steps = _steps(truth.keypoints)
    fast = truth.fast[1:] | truth.fast[:-1]
    assert 0.02 < truth.fast.mean() < 0.25  # bursts of fast motion exist, and are short
    assert steps[~fast].max() <= 0.04 * SIZE
    assert steps[fast].max() > 1.5 * steps[~fast].max()
    assert np.median(steps) > 0.5  # it does move


def test_identities_are_continuous_through_crossings(clip):
    _, truth, frames = clip
    k = truth.keypoints[..., :2]
    # Each track's pose in frame t+1 is nearest to its own pose in frame t ...
    dist = np.linalg.norm(k[:-1, :, None] - k[1:, None, :], axis=-1).mean(axis=-1)
    assert (dist.argmin(axis=2) == np.arange(2)).all()
    # ... also where the two figures cross (their left-right order swaps) and overlap.
    torso = k[:, :, 1:3].mean(axis=2)
    assert (np.diff(np.sign(torso[:, 0, 0] - torso[:, 1, 0])) != 0).sum() >= 1
    # Each track keeps its own look: the torso's colour, where nothing covers it.
    colours = []
    for m in range(2):
        seen = [
            frames[t][tuple(np.round(torso[t, m, ::-1]).astype(int))].astype(float)
            for t in range(FRAMES)
            if (truth.keypoints[t, m, 1:3, 2] == 2).all()
        ]
        median = np.median(seen, axis=0)
        assert np.mean(np.abs(np.array(seen) - median).max(axis=1) < 40) > 0.85
        colours.append(median)
    assert np.abs(colours[0] - colours[1]).max() > 40


def test_truth_keypoints_sit_on_their_markers(clip):
    """Under a visible keypoint the decoded video shows its joint's marker colour (mp4v is lossy:
    a tolerance); under most hidden ones it does not."""
    _, truth, frames = clip
    colours = np.array(synthetic.MARKER_COLOURS, dtype=float)
    visible, hidden = [], []
    for t in range(0, FRAMES, 3):
        for m in range(2):
            for k, (x, y, v) in enumerate(truth.keypoints[t, m]):
                if v > 0:
                    pixel = frames[t][int(round(y)), int(round(x))].astype(float)
                    (visible if v == 2 else hidden).append(np.abs(pixel - colours[k]).max())
    visible, hidden = np.array(visible), np.array(hidden)
    assert len(visible) > 500 and len(hidden) > 20
    assert np.median(visible) < 20 and np.mean(visible < 60) > 0.98
    assert np.mean(hidden > 60) > 0.7


def test_truth_csv_is_deeplabcut_multi_animal(clip):
    out, truth, _ = clip
    with open(out / "truth.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert [r[0] for r in rows[:4]] == ["scorer", "individuals", "bodyparts", "coords"]
    k = len(synthetic.NAMES)
    assert rows[1][1 : 1 + 2 * k] == ["figure0"] * 2 * k and rows[1][-1] == "figure1"
    assert rows[2][1:5] == ["head", "head", "neck", "neck"] and rows[3][1:3] == ["x", "y"]
    assert len(rows) == 4 + FRAMES and [int(r[0]) for r in rows[4:]] == list(range(FRAMES))
    cells = np.array([[float(c) if c else np.nan for c in r[1:]] for r in rows[4:]])
    want = truth.keypoints[..., :2].copy()
    want[truth.keypoints[..., 2] == 0] = np.nan
    np.testing.assert_allclose(cells, want.reshape(FRAMES, -1), atol=1e-4)
    pandas = pytest.importorskip("pandas")
    table = pandas.read_csv(out / "truth.csv", header=[0, 1, 2, 3], index_col=0)
    assert table.shape == (FRAMES, 2 * k * 2)
    assert table[("synthetic", "figure1", "neck", "y")].iloc[7] == pytest.approx(
        truth.keypoints[7, 1, 1, 1]
    )


def test_single_figure_csv_has_no_individuals_row(tmp_path):
    generate_video(tmp_path, num_frames=5, instances=1, seed=0, size=64)
    with open(tmp_path / "truth.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert [r[0] for r in rows[:3]] == ["scorer", "bodyparts", "coords"]
    assert len(rows) == 3 + 5 and len(rows[0]) == 1 + 2 * len(synthetic.NAMES)
    assert load_truth(tmp_path).tracks == ["figure0"]  # the folder works as well as the file


def test_same_seed_same_bytes_other_seed_other_clip(tmp_path):
    a = generate_video(tmp_path / "a", num_frames=20, instances=2, seed=1, size=96)
    b = generate_video(tmp_path / "b", num_frames=20, instances=2, seed=1, size=96)
    c = generate_video(tmp_path / "c", num_frames=20, instances=2, seed=2, size=96)
    for name in ("video.mp4", "truth.json", "truth.csv"):
        assert (a.parent / name).read_bytes() == (b.parent / name).read_bytes()
        assert (a.parent / name).read_bytes() != (c.parent / name).read_bytes()
    frames = [image for image, *_ in render_video(20, 2, 1, 96)]
    again = [image for image, *_ in render_video(20, 2, 1, 96)]
    assert all(np.array_equal(x, y) for x, y in zip(frames, again, strict=True))


def test_a_clip_shows_varied_poses():
    """Leans, arms raised over the head and kicks: poses a few labelled frames would not cover."""
    keypoints = np.stack([kps for _, kps, *_ in render_video(300, 1, 0, 128)])[:, 0]
    names = synthetic.NAMES
    axis = keypoints[:, names.index("head"), :2] - keypoints[:, names.index("pelvis"), :2]
    lean = np.degrees(np.arctan2(axis[:, 0], -axis[:, 1]))
    assert lean.max() - lean.min() > 40
    height = np.linalg.norm(axis, axis=1)
    up = axis / height[:, None]  # towards the head
    hands = keypoints[:, [names.index("left_hand"), names.index("right_hand")], :2]
    above = ((hands - keypoints[:, None, names.index("head"), :2]) @ up[:, :, None]).max(axis=1)
    assert 0.01 < np.mean(above[:, 0] > 0) < 0.5  # some frames have a hand over the head


def test_missing_track_reads_as_absent_and_bad_files_fail(tmp_path):
    generate_video(tmp_path, num_frames=4, instances=2, seed=0, size=64)
    data = json.loads((tmp_path / "truth.json").read_text())
    del data["frames"][2]["instances"][1]
    (tmp_path / "edited.json").write_text(json.dumps(data))
    truth = load_truth(tmp_path / "edited.json")
    assert np.isnan(truth.keypoints[2, 1, :, :2]).all() and (truth.keypoints[2, 1, :, 2] == 0).all()
    assert np.isnan(truth.boxes[2, 1]).all() and np.isfinite(truth.keypoints[2, 0]).all()
    (tmp_path / "other.json").write_text(json.dumps({"images": []}))
    with pytest.raises(DataError, match="not a synthetic video truth file"):
        load_truth(tmp_path / "other.json")
    data["frames"][0]["instances"][0]["track"] = "nobody"
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="malformed"):
        load_truth(tmp_path / "bad.json")
    with pytest.raises(DataError, match="cannot read"):
        load_truth(tmp_path / "missing.json")
