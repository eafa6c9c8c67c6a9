"""Exact truth for several cameras: a figure moving in a box, N virtual cameras with lens
distortion around it, the figure's 2D views (with noise, scores and a corrupted camera on
request), and a calibration board moved through the box.

World: a cube of side ``box_size`` centred on the origin, z up, in millimetres by default.
Everything is seeded: the same arguments give the same arrays.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from keypointer.errors import DataError
from keypointer.files import write_text_atomic
from keypointer.multiview.calibrate import Board
from keypointer.multiview.cameras import Camera, CameraGroup, write_calibration
from keypointer.multiview.poses import Poses3D, write_pose3d_csv, write_poses_2d_csv

BOX_SIZE = 400.0
"""Side of the synthetic box (mm): a mouse arena."""
IMAGE_SIZE = (640, 480)
CAMERA_DISTANCE = 2.2  # camera centres from the box centre, in box sizes
BOARD_MAX_TILT_DEG = 50.0  # board normal from vertical (the cameras look down on the box)
BOARD_MAX_VIEW_DEG = 70.0  # a camera sees the board's face under at most this angle
BONE_SWING_RAD = 0.35  # a bone swings by up to ~20 degrees about its rest direction
SUPERSAMPLE = 3  # board samples per pixel and axis, averaged: see render_board


@dataclass(frozen=True)
class Figure:
    """A figure's motion.

    Attributes:
        points: (F, K, 3) world coordinates of the keypoints, all inside the box.
        edges: (K - 1, 2) keypoint pairs joined by a bone (a tree rooted at keypoint 0).
    """

    points: np.ndarray
    edges: np.ndarray


def figure_motion(
    frames: int = 200, keypoints: int = 20, box_size: float = BOX_SIZE, seed: int = 0
) -> Figure:
    """A tree of ``keypoints`` points joined by rigid bones (~6% of the box) that walks, turns
    and swings its bones inside the box: smooth sums of sines, so that temporal filters have
    something real to smooth.

    Each bone keeps its length, as an animal's bones do: it swings about an axis across it, by
    up to ``BONE_SWING_RAD``. (The first version moved every keypoint by its own sine, which
    stretched bones by up to a quarter of their length: no limb prior could help on such a
    figure, and no animal moves so; benchmarks/RESULTS.md, "Several cameras, third step".)

    Returns:
        A :class:`Figure` with (frames, keypoints, 3) points.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None] / 30.0
    parents = np.array([0] + [int(rng.integers(0, i)) for i in range(1, keypoints)])
    bones = rng.normal(size=(keypoints, 3))
    bones *= 0.06 * box_size / np.linalg.norm(bones, axis=1, keepdims=True)
    # each bone swings about an axis across it (a unit vector orthogonal to the bone)
    axes = np.cross(rng.normal(size=(keypoints, 3)), bones)
    axes /= np.maximum(np.linalg.norm(axes, axis=1, keepdims=True), 1e-12)
    freq = rng.uniform(0.5, 2.0, size=(keypoints, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(keypoints, 1))
    angle = BONE_SWING_RAD * np.sin(2 * np.pi * freq.T * t + phase.T)  # (F, K)
    local = np.zeros((frames, keypoints, 3))
    for i in range(1, keypoints):
        # Rodrigues' formula, the rotated bone; the axis is orthogonal to it: no (k.v) k term
        a = angle[:, i : i + 1]
        swung = bones[i] * np.cos(a) + np.cross(axes[i], bones[i]) * np.sin(a)
        local[:, i] = local[:, parents[i]] + swung
    local -= local.mean(axis=1, keepdims=True)
    heading = 0.6 * np.sin(2 * np.pi * 0.1 * t[:, 0]) + 2 * np.pi * rng.uniform()
    c, s = np.cos(heading), np.sin(heading)
    rot = np.zeros((frames, 3, 3))
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = c, -s, s, c, 1
    w = rng.uniform(0.05, 0.25, size=(3, 2))
    p = rng.uniform(0, 2 * np.pi, size=(3, 2))
    centre = (0.18 * box_size) * (
        np.sin(2 * np.pi * w[:, 0] * t + p[:, 0]) + np.sin(2 * np.pi * w[:, 1] * t + p[:, 1])
    )
    centre[:, 2] *= 0.3  # mostly on the floor's plane
    points = np.einsum("fij,fkj->fki", rot, local) + centre[:, None, :]
    edges = np.stack([parents[1:], np.arange(1, keypoints)], axis=1)
    return Figure(points=np.clip(points, -box_size / 2, box_size / 2), edges=edges)


def look_at(position: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rvec, tvec) of a camera at ``position`` looking at ``target``, image up = world +z."""
    forward = (target - position) / np.linalg.norm(target - position)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rot = np.stack([right, down, forward])
    return cv2.Rodrigues(rot)[0].ravel(), -rot @ position


def camera_ring(
    n: int, box_size: float = BOX_SIZE, image_size: tuple[int, int] = IMAGE_SIZE, seed: int = 0
) -> CameraGroup:
    """``n`` cameras around the box, 20-45 degrees above it, looking near its centre, each with
    its own focal length, principal point and barrel distortion (k1 -0.25 to -0.05).

    Returns:
        A :class:`CameraGroup` named A, B, C, ...
    """
    rng = np.random.default_rng(seed)
    w, h = image_size
    cams = []
    for i in range(n):
        azimuth = 2 * np.pi * (i + rng.uniform(-0.15, 0.15)) / n
        elevation = np.radians(rng.uniform(20, 45))
        distance = CAMERA_DISTANCE * box_size * rng.uniform(0.9, 1.1)
        position = distance * np.array(
            [
                np.cos(elevation) * np.cos(azimuth),
                np.cos(elevation) * np.sin(azimuth),
                np.sin(elevation),
            ]
        )
        rvec, tvec = look_at(position, rng.uniform(-0.05, 0.05, 3) * box_size)
        # the box's half-diagonal fills ~85% of the image's half-height
        f = 0.85 * (h / 2) * distance / (0.87 * box_size) * rng.uniform(0.95, 1.05)
        matrix = np.array(
            [[f, 0, w / 2 + rng.uniform(-10, 10)], [0, f, h / 2 + rng.uniform(-10, 10)], [0, 0, 1]]
        )
        dist = np.array(
            [
                rng.uniform(-0.25, -0.05),
                rng.uniform(0.0, 0.1),
                rng.uniform(-2e-3, 2e-3),
                rng.uniform(-2e-3, 2e-3),
                0.0,
            ]
        )
        cams.append(Camera(chr(ord("A") + i), (w, h), matrix, dist, rvec, tvec))
    return CameraGroup(cams, {"synthetic": True, "box_size": float(box_size)})


def in_image(points: np.ndarray, size: tuple[int, int], margin: float = 0.0) -> np.ndarray:
    """(..., 2) pixels -> (...) bool: inside the (width, height) image, ``margin`` px in."""
    x, y = points[..., 0], points[..., 1]
    return (x >= margin) & (y >= margin) & (x <= size[0] - 1 - margin) & (y <= size[1] - 1 - margin)


def camera_depths(group: CameraGroup, points: np.ndarray) -> np.ndarray:
    """(..., 3) world points -> (C, ...) depth in front of each camera."""
    extr = group.extrinsics
    return np.einsum("cj,...j->c...", extr[:, 2, :3], points) + extr[:, 2, 3].reshape(
        (-1,) + (1,) * (points.ndim - 1)
    )


def project_views(
    group: CameraGroup,
    points: np.ndarray,
    *,
    noise_px: float = 0.0,
    seed: int = 0,
    corrupt_camera: int | None = None,
    corrupt_share: float = 0.1,
    corrupt_px: tuple[float, float] = (40.0, 120.0),
    occluded_share: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The figure's 2D keypoints in every camera, like a detector's output.

    With ``noise_px`` > 0 each view gets a score in [0.4, 1] and Gaussian pixel noise of
    ``noise_px / score`` per axis (a less sure detection is a worse one, so scores are worth
    weighting by). ``corrupt_camera``'s points are moved, in ``corrupt_share`` of the frames,
    by one random offset per frame of ``corrupt_px`` pixels (a confident, wrong detection:
    another animal, a reflection); their scores stay high. ``occluded_share`` of all views are
    occluded: the detector puts the point 20-60 px off and says it is unsure (score 0.3-0.5).

    Args:
        group: the cameras.
        points: (F, K, 3) world points.

    Returns:
        (C, F, K, 2) pixels (NaN outside the image or behind the camera) and (C, F, K) scores
        (0 where NaN; 1 everywhere when ``noise_px`` is 0).
    """
    rng = np.random.default_rng(seed)
    uv = group.project(points)
    n_cams, n_frames, n_kp, _ = uv.shape
    scores = np.ones(uv.shape[:-1])
    if noise_px > 0:
        scores = rng.uniform(0.4, 1.0, size=uv.shape[:-1])
        uv = uv + rng.normal(size=uv.shape) * (noise_px / scores)[..., None]
    if corrupt_camera is not None:
        frames = rng.random(n_frames) < corrupt_share
        angle = rng.uniform(0, 2 * np.pi, n_frames)
        length = rng.uniform(*corrupt_px, n_frames)
        offset = np.stack([np.cos(angle), np.sin(angle)], axis=1) * length[:, None]
        uv[corrupt_camera, frames] += offset[frames, None, :]
    if occluded_share > 0:
        hidden = rng.random(uv.shape[:-1]) < occluded_share
        angle = rng.uniform(0, 2 * np.pi, hidden.sum())
        length = rng.uniform(20.0, 60.0, hidden.sum())
        uv[hidden] += np.stack([np.cos(angle), np.sin(angle)], axis=1) * length[:, None]
        scores[hidden] = rng.uniform(0.3, 0.5, hidden.sum())
    size = np.array([c.size for c in group])
    visible = np.stack([in_image(uv[c], tuple(size[c])) for c in range(n_cams)])
    visible &= camera_depths(group, points) > 0
    uv[~visible] = np.nan
    scores[~visible] = 0.0
    return uv, scores


@dataclass(frozen=True)
class BoardClip:
    """A board moved through the box, seen by every camera.

    Attributes:
        corners: (C, F, M, 2) pixels of the board's M corners (NaN where a camera does not see
            a corner: the board faces away, or the corner is outside the image).
        rvecs, tvecs: (F, 3) board -> world poses (the truth).
        object_points: (M, 3) the corners on the board (z = 0).
    """

    corners: np.ndarray
    rvecs: np.ndarray
    tvecs: np.ndarray
    object_points: np.ndarray


def board_clip(
    group: CameraGroup,
    board: Board,
    frames: int = 100,
    *,
    box_size: float = BOX_SIZE,
    noise_px: float = 0.0,
    close_ups: float = 0.4,
    seed: int = 0,
) -> BoardClip:
    """The board moved as a user moves it, and its corners as each camera sees them, with
    Gaussian noise of ``noise_px`` per axis.

    A share ``close_ups`` of the frames hold the board close to one camera (the cameras in
    turn), filling most of its image anywhere in it, so that the lens distortion and the focal
    length are pinned down; the other frames hold it face up (tilted up to 50 degrees)
    anywhere in the box, where several cameras see it at once, for the extrinsics.

    A camera sees the board only from its printed side and within 70 degrees of its normal,
    and only the corners inside its image (a ChArUco detector's partial views).
    """
    rng = np.random.default_rng(seed)
    obj = board.object_points()
    centre = obj.mean(axis=0)
    width = float(np.ptp(obj[:, 0])) + 2 * board.square_length
    rvecs, tvecs = np.zeros((frames, 3)), np.zeros((frames, 3))
    n_close = round(close_ups * frames)
    close = np.zeros(frames, dtype=bool)
    close[rng.permutation(frames)[:n_close]] = True
    turn = 0
    for f in range(frames):
        if close[f]:
            cam = group[turn % len(group)]
            turn += 1
            # a distance at which the board spans 60-90% of the image's width
            distance = cam.matrix[0, 0] * width / (cam.size[0] * rng.uniform(0.6, 0.9))
            pixel = rng.uniform(0.3, 0.7, 2) * np.array(cam.size)
            ray = np.linalg.solve(cam.matrix, np.array([*pixel, 1.0]))
            position = cam.rotation.T @ (ray / np.linalg.norm(ray) * distance - cam.tvec)
            face = cam.position - position
            face /= np.linalg.norm(face)
            face = tilt_towards(face, rng.normal(size=3), np.radians(rng.uniform(0, 40)))
        else:
            tilt = np.radians(rng.uniform(0, BOARD_MAX_TILT_DEG))
            toward = rng.uniform(0, 2 * np.pi)
            face = np.array(
                [np.sin(tilt) * np.cos(toward), np.sin(tilt) * np.sin(toward), np.cos(tilt)]
            )
            position = rng.uniform(-0.3, 0.3, 3) * box_size
        # OpenCV's board z axis points away from the printed face
        z = -face
        x = np.cross(rng.normal(size=3), z)
        x /= np.linalg.norm(x)
        rot = np.stack([x, np.cross(z, x), z], axis=1)  # board -> world, columns are axes
        rvecs[f] = cv2.Rodrigues(rot)[0].ravel()
        tvecs[f] = position - rot @ centre
    world = np.einsum("fij,mj->fmi", np.stack([cv2.Rodrigues(r)[0] for r in rvecs]), obj)
    world += tvecs[:, None, :]
    corners = group.project(world)  # (C, F, M, 2)
    if noise_px > 0:
        corners = corners + rng.normal(scale=noise_px, size=corners.shape)
    faces = -np.stack([cv2.Rodrigues(r)[0][:, 2] for r in rvecs])  # (F, 3)
    to_cam = group.positions[:, None, :] - world.mean(axis=1)[None]  # (C, F, 3)
    cos = (to_cam * faces[None]).sum(-1) / np.linalg.norm(to_cam, axis=-1)
    facing = cos > np.cos(np.radians(BOARD_MAX_VIEW_DEG))
    depth = camera_depths(group, world)
    for c, cam in enumerate(group):
        seen = in_image(corners[c], cam.size, margin=2.0) & facing[c][:, None] & (depth[c] > 0)
        corners[c][~seen] = np.nan
    return BoardClip(corners=corners, rvecs=rvecs, tvecs=tvecs, object_points=obj)


def tilt_towards(v: np.ndarray, other: np.ndarray, angle: float) -> np.ndarray:
    """Unit vector ``v`` turned by ``angle`` radians towards the direction of ``other``."""
    side = other - (other @ v) * v
    side /= np.linalg.norm(side)
    return np.cos(angle) * v + np.sin(angle) * side


def distortion_maps(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel of ``camera``'s distorted image lies in its undistorted image: two
    (height, width) float32 maps for ``cv2.remap`` (one per camera, not one per frame)."""
    w, h = camera.size
    grid = np.stack(np.meshgrid(np.arange(w), np.arange(h)), axis=-1).astype(np.float64)
    ideal = cv2.undistortPoints(grid.reshape(-1, 1, 2), camera.matrix, camera.dist, P=camera.matrix)
    maps = ideal.reshape(h, w, 2).astype(np.float32)
    return maps[..., 0], maps[..., 1]


def render_board(
    board: Board,
    camera: Camera,
    rvec: np.ndarray,
    tvec: np.ndarray,
    pixels_per_unit: float = 4.0,
    maps: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """A grey image of the board as ``camera`` sees it in the board -> world pose
    (``rvec``, ``tvec``), lens distortion included: for testing the detector path.

    Each pixel is the mean of ``SUPERSAMPLE`` x ``SUPERSAMPLE`` samples over its area, as a
    camera's sensor integrates the light falling on a pixel: one sample a pixel (the pixel's
    centre) draws the squares' edges as staircases, and the corners found on them wander by
    about a quarter of a pixel whatever the detector does. A sample's place in the board
    picture (``CharucoBoard.generateImage`` or a drawn checkerboard) is its pixel's ray
    undistorted (:func:`distortion_maps`, interpolated between pixel centres) and taken
    through the inverse of the board's homography; only the board's bounding box is sampled.

    Args:
        maps: :func:`distortion_maps` of ``camera``, when already computed.

    Returns:
        (height, width) uint8 image, white where the board is not; all white when the board
        shows the camera its back, or its face at over ``BOARD_MAX_VIEW_DEG`` (as
        :func:`board_clip` has it: a printed board is opaque, and a checkerboard seen through
        from behind would be found mirrored, its corners numbered wrongly).
    """
    w, h = camera.size
    out = np.full((h, w), 255, np.uint8)
    rot_b = cv2.Rodrigues(np.asarray(rvec, dtype=np.float64))[0]
    rot = camera.rotation @ rot_b
    t = camera.rotation @ tvec + camera.tvec
    centre = rot @ board.object_points().mean(axis=0) + t  # in the camera's frame
    facing = (-centre @ -rot[:, 2]) / np.linalg.norm(centre)  # cos of the viewing angle
    if centre[2] <= 0 or facing <= np.cos(np.radians(BOARD_MAX_VIEW_DEG)):
        return out
    image = board.image(pixels_per_unit)
    # picture pixel (u, v), centre at integers, covers board [u, u + 1] / pixels_per_unit
    scale = (
        np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, pixels_per_unit]]) / pixels_per_unit
    )
    homography = camera.matrix @ np.column_stack([rot[:, 0], rot[:, 1], t]) @ scale
    map_x, map_y = maps if maps is not None else distortion_maps(camera)
    box = board_box(image.shape, homography, map_x, map_y)
    if box is None:
        return out
    x0, y0, x1, y1 = box
    s = SUPERSAMPLE
    # the ideal (undistorted) pixel of each sample: cv2.resize puts sample j of a pixel row
    # at (j + 0.5) / s - 0.5, the centres of the pixel's s x s sub-pixels
    crop = cv2.merge([map_x[y0:y1, x0:x1], map_y[y0:y1, x0:x1]])
    ideal = cv2.resize(crop, ((x1 - x0) * s, (y1 - y0) * s), interpolation=cv2.INTER_LINEAR)
    where = cv2.perspectiveTransform(ideal, np.linalg.inv(homography))
    fine = cv2.remap(image, where, None, cv2.INTER_LINEAR, borderValue=255)
    out[y0:y1, x0:x1] = cv2.resize(fine, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    return out


def board_box(
    picture: tuple[int, ...], homography: np.ndarray, map_x: np.ndarray, map_y: np.ndarray
) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) the pixels (a pixel of margin included) whose undistorted positions
    (``map_x``, ``map_y``: :func:`distortion_maps`) fall within the bounding box of the
    (height, width) board ``picture`` under ``homography``; None if none do."""
    ph, pw = picture[:2]
    outline = np.array([[-0.5, -0.5], [pw - 0.5, -0.5], [pw - 0.5, ph - 0.5], [-0.5, ph - 0.5]])
    ideal = cv2.perspectiveTransform(outline.reshape(-1, 1, 2), homography).reshape(-1, 2)
    lo, hi = ideal.min(axis=0) - 1, ideal.max(axis=0) + 1
    hit = (map_x >= lo[0]) & (map_x <= hi[0]) & (map_y >= lo[1]) & (map_y <= hi[1])
    rows, cols = np.flatnonzero(hit.any(axis=1)), np.flatnonzero(hit.any(axis=0))
    if not len(rows):
        return None
    h, w = map_x.shape
    return max(cols[0] - 1, 0), max(rows[0] - 1, 0), min(cols[-1] + 2, w), min(rows[-1] + 2, h)


FIGURE_BACKGROUND = 40  # grey level of the figure videos' floor
POINT_RADIUS_PX = 2


def render_figure(camera: Camera, points: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """A BGR image of the figure's (K, 3) world points as ``camera`` sees them (lens
    distortion included: the points are projected through it): bones as grey lines,
    keypoints as discs, each keypoint its own colour, on a dark floor.

    Returns:
        (height, width, 3) uint8 image.
    """
    w, h = camera.size
    image = np.full((h, w, 3), FIGURE_BACKGROUND, np.uint8)
    uv = camera.project(points)
    ok = np.isfinite(uv).all(-1) & (camera_depths(CameraGroup([camera]), points)[0] > 0)
    shift = 4  # sub-pixel drawing: coordinates in 1/16 px
    fixed = np.round(np.nan_to_num(uv) * (1 << shift)).astype(np.int64)
    for a, b in edges:
        if ok[a] and ok[b]:
            pa, pb = (int(v) for v in fixed[a]), (int(v) for v in fixed[b])
            cv2.line(image, tuple(pa), tuple(pb), (160, 160, 160), 2, cv2.LINE_AA, shift)
    hues = np.linspace(0, 180, len(points), endpoint=False).astype(np.uint8)
    colours = cv2.cvtColor(
        np.stack([hues, np.full_like(hues, 220), np.full_like(hues, 255)], 1)[None],
        cv2.COLOR_HSV2BGR,
    )[0]
    for k in np.flatnonzero(ok):
        centre = tuple(int(v) for v in fixed[k])
        colour = tuple(int(c) for c in colours[k])
        cv2.circle(image, centre, POINT_RADIUS_PX << shift, colour, -1, cv2.LINE_AA, shift)
    return image


# --------------------------------------------------------------------------- files

FOURCC = "mp4v"  # as keypointer/data/synthetic_video.py and the drawn videos
SCENE_BOARD = Board(squares=(7, 5), square_length=40.0, marker_length=30.0)
"""The board of :func:`write_scene`'s calibration clips: ChArUco 7x5, 40 mm squares, 30 mm
markers, DICT_4X4_50 (``calibrate --squares 7x5 --square-mm 40 --marker-mm 30``)."""
# Board frames of the scene's clip: each camera sees the board in ~1/2 of them (close-ups of
# the others, the board's back), and the camera farthest along the chain from camera A needs
# ~50 shared views to stay within 1% of the box (figures, before the supersampled renderer:
# benchmarks/RESULTS.md, "Several cameras"; now: benchmarks/calibration_seeds.py).
MIN_BOARD_FRAMES, BOARD_FRAMES_PER_CAMERA = 150, 50
BOARD_PIXELS_PER_MM = 4.0  # the board picture warped into each view: finer than any view's


@dataclass(frozen=True)
class SceneFiles:
    """What :func:`write_scene` wrote (paths) and the truth it drew from.

    Attributes:
        group: the true cameras (world: the box, z up, mm).
        figure: the figure's motion.
        videos: the figure seen by each camera, one video a camera.
        board_videos: the board clip seen by each camera.
        calibration: the true calibration.toml.
        truth_3d: the figure's 3D keypoints (Anipose pose_3d CSV).
        truth_2d: each camera's exact 2D keypoints (DeepLabCut CSV, likelihood 1).
    """

    group: CameraGroup
    figure: Figure
    videos: list[Path]
    board_videos: list[Path]
    calibration: Path
    truth_3d: Path
    truth_2d: list[Path]


def scene_files(out: Path, names: Sequence[str]) -> list[str]:
    """The files :func:`write_scene` writes for cameras ``names``, relative to ``out``."""
    per_camera = [f"{n}.mp4" for n in names] + [f"calibration/{n}.mp4" for n in names]
    per_camera += [f"truth2d/{n}.csv" for n in names]
    return [*per_camera, "calibration.toml", "truth3d.csv", "scene.json"]


def camera_names(n: int) -> list[str]:
    """The names :func:`camera_ring` gives ``n`` cameras: A, B, C, ..."""
    return [chr(ord("A") + i) for i in range(n)]


def write_scene(
    out: str | Path,
    cameras: int,
    frames: int = 300,
    board_frames: int | None = None,
    keypoints: int = 20,
    seed: int = 0,
    fps: float = 30.0,
) -> SceneFiles:
    """Write the multi-camera test bed into ``out``: per camera ``<name>.mp4`` (the figure,
    lens distortion included) and ``calibration/<name>.mp4`` (the ChArUco board
    :data:`SCENE_BOARD` moved through the box), ``truth2d/<name>.csv`` (the figure's exact
    2D keypoints); ``calibration.toml`` (the true cameras), ``truth3d.csv`` (the figure in
    3D, Anipose's pose_3d layout, mm) and ``scene.json`` (box, board, frames).
    ``board_frames``: the board clip's length (None: 50 a camera, 150 at least).

    Videos are written under temporary names and renamed at the end: a failure leaves no
    half-written video.
    """
    out = Path(out)
    if board_frames is None:
        board_frames = max(MIN_BOARD_FRAMES, BOARD_FRAMES_PER_CAMERA * cameras)
    group = camera_ring(cameras, seed=seed)
    figure = figure_motion(frames, keypoints, seed=seed)
    clip = board_clip(group, SCENE_BOARD, board_frames, seed=seed + 1)
    names = [f"kp{k}" for k in range(keypoints)]
    uv, scores = project_views(group, figure.points)
    (out / "calibration").mkdir(parents=True, exist_ok=True)
    (out / "truth2d").mkdir(parents=True, exist_ok=True)
    videos, board_videos, truth_2d = [], [], []
    for c, cam in enumerate(group):
        videos.append(
            write_video(
                out / f"{cam.name}.mp4",
                (render_figure(cam, p, figure.edges) for p in figure.points),
                fps,
                cam.size,
            )
        )
        maps = distortion_maps(cam)
        boards = (
            cv2.cvtColor(
                render_board(SCENE_BOARD, cam, r, t, BOARD_PIXELS_PER_MM, maps), cv2.COLOR_GRAY2BGR
            )
            for r, t in zip(clip.rvecs, clip.tvecs, strict=True)
        )
        board_videos.append(
            write_video(out / "calibration" / f"{cam.name}.mp4", boards, fps, cam.size)
        )
        truth_2d.append(
            write_poses_2d_csv(
                out / "truth2d" / f"{cam.name}.csv", names, uv[c], scores[c], scorer="truth"
            )
        )
    calibration = write_calibration(group, out / "calibration.toml")
    views = np.isfinite(uv).all(-1).sum(axis=0)
    truth = Poses3D(names, figure.points, np.zeros(views.shape), views, np.ones(views.shape))
    truth_3d = write_pose3d_csv(out / "truth3d.csv", truth)
    scene = {
        "box_size_mm": BOX_SIZE,
        "cameras": group.names,
        "frames": frames,
        "fps": fps,
        "keypoints": names,
        "edges": figure.edges.tolist(),
        "board": {
            "kind": "charuco",
            "squares": list(SCENE_BOARD.squares),
            "square_mm": SCENE_BOARD.square_length,
            "marker_mm": SCENE_BOARD.marker_length,
            "dictionary": SCENE_BOARD.dictionary,
            "frames": board_frames,
        },
        "seed": seed,
    }
    write_text_atomic(out / "scene.json", json.dumps(scene, indent=1) + "\n")
    return SceneFiles(group, figure, videos, board_videos, calibration, truth_3d, truth_2d)


def write_video(
    path: Path, images: Iterable[np.ndarray], fps: float, size: tuple[int, int]
) -> Path:
    """BGR ``images`` of ``size`` (width, height) as an mp4v video at ``path``, written under a
    temporary name and renamed when whole."""
    tmp = path.with_name(f".{path.stem}.partial.mp4")  # OpenCV picks the container by suffix
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*FOURCC), fps, size)
    try:
        if not writer.isOpened():
            raise DataError(f"OpenCV cannot write {FOURCC!r} video here", tmp)
        for image in images:
            writer.write(image)
        writer.release()
        os.replace(tmp, path)
    finally:
        writer.release()
        tmp.unlink(missing_ok=True)
    return path


