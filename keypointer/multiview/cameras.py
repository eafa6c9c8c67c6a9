"""Pinhole cameras with OpenCV lens distortion, a group of them, and Anipose's calibration.toml.

A :class:`Camera` maps a world point X (3,) to camera coordinates ``R X + t``, divides by depth
to *normalised* image coordinates (x, y), applies the 5-coefficient distortion
(k1, k2, p1, p2, k3) and the 3x3 matrix K to get pixels. :meth:`Camera.undistort` goes back
from pixels to normalised coordinates, where triangulation is linear.

The file layout is Anipose's (aniposelib ``CameraGroup.dump``/``load``)::

    [cam_0]
    name = "A"
    size = [1280, 1024]                       # width, height in pixels
    matrix = [[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]
    distortions = [k1, k2, p1, p2, k3]
    rotation = [rx, ry, rz]                   # Rodrigues vector, world -> camera
    translation = [tx, ty, tz]                # world -> camera, in the board's units

    [metadata]
    adjusted = true
    error = 0.31
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from keypointer.errors import DataError, KeypointerError

try:  # the standard library reads TOML from Python 3.11 on
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    tomllib = None

MetadataValue = bool | int | float | str
"""What a ``[metadata]`` entry may hold (Anipose writes ``adjusted`` and ``error``)."""

UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 20, 1e-12)
# OpenCV's default of 5 fixed-point steps leaves ~1e-5 (normalised) of error under strong
# barrel distortion, i.e. a few hundredths of a pixel; 20 steps to 1e-12 make undistortion
# the exact inverse of projection for the same cost order (~1 us a point).

CAMERA_SECTION = re.compile(r"cam_(\d+)")


@dataclass
class Camera:
    """One calibrated camera.

    Attributes:
        name: the camera's name (the video's stem, for example).
        size: image (width, height) in pixels.
        matrix: (3, 3) intrinsic matrix K.
        dist: (5,) OpenCV distortion (k1, k2, p1, p2, k3).
        rvec: (3,) Rodrigues rotation, world -> camera.
        tvec: (3,) translation, world -> camera.
    """

    name: str
    size: tuple[int, int]
    matrix: np.ndarray
    dist: np.ndarray = field(default_factory=lambda: np.zeros(5))
    rvec: np.ndarray = field(default_factory=lambda: np.zeros(3))
    tvec: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self) -> None:
        self.size = (int(self.size[0]), int(self.size[1]))
        self.matrix = np.array(self.matrix, dtype=np.float64).reshape(3, 3)
        self.dist = np.array(self.dist, dtype=np.float64).reshape(5)
        self.rvec = np.array(self.rvec, dtype=np.float64).reshape(3)
        self.tvec = np.array(self.tvec, dtype=np.float64).reshape(3)

    @property
    def rotation(self) -> np.ndarray:
        """(3, 3) rotation matrix R, world -> camera."""
        return cv2.Rodrigues(self.rvec)[0]

    @property
    def position(self) -> np.ndarray:
        """(3,) the camera's centre in world coordinates, ``-R^T t``."""
        return -self.rotation.T @ self.tvec

    @property
    def extrinsics(self) -> np.ndarray:
        """(3, 4) ``[R | t]``: world points to camera coordinates (and, divided by depth, to
        normalised image coordinates)."""
        return np.hstack([self.rotation, self.tvec[:, None]])

    @property
    def focal(self) -> np.ndarray:
        """(2,) focal lengths (fx, fy) in pixels: a normalised distance times these is pixels."""
        return np.array([self.matrix[0, 0], self.matrix[1, 1]])

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixels of world points, lens distortion included (``cv2.projectPoints``).

        Args:
            points: (..., 3) world points; NaN rows give NaN.

        Returns:
            (..., 2) pixel coordinates.
        """
        points = np.asarray(points, dtype=np.float64)
        flat = points.reshape(-1, 3)
        if flat.shape[0] == 0:
            return np.zeros((*points.shape[:-1], 2))
        out, _ = cv2.projectPoints(flat, self.rvec, self.tvec, self.matrix, self.dist)
        return out.reshape(*points.shape[:-1], 2)

    def undistort(self, points: np.ndarray) -> np.ndarray:
        """Normalised image coordinates (x/z, y/z) of pixel points (``cv2.undistortPoints``).

        Args:
            points: (..., 2) pixel coordinates; NaN stays NaN.

        Returns:
            (..., 2) normalised, undistorted coordinates.
        """
        points = np.asarray(points, dtype=np.float64)
        flat = points.reshape(-1, 2)
        out = np.full(flat.shape, np.nan)
        ok = np.isfinite(flat).all(axis=1)
        if ok.any():
            out[ok] = cv2.undistortPoints(
                np.ascontiguousarray(flat[ok]).reshape(-1, 1, 2),
                self.matrix,
                self.dist,
                R=np.eye(3),
                P=np.eye(3),
                criteria=UNDISTORT_CRITERIA,
            ).reshape(-1, 2)
        return out.reshape(points.shape)


def distort_normalized(xy: np.ndarray, matrix: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """OpenCV's projection from normalised coordinates to pixels, in numpy (vectorised over
    cameras: the bundle adjustment's inner loop). Equals ``cv2.projectPoints`` to rounding.

    Args:
        xy: (C, N, 2) normalised coordinates (x/z, y/z), one row of points per camera.
        matrix: (C, 3, 3) intrinsic matrices.
        dist: (C, 5) distortions (k1, k2, p1, p2, k3).

    Returns:
        (C, N, 2) pixels.
    """
    x, y = xy[..., 0], xy[..., 1]
    k1, k2, p1, p2, k3 = (dist[:, i, None] for i in range(5))
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    u = matrix[:, 0, 0, None] * xd + matrix[:, 0, 1, None] * yd + matrix[:, 0, 2, None]
    v = matrix[:, 1, 1, None] * yd + matrix[:, 1, 2, None]
    return np.stack([u, v], axis=-1)


@dataclass
class CameraGroup:
    """Calibrated cameras filming one scene; the world frame is the calibration's (camera 0's
    frame after :func:`keypointer.multiview.calibrate.calibrate`).

    Attributes:
        cameras: the cameras, in the order of the (C, ...) arrays.
        metadata: the file's ``[metadata]`` table (Anipose writes ``adjusted`` and ``error``).
    """

    cameras: list[Camera]
    metadata: dict[str, MetadataValue] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.cameras)

    def __iter__(self) -> Iterator[Camera]:
        return iter(self.cameras)

    def __getitem__(self, index: int) -> Camera:
        return self.cameras[index]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cameras]

    @property
    def extrinsics(self) -> np.ndarray:
        """(C, 3, 4) ``[R | t]`` of every camera."""
        return np.stack([c.extrinsics for c in self.cameras])

    @property
    def positions(self) -> np.ndarray:
        """(C, 3) camera centres in world coordinates."""
        return np.stack([c.position for c in self.cameras])

    @property
    def focals(self) -> np.ndarray:
        """(C, 2) focal lengths (fx, fy) in pixels."""
        return np.stack([c.focal for c in self.cameras])

    def project(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> (C, ..., 2) pixels in every camera."""
        return np.stack([c.project(points) for c in self.cameras])

    def undistort(self, points: np.ndarray) -> np.ndarray:
        """(C, ..., 2) pixels, camera first -> (C, ..., 2) normalised coordinates."""
        points = np.asarray(points, dtype=np.float64)
        if points.shape[0] != len(self.cameras):
            raise ValueError(f"points have {points.shape[0]} cameras, the group {len(self)}")
        return np.stack([c.undistort(p) for c, p in zip(self.cameras, points, strict=True)])


