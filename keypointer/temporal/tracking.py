"""Identity tracking of several instances through video: who is who in every frame.

Input per frame t: keypoints (M_t, K, 2) in image pixels (x, y), NaN for a missing point, and
scores (M_t, K). Output per frame: (M_t,) int track ids, -1 for an instance left untracked
(mean score below ``min_score``, no finite keypoint, or no id left under ``max_instances``).
Times are in seconds; without them frames are 1 / ``fps`` apart. :class:`Tracker` streams
(one ``update`` per frame), :func:`track` runs a whole video.

- Motion: a constant-velocity Kalman filter per track. ``motion="centroid"`` (default) filters
  the instance's centre, measured through each keypoint's running-average offset from it (so
  a missing keypoint cannot bias it); ``"keypoints"`` runs one filter per keypoint. The
  centroid filter made fewer ID switches over a wider range of ``accel`` (measured:
  benchmarks/RESULTS.md, "Tracking"): its velocity averages K keypoints' noise, and swinging
  limbs are not motion.
- Cost: 1 - an OKS-like similarity of the predicted pose and a detection, the score-weighted
  mean over shared keypoints of (kappa^2 size^2 / tol) exp(-d^2 / (2 tol)), tol = kappa^2
  size^2 + the filter's variance (size: sqrt of the keypoint box area). A track unseen for a
  while reaches further but scores lower, so it never beats a fresh one. Pairs whose mean
  exp(-d^2 / (2 tol)) is below ``min_similarity`` are gated out; the rest are paired by a
  Hungarian assignment (scipy), then the leftovers by position within ``reach`` sizes.
- Update: keypoints farther than ``inlier`` sizes + 3 sigma from the prediction (outliers, the
  other animal's points in a mixed-up detection of two overlapping ones) do not move the
  filter; without this, mixed-up detections during overlaps swapped most identities.
- Life cycle: a track unmatched for over ``max_age`` seconds ends, one seen only once ends at
  its first miss (a false positive); an unmatched detection starts a track. With
  ``max_instances = N`` ids stay in 0..N-1: tracks never end, and once all N exist the
  unmatched detections, best score first, take the unmatched tracks (nearest last centre
  first, filter restarted); the rest get -1.

The filter is ~30 lines of numpy here, not filterpy: x and y share one isotropic model, so a
point's covariance is one 2x2 [position, velocity] block and predict/update are array
expressions over all keypoints at once (filterpy: one object and general matrices per filter).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from keypointer.config import DEFAULT_FPS
from keypointer.errors import ConfigError, DataError
from keypointer.metrics.tracking import min_cost_matching


@dataclass(frozen=True)
class TrackerSettings:
    """Matching and motion model, distances in instance sizes; defaults chosen on
    benchmarks/tracking.py (seeds 100-102, not the reported ones). ``motion``: "centroid" or
    "keypoints"; ``kappa``: the similarity's tolerance; ``min_similarity``: the gate;
    ``reach``: the second pass's; ``accel``: white acceleration density, sizes / s^1.5;
    ``noise``: a score-1 keypoint's measurement noise; ``inlier``: points farther (+ 3 sigma)
    do not update; ``offset_rate``: of the centroid filter's offsets; ``min_size``: pixels.
    """

    motion: str = "centroid"
    kappa: float = 0.2
    min_similarity: float = 0.05
    reach: float = 1.0
    accel: float = 4.0
    noise: float = 0.05
    inlier: float = 0.15
    offset_rate: float = 0.5
    min_size: float = 8.0

    def __post_init__(self):
        if self.motion not in ("centroid", "keypoints"):
            raise ConfigError(f"motion must be 'centroid' or 'keypoints', not {self.motion!r}")


@dataclass
class _Track:
    """Filter state: positions and velocities (P, 2), covariance (P, 2, 2) of P points."""

    id: int
    pos: np.ndarray
    vel: np.ndarray
    cov: np.ndarray
    offsets: np.ndarray | None  # (K, 2) keypoint offsets from the centre (centroid motion)
    size: float
    time: float  # time of the last matched detection (the filter's state refers to it)
    hits: int = 1  # matched detections so far
    centre: np.ndarray = field(default_factory=lambda: np.zeros(2))  # last measured centre


class Tracker:
    """Streaming tracker: ``ids = tracker.update(keypoints, scores, time)`` once per frame.

    Args:
        max_instances: at most this many identities, ids 0..N-1; None: unbounded.
        max_age: seconds a track survives without a match (occlusions, misses).
        min_score: instances whose mean keypoint score is below this get -1.
        fps: frame rate assumed when ``update`` gets no time.
        settings: fields of :class:`TrackerSettings` (motion, kappa, accel, ...).
    """

    def __init__(
        self,
        max_instances: int | None = None,
        max_age: float = 1.0,
        min_score: float = 0.0,
        fps: float = DEFAULT_FPS,
        **settings,
    ):
        if max_instances is not None and max_instances < 1:
            raise ConfigError(f"max_instances must be at least 1, not {max_instances}")
        self.max_instances, self.max_age, self.min_score = max_instances, max_age, min_score
        self.fps, self.settings = fps, TrackerSettings(**settings)
        self.tracks: list[_Track] = []
        self.time, self._next_id, self._k = None, 0, None  # last time, next new id, K

    def update(self, keypoints: np.ndarray, scores: np.ndarray, time: float | None = None):
        """Match one frame's instances to the tracks.

        Args:
            keypoints: (M, K, 2) image pixels, NaN for a missing point.
            scores: (M, K).
            time: seconds (None: 1 / ``fps`` after the previous frame, 0 for the first).

        Returns:
            (M,) int track ids, -1 for an instance left untracked.
        """
        kp, sc, ok = _frame(keypoints, scores, self.min_score, self._k)
        self._k = kp.shape[1] if len(kp) else self._k
        time = (0.0 if self.time is None else self.time + 1 / self.fps) if time is None else time
        if self.time is not None and time < self.time:
            raise DataError(f"time goes back: {time} after {self.time}")
        self.time = float(time)
        if self.max_instances is None:
            self.tracks = [t for t in self.tracks if self.time - t.time <= self.max_age]
        ids = np.full(len(kp), -1, dtype=np.int64)
        live = [j for j, t in enumerate(self.tracks) if self.time - t.time <= self.max_age]
        dets = np.flatnonzero(ok)
        rows, cols = self._match(live, kp[dets], sc[dets])
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            ids[dets[c]] = self._correct(self.tracks[live[r]], kp[dets[c]], sc[dets[c]])
        matched = {live[r] for r in rows.tolist()}
        if self.max_instances is None:  # a track seen once and missed next was likely a false
            self.tracks = [  # positive: it ends now rather than after max_age
                t for j, t in enumerate(self.tracks) if j in matched or t.hits >= 2
            ]
            matched = set(range(len(self.tracks)))
        free = [j for j in range(len(self.tracks)) if j not in matched]
        # Leftovers, best score first (so the result does not depend on the instances' order).
        rest = sorted(set(dets.tolist()) - set(dets[cols].tolist()), key=lambda i: -sc[i].mean())
        for i in rest:
            if self.max_instances is None or self._next_id < self.max_instances:
                self.tracks.append(self._start(self._next_id, kp[i], sc[i]))
                ids[i], self._next_id = self._next_id, self._next_id + 1
        self._take_free(ids, [i for i in rest if ids[i] < 0], free, kp, sc)
        return ids

    def _take_free(self, ids, rest: list[int], free: list[int], kp, sc) -> None:
        """All N ids exist: the best-scoring leftovers restart the unmatched tracks, nearest first."""
        rest = rest[: len(free)]
        if not rest:
            return
        centres = np.array([_centre(kp[i]) for i in rest])
        last = np.array([self.tracks[j].centre for j in free])
        rows, cols = linear_sum_assignment(np.linalg.norm(centres[:, None] - last, axis=-1))
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            j, i = free[c], rest[r]
            self.tracks[j] = self._start(self.tracks[j].id, kp[i], sc[i])
            ids[i] = self.tracks[j].id

    def _match(self, live: list[int], kp: np.ndarray, sc: np.ndarray) -> tuple:
        """(rows into ``live``, rows into ``kp``) paired: by pose, then leftovers by position.

        The second pass catches tracks whose prediction missed (a sudden burst of speed, a
        velocity spoilt by a mixed-up detection): without it they would end and restart
        under a new id, and the stale track would compete with the new one.
        """
        pred = [self._predict(self.tracks[j]) for j in live]
        sizes = np.array([self.tracks[j].size for j in live])
        cost, shift = self._cost(pred, sizes, kp, sc)
        rows, cols = self._pair(cost)
        if self.settings.reach > 0 and len(rows) < min(cost.shape):
            shift[rows, :], shift[:, cols] = np.inf, np.inf
            more = self._pair(np.where(shift <= self.settings.reach, shift, np.inf))
            rows, cols = np.r_[rows, more[0]], np.r_[cols, more[1]]
        return rows, cols

    _pair = staticmethod(min_cost_matching)  # Hungarian, most pairs first (the baseline: greedy)

    # The filter: each point's state is (position, velocity) per axis, x and y alike.
    def _propagate(self, t: _Track) -> tuple[np.ndarray, np.ndarray]:
        """Positions (P, 2) and covariance (P, 2, 2) of track ``t`` moved on to ``self.time``."""
        dt = self.time - t.time
        f = np.array([[1.0, dt], [0.0, 1.0]])
        q = (self.settings.accel * t.size) ** 2  # white acceleration: Q = q [[dt^3/3, ...]]
        noise = q * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
        return t.pos + dt * t.vel, f @ t.cov @ f.T + noise

    def _predict(self, t: _Track) -> tuple[np.ndarray, np.ndarray]:
        """Predicted keypoints (K, 2) and their position variances (K,) at ``self.time``."""
        pos, cov = self._propagate(t)
        if t.offsets is None:
            return pos, cov[:, 0, 0]
        return pos + t.offsets, np.broadcast_to(cov[:, 0, 0], len(t.offsets))

    def _correct(self, t: _Track, kp: np.ndarray, sc: np.ndarray) -> int:
        """Fold a matched detection into track ``t`` (Kalman update); returns its id."""
        cfg = self.settings
        guess, guess_var = self._predict(t)
        far = np.sum((kp - guess) ** 2, -1) >= (cfg.inlier * t.size) ** 2 + 9 * guess_var
        t.pos, t.cov = self._propagate(t)
        t.time = self.time
        seen = np.isfinite(kp).all(-1)
        var = (cfg.noise * t.size) ** 2 / np.clip(sc, 0.05, 1.0)
        if t.offsets is None:  # one filter per keypoint
            known = np.isfinite(t.pos).all(-1)
            new = seen & ~known  # first sighting: starts at the track's mean velocity
            if new.any():
                t.vel[new] = np.mean(t.vel[known], axis=0) if known.any() else 0.0
                t.pos[new], t.cov[new] = kp[new], _prior(var[new], t.size)
            _kalman_update(t, kp, var, seen & known & ~far)
        else:
            self._correct_centre(t, kp, var, seen, far)
        t.size = _size(kp, t.size, cfg.min_size)
        t.centre, t.hits = _centre(kp), t.hits + 1
        return t.id

    def _correct_centre(self, t: _Track, kp, var, seen, far) -> None:
        """Centroid motion: the centre measured through the known offsets, then the offsets."""
        known = seen & np.isfinite(t.offsets).all(-1)
        inliers = known & ~far
        use = inliers if inliers.any() else (known if known.any() else seen)
        offs = t.offsets[use] if known.any() else kp[use] - np.mean(kp[use], axis=0)
        w = 1.0 / var[use]
        z = np.sum(w[:, None] * (kp[use] - offs), axis=0) / w.sum()
        _kalman_update(t, z[None], np.array([1.0 / w.sum()]), np.array([True]))
        new, old = kp[seen] - t.pos[0], t.offsets[seen]
        # Far points move the offsets slowly: one that truly moved (after hiding) still follows.
        rate = self.settings.offset_rate
        a = np.where(far[seen], rate / 5, rate)[:, None]
        t.offsets[seen] = np.where(np.isfinite(old), (1 - a) * old + a * new, new)
        shift = np.nanmean(t.offsets, axis=0)  # keep the centre at the offsets' mean
        t.offsets -= shift
        t.pos[0] += shift

    def _start(self, track_id: int, kp: np.ndarray, sc: np.ndarray) -> _Track:
        """A new track at detection ``kp``: measured position, unknown velocity."""
        size = _size(kp, 0.0, self.settings.min_size)
        var = (self.settings.noise * size) ** 2 / np.clip(sc, 0.05, 1.0)
        centre = _centre(kp)
        if self.settings.motion == "keypoints":
            pos, offsets = kp.copy(), None
        else:
            pos, offsets = centre[None].copy(), kp - centre
            var = np.array([1.0 / np.sum(1.0 / var[np.isfinite(kp).all(-1)])])
        vel, cov = np.zeros_like(pos), _prior(var, size)
        return _Track(track_id, pos, vel, cov, offsets, size, self.time, centre=centre)

    def _cost(self, pred, sizes: np.ndarray, kp: np.ndarray, sc: np.ndarray) -> tuple:
        """(tracks, detections): 1 - similarity (inf: gated out), and the mean offset between
        the poses over shared keypoints in sizes (inf: none shared)."""
        if not pred or not len(kp):
            return np.zeros((len(pred), len(kp))), np.zeros((len(pred), len(kp)))
        k2 = (self.settings.kappa * sizes)[:, None, None] ** 2
        tol = k2 + np.stack([p[1] for p in pred])[:, None]  # (J, 1, K)
        diff = kp[None] - np.stack([p[0] for p in pred])[:, None]  # (J, I, K, 2)
        both = np.isfinite(diff).all(-1)
        diff = np.where(both[..., None], diff, 0.0)
        w = both * np.clip(sc, 1e-3, None)[None]
        near = np.exp(-np.sum(diff**2, -1) / (2 * tol))
        total = np.maximum(w.sum(-1), 1e-12)
        # Gate on closeness given the uncertainty; the cost also scales by k2 / tol (a wider
        # Gaussian has a lower peak): a track unsure where it is must not beat a fresh one.
        gate, sim = np.sum(w * near, -1) / total, np.sum(w * near * k2 / tol, -1) / total
        shift = np.linalg.norm(diff.sum(2), axis=-1) / np.maximum(both.sum(-1), 1) / sizes[:, None]
        ok = both.any(-1)
        cost = np.where(ok & (gate >= self.settings.min_similarity), 1.0 - sim, np.inf)
        return cost, np.where(ok, shift, np.inf)


def _prior(var: np.ndarray, size: float) -> np.ndarray:
    """Covariance (P, 2, 2) of new points: position variance ``var``, speed ~2 sizes/s."""
    cov = np.zeros((len(var), 2, 2))
    cov[:, 0, 0], cov[:, 1, 1] = var, (2.0 * size) ** 2
    return cov


def _kalman_update(t: _Track, z: np.ndarray, r: np.ndarray, mask: np.ndarray) -> None:
    """Kalman update of the points in ``mask`` with measurements z (P, 2), variances r (P,)."""
    if not mask.any():
        return
    cov = t.cov[mask]
    gain = cov[:, :, 0] / (cov[:, 0, 0] + r[mask])[:, None]  # (n, 2): position, velocity
    innov = z[mask] - t.pos[mask]
    t.pos[mask] += gain[:, :1] * innov
    t.vel[mask] += gain[:, 1:] * innov
    t.cov[mask] = cov - gain[:, :, None] * cov[:, None, 0, :]


def _centre(kp: np.ndarray) -> np.ndarray:
    return np.nanmean(kp, axis=0)  # of the finite keypoints (callers pass at least one)


def _size(kp: np.ndarray, old: float, floor: float) -> float:
    """sqrt(area) of the finite keypoints' box; ``old`` when fewer than two are seen."""
    seen = kp[np.isfinite(kp).all(-1)]
    if len(seen) < 2:
        return max(old, floor)
    span = seen.max(0) - seen.min(0)
    return max(float(np.sqrt(span[0] * span[1])), float(np.max(span)) / 4, floor)


