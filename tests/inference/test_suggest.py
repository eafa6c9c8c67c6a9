"""Frame suggestion: normalised poses, clustering, picking with gaps, reasons, the whole ranking."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import write_video
from hypothesis import given, settings
from hypothesis import strategies as st

from keypointer.inference.suggest import (
    THUMB,
    VideoTrack,
    cluster_labels,
    collect_tracks,
    default_gap,
    image_features,
    normalised_poses,
    pick_frames,
    read_frames,
    reason,
    suggest_frames,
    thumbnail,
)

NAMES = ("head", "neck", "tail", "left_paw", "right_paw")


def _poses(seed: int, t: int = 50, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 200, (t, k, 2)), rng.uniform(0.5, 1.0, (t, k))


# --------------------------------------------------------------------------- poses


@given(
    seed=st.integers(0, 10_000),
    shift=st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)),
    scale=st.floats(0.05, 50),
)
def test_normalised_poses_ignore_position_and_size(seed, shift, scale):
    kp, scores = _poses(seed, t=4)
    a = normalised_poses(kp, scores)
    b = normalised_poses(kp * scale + np.array(shift), scores)
    np.testing.assert_allclose(a, b, atol=1e-6)
    # Centred, unit RMS radius: each pose has mean 0 and sum of squares K.
    rel = a.reshape(4, -1, 2)
    np.testing.assert_allclose(rel.mean(1), 0, atol=1e-9)
    np.testing.assert_allclose((rel**2).sum((1, 2)), kp.shape[1], rtol=1e-9)


def test_unsure_points_sit_at_the_centre_and_do_not_move_it():
    kp = np.array([[[0.0, 0.0], [2.0, 0.0], [500.0, 900.0]]])
    scores = np.array([[0.9, 0.9, 0.1]])
    pose = normalised_poses(kp, scores, min_score=0.3).reshape(3, 2)
    np.testing.assert_allclose(pose, [[-1, 0], [1, 0], [0, 0]])
    # No sure point at all: every point counts (no division by zero, no NaN).
    assert np.isfinite(normalised_poses(kp, np.zeros((1, 3)))).all()
    # All points on one spot: scale 0 is left alone.
    assert np.isfinite(normalised_poses(np.ones((1, 3, 2)), np.ones((1, 3)))).all()


def test_clusters_follow_separated_groups_and_are_seeded():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = np.concatenate([c + rng.normal(0, 0.1, (20, 2)) for c in centres])
    labels = cluster_labels(x, 3, seed=1)
    for g in range(3):
        assert len(set(labels[g * 20 : (g + 1) * 20])) == 1
    assert len(set(labels)) == 3
    np.testing.assert_array_equal(labels, cluster_labels(x, 3, seed=1))
    assert cluster_labels(x[:2], 5).shape == (2,)  # k above T
    np.testing.assert_array_equal(cluster_labels(x, 1), 0)


# --------------------------------------------------------------------------- picking


@settings(max_examples=200, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.floats(0, 1), st.integers(-1, 3), st.integers(0, 1)), min_size=1, max_size=60
    ),
    num=st.integers(1, 20),
    gap=st.integers(0, 8),
    decay=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_pick_frames_keeps_gaps_and_takes_all_it_can(data, num, gap, decay):
    unc = np.array([d[0] for d in data])
    clusters = np.array([d[1] for d in data])
    groups = [d[2] for d in data]
    positions = np.arange(len(data))  # frame numbers, one video per group
    picks = pick_frames(unc, clusters, groups, positions, num, gap, decay)
    assert len(picks) == len(set(picks)) <= num
    for i in picks:
        for j in picks:
            if i != j and groups[i] == groups[j]:
                assert abs(positions[i] - positions[j]) >= max(gap, 1)
    if len(picks) < num:  # only when every other frame is too close to a pick
        for i in set(range(len(data))) - set(picks):
            assert any(
                groups[j] == groups[i] and abs(positions[j] - positions[i]) < max(gap, 1)
                for j in picks
            )
    if gap == 0 and decay == 0.0 and num >= 4:  # the best frame of every cluster is in
        for c in set(clusters.tolist()) - {-1}:
            members = np.flatnonzero(clusters == c)
            assert members[np.argmax(unc[members])] in picks
    if gap == 0 and decay == 1.0:  # clusters ignored (-1 still last): the most uncertain
        ranked = sorted(range(len(unc)), key=lambda i: (clusters[i] < 0, -unc[i], i))
        assert picks == ranked[:num]


def test_pick_frames_spreads_over_clusters_by_decay():
    unc = np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.05, 1.0])
    clusters = np.array([0, 0, 0, 1, 1, 2, -1])
    spots = np.array([0, 10, 20, 30, 40, 50, 60])
    # decay 0: one per cluster (clusters in order of their best frame), then by uncertainty;
    # frames of cluster -1 come last whatever their uncertainty.
    assert pick_frames(unc, clusters, [0] * 7, spots, 6, decay=0.0) == [0, 4, 5, 1, 2, 3]
    assert pick_frames(unc, clusters, [0] * 7, spots, 7, decay=0.0)[-1] == 6
    # decay 0.5: cluster 0's second frame (0.8 x 0.5) beats cluster 1's first (0.2), its
    # third (0.7 x 0.25) does not.
    assert pick_frames(unc, clusters, [0] * 7, spots, 4, decay=0.5) == [0, 1, 4, 2]
    assert pick_frames(unc, clusters, [0] * 7, spots, 3, decay=1.0) == [0, 1, 2]


def test_pick_frames_gap_is_per_video_and_can_differ():
    unc = np.array([1.0, 0.9, 0.8, 0.7])
    positions = np.array([0, 5, 0, 5])
    same = pick_frames(unc, np.zeros(4), ["a", "a", "b", "b"], positions, 4, [10, 10, 3, 3])
    assert same == [0, 2, 3]  # a: 5 - 0 < 10; b: 5 - 0 >= 3


def test_reason_names_the_flagged_keypoints():
    flags = {
        "low_score": np.array([1, 1, 1, 1, 0], bool),
        "jump": np.array([0, 0, 0, 0, 1], bool),
        "flip": np.zeros(5, bool),
    }
    assert reason(flags, NAMES) == "low score: head, neck, tail +1; jump: right_paw"
    assert reason({"low_score": np.zeros(5, bool)}, NAMES) == "least sure of its pose cluster"


def test_default_gap_is_one_second():
    assert default_gap(30.0) == 30
    assert default_gap(29.97) == 30
    assert default_gap(0.2) == 1


# --------------------------------------------------------------------------- whole ranking


def _track(path: str, kp: np.ndarray, scores: np.ndarray, fps: float = 10.0) -> VideoTrack:
    t = len(kp)
    return VideoTrack(Path(path), fps, (200, 200), np.arange(t), np.arange(t) / fps, kp, scores)


def test_suggest_frames_picks_the_unsure_frames_apart():
    kp, scores = _poses(0, t=100)
    kp = np.repeat(kp[:1], 100, axis=0)  # a still animal: no jumps
    scores[:] = 0.95
    scores[[7, 50, 52, 90], :3] = 0.05  # unsure frames; 52 is 2 frames from 50
    track = _track("a.mp4", kp, scores)
    picks = suggest_frames([track], NAMES, num=3, min_gap=5, decay=1.0)  # by uncertainty
    assert sorted(p.number for p in picks) == [7, 50, 90]
    assert all(p.reason.startswith("low score: head, neck, tail") for p in picks)
    assert picks[0].uncertainty >= picks[-1].uncertainty
    assert picks[0].time == pytest.approx(picks[0].number / 10.0)
    np.testing.assert_array_equal(picks[0].keypoints, kp[picks[0].number])
    # One per cluster (the default): the still pose's cluster gets a frame too.
    spread = suggest_frames([track], NAMES, num=3, min_gap=5, features="pose")
    assert [p.number for p in spread][0] == 7 and len(
        {p.number for p in spread} - {7, 50, 52, 90}
    ) == 1


def test_suggest_frames_clusters_on_thumbnails():
    kp, scores = _poses(3, t=60)
    scores[:] = 0.9
    scores[:, 0] = np.linspace(0.1, 0.8, 60)  # uncertainty falls with time
    thumbs = np.zeros((60, THUMB * THUMB), np.uint8)
    thumbs[:, : THUMB * THUMB // 2] = 200  # a bright top half ...
    thumbs[40:, : THUMB * THUMB // 2] = 0  # ... until frame 40, then the bottom half
    thumbs[40:, THUMB * THUMB // 2 :] = 200
    track = replace(_track("a.mp4", kp, scores), thumbs=thumbs)
    picks = suggest_frames([track], NAMES, num=2, min_gap=1)
    # The most uncertain frame of each scene, not the two most uncertain frames overall.
    assert sorted(p.number for p in picks) == [0, 40]
    assert sorted(p.number for p in suggest_frames([track], NAMES, 2, 1, decay=1.0)) == [0, 1]


@given(seed=st.integers(0, 1000), gain=st.floats(0.2, 5), offset=st.floats(-50, 50))
def test_image_features_ignore_brightness_and_contrast(seed, gain, offset):
    x = np.random.default_rng(seed).uniform(20, 200, (3, 64))
    np.testing.assert_allclose(image_features(x), image_features(x * gain + offset), atol=1e-6)


def test_thumbnail_is_small_grey_and_keeps_the_mean():
    image = np.zeros((48, 64, 3), np.uint8)
    image[:, 32:] = 255
    thumb = thumbnail(image)
    assert thumb.shape == (THUMB * THUMB,) and thumb.dtype == np.uint8
    assert abs(float(thumb.mean()) - 127.5) < 1


def test_suggest_frames_spans_videos_and_spreads_over_poses():
    a_kp, a_s = _poses(1, t=40)
    b_kp, b_s = _poses(2, t=40)
    tracks = [_track("a.mp4", a_kp, a_s), _track("b.mp4", b_kp, b_s)]
    picks = suggest_frames(tracks, NAMES, num=10, min_gap=None)  # 1 s = 10 frames
    assert 4 <= len(picks) <= 8  # at most 4 per 40-frame video at 10 frames apart
    for ti in (0, 1):
        numbers = sorted(p.number for p in picks if p.track == ti)
        assert np.all(np.diff(numbers) >= 10)
        # Fewer than asked only because every other frame is within 10 of a pick.
        assert all(min(abs(n - m) for m in numbers) < 10 for n in range(40))
    again = suggest_frames(tracks, NAMES, num=10)
    assert [(p.track, p.number) for p in picks] == [(p.track, p.number) for p in again]


def test_collect_tracks_groups_frames_by_video():
    def pred(path, number, value):
        frame = SimpleNamespace(
            source=SimpleNamespace(path=Path(path)), image=np.zeros((48, 64, 3), np.uint8),
            number=number, fps=25.0, time=None,
        )  # fmt: skip
        return SimpleNamespace(
            frame=frame, keypoints=np.full((1, 5, 2), value), scores=np.full((1, 5), 0.5),
            instance_scores=np.array([0.5]), flip_gap=None,
        )  # fmt: skip

    none = pred("a.mp4", 4, 0.0)  # no instance: missing points that score 0
    none.keypoints, none.scores, none.instance_scores = np.zeros((0, 5, 2)), np.zeros((0, 5)), []
    preds = [pred("a.mp4", 0, 1.0), pred("a.mp4", 2, 2.0), pred("b.mp4", 0, 3.0), none]
    a, b = collect_tracks(preds)
    assert not a.multi and a.names is None
    assert np.isnan(a.keypoints[2]).all() and (a.scores[2] == 0).all()
    a = VideoTrack(a.path, a.fps, a.size, a.numbers[:2], a.times[:2], a.keypoints[:2],
                   a.scores[:2], None, a.thumbs[:2])  # fmt: skip
    assert (a.path.name, b.path.name) == ("a.mp4", "b.mp4")
    np.testing.assert_array_equal(a.numbers, [0, 2])
    np.testing.assert_allclose(a.times, [0.0, 0.08])
    assert a.size == (64, 48) and a.keypoints.shape == (2, 5, 2) and a.flip_gap is None
    assert a.thumbs.shape == (2, THUMB * THUMB)
    assert b.keypoints[0, 0, 0] == 3.0


def test_read_frames_gives_the_wanted_frames(tmp_path):
    images = [np.full((32, 32, 3), i * 20, np.uint8) for i in range(12)]
    path = write_video(tmp_path / "clip.avi", images, fourcc="MJPG")
    frames = read_frames(path, [3, 9])
    assert sorted(frames) == [3, 9]
    assert abs(int(frames[9].mean()) - 180) <= 3
    assert read_frames(path, []) == {}


def test_collect_tracks_keeps_every_instance_of_a_frame_with_several():
    def pred(number, points):
        frame = SimpleNamespace(
            source=SimpleNamespace(path=Path("a.mp4")), image=np.zeros((48, 64, 3), np.uint8),
            number=number, fps=25.0, time=None,
        )  # fmt: skip
        kp = np.stack([np.full((5, 2), v) for v in points]).reshape(-1, 5, 2)
        return SimpleNamespace(
            frame=frame, keypoints=kp, scores=np.full((len(points), 5), 0.5),
            instance_scores=np.full(len(points), 0.5), flip_gap=None,
        )  # fmt: skip

    (track,) = collect_tracks([pred(0, [4.0, 30.0]), pred(1, [4.5, 30.5]), pred(2, [5.0])])
    assert track.multi and len(track.names) == 2
    assert track.keypoints.shape == (3, 2, 5, 2)
    firsts = sorted(track.keypoints[0, :, 0, 0])
    assert firsts == [4.0, 30.0]  # both animals of frame 0, as identities
    picks = suggest_frames([track], list("abcde"), num=3, min_gap=0)
    by_frame = {p.number: p for p in picks}
    assert by_frame[0].keypoints.shape == (2, 5, 2) and len(by_frame[0].names) == 2
    assert by_frame[2].keypoints.shape == (1, 5, 2)  # only the animal present
    assert single_instance_pick_shapes_unchanged()


def single_instance_pick_shapes_unchanged() -> bool:
    track = VideoTrack(Path("a.mp4"), 25.0, (64, 48), np.arange(3), np.arange(3) / 25.0,
                       np.zeros((3, 5, 2)), np.full((3, 5), 0.5))  # fmt: skip
    (pick,) = suggest_frames([track], list("abcde"), num=1, min_gap=0)
    return pick.keypoints.shape == (5, 2) and pick.names is None