def figures_motion(
    animals: int = 2,
    frames: int = 200,
    keypoints: int = 20,
    box_size: float = BOX_SIZE,
    seed: int = 0,
    apart: bool = True,
) -> list[Figure]:
    """``animals`` figures of :func:`figure_motion` (seeds ``seed``, ``seed + 1``, ...) moving
    in one box: several animals' truth. ``apart``: each figure's centre keeps to its own strip
    of the box along x (they never touch, though a camera may see one behind the other);
    else they roam the whole box and may cross.

    Returns:
        One :class:`Figure` per animal, (frames, keypoints, 3) points each.
    """
    figures = []
    for a in range(animals):
        fig = figure_motion(frames, keypoints, box_size, seed + a)
        points = fig.points.copy()
        if apart:
            centre = points[..., 0].mean(axis=1, keepdims=True)
            strip = box_size / animals
            points[..., 0] += -box_size / 2 + strip * (a + 0.5) + 0.3 * centre / animals - centre
        figures.append(Figure(points=points, edges=fig.edges))
    return figures


def shuffled_views(
    group: CameraGroup, figures: Sequence[Figure], *, noise_px: float = 0.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Several figures' 2D keypoints as a multi-animal detector gives them: in each camera and
    frame the animals come in their own random order (no identity shared between views or
    frames).

    Args:
        group: the C cameras.
        figures: the A figures (:func:`figures_motion`).
        noise_px: :func:`project_views`' noise (each figure its own draw).
        seed: the noise's and the order's seed.

    Returns:
        (C, F, A, K, 2) pixels and (C, F, A, K) scores, and (C, F, A) ``which``: instance i of
        camera c in frame f is figure ``which[c, f, i]``.
    """
    rng = np.random.default_rng(seed)
    views = [
        project_views(group, f.points, noise_px=noise_px, seed=seed + 1 + a)
        for a, f in enumerate(figures)
    ]
    uv = np.stack([v[0] for v in views], axis=2)
    scores = np.stack([v[1] for v in views], axis=2)
    n_cams, n_frames, n_animals = uv.shape[:3]
    which = np.argsort(rng.random((n_cams, n_frames, n_animals)), axis=-1)
    frames = np.arange(n_frames)[:, None]
    uv = np.stack([uv[c][frames, which[c]] for c in range(n_cams)])
    scores = np.stack([scores[c][frames, which[c]] for c in range(n_cams)])
    return uv, scores, which