def _frame(keypoints, scores, min_score: float, k: int | None) -> tuple:
    """Validated keypoints (M, K, 2) (NaN: missing), scores (M, K), and which are tracked (M,)."""
    kp = np.asarray(keypoints, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64)
    if kp.size == 0 and sc.size == 0:
        return np.zeros((0, 0, 2)), np.zeros((0, 0)), np.zeros(0, bool)
    if kp.ndim != 3 or kp.shape[-1] != 2 or sc.shape != kp.shape[:2]:
        raise ValueError(f"keypoints {kp.shape} and scores {sc.shape} are not (M, K, 2), (M, K)")
    if k is not None and kp.shape[1] != k:
        raise ValueError(f"{kp.shape[1]} keypoints per instance after {k} in earlier frames")
    if np.isinf(kp).any():
        raise DataError("keypoints hold inf (use NaN for a missing point)")
    seen = np.isfinite(kp).all(-1)
    kp = np.where(seen[..., None], kp, np.nan)
    if not np.isfinite(sc[seen]).all():
        raise DataError("a keypoint has a position but a NaN or inf score")
    sc = np.where(seen, sc, 0.0)
    mean = sc.sum(-1) / np.maximum(seen.sum(-1), 1)
    return kp, sc, seen.any(-1) & (mean >= min_score)


