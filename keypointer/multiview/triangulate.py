"""3D points from several cameras' 2D keypoints: weighted, robust to a wrong view, vectorised.

Per point (one keypoint in one frame):

1. Views whose 2D point is NaN or scores under ``score_threshold`` are skipped; with fewer
   than 2 views left the point is NaN.
2. Robust view selection (3 cameras or more): the point is triangulated from every pair of
   views (each pair is a RANSAC hypothesis; with at most a handful of cameras all pairs are
   cheaper than sampling) and the pair whose point agrees, within ``error_threshold`` pixels,
   with the most views wins (ties: the smaller mean error). Those views are the inliers.
3. The point is triangulated from the inliers by a weighted DLT (each view's weight: its
   score to the power :data:`SCORE_POWER`; one batched SVD for all points) and refined by a
   few Gauss-Newton steps on the weighted reprojection error; then the views are re-read
   against the refined point, and points whose inliers change are solved again from the new
   inliers.
4. Optionally (``limbs``), each frame's points are refined together: a few Gauss-Newton steps
   on the weighted reprojection error plus a soft prior on each limb's length, its deviation
   from the learnt length over the limb's learnt spread (:mod:`keypointer.multiview.limbs`),
   scaled by the 2D points' noise (estimated from the residuals: with exact 2D points the
   prior has no weight; :data:`LIMB_NOISE_FACTOR`). One dense (3K x 3K) solve per frame, batched.

Reported per point: the mean reprojection error in pixels over the views used (through the
full lens model, against the given pixels) and the number of views used.

With 3 cameras a wrong point that happens to lie near its epipolar line in one other camera
agrees with that camera as well as the two right ones agree with each other: one frame cannot
tell the pairs apart, and the smaller mean error decides (on the synthetic test bed, ~7% of a
wrong camera's points stay in with 3 cameras). With 4 cameras or more the majority decides.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy.stats import chi2

from keypointer.config import KEYPOINT_SCORE_THRESHOLD
from keypointer.errors import KeypointerError
from keypointer.multiview.cameras import CameraGroup, distort_normalized
from keypointer.multiview.limbs import Limbs
from keypointer.temporal.smooth import smooth

ERROR_THRESHOLD_PX = 10.0
"""A view whose reprojection error is under this many pixels agrees with the point: about 3x a
trained model's typical keypoint error, far under a wrong detection's (another body part)."""
SCORE_POWER = 2.0
"""A view's weight is its score to this power. The weight multiplies the view's residual, so
the best weight is 1 / (the view's 2D error), and a trained heatmap model's error falls about
as score^-2 (benchmarks/RESULTS.md, "Several cameras, third step": fitted on two models)."""
REFINE_STEPS = 3
LIMB_STEPS = 2
LIMB_NOISE_FACTOR = 2.0
"""The limb prior's 2D noise over the one the residuals show: a trained model's errors are in
part the same in every view (a pull towards the mean pose), which moves the 3D point without
leaving a residual; on a trained model's predictions the residuals showed half the true
(score-weighted) 2D error, with 3 and with 6 cameras (benchmarks/RESULTS.md, "Several
cameras")."""
LIMB_CHUNK = 2_000_000  # numbers in the dense per-frame normal matrices of one batch (16 MB)
CHUNK_POINTS = 50_000  # points per batch: bounds memory at ~100 MB for 6 cameras
MIN_DEPTH = 1e-9  # normalised depth: a point at or behind a camera does not project there


@dataclass(frozen=True)
class Triangulation:
    """3D points and how they were made.

    Attributes:
        points: (F, K, 3) world points; NaN where fewer than 2 views were usable.
        error: (F, K) mean reprojection error in pixels over the views used; NaN with ``points``.
        views: (F, K) number of views used (0 where NaN).
        used: (C, F, K) which views were used.
    """

    points: np.ndarray
    error: np.ndarray
    views: np.ndarray
    used: np.ndarray


def triangulate(
    group: CameraGroup,
    points: np.ndarray,
    scores: np.ndarray | None = None,
    *,
    score_threshold: float = KEYPOINT_SCORE_THRESHOLD,
    error_threshold: float = ERROR_THRESHOLD_PX,
    robust: bool = True,
    limbs: Limbs | None = None,
    limb_noise: float | None = None,
) -> Triangulation:
    """3D points from every camera's 2D keypoints (pixels, lens distortion included).

    Args:
        group: the calibrated cameras, in the order of ``points``' first axis.
        points: (C, F, K, 2) pixel coordinates; NaN where a camera has no point.
        scores: (C, F, K) keypoint scores in [0, 1]; a view's weight is its score to the power
            :data:`SCORE_POWER`; None weighs all alike.
        score_threshold: views scoring under this are skipped.
        error_threshold: reprojection error (pixels) under which a view agrees with a point.
        robust: select views (step 2 of the module docstring); False uses every usable view.
        limbs: limb lengths (:func:`keypointer.multiview.limbs.learn_limbs`, world units):
            each frame's points are then solved together with a soft prior on them (step 4).
        limb_noise: standard deviation of the 2D points' error in pixels (times their
            weight), which sets how much the limb prior counts; None:
            :data:`LIMB_NOISE_FACTOR` times the one the reprojection residuals show
            (:func:`residual_noise`).

    Returns:
        A :class:`Triangulation` of (F, K) points.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 4 or points.shape[-1] != 2:
        raise KeypointerError(
            f"2D points must be (cameras, frames, keypoints, 2), not {points.shape}"
        )
    n_cams, n_frames, n_kp, _ = points.shape
    if n_cams != len(group):
        raise KeypointerError(
            f"2D points come from {n_cams} cameras but the calibration has {len(group)} "
            f"({', '.join(group.names)})"
        )
    if scores is None:
        scores = np.ones(points.shape[:-1])
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != points.shape[:-1]:
        raise KeypointerError(f"scores are {scores.shape}, the points {points.shape[:-1]}")

    normalised = group.undistort(points).reshape(n_cams, -1, 2)
    pixels = points.reshape(n_cams, -1, 2)
    weights = np.where(
        np.isfinite(normalised).all(-1) & (scores.reshape(n_cams, -1) >= score_threshold),
        np.nan_to_num(scores.reshape(n_cams, -1), nan=0.0) ** SCORE_POWER,
        0.0,
    )
    scene = Scene.of(group)
    n = pixels.shape[1]
    out = np.full((n, 3), np.nan)
    error = np.full(n, np.nan)
    used = np.zeros((n_cams, n), dtype=bool)
    for start in range(0, n, CHUNK_POINTS):
        s = slice(start, start + CHUNK_POINTS)
        out[s], used[:, s] = scene.solve(
            normalised[:, s], weights[:, s], error_threshold=error_threshold, robust=robust
        )
        error[s] = scene.pixel_error(out[s], pixels[:, s], used[:, s])
    if limbs is not None and len(limbs.edges):
        if limbs.edges.max() >= n_kp:
            raise KeypointerError(
                f"a limb joins keypoint {limbs.edges.max()} but the points have {n_kp} keypoints"
            )
        out = scene.constrain(out, normalised, weights * used, limbs, limb_noise, n_kp)
        error = np.concatenate(
            [
                scene.pixel_error(out[s], pixels[:, s], used[:, s])
                for s in (slice(i, i + CHUNK_POINTS) for i in range(0, n, CHUNK_POINTS))
            ]
        )
    views = used.sum(axis=0)
    return Triangulation(
        points=out.reshape(n_frames, n_kp, 3),
        error=error.reshape(n_frames, n_kp),
        views=views.reshape(n_frames, n_kp),
        used=used.reshape(n_cams, n_frames, n_kp),
    )


def confident(error: np.ndarray, views: np.ndarray) -> np.ndarray:
    """(F, K) reprojection errors and views used -> (F, K) the points to learn limbs from
    (:func:`keypointer.multiview.limbs.learn_limbs`) when there are no labels: those from 2
    views or more whose error is at most their keypoint's median. Not for a trained model's
    predictions: their limbs come out short (pulled towards the mean pose in every view), and
    such limbs made the 3D error worse (benchmarks/RESULTS.md, "Several cameras")."""
    ok = views >= 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a keypoint never triangulated
        median = np.nanmedian(np.where(ok, error, np.nan), axis=0)
    return ok & (error <= median)


@dataclass(frozen=True)
class Scene:
    """The cameras in a rescaled world (centred on the cameras, unit mean camera distance) so
    that the DLT's homogeneous coordinates are balanced whatever the world's units.

    Attributes:
        proj: (C, 3, 4) ``[R | t]`` in the rescaled world.
        centre: (3,) world point at the rescaled origin.
        scale: world units per rescaled unit.
        focal: (C, 2) focal lengths, to turn normalised errors into pixels.
        matrix: (C, 3, 3) intrinsics; dist: (C, 5) distortions.
    """

    proj: np.ndarray
    centre: np.ndarray
    scale: float
    focal: np.ndarray
    matrix: np.ndarray
    dist: np.ndarray

    @staticmethod
    def of(group: CameraGroup) -> Scene:
        extr = group.extrinsics
        centre = group.positions.mean(axis=0)
        scale = float(np.linalg.norm(group.positions - centre, axis=1).mean()) or 1.0
        # X = centre + scale Y:  R X + t = scale (R Y + (R centre + t) / scale)
        rot, t = extr[:, :, :3], extr[:, :, 3]
        proj = np.concatenate([rot, ((rot @ centre + t) / scale)[:, :, None]], axis=2)
        return Scene(
            proj=proj,
            centre=centre,
            scale=scale,
            focal=group.focals,
            matrix=np.stack([c.matrix for c in group]),
            dist=np.stack([c.dist for c in group]),
        )

    def solve(
        self, xy: np.ndarray, weights: np.ndarray, *, error_threshold: float, robust: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """(C, N, 2) normalised points and (C, N) weights (0: skip) -> (N, 3) world points and
        the (C, N) views used."""
        usable = weights > 0
        xy = np.where(usable[..., None], xy, 0.0)
        enough = usable.sum(axis=0) >= 2
        used = usable.copy()
        if robust and len(self.proj) >= 3:
            used = self.inliers_of_best_pair(xy, weights, usable, error_threshold)
        y = self.refine(dlt(self.proj, xy, weights * used), xy, weights * used)
        if robust:
            # views re-read against the refined point: a good view that a noisy pair rejected
            # comes back, a wrong one that a pair let in goes
            agree = usable & (self.errors(y, xy) < error_threshold)
            changed = (agree != used).any(axis=0) & (agree.sum(axis=0) >= 2)
            if changed.any():
                used[:, changed] = agree[:, changed]
                w = (weights * used)[:, changed]
                y[changed] = self.refine(dlt(self.proj, xy[:, changed], w), xy[:, changed], w)
        y = np.where(enough[:, None], y, np.nan)
        used &= enough
        return self.centre + self.scale * y, used

    def inliers_of_best_pair(
        self, xy: np.ndarray, weights: np.ndarray, usable: np.ndarray, threshold: float
    ) -> np.ndarray:
        """(C, N) views agreeing with the pair hypothesis that most views agree with."""
        best_key = np.full(usable.shape[1], -np.inf)
        best = usable.copy()
        for i, j in combinations(range(len(self.proj)), 2):
            pair = [i, j]
            y = linear_triangulation(self.proj[pair], xy[pair], weights[pair])
            err = np.where(usable, self.errors(y, xy), np.inf)
            inl = err < threshold
            count = inl.sum(axis=0)
            mean_err = np.where(inl, err, 0.0).sum(axis=0) / np.maximum(count, 1)
            # the count decides, the mean error (a fraction under 1) breaks ties
            key = np.where(usable[i] & usable[j], count - mean_err / (threshold + 1.0), -np.inf)
            better = key > best_key
            best_key = np.where(better, key, best_key)
            best = np.where(better, inl, best)
        # a point whose best pair has under 2 agreeing views: no majority, keep every view
        return np.where(best.sum(axis=0) >= 2, best, usable)

    def camera_coords(self, y: np.ndarray) -> np.ndarray:
        """(N, 3) rescaled points -> (C, N, 3) in every camera's frame."""
        return y[None] @ self.proj[:, :, :3].transpose(0, 2, 1) + self.proj[:, None, :, 3]

    def errors(self, y: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """(N, 3) rescaled points, (C, N, 2) normalised points -> (C, N) reprojection errors in
        undistorted pixels (inf behind a camera, NaN where ``y`` is NaN)."""
        q = self.camera_coords(y)
        depth = q[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            d = (q[..., :2] / depth[..., None] - xy) * self.focal[:, None, :]
            err = np.sqrt((d * d).sum(-1))
        return np.where(depth > MIN_DEPTH, err, np.inf)

    def refine(self, y: np.ndarray, xy: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Gauss-Newton steps on the weighted pixel reprojection error, from the DLT's (N, 3)
        points (rescaled world); a step that does not lower the error is not taken."""
        n_cams, n = weights.shape
        fw = self.focal[:, None, :] * weights[..., None]  # (C, N, 2) per-residual weights
        cost = self.cost(y, xy, fw)
        for _ in range(REFINE_STEPS):
            r, jac = self.residuals(y, xy, fw)
            jac = jac.transpose(1, 0, 2, 3).reshape(n, 2 * n_cams, 3)
            jt = jac.transpose(0, 2, 1)
            jtj = jt @ jac + 1e-12 * np.eye(3)
            jtr = jt @ r.transpose(1, 0, 2).reshape(n, 2 * n_cams, 1)
            with np.errstate(invalid="ignore"):
                trial = y - np.linalg.solve(jtj, jtr)[..., 0]
            trial_cost = self.cost(trial, xy, fw)
            better = trial_cost < cost
            y = np.where(better[:, None], trial, y)
            cost = np.where(better, trial_cost, cost)
        return y

    def residuals(
        self, y: np.ndarray, xy: np.ndarray, fw: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) rescaled points, (C, N, 2) normalised points and (C, N, 2) per-residual
        weights -> the (C, N, 2) weighted residuals and their (C, N, 2, 3) Jacobian."""
        q = self.camera_coords(y)
        z = q[..., 2:3]
        u = q[..., :2] / z
        # d u / d y = (P[:2, :3] - u P[2, :3]) / z, weighted per residual
        rot = self.proj[:, None, :, :3]
        jac = (rot[:, :, :2] - u[..., None] * rot[:, :, 2:3]) * (fw / z)[..., None]
        return (u - xy) * fw, jac

    def cost(self, y: np.ndarray, xy: np.ndarray, fw: np.ndarray) -> np.ndarray:
        """(N,) weighted squared reprojection error; inf when a weighted view is behind."""
        q = self.camera_coords(y)
        depth = q[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = (q[..., :2] / depth[..., None] - xy) * fw
        behind = ((depth <= MIN_DEPTH) & (fw[..., 0] > 0)).any(axis=0)
        out = np.nansum(r * r, axis=(0, 2))
        return np.where(behind | ~np.isfinite(y).all(-1), np.inf, out)

    def constrain(
        self,
        points: np.ndarray,
        xy: np.ndarray,
        weights: np.ndarray,
        limbs: Limbs,
        noise_px: float | None,
        n_kp: int,
    ) -> np.ndarray:
        """(N, 3) world points of F = N / ``n_kp`` frames refined with the limb prior
        (:meth:`refine_limbs`), from (C, N, 2) normalised points and (C, N) weights of the
        views used (0: unused)."""
        y = (points - self.centre) / self.scale
        xy = np.where((weights > 0)[..., None], xy, 0.0)
        if noise_px is None:
            fw = self.focal[:, None, :] * weights[..., None]
            with np.errstate(invalid="ignore"):
                r, _ = self.residuals(np.nan_to_num(y), xy, fw)
            noise_px = LIMB_NOISE_FACTOR * residual_noise(r, (weights > 0) & np.isfinite(y).all(-1))
        scaled = Limbs(limbs.edges, limbs.lengths / self.scale, limbs.spread / self.scale)
        n_cams = len(self.proj)
        y = y.reshape(-1, n_kp, 3)
        xy = xy.reshape(n_cams, -1, n_kp, 2)
        weights = weights.reshape(n_cams, -1, n_kp)
        step = max(1, LIMB_CHUNK // (3 * n_kp) ** 2)
        for f in range(0, len(y), step):
            s = slice(f, f + step)
            y[s] = self.refine_limbs(y[s], xy[:, s], weights[:, s], scaled, noise_px)
        return self.centre + self.scale * y.reshape(-1, 3)

    def refine_limbs(
        self, y: np.ndarray, xy: np.ndarray, weights: np.ndarray, limbs: Limbs, noise: float
    ) -> np.ndarray:
        """Gauss-Newton steps on each frame's points together: the weighted reprojection error
        plus, per limb, ``(noise * (length - limbs.lengths) / limbs.spread)^2``; a frame's
        step that does not lower its cost is not taken.

        Args:
            y: (F, K, 3) rescaled points, NaN where missing (left so).
            xy: (C, F, K, 2) normalised points; weights: (C, F, K), 0 where a view is unused.
            limbs: in the rescaled world's units.
            noise: standard deviation of a weighted residual (pixels x weight); 0 leaves the
                points where they are.

        Returns:
            (F, K, 3) refined points.
        """
        n_frames, n_kp, _ = y.shape
        n_cams = len(self.proj)
        a, b = limbs.edges[:, 0], limbs.edges[:, 1]
        ends = np.zeros((len(a), n_kp))  # (E, K) +1 at a limb's first keypoint, -1 at its second
        ends[np.arange(len(a)), a], ends[np.arange(len(a)), b] = 1.0, -1.0
        ok = np.isfinite(y).all(-1)
        stiff = np.where(ok[:, a] & ok[:, b], (noise / limbs.spread) ** 2, 0.0)  # (F, E)
        flat_xy = xy.reshape(n_cams, -1, 2)
        fw = self.focal[:, None, :] * weights.reshape(n_cams, -1)[..., None]
        diag = np.arange(n_kp)
        # a missing point: an identity block and no gradient, so that it stays where it is
        missing = np.where(~ok, 1.0, 0.0)[..., None, None] * np.eye(3)

        def total(z: np.ndarray) -> np.ndarray:
            rep = np.where(ok, self.cost(z.reshape(-1, 3), flat_xy, fw).reshape(ok.shape), 0.0)
            length = np.linalg.norm(z[:, a] - z[:, b], axis=-1)
            return rep.sum(axis=1) + (stiff * (length - limbs.lengths) ** 2).sum(axis=1)

        y = np.where(ok[..., None], y, 0.0)
        cost = total(y)
        for _ in range(LIMB_STEPS):
            r, jac = self.residuals(y.reshape(-1, 3), flat_xy, fw)
            jac = jac.transpose(1, 0, 2, 3).reshape(-1, 2 * n_cams, 3)
            jt = jac.transpose(0, 2, 1)
            jtj = (jt @ jac).reshape(n_frames, n_kp, 3, 3)
            grad = (jt @ r.transpose(1, 0, 2).reshape(-1, 2 * n_cams, 1)).reshape(n_frames, n_kp, 3)
            d = y[:, a] - y[:, b]
            length = np.linalg.norm(d, axis=-1)
            with np.errstate(invalid="ignore", divide="ignore"):
                unit = np.nan_to_num(d / length[..., None])
            # a limb's residual moves with +unit at its first end, -unit at its second:
            # (F, E, 3K) rows, their normal matrix and gradient
            rows = (ends[None, :, :, None] * unit[:, :, None, :]).reshape(n_frames, len(a), -1)
            hess = (rows.transpose(0, 2, 1) * stiff[:, None, :]) @ rows
            pull = (stiff * (length - limbs.lengths))[:, None, :] @ rows  # (F, 1, 3K)
            grad = grad.reshape(n_frames, -1) + pull[:, 0]
            blocks = hess.reshape(n_frames, n_kp, 3, n_kp, 3)
            blocks[:, diag, :, diag, :] += (jtj + missing).transpose(1, 0, 2, 3)
            grad = np.where(np.repeat(ok, 3, axis=1), grad, 0.0)
            with np.errstate(invalid="ignore"):
                step = np.linalg.solve(hess, grad[..., None])
            trial = y - step.reshape(n_frames, n_kp, 3)
            trial_cost = total(trial)
            better = trial_cost < cost
            y = np.where(better[:, None, None], trial, y)
            cost = np.where(better, trial_cost, cost)
        return np.where(ok[..., None], y, np.nan)

    def pixel_error(self, points: np.ndarray, pixels: np.ndarray, used: np.ndarray) -> np.ndarray:
        """(N,) mean distance in pixels, over the used views, between the given (C, N, 2)
        pixels and the (N, 3) world points projected through the full lens model."""
        q = self.camera_coords(np.nan_to_num((points - self.centre) / self.scale))
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = distort_normalized(q[..., :2] / q[..., 2:3], self.matrix, self.dist)
            dist = np.sqrt(((uv - pixels) ** 2).sum(-1))
        count = used.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, np.where(used, dist, 0.0).sum(axis=0) / count, np.nan)


def residual_noise(residuals: np.ndarray, used: np.ndarray) -> float:
    """Standard deviation of one weighted residual coordinate, robustly: per point with n used
    views, the sum of its 2n squared residuals over the median of chi-square with 2n - 3
    degrees of freedom (3 went into the point), then the median over points.

    Args:
        residuals: (C, N, 2) weighted residuals; used: (C, N) the views used.

    Returns:
        The standard deviation (0 when no point has 2 views).
    """
    n = used.sum(axis=0)
    many = n >= 2
    if not many.any():
        return 0.0
    rss = np.where(used[..., None], residuals * residuals, 0.0).sum(axis=(0, 2))[many]
    dof, index = np.unique(2 * n[many] - 3, return_inverse=True)
    return float(np.sqrt(np.median(rss / chi2.median(dof)[index])))


def normal_matrices(proj: np.ndarray, xy: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(N, 4, 4) ``A^T A`` of the weighted DLT rows ``w (x P3 - P1)``, ``w (y P3 - P2)`` of
    (C, 3, 4) projections, (C, N, 2) normalised points and (C, N) weights."""
    rows = xy[..., None] * proj[:, None, 2:3, :] - proj[:, None, :2, :]  # (C, N, 2, 4)
    rows = rows * weights[..., None, None]
    a = rows.transpose(1, 0, 2, 3).reshape(xy.shape[1], -1, 4)
    return a.transpose(0, 2, 1) @ a


def dlt(proj: np.ndarray, xy: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted direct linear transform for many points at once (one batched SVD).

    Each view adds the rows ``w (x P3 - P1)`` and ``w (y P3 - P2)``; the homogeneous point
    is the singular vector of the smallest singular value of those rows (that of their 4x4
    normal matrix: the same vector, a cheaper SVD; with the world rescaled to unit size it is
    accurate to ~1e-12 on exact data).

    Args:
        proj: (C, 3, 4) projection matrices to normalised coordinates.
        xy: (C, N, 2) normalised points (any finite value where the weight is 0).
        weights: (C, N) view weights; 0 leaves a view out.

    Returns:
        (N, 3) points; NaN where the solution is at infinity or fewer than 2 views weigh.
    """
    _, _, vh = np.linalg.svd(normal_matrices(proj, xy, weights))
    h = vh[:, -1, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        y = h[:, :3] / h[:, 3:4]
    ok = ((weights > 0).sum(axis=0) >= 2) & (np.abs(h[:, 3]) > 1e-12)
    return np.where(ok[:, None], y, np.nan)


def linear_triangulation(proj: np.ndarray, xy: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The DLT's rows solved with the homogeneous coordinate fixed to 1: a 3x3 solve per point,
    ~20x cheaper than the SVD, for the pair hypotheses (the rescaled world keeps the points
    near the origin, far from the plane at infinity where this form fails).

    Args and Returns: as :func:`dlt`.
    """
    m = normal_matrices(proj, xy, weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.linalg.solve(m[:, :3, :3] + 1e-15 * np.eye(3), -m[:, :3, 3:])[..., 0]
    return np.where(((weights > 0).sum(axis=0) >= 2)[:, None], y, np.nan)


def smooth_points(
    points: np.ndarray, scores: np.ndarray, times: np.ndarray, method: str, max_gap: int = 10
) -> np.ndarray:
    """3D tracks smoothed over time by :func:`keypointer.temporal.smooth` (2-D tracks only):
    x and y go in as one pair, z as the pair (z, z), so each point's outlier test and gap
    filling see its horizontal and its vertical motion apart; the filters themselves are
    per coordinate, so the result is each coordinate smoothed.

    Args:
        points: (T, K, 3) world points, NaN where missing.
        scores: (T, K) weights (the 3D score); NaN or below 0 counts as missing.
        times: (T,) seconds, increasing.
        method: savgol | median | kalman.
        max_gap: gaps up to this many frames are filled.

    Returns:
        (T, K, 3) smoothed points (NaN where a track has no value).
    """
    n_kp = points.shape[1]
    pairs = np.concatenate([points[..., :2], points[..., [2, 2]]], axis=1)  # (T, 2K, 2)
    weights = np.nan_to_num(np.concatenate([scores, scores], axis=1), nan=-1.0)
    out = smooth(pairs, weights, times, method, min_score=0.0, max_gap=max_gap)
    return np.concatenate([out[:, :n_kp], out[:, n_kp:, :1]], axis=-1)
