"""Identity tracking: crossings, occlusions, max_instances, bad input, order invariance."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keypointer.errors import ConfigError, DataError
from keypointer.temporal.tracking import Tracker, nearest_centroid_ids, track

K = 6
POSE = np.random.default_rng(123).uniform(-15, 15, (K, 2))  # one rigid pose, ~30 px across


def crossing(seed: int, frames: int = 40, noise: float = 1.0):
    """Two copies of POSE crossing in an X (one moving down-right, one up-right), met at
    frame 20; jittered, shuffled. Returns keypoints, scores and the true track per row."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) - frames // 2
    paths = np.stack(
        [np.stack([100 + 3 * t, 100 + 2 * t], 1), np.stack([100 + 3 * t, 100 - 2 * t], 1)], 1
    )
    kps, scs, truth = [], [], []
    for f in range(frames):
        kp = paths[f][:, None] + POSE + rng.normal(0, noise, (2, K, 2))
        order = rng.permutation(2)
        kps.append(kp[order])
        scs.append(rng.uniform(0.7, 1.0, (2, K)))
        truth.append(order)
    return kps, scs, truth


def id_changes(ids: list[np.ndarray], truth: list[np.ndarray]) -> int:
    """Times a true track's id differs from its id in the previous frame it was seen."""
    last: dict[int, int] = {}
    changes = 0
    for frame_ids, frame_truth in zip(ids, truth, strict=True):
        for i, m in zip(frame_ids.tolist(), frame_truth.tolist(), strict=True):
            changes += m in last and last[m] != i
            last[m] = i
    return changes


def ids_apart(ids: list[np.ndarray], truth: list[np.ndarray], meet: int = 20) -> list[set]:
    """Per true track, the ids it had in frames more than one frame from the meeting (where
    the two copies coincide and no tracker can tell them apart)."""
    seen: list[set] = [set(), set()]
    for f, (frame_ids, frame_truth) in enumerate(zip(ids, truth, strict=True)):
        if abs(f - meet) > 1:
            for i, m in zip(frame_ids.tolist(), frame_truth.tolist(), strict=True):
                seen[m].add(i)
    return seen


@pytest.mark.parametrize("motion", ["centroid", "keypoints"])
def test_crossing_keeps_ids_where_nearest_centroid_swaps(motion):
    swaps = 0
    for seed in range(6):
        kps, scs, truth = crossing(seed)
        assert ids_apart(track(kps, scs, motion=motion), truth) in ([{0}, {1}], [{1}, {0}])
        swaps += ids_apart(nearest_centroid_ids(kps, scs), truth) not in ([{0}, {1}], [{1}, {0}])
    assert swaps >= 2  # the baseline does swap at some of these crossings


def test_short_occlusion_keeps_the_id():
    kps, scs, truth = crossing(0, frames=40)
    hidden = range(5, 11)  # track 0 missing for 6 frames (0.2 s at 30 fps)
    for f in hidden:
        keep = truth[f] != 0
        kps[f], scs[f], truth[f] = kps[f][keep], scs[f][keep], truth[f][keep]
    ids = track(kps, scs, max_age=0.5)
    assert ids_apart(ids, truth) in ([{0}, {1}], [{1}, {0}])
    # A gap longer than max_age ends the track: it comes back under a new id.
    ids = track(kps, scs, max_age=0.1)
    assert ids_apart(ids, truth)[0] == {0, 2} and max(int(i.max()) for i in ids) == 2


def test_max_age_is_in_seconds_of_the_given_times():
    kp = POSE[None] + 50.0
    sc = np.ones((1, K))
    ids = track([kp, kp, kp], [sc, sc, sc], times=np.array([0.0, 0.5, 2.0]), max_age=1.0)
    assert [int(i[0]) for i in ids] == [0, 0, 1]


def test_max_instances_caps_ids_and_drops_the_worst():
    rng = np.random.default_rng(0)
    places = np.array([[50.0, 50.0], [200.0, 50.0], [50.0, 200.0]])
    kps, scs = [], []
    for _ in range(10):
        kps.append(places[:, None] + POSE + rng.normal(0, 0.5, (3, K, 2)))
        scs.append(np.array([0.9, 0.8, 0.3])[:, None] * np.ones((3, K)))
    ids = track(kps, scs, max_instances=2)
    assert all(set(i.tolist()) == {0, 1, -1} for i in ids)
    assert all(i[2] == -1 for i in ids)  # the lowest-scoring instance is the one left out
    assert id_changes([i[:2] for i in ids], [np.arange(2)] * 10) == 0


def test_max_instances_reuses_an_id_for_a_reappearing_instance():
    a, b = POSE + [50.0, 50.0], POSE + [200.0, 200.0]
    far = POSE + [400.0, 50.0]  # instance 1 comes back far away after a long absence
    frames = [np.stack([a, b])] * 3 + [a[None]] * 60 + [np.stack([a, far])] * 3
    scores = [np.ones(f.shape[:2]) for f in frames]
    ids = track(frames, scores, max_instances=2, max_age=0.5)
    assert [i.tolist() for i in ids[-3:]] == [[0, 1]] * 3
    unbounded = track(frames, scores, max_age=0.5)
    assert unbounded[-1].tolist() == [0, 2]