class _NearestCentroid(Tracker):
    """The baseline: tracks' last centres paired greedily to the nearest detection centres up
    to ``max_distance`` sizes; no motion, no pose; the life cycle of :class:`Tracker`."""

    def __init__(self, *args, max_distance: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs, reach=0.0)
        self.max_distance = max_distance

    def _predict(self, t: _Track) -> tuple[np.ndarray, np.ndarray]:
        return t.centre, np.zeros(1)

    def _cost(self, pred, sizes: np.ndarray, kp: np.ndarray, sc: np.ndarray) -> tuple:
        if not pred or not len(kp):
            return np.zeros((len(pred), len(kp))), None
        last = np.stack([p[0] for p in pred])
        dist = np.linalg.norm(last[:, None] - np.nanmean(kp, axis=1), axis=-1) / sizes[:, None]
        return np.where(dist <= self.max_distance, dist, np.inf), None

    def _pair(self, cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Greedy: the closest remaining pair first."""
        rows, cols, cost = [], [], cost.copy()
        while cost.size and np.isfinite(cost).any():
            r, c = np.unravel_index(np.argmin(cost), cost.shape)
            rows, cols = rows + [r], cols + [c]
            cost[r, :], cost[:, c] = np.inf, np.inf
        return np.array(rows, dtype=int), np.array(cols, dtype=int)

    def _correct(self, t: _Track, kp: np.ndarray, sc: np.ndarray) -> int:
        t.time, t.centre, t.size = self.time, _centre(kp), _size(kp, t.size, self.settings.min_size)
        t.hits += 1
        return t.id


def nearest_centroid_ids(
    keypoints: Sequence[np.ndarray],
    scores: Sequence[np.ndarray],
    times: np.ndarray | None = None,
    max_instances: int | None = None,
    max_age: float = 1.0,
    min_score: float = 0.0,
    max_distance: float = 1.0,
    fps: float = DEFAULT_FPS,
) -> list[np.ndarray]:
    """The frame-by-frame nearest-centroid baseline, for comparison only.

    Each track is where its last detection's centre was; a frame's detections are paired
    greedily, closest first, up to ``max_distance`` instance sizes away.

    Args:
        keypoints, scores, times, max_instances, max_age, min_score: as :func:`track`.
        max_distance: in instance sizes.
        fps: as :func:`track`.

    Returns:
        As :func:`track`.
    """
    tracker = _NearestCentroid(max_instances, max_age, min_score, fps, max_distance=max_distance)
    return _run(tracker, keypoints, scores, times)


def track(
    keypoints: Sequence[np.ndarray],
    scores: Sequence[np.ndarray],
    times: np.ndarray | None = None,
    max_instances: int | None = None,
    max_age: float = 1.0,
    min_score: float = 0.0,
    **options,
) -> list[np.ndarray]:
    """Track the instances of a whole video (see :class:`Tracker`).

    Args:
        keypoints: per frame t, (M_t, K, 2) image pixels with NaN for a missing point.
        scores: per frame t, (M_t, K).
        times: (T,) seconds; None: frames 1 / ``fps`` apart.
        max_instances, max_age, min_score: as :class:`Tracker`.
        options: ``fps`` and the fields of :class:`TrackerSettings`.

    Returns:
        Per frame, (M_t,) int track ids, -1 for an instance left untracked.
    """
    return _run(Tracker(max_instances, max_age, min_score, **options), keypoints, scores, times)


def _run(tracker: Tracker, keypoints, scores, times) -> list[np.ndarray]:
    n, n_times = len(keypoints), len(keypoints) if times is None else len(times)
    if len(scores) != n or n_times != n:
        raise ValueError(f"{n} keypoint frames, {len(scores)} score frames, {n_times} times")
    return [
        tracker.update(kp, sc, None if times is None else float(times[t]))
        for t, (kp, sc) in enumerate(zip(keypoints, scores, strict=True))
    ]
