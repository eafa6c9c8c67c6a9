"""Calibration of a camera group from synchronised views of a ChArUco board or a checkerboard.

1. Board corners in every frame of every camera (:meth:`Board.detect`, :func:`detect_videos`):
   a dense (C, F, M, 2) array, NaN where a camera does not see a corner.
2. Intrinsics per camera (``cv2.calibrateCamera`` on up to ``MAX_INTRINSIC_VIEWS`` of its
   views), then the board's pose in every view (``cv2.solvePnP``).
3. Extrinsics: the relative pose of each pair of cameras that see the board in the same
   frames (rotation averaged, translation median over those frames); the poses are chained
   from camera 0 along the maximum spanning tree of the camera graph (edge weight: shared
   frames), so that each camera hangs on its best-connected neighbour.
4. Bundle adjustment (Levenberg-Marquardt on a sparse Jacobian with a sparse direct solve,
   Huber loss at 1 px, then again at the corners' noise when the residuals have a tail;
   :func:`levenberg_marquardt` says why not ``scipy.optimize.least_squares``) of
   every camera's pose (camera 0 fixed: its frame is the world's), optionally the
   intrinsics, and the board's pose in every frame, over the reprojection error of every
   corner seen.

World units are the board's (``square_length``): millimetres if the board is given in mm.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import breadth_first_order, connected_components, minimum_spanning_tree
from scipy.sparse.linalg import spsolve

from keypointer.errors import DataError, KeypointerError
from keypointer.multiview.cameras import Camera, CameraGroup, distort_normalized

MIN_CORNERS = 6
"""Corners a view needs to count as a board detection (a pose needs 4; 6 resist a bad one)."""
MIN_BOARD_VIEWS = 8
"""Board detections a camera needs: fewer leave its focal length and distortion loose."""
MAX_INTRINSIC_VIEWS = 40  # cv2.calibrateCamera's cost grows with views; 40 spread ones suffice
MAX_ITERATIONS = 100  # bundle adjustment steps; synthetic clips converge in about 10
RELATIVE_TOLERANCE = 1e-6  # stop when a step lowers the cost by less than this share (the
# steps a tighter one adds move the cameras by microns)
POSE_OUTLIER_DEG = 10.0  # a relative rotation this far from the others' mean is a bad pose
HUBER_PX = 1.0  # residuals beyond this count linearly: a misdetected corner cannot drag the fit
HUBER_NOISE = 1.0  # the second pass's Huber threshold, in units of the corners' noise
MIN_HUBER_PX = 0.01  # exact corners have no noise to scale by
TAIL_SIGMAS, TAIL_SHARE = 3.0, 0.03  # a tail: over 3% of residuals beyond 3 sigma (Gaussian: 1%)
INTRINSIC_FLAGS = cv2.CALIB_FIX_K3  # k3 only helps wide-angle lenses and overfits otherwise


# --------------------------------------------------------------------------- boards


@dataclass(frozen=True)
class Board:
    """A calibration board.

    Attributes:
        squares: (columns, rows) of chessboard squares.
        square_length: side of a square, in the unit the calibration will be in (e.g. mm).
        marker_length: side of a ChArUco marker; None for a plain checkerboard.
        dictionary: the ArUco dictionary's OpenCV name (ChArUco only).
        legacy: OpenCV's pre-4.6 ChArUco layout (boards with an even number of rows from older
            generators, calib.io's among them).

    A checkerboard needs one odd and one even number of squares: turned by half a turn, a
    symmetric one looks the same, and two cameras could number its corners from opposite
    ends. Its top-left square is black (corner 0 is that square's inner corner).
    """

    squares: tuple[int, int] = (7, 5)
    square_length: float = 40.0
    marker_length: float | None = 30.0
    dictionary: str = "DICT_4X4_50"
    legacy: bool = False

    def __post_init__(self) -> None:
        if min(self.squares) < 2 or self.square_length <= 0:
            raise KeypointerError(f"a board needs 2x2 squares or more, not {self.squares}")
        if not self.is_charuco and self.squares[0] < 4:
            raise KeypointerError("a checkerboard needs 4 columns of squares or more")
        if not self.is_charuco and sum(self.squares) % 2 == 0:
            raise KeypointerError(
                f"a {self.squares[0]}x{self.squares[1]} checkerboard looks the same turned by "
                "half a turn, so cameras may number its corners from opposite ends: use one "
                "with an odd and an even number of squares (e.g. 7x6), or a ChArUco board"
            )

    @property
    def is_charuco(self) -> bool:
        return self.marker_length is not None

    @property
    def inner(self) -> tuple[int, int]:
        """(columns, rows) of inner corners: the points calibration uses."""
        return self.squares[0] - 1, self.squares[1] - 1

    def object_points(self) -> np.ndarray:
        """(M, 3) the inner corners on the board, z = 0, row by row from the top-left: the
        order of ChArUco corner ids and of ``cv2.findChessboardCorners``."""
        cols, rows = self.inner
        ix, iy = np.meshgrid(np.arange(1, cols + 1), np.arange(1, rows + 1))
        xy = np.stack([ix.ravel(), iy.ravel()], axis=1) * self.square_length
        return np.column_stack([xy, np.zeros(len(xy))]).astype(np.float64)

    def charuco(self) -> cv2.aruco.CharucoBoard:
        if not self.is_charuco:
            raise KeypointerError("a checkerboard has no ChArUco description")
        name = self.dictionary.upper()
        if not hasattr(cv2.aruco, name):
            raise KeypointerError(f"unknown ArUco dictionary {self.dictionary!r}")
        board = cv2.aruco.CharucoBoard(
            self.squares,
            self.square_length,
            self.marker_length,
            cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, name)),
        )
        board.setLegacyPattern(self.legacy)
        return board

    def image(self, pixels_per_unit: float) -> np.ndarray:
        """(H, W) uint8 picture of the board, ``pixels_per_unit`` pixels per world unit."""
        size = (
            round(self.squares[0] * self.square_length * pixels_per_unit),
            round(self.squares[1] * self.square_length * pixels_per_unit),
        )
        if self.is_charuco:
            return self.charuco().generateImage(size, marginSize=0, borderBits=1)
        ix, iy = np.meshgrid(np.arange(size[0]), np.arange(size[1]))
        cell = self.square_length * pixels_per_unit
        black = ((ix // cell).astype(int) + (iy // cell).astype(int)) % 2 == 0
        return np.where(black, 0, 255).astype(np.uint8)

    def detect(self, image: np.ndarray) -> np.ndarray:
        """(M, 2) pixels of the board's corners in ``image`` (grey or BGR); NaN where a corner
        is not found (a checkerboard is found whole or not at all)."""
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        out = np.full((len(self.object_points()), 2), np.nan)
        if self.is_charuco:
            corners, ids, _, _ = cv2.aruco.CharucoDetector(self.charuco()).detectBoard(grey)
            if ids is not None and len(ids):
                out[ids.ravel()] = corners.reshape(-1, 2)
            return out
        found, corners = cv2.findChessboardCorners(
            grey, self.inner, flags=cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
        )
        if found:
            criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 1e-3)
            corners = cv2.cornerSubPix(grey, corners, (5, 5), (-1, -1), criteria)
            corners = corners.reshape(-1, 2).astype(np.float64)
            out[:] = corners if self.black_corner_first(grey, corners) else corners[::-1]
        return out

    def black_corner_first(self, grey: np.ndarray, corners: np.ndarray) -> bool:
        """Whether ``corners`` (M, 2), as OpenCV ordered them, start at the black corner square's
        end: the square inside corners 0, 1, cols, cols + 1 (black, like the corner square)
        is darker than the next one along the row. OpenCV may start from either end; reversed,
        the corners start from the other."""
        cols = self.inner[0]
        first = corners[[0, 1, cols, cols + 1]].mean(axis=0)
        second = corners[[1, 2, cols + 1, cols + 2]].mean(axis=0)
        x, y = np.round([first, second]).astype(int).T
        return int(grey[y[0], x[0]]) <= int(grey[y[1], x[1]])


@dataclass(frozen=True)
class BoardVideos:
    """Board corners found in synchronised videos.

    Attributes:
        corners: (C, F, M, 2) pixels, NaN where not found.
        names: the cameras' names (the videos' stems).
        sizes: (width, height) of each camera's frames.
        fps: the videos' common frame rate.
    """

    corners: np.ndarray
    names: list[str]
    sizes: list[tuple[int, int]]
    fps: float


def detect_videos(
    videos: Sequence[str | Path],
    board: Board,
    every: int = 1,
    progress: Callable[[], None] | None = None,
) -> BoardVideos:
    """The board's corners in every ``every``-th frame of synchronised videos, one a camera;
    ``progress`` is called once per frame searched (C x ceil(F / every) calls in all).

    Raises:
        DataError: a video that does not open, or videos of different lengths or frame rates
            (they would not be synchronised).
    """
    videos = [Path(v) for v in videos]
    counts, rates, sizes = [], [], []
    for v in videos:
        cap = cv2.VideoCapture(str(v))
        if not cap.isOpened():
            raise DataError("cannot open this video", v)
        counts.append(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
        rates.append(float(cap.get(cv2.CAP_PROP_FPS)))
        sizes.append(
            (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        )
        cap.release()
    listing = ", ".join(
        f"{v.name} {n} frames at {r:g} fps" for v, n, r in zip(videos, counts, rates, strict=True)
    )
    if len(set(counts)) > 1:
        raise DataError(f"the cameras' videos differ in length: {listing}", videos[0].parent)
    if max(rates) - min(rates) > 1e-3 * max(rates):
        raise DataError(f"the cameras' videos differ in frame rate: {listing}", videos[0].parent)
    m = len(board.object_points())
    frames = range(0, counts[0], every)
    corners = np.full((len(videos), len(frames), m, 2), np.nan)
    for c, v in enumerate(videos):
        cap = cv2.VideoCapture(str(v))
        for i in range(counts[0]):
            ok = cap.grab()
            if not ok:
                raise DataError(f"the video ends at frame {i} of {counts[0]}", v)
            if i % every == 0:
                corners[c, i // every] = board.detect(cap.retrieve()[1])
                if progress is not None:
                    progress()
        cap.release()
    return BoardVideos(corners, [v.stem for v in videos], sizes, rates[0])


# --------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class CameraReport:
    """How one camera's calibration went.

    Attributes:
        name: the camera.
        error_px: mean reprojection error (pixels) of its corners after bundle adjustment.
        frames_used: frames of its in the bundle adjustment.
        detections: frames in which its board detection had ``MIN_CORNERS`` corners or more,
            not all on one line.
    """

    name: str
    error_px: float
    frames_used: int
    detections: int


@dataclass(frozen=True)
class Calibration:
    """A calibrated group and its report.

    Attributes:
        group: the cameras (world frame: camera 0's; metadata ``adjusted`` and ``error``).
        cameras: one :class:`CameraReport` per camera.
        error_px: mean reprojection error over every corner used.
        board_poses: (F, 6) board -> world rotation vector and translation per frame, NaN where
            no camera saw the board.
    """

    group: CameraGroup
    cameras: list[CameraReport]
    error_px: float
    board_poses: np.ndarray


def calibrate(
    corners: np.ndarray | Sequence[np.ndarray],
    board: Board,
    sizes: Sequence[tuple[int, int]],
    names: Sequence[str] | None = None,
    *,
    optimise_intrinsics: bool = True,
    intrinsics: CameraGroup | None = None,
) -> Calibration:
    """Calibrate cameras from synchronised board views.

    Args:
        corners: (C, F, M, 2) pixels of the board's M corners per camera and frame (NaN where
            not seen), or C arrays of (F, M, 2).
        board: the board (its corner layout and square size set the world's units).
        sizes: (width, height) of each camera's images.
        names: camera names; "cam_0", "cam_1", ... if None.
        optimise_intrinsics: refine focal lengths, principal points and distortion in the
            bundle adjustment too (not only the poses).
        intrinsics: known intrinsics (matrix, distortion) per camera, e.g. from an earlier
            calibration; skips step 2's ``cv2.calibrateCamera``.

    Returns:
        A :class:`Calibration`.

    Raises:
        DataError: mismatched frame counts, a camera with too few board views, or cameras that
            never see the board in the same frame as the others (named).
    """
    names = list(names) if names is not None else [f"cam_{i}" for i in range(len(corners))]
    if len(names) != len(corners) or len(sizes) != len(corners):
        raise KeypointerError(
            f"{len(corners)} cameras' corners, {len(names)} names and {len(sizes)} sizes"
        )
    if len(corners) < 2:
        raise KeypointerError("calibrating a group needs 2 cameras or more")
    frames = [np.asarray(c).shape[0] for c in corners]
    if len(set(frames)) > 1:
        listing = ", ".join(f"{n} {f}" for n, f in zip(names, frames, strict=True))
        raise DataError(f"the cameras' board views differ in frame count: {listing}")
    corners = np.stack([np.asarray(c, dtype=np.float64) for c in corners])
    obj = board.object_points()
    if corners.shape[2:] != (len(obj), 2):
        raise KeypointerError(f"corners are {corners.shape}, the board has {len(obj)} corners")
    seen = np.isfinite(corners).all(-1)  # (C, F, M)
    detected = (seen.sum(-1) >= MIN_CORNERS) & spread_out(seen, obj, board.square_length)
    for c, name in enumerate(names):
        if detected[c].sum() < MIN_BOARD_VIEWS:
            raise DataError(
                f"camera {name} sees the board ({MIN_CORNERS}+ corners, not on one line) in "
                f"{int(detected[c].sum())} frames; it needs {MIN_BOARD_VIEWS} or more"
            )

    cams = []
    for c, name in enumerate(names):
        if intrinsics is not None:
            matrix, dist = intrinsics[c].matrix, intrinsics[c].dist
        else:
            matrix, dist = calibrate_intrinsics(corners[c], seen[c], detected[c], obj, sizes[c])
        cams.append(Camera(name, sizes[c], matrix, dist))
    poses = board_poses_in_cameras(cams, corners, seen, detected, obj)  # (C, F, 6)
    world_from_cam = chain_extrinsics(poses, detected, names)
    for cam, (rvec, tvec) in zip(cams, world_from_cam, strict=True):
        cam.rvec, cam.tvec = rvec, tvec
    board_world = initial_board_poses(cams, poses, detected, seen)
    group, board_world, errors = bundle_adjust(
        cams, board_world, corners, seen & detected[..., None], obj, optimise_intrinsics
    )
    used = seen & detected[..., None] & np.isfinite(board_world[:, 0])[None, :, None]
    reports = [
        CameraReport(
            name=names[c],
            error_px=float(np.mean(errors[c][used[c]])) if used[c].any() else float("nan"),
            frames_used=int(used[c].any(-1).sum()),
            detections=int(detected[c].sum()),
        )
        for c in range(len(names))
    ]
    overall = float(np.mean(errors[used]))
    group.metadata = {"adjusted": True, "error": overall}
    return Calibration(group, reports, overall, board_world)


def spread_out(seen: np.ndarray, obj: np.ndarray, square: float) -> np.ndarray:
    """(..., M) corners seen -> (...) whether they span the board in two directions: corners
    on one line (a ChArUco board's single row) give no homography, and OpenCV's intrinsic
    calibration fails on such a view. The test: the seen corners' (M, 2) board positions
    spread by at least 0.4 squares (standard deviation) across their main direction (two
    neighbouring rows: 0.5)."""
    xy = obj[:, :2]
    n = np.maximum(seen.sum(-1), 1)[..., None]
    mean = (seen @ xy) / n  # (..., 2)
    second = np.einsum("...m,mi,mj->...ij", seen.astype(np.float64), xy, xy) / n[..., None]
    cov = second - mean[..., :, None] * mean[..., None, :]
    smallest = np.linalg.eigvalsh(cov)[..., 0]
    return smallest >= (0.4 * square) ** 2


def calibrate_intrinsics(
    corners: np.ndarray,
    seen: np.ndarray,
    detected: np.ndarray,
    obj: np.ndarray,
    size: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """(3, 3) K and (5,) distortion of one camera from its (F, M, 2) board views."""
    frames = np.flatnonzero(detected)
    frames = frames[
        np.linspace(0, len(frames) - 1, min(len(frames), MAX_INTRINSIC_VIEWS)).astype(int)
    ]
    objp = [obj[seen[f]].astype(np.float32) for f in frames]
    imgp = [corners[f][seen[f]].astype(np.float32).reshape(-1, 1, 2) for f in frames]
    _, matrix, dist, _, _ = cv2.calibrateCamera(objp, imgp, size, None, None, flags=INTRINSIC_FLAGS)
    return matrix, dist.ravel()[:5]


def board_poses_in_cameras(
    cams: list[Camera], corners: np.ndarray, seen: np.ndarray, detected: np.ndarray, obj: np.ndarray
) -> np.ndarray:
    """(C, F, 6) board -> camera (rvec, tvec) of every detection (NaN elsewhere)."""
    poses = np.full((*detected.shape, 6), np.nan)
    for c, cam in enumerate(cams):
        for f in np.flatnonzero(detected[c]):
            ok, rvec, tvec = cv2.solvePnP(
                obj[seen[c, f]],
                corners[c, f][seen[c, f]],
                cam.matrix,
                cam.dist,
                flags=cv2.SOLVEPNP_IPPE,
            )
            if ok:
                poses[c, f] = np.concatenate([rvec.ravel(), tvec.ravel()])
    return poses


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The (6,) pose ``a`` after ``b`` (each a rotation vector and translation)."""
    ra, rb = cv2.Rodrigues(a[:3])[0], cv2.Rodrigues(b[:3])[0]
    return np.concatenate([cv2.Rodrigues(ra @ rb)[0].ravel(), ra @ b[3:] + a[3:]])


def invert(a: np.ndarray) -> np.ndarray:
    """The (6,) inverse of pose ``a``."""
    r = cv2.Rodrigues(a[:3])[0]
    return np.concatenate([-a[:3], -r.T @ a[3:]])


def relative_pose(poses: np.ndarray, i: int, j: int, shared: np.ndarray) -> np.ndarray:
    """(6,) camera i -> camera j from the frames both see the board in: rotations averaged
    (chordal mean, projected back onto rotations), translations by median; frames whose
    rotation is over ``POSE_OUTLIER_DEG`` from the mean (a planar pose flipped by its
    ambiguity) are left out of a second average."""
    rel = np.stack([compose(poses[j, f], invert(poses[i, f])) for f in np.flatnonzero(shared)])
    rots = np.stack([cv2.Rodrigues(r)[0] for r in rel[:, :3]])
    keep = np.ones(len(rel), dtype=bool)
    for _ in range(2):
        u, _, vt = np.linalg.svd(rots[keep].sum(axis=0))
        rot = u @ np.diag([1, 1, np.linalg.det(u @ vt)]) @ vt
        # angle between each rotation and the mean: trace(R^T M) = 1 + 2 cos(angle)
        cos = (np.einsum("fij,ij->f", rots, rot) - 1) / 2
        near = cos > np.cos(np.radians(POSE_OUTLIER_DEG))
        if near.sum() < 1 or (near == keep).all():
            break
        keep = near
    return np.concatenate([cv2.Rodrigues(rot)[0].ravel(), np.median(rel[keep, 3:], axis=0)])


def chain_extrinsics(
    poses: np.ndarray, detected: np.ndarray, names: Sequence[str]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each camera's world -> camera (rvec, tvec), world = camera 0, chained along the maximum
    spanning tree of shared board frames."""
    ok = detected & np.isfinite(poses[..., 0])
    n = len(names)
    shared = np.array(
        [[int((ok[i] & ok[j]).sum()) if i != j else 0 for j in range(n)] for i in range(n)]
    )
    n_parts, labels = connected_components(sparse.csr_matrix(shared), directed=False)
    if n_parts > 1:
        groups = [
            "{" + ", ".join(names[c] for c in np.flatnonzero(labels == g)) + "}"
            for g in range(n_parts)
        ]
        raise DataError(
            "some cameras never see the board in the same frame as the others: "
            + " | ".join(groups)
            + "; film the board where these groups' views overlap"
        )
    # maximum spanning tree = minimum over (most + 1 - shared)
    cost = np.where(shared > 0, shared.max() + 1 - shared, 0)
    tree = minimum_spanning_tree(sparse.csr_matrix(cost))
    order, parent = breadth_first_order(tree, 0, directed=False, return_predecessors=True)
    pose = {0: np.zeros(6)}
    for c in order[1:]:
        p = int(parent[c])
        rel = relative_pose(poses, p, int(c), ok[p] & ok[c])
        pose[int(c)] = compose(rel, pose[p])
    return [(pose[c][:3], pose[c][3:]) for c in range(n)]


def initial_board_poses(
    cams: list[Camera], poses: np.ndarray, detected: np.ndarray, seen: np.ndarray
) -> np.ndarray:
    """(F, 6) board -> world per frame from the camera seeing the most corners (NaN: none)."""
    out = np.full((poses.shape[1], 6), np.nan)
    counts = np.where(detected & np.isfinite(poses[..., 0]), seen.sum(-1), -1)  # (C, F)
    for f in np.flatnonzero(counts.max(axis=0) >= 0):
        c = int(counts[:, f].argmax())
        cam = np.concatenate([cams[c].rvec, cams[c].tvec])
        out[f] = compose(invert(cam), poses[c, f])
    return out


def rotation_matrices(rvecs: np.ndarray) -> np.ndarray:
    """(N, 3) rotation vectors -> (N, 3, 3) matrices (Rodrigues' formula, vectorised)."""
    theta = np.linalg.norm(rvecs, axis=1)[:, None, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        k = np.where(theta[:, :, 0] > 1e-12, rvecs / theta[:, :, 0], 0.0)
    cross = np.zeros((len(rvecs), 3, 3))
    cross[:, 0, 1], cross[:, 0, 2], cross[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    cross -= cross.transpose(0, 2, 1)
    return np.eye(3) + np.sin(theta) * cross + (1 - np.cos(theta)) * (cross @ cross)


N_INTRINSICS = 8  # fx, fy, cx, cy, k1, k2, p1, p2 (k3 stays as calibrated: INTRINSIC_FLAGS)


def bundle_adjust(
    cams: list[Camera],
    board_world: np.ndarray,
    corners: np.ndarray,
    use: np.ndarray,
    obj: np.ndarray,
    optimise_intrinsics: bool,
) -> tuple[CameraGroup, np.ndarray, np.ndarray]:
    """Refine camera poses (camera 0 fixed), optionally intrinsics, and board poses.

    Args:
        cams: the cameras with initial intrinsics and extrinsics.
        board_world: (F, 6) initial board -> world poses (NaN: frame unused).
        corners: (C, F, M, 2) observed pixels.
        use: (C, F, M) which observations to fit.
        obj: (M, 3) board corners.
        optimise_intrinsics: also refine each camera's ``N_INTRINSICS`` intrinsics.

    Returns:
        The adjusted group, the (F, 6) board poses and the (C, F, M) reprojection errors (px).
    """
    n_cams, n_frames = use.shape[:2]
    use = use & np.isfinite(board_world[:, 0])[None, :, None]
    oc, of, om = np.nonzero(use)
    observed = corners[oc, of, om]
    frames = np.unique(of)
    frame_index = np.full(n_frames, -1)
    frame_index[frames] = np.arange(len(frames))
    ofi = frame_index[of]
    n_int = N_INTRINSICS if optimise_intrinsics else 0
    ext0 = np.stack([np.concatenate([c.rvec, c.tvec]) for c in cams])
    int0 = np.stack(
        [
            np.concatenate(
                [[c.matrix[0, 0], c.matrix[1, 1], c.matrix[0, 2], c.matrix[1, 2]], c.dist[:4]]
            )
            for c in cams
        ]
    )
    k3 = np.array([c.dist[4] for c in cams])
    n_ext = 6 * (n_cams - 1)
    x0 = np.concatenate(
        [ext0[1:].ravel(), int0.ravel() if n_int else [], board_world[frames].ravel()]
    )

    def unpack(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ext = np.vstack([ext0[:1], x[:n_ext].reshape(-1, 6)])
        intr = x[n_ext : n_ext + n_cams * n_int].reshape(n_cams, n_int) if n_int else int0
        boards = x[n_ext + n_cams * n_int :].reshape(-1, 6)
        return ext, intr, boards

    def project(x: np.ndarray) -> np.ndarray:
        ext, intr, boards = unpack(x)
        # dense over (cameras, frames, corners), then the observed ones picked: a few
        # thousand points, cheaper than per-observation rotations
        world = (
            np.einsum("fij,mj->fmi", rotation_matrices(boards[:, :3]), obj) + boards[:, None, 3:]
        )
        cam = np.einsum("cij,fmj->cfmi", rotation_matrices(ext[:, :3]), world)
        cam = cam[oc, ofi, om] + ext[oc, 3:]
        xy = cam[:, :2] / cam[:, 2:3]
        i = intr[oc]
        matrix = np.zeros((len(oc), 3, 3))
        matrix[:, 0, 0], matrix[:, 1, 1] = i[:, 0], i[:, 1]
        matrix[:, 0, 2], matrix[:, 1, 2] = i[:, 2], i[:, 3]
        dist = np.column_stack([i[:, 4:8], k3[oc]])
        return distort_normalized(xy[:, None, :], matrix, dist)[:, 0]

    # an observation depends on one camera's pose and intrinsics and one frame's board pose:
    # cols[i, k] is the parameter in observation i's k-th slot (-1: camera 0's fixed pose)
    cols = []
    for k in range(6):
        cols.append(np.where(oc > 0, (oc - 1) * 6 + k, -1))
    for k in range(n_int):
        cols.append(n_ext + oc * n_int + k)
    for k in range(6):
        cols.append(n_ext + n_cams * n_int + ofi * 6 + k)
    cols = np.stack(cols, axis=1)  # (n_obs, slots)

    def residuals(x: np.ndarray) -> np.ndarray:
        return project(x) - observed

    x = levenberg_marquardt(residuals, x0, cols)
    x = refit_tail(residuals, x, cols)
    ext, intr, boards = unpack(x)
    out = []
    for c, cam in enumerate(cams):
        matrix = np.array([[intr[c, 0], 0, intr[c, 2]], [0, intr[c, 1], intr[c, 3]], [0, 0, 1.0]])
        out.append(
            Camera(cam.name, cam.size, matrix, np.r_[intr[c, 4:8], k3[c]], ext[c, :3], ext[c, 3:])
        )
    board_out = np.full_like(board_world, np.nan)
    board_out[frames] = boards
    errors = np.full(use.shape, np.nan)
    errors[oc, of, om] = np.linalg.norm(project(x) - observed, axis=1)
    return CameraGroup(out), board_out, errors


def refit_tail(
    residuals: Callable[[np.ndarray], np.ndarray], x: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """Refit with a Huber threshold at the corners' noise when the (N, 2) residuals at ``x``
    have a heavier tail than Gaussian noise gives, as a detector's corners do (a corner whose
    window catches a marker's edge, a small or blurred square): those corners then count
    linearly, and the focal lengths, which the cameras' distances hang on, follow the bulk
    of the corners. Under Gaussian noise least squares is the better estimate: no refit.
    Noise: the residuals' median norm / sqrt(2 ln 2), sigma for Gaussian noise of sigma
    per axis. ``cols``: as :func:`levenberg_marquardt`'s.

    Returns:
        The parameters (``x`` itself when no refit is due).
    """
    norm = np.linalg.norm(residuals(x), axis=1)
    noise = np.median(norm) / np.sqrt(2 * np.log(2))
    huber = float(np.clip(HUBER_NOISE * noise, MIN_HUBER_PX, HUBER_PX))
    if huber >= HUBER_PX or np.mean(norm > TAIL_SIGMAS * noise) <= TAIL_SHARE:
        return x
    return levenberg_marquardt(residuals, x, cols, huber=huber)


def levenberg_marquardt(
    residuals: Callable[[np.ndarray], np.ndarray],
    x0: np.ndarray,
    cols: np.ndarray,
    *,
    huber: float = HUBER_PX,
    max_iterations: int = MAX_ITERATIONS,
) -> np.ndarray:
    """Minimise the Huber loss of (N, 2) residuals over ``x`` for a problem where each residual
    depends on one parameter per slot: ``cols`` (N, S) gives it (-1: none).

    Why not ``scipy.optimize.least_squares``: with a sparse Jacobian it solves each step by
    lsmr iterations, which bundle adjustment's ill-conditioned steps (focal length against
    distance) make crawl: 200 evaluations without converging by default, or ~1,000 lsmr
    iterations a step with tight tolerances (minutes for 6 cameras). Here each step is one
    sparse direct solve of the normal equations (a few hundred unknowns), and the Jacobian
    costs S + 1 evaluations: a slot's parameters never share a residual, so they are all
    perturbed at once.

    Returns:
        The parameters at the minimum.
    """
    x = np.asarray(x0, dtype=np.float64).copy()
    n_obs, n_slots = cols.shape
    valid = cols >= 0
    obs = np.broadcast_to(np.arange(n_obs)[:, None], cols.shape)[valid]
    jac_cols = np.tile(cols[valid], 2)
    # residual rows 2 i and 2 i + 1 are observation i's x and y
    jac_rows = np.concatenate([2 * obs, 2 * obs + 1])

    def cost(r: np.ndarray) -> float:
        norm = np.linalg.norm(r, axis=1)
        return float(np.where(norm <= huber, 0.5 * norm**2, huber * (norm - 0.5 * huber)).sum())

    r = residuals(x)
    current = cost(r)
    damping = 1e-3
    for _ in range(max_iterations):
        step = np.sqrt(np.finfo(float).eps) * np.maximum(1.0, np.abs(x))
        values = np.zeros((n_obs, n_slots, 2))
        for k in range(n_slots):
            moved = x.copy()
            chosen = np.unique(cols[valid[:, k], k])
            moved[chosen] += step[chosen]
            with np.errstate(invalid="ignore", divide="ignore"):
                values[:, k] = (residuals(moved) - r) / step[cols[:, k], None]
        jac = sparse.csr_matrix(
            (np.concatenate([values[..., 0][valid], values[..., 1][valid]]), (jac_rows, jac_cols)),
            shape=(2 * n_obs, len(x)),
        )
        # Huber as iteratively reweighted least squares: weight 1 inside, huber / |r| outside
        norm = np.linalg.norm(r, axis=1)
        weight = np.repeat(np.where(norm <= huber, 1.0, huber / np.maximum(norm, 1e-300)), 2)
        normal = (jac.T @ sparse.diags(weight) @ jac).tocsc()
        gradient = jac.T @ (weight * r.ravel())
        diagonal = normal.diagonal() + 1e-12
        while True:
            delta = spsolve(normal + sparse.diags(damping * diagonal), -gradient)
            trial = x + delta
            r_trial = residuals(trial)
            new = cost(r_trial) if np.isfinite(r_trial).all() else np.inf
            if new < current:
                break
            damping *= 4
            if damping > 1e10:
                return x
        done = current - new < RELATIVE_TOLERANCE * current
        x, r, current = trial, r_trial, new
        damping = max(damping / 3, 1e-12)
        if done:
            break
    return x