def test_low_scores_and_empty_instances_are_untracked():
    kp = np.stack([POSE + 50.0, POSE + 150.0, np.full((K, 2), np.nan)])
    sc = np.stack([np.full(K, 0.9), np.full(K, 0.1), np.full(K, 0.9)])
    ids = track([kp, kp], [sc, sc], min_score=0.5)
    assert [i.tolist() for i in ids] == [[0, -1, -1], [0, -1, -1]]


def test_missing_keypoints_and_empty_frames():
    kp = POSE[None] + 50.0
    partial = kp.copy()
    partial[0, :3] = np.nan  # half the points missing
    empty = np.zeros((0, K, 2))
    sc = np.ones((1, K))
    ids = track([kp, partial, empty, partial, kp], [sc, sc, np.zeros((0, K)), sc, sc])
    assert [i.tolist() for i in ids] == [[0], [0], [], [0], [0]]


def test_streaming_equals_batch():
    kps, scs, _ = crossing(3)
    tracker = Tracker(motion="keypoints")
    streamed = [
        tracker.update(kp, sc, f / 30) for f, (kp, sc) in enumerate(zip(kps, scs, strict=True))
    ]
    batch = track(kps, scs, times=np.arange(len(kps)) / 30, motion="keypoints")
    assert all(np.array_equal(a, b) for a, b in zip(streamed, batch, strict=True))


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: track([np.zeros((1, K, 2))], [np.zeros((1, K + 1))]), ValueError),  # no fit
        (lambda: track([np.zeros((1, K, 2))], []), ValueError),  # frame counts differ
        (lambda: track([np.full((1, K, 2), np.inf)], [np.ones((1, K))]), DataError),  # inf
        (lambda: track([np.zeros((1, K, 2))], [np.full((1, K), np.nan)]), DataError),  # NaN
        (
            lambda: track([np.zeros((1, K, 2))] * 2, [np.ones((1, K))] * 2, times=np.array([1, 0])),
            DataError,  # time goes back
        ),
        (lambda: track([np.zeros((1, K, 2))], [np.ones((1, K))], max_instances=0), ConfigError),
    ],
)
def test_bad_input_raises_by_the_error_rule(call, error):
    """Arrays that do not fit are the caller's bug (ValueError), bad values the video's or the
    model's (DataError), a bad setting an argument error (ConfigError)."""
    with pytest.raises(error):
        call()


def _random_video(seed: int, frames: int = 25, count: int = 4):
    """Random walks of ``count`` instances, some missing now and then, noisy points."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 300, (count, 2))
    paths = start + np.cumsum(rng.normal(0, 6, (frames, count, 2)), axis=0)
    kps, scs = [], []
    for f in range(frames):
        here = np.flatnonzero(rng.random(count) < 0.85)
        kp = paths[f, here][:, None] + POSE + rng.normal(0, 2, (len(here), K, 2))
        kp[rng.random(kp.shape[:2]) < 0.1] = np.nan
        kps.append(kp)
        scs.append(rng.uniform(0.2, 1.0, kp.shape[:2]))
    return kps, scs


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    motion=st.sampled_from(["centroid", "keypoints"]),
    cap=st.sampled_from([None, 2, 3]),
)
def test_instance_order_within_frames_does_not_matter(seed, motion, cap):
    kps, scs = _random_video(seed)
    rng = np.random.default_rng(seed + 1)
    orders = [rng.permutation(len(k)) for k in kps]
    ids = track(kps, scs, max_instances=cap, motion=motion, max_age=0.2, min_score=0.5)
    shuffled = track(
        [k[o] for k, o in zip(kps, orders, strict=True)],
        [s[o] for s, o in zip(scs, orders, strict=True)],
        max_instances=cap,
        motion=motion,
        max_age=0.2,
        min_score=0.5,
    )
    relabel: dict[int, int] = {-1: -1}
    for frame_ids, frame_shuffled, order in zip(ids, shuffled, orders, strict=True):
        for a, b in zip(frame_ids[order].tolist(), frame_shuffled.tolist(), strict=True):
            assert relabel.setdefault(a, b) == b  # one consistent relabelling for the video
    assert len(set(relabel.values())) == len(relabel)
    if cap is not None:
        assert all(i.max(initial=-1) < cap for i in ids)


def test_a_changed_keypoint_count_is_the_callers_bug():
    tracker = Tracker()
    tracker.update(POSE[None] + 50.0, np.ones((1, K)))
    tracker.update(np.zeros((0, K - 1, 2)), np.zeros((0, K - 1)))  # an empty frame is fine
    with pytest.raises(ValueError, match="keypoints per instance"):
        tracker.update(np.zeros((1, K - 1, 2)), np.ones((1, K - 1)))