# --------------------------------------------------------------------------- calibration.toml


def write_calibration(group: CameraGroup, path: str | Path) -> Path:
    """Write ``group`` as Anipose's calibration.toml (layout in the module docstring).

    A small writer for this fixed layout (strings, integers, floats, flat and nested arrays):
    floats are written with ``repr`` so that reading gives back the same float64 bits.
    """
    path = Path(path)
    lines: list[str] = []
    for i, cam in enumerate(group.cameras):
        lines += [
            f"[cam_{i}]",
            f"name = {toml_value(cam.name)}",
            f"size = {toml_value(list(cam.size))}",
            f"matrix = {toml_value(cam.matrix.tolist())}",
            f"distortions = {toml_value(cam.dist.tolist())}",
            f"rotation = {toml_value(cam.rvec.tolist())}",
            f"translation = {toml_value(cam.tvec.tolist())}",
            "",
        ]
    lines.append("[metadata]")
    lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in group.metadata.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


TomlValue = MetadataValue | Sequence["TomlValue"]


def toml_value(value: TomlValue) -> str:
    """One TOML value: a bool, int, finite float, string or (nested) list of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if not math.isfinite(value):
            raise ValueError(f"calibration values must be finite, got {value}")
        return repr(float(value))
    if isinstance(value, str):
        # JSON's escapes (\" \\ \n \t \uXXXX) are TOML's too; TOML also wants DEL escaped.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007F")
    return "[" + ", ".join(toml_value(v) for v in value) + "]"


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_value(key)


def read_calibration(path: str | Path) -> CameraGroup:
    """Read Anipose's calibration.toml (ours or aniposelib's).

    Raises:
        DataError: naming the file and the camera section for anything missing or malformed.
    """
    path = Path(path)
    if tomllib is None:  # pragma: no cover - Python 3.10
        raise KeypointerError("reading calibration.toml needs Python 3.11 or newer")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("no such calibration file", path) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"not a TOML file: {e}", path) from None
    metadata = doc.pop("metadata", {})
    if not isinstance(metadata, dict):
        raise DataError("[metadata] must be a table", path)
    sections: list[tuple[int, str]] = []
    for key in doc:
        match = CAMERA_SECTION.fullmatch(key)
        if match is None or not isinstance(doc[key], dict):
            raise DataError(
                f"unexpected entry {key!r}: expected [cam_0], [cam_1], ... and [metadata]", path
            )
        sections.append((int(match.group(1)), key))
    if not sections:
        raise DataError("no camera sections ([cam_0], [cam_1], ...)", path)
    # aniposelib sorts the section names as strings; numbers order cam_10 after cam_9.
    cameras = [camera_from_table(doc[key], path, key) for _, key in sorted(sections)]
    names = [c.name for c in cameras]
    if len(set(names)) != len(names):
        raise DataError(f"camera names repeat: {names}", path)
    return CameraGroup(cameras, dict(metadata))


def camera_from_table(table: Mapping[str, object], path: Path, section: str) -> Camera:
    """A :class:`Camera` from one ``[cam_N]`` table; DataError names file and camera."""
    where = f"[{section}]" + (f" name {table['name']!r}" if "name" in table else "")

    def array(key: str, shape: tuple[int, ...]) -> np.ndarray:
        if key not in table:
            raise DataError(f"missing {key!r}", path, where)
        try:
            out = np.array(table[key], dtype=np.float64)
        except (TypeError, ValueError):
            out = None
        if out is None or out.shape != shape or not np.isfinite(out).all():
            raise DataError(
                f"{key!r} must be {'x'.join(map(str, shape))} finite numbers, got {table[key]!r}",
                path,
                where,
            )
        return out

    if table.get("fisheye"):
        raise DataError("fisheye cameras are not supported (5-coefficient model only)", path, where)
    if "name" not in table or not isinstance(table["name"], str | int):
        raise DataError("missing 'name'", path, where)
    size = array("size", (2,))
    if (size <= 0).any() or (size != np.round(size)).any():
        raise DataError(f"'size' must be two positive integers, got {table['size']!r}", path, where)
    matrix = array("matrix", (3, 3))
    if matrix[0, 0] <= 0 or matrix[1, 1] <= 0:
        raise DataError("'matrix' needs positive focal lengths", path, where)
    return Camera(
        name=str(table["name"]),
        size=(int(size[0]), int(size[1])),
        matrix=matrix,
        dist=array("distortions", (5,)),
        rvec=array("rotation", (3,)),
        tvec=array("translation", (3,)),
    )
