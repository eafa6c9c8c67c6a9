"""keypointer.multiview.identities: each camera's animals, in their own order in every frame,
are matched across views by epipolar distance and kept in place over time in 3D, with
animals missing from some views."""

from __future__ import annotations

import numpy as np
import pytest

from keypointer.multiview import identities
from keypointer.multiview.identities import (
    epipolar_costs,
    gather,
    match_views,
    reorder,
    track_animals,
)
from keypointer.multiview.synthetic import camera_ring, figures_motion, shuffled_views
from keypointer.multiview.triangulate import triangulate


def two_animals(n_cams=3, frames=40, noise_px=0.0, seed=0, apart=True):
    """(group, per-camera points, scores, which (C, F, A), truth (F, A, K, 3))."""
    group = camera_ring(n_cams, seed=seed)
    figures = figures_motion(2, frames, 8, seed=seed, apart=apart)
    uv, scores, which = shuffled_views(group, figures, noise_px=noise_px, seed=seed)
    truth = np.stack([f.points for f in figures], axis=1)
    return group, list(uv), list(scores), which, truth


def true_animal(views, which):
    """(C, F, A) the figure each camera's view of each matched animal shows, -1 where none."""
    frames = np.arange(views.shape[1])[:, None]
    found = np.stack([which[c][frames, np.maximum(views[c], 0)] for c in range(len(views))])
    return np.where(views >= 0, found, -1)


def test_a_right_pair_of_views_costs_nothing_a_wrong_one_much():
    group, points, scores, which, _ = two_animals(frames=5)
    costs = epipolar_costs(group, points, scores)
    assert sorted(costs) == [(0, 1), (0, 2), (1, 2)]
    for (c, d), cost in costs.items():
        same = which[c][:, :, None] == which[d][:, None, :]  # (F, I_c, I_d)
        assert cost.shape == (5, 2, 2)
        np.testing.assert_allclose(cost[same], 0, atol=1e-6)
        assert cost[~same].min() > 20


def test_shuffled_views_are_matched_and_tracked_to_the_truth():
    group, points, scores, which, truth = two_animals(noise_px=1.0)
    views = match_views(group, points, scores, animals=2)
    # every matched animal's views show one figure
    figure = true_animal(views, which)
    assert (figure >= 0).all()
    assert (figure == figure[:1]).all()
    xy, sc = gather(points, scores, views)
    tri = triangulate(group, xy.reshape(3, -1, 8, 2), sc.reshape(3, -1, 8))
    order = track_animals(tri.points.reshape(40, 2, 8, 3))
    found = reorder(tri.points.reshape(40, 2, 8, 3), order)
    # the same figure in every frame, whichever it is
    first = int(np.linalg.norm(found[0, 0] - truth[0, 1], axis=-1).mean() < 20)
    error = np.linalg.norm(found - truth[:, [first, 1 - first]], axis=-1)
    assert np.median(error) < 3 and error.max() < 20


def test_an_animal_missing_in_one_camera_is_made_from_the_others():
    group, points, scores, which, _ = two_animals(n_cams=3, frames=20)
    gone = which == 1  # (C, F, I): figure 1 is not seen by camera 0 in frames 5-14
    gone[:, :5] = gone[:, 15:] = False
    points[0][gone[0]] = np.nan
    scores[0][gone[0]] = 0
    views = match_views(group, points, scores, animals=2)
    figure = true_animal(views, which)
    n_views = (views >= 0).sum(axis=0)  # (F, A)
    for f in range(20):
        seen = {int(a): int(n) for a, n in zip(figure[:, f].max(0), n_views[f], strict=True)}
        assert seen == ({0: 3, 1: 2} if 5 <= f < 15 else {0: 3, 1: 3})
    # a figure seen by no camera but one is no animal
    points[1][gone[1]] = np.nan
    views = match_views(group, points, scores, animals=2)
    assert ((views >= 0).sum(axis=0)[5:15] > 0).sum(axis=1).tolist() == [1] * 10


def test_frames_matched_in_chunks_match_alike(monkeypatch):
    group, points, scores, _, _ = two_animals(frames=20, noise_px=1.0)
    whole = match_views(group, points, scores, animals=2)
    monkeypatch.setattr(identities, "CHUNK_FRAMES", 7)
    np.testing.assert_array_equal(match_views(group, points, scores, animals=2), whole)


def test_at_most_the_animals_asked_for():
    group, points, scores, _, _ = two_animals(frames=3)
    views = match_views(group, points, scores, animals=1)
    assert views.shape == (3, 3, 1) and (views >= 0).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_tracks_stay_in_place_when_each_frame_comes_shuffled(seed):
    rng = np.random.default_rng(seed)
    truth = np.stack([f.points for f in figures_motion(3, 30, 5, seed=seed)], axis=1)
    shuffled = np.stack([truth[f, rng.permutation(3)] for f in range(30)])
    shuffled[10:13, 0] = np.nan  # a slot empty for a few frames
    order = track_animals(shuffled)
    assert sorted(order[0].tolist()) == [0, 1, 2]
    found = reorder(shuffled, order)
    for a in range(3):
        here = np.isfinite(found[:, a, 0, 0])
        who = [
            int(np.argmin(np.linalg.norm(truth[f, :, 0] - found[f, a, 0], axis=-1)))
            for f in np.flatnonzero(here)
        ]
        assert len(set(who)) == 1
