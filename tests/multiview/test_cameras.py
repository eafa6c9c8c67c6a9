"""keypointer.multiview.cameras: projection and undistortion are each other's inverse, the numpy
lens model equals OpenCV's, and calibration.toml round-trips (ours, and aniposelib's text)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keypointer.errors import DataError
from keypointer.multiview.cameras import (
    Camera,
    CameraGroup,
    distort_normalized,
    read_calibration,
    write_calibration,
)
from keypointer.multiview.synthetic import camera_ring

# written by aniposelib 0.8.0's CameraGroup.dump (toml 0.10.2): its spacing and trailing commas
ANIPOSE_TOML = """\
[cam_0]
name = "left"
size = [ 640, 480,]
matrix = [ [ 510.5, 0.0, 321.25,], [ 0.0, 511.0, 239.5,], [ 0.0, 0.0, 1.0,],]
distortions = [ -0.1, 0.02, 0.001, -0.002, 0.0,]
rotation = [ 0.1, -0.2, 0.3,]
translation = [ 10.0, -20.5, 800.0,]

[cam_1]
name = "right"
size = [ 640, 480,]
matrix = [ [ 500.0, 0.0, 320.0,], [ 0.0, 500.0, 240.0,], [ 0.0, 0.0, 1.0,],]
distortions = [ 0.0, 0.0, 0.0, 0.0, 0.0,]
rotation = [ 0.0, 0.0, 0.0,]
translation = [ 0.0, 0.0, 0.0,]

[metadata]
adjusted = true
error = 0.31
"""


def test_reads_aniposelib_file_and_projects_as_aniposelib(tmp_path):
    path = tmp_path / "calibration.toml"
    path.write_text(ANIPOSE_TOML)
    group = read_calibration(path)
    assert group.names == ["left", "right"]
    assert group.metadata == {"adjusted": True, "error": 0.31}
    left = group[0]
    assert left.size == (640, 480)
    np.testing.assert_array_equal(left.matrix, [[510.5, 0, 321.25], [0, 511.0, 239.5], [0, 0, 1]])
    np.testing.assert_array_equal(left.dist, [-0.1, 0.02, 0.001, -0.002, 0.0])
    np.testing.assert_array_equal(left.rvec, [0.1, -0.2, 0.3])
    np.testing.assert_array_equal(left.tvec, [10.0, -20.5, 800.0])
    # aniposelib's CameraGroup.project([[1, 2, 3]]) on this file printed these pixels
    np.testing.assert_allclose(
        group.project(np.array([[1.0, 2.0, 3.0]]))[:, 0],
        [[327.46896867, 227.60781601], [486.66666667, 573.33333333]],
        atol=1e-6,
    )


names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False)


@settings(max_examples=40, deadline=None)
@given(
    name=names,
    values=st.lists(finite, min_size=20, max_size=20),
    error=st.floats(0, 100, allow_nan=False),
)
def test_write_then_read_gives_the_same_bits(tmp_path_factory, name, values, error):
    v = np.array(values)
    cam = Camera(
        name=name,
        size=(1280, 1024),
        matrix=[[abs(v[0]) + 1, v[1], v[2]], [0, abs(v[3]) + 1, v[4]], [0, 0, 1]],
        dist=v[5:10],
        rvec=v[10:13],
        tvec=v[13:16],
    )
    other = Camera(
        name=name + "2",
        size=(640, 480),
        matrix=[[abs(v[16]) + 1, 0, 320], [0, abs(v[17]) + 1, 240], [0, 0, 1]],
    )
    group = CameraGroup([cam, other], {"adjusted": False, "error": error, "note": name})
    path = write_calibration(group, tmp_path_factory.mktemp("cal") / "calibration.toml")
    back = read_calibration(path)
    assert back.names == group.names
    assert back.metadata == group.metadata
    for a, b in zip(group, back, strict=True):
        assert a.size == b.size
        for field in ("matrix", "dist", "rvec", "tvec"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_more_than_ten_cameras_keep_their_order(tmp_path):
    group = camera_ring(12, seed=0)
    back = read_calibration(write_calibration(group, tmp_path / "c.toml"))
    assert back.names == group.names  # cam_10 after cam_9, not after cam_1


@settings(max_examples=30, deadline=None)
@given(
    k1=st.floats(-0.3, 0.1),
    k2=st.floats(-0.05, 0.1),
    p=st.tuples(st.floats(-3e-3, 3e-3), st.floats(-3e-3, 3e-3)),
    seed=st.integers(0, 2**16),
)
def test_undistort_inverts_project(k1, k2, p, seed):
    rng = np.random.default_rng(seed)
    cam = Camera("A", (640, 480), [[520, 0, 315], [0, 515, 245], [0, 0, 1]], [k1, k2, *p, 0.0])
    cam.rvec = rng.normal(scale=0.3, size=3)
    cam.tvec = rng.normal(scale=10, size=3)
    # points inside a 0.5 rad half-angle cone in front of the camera
    local = np.column_stack([rng.uniform(-0.5, 0.5, (50, 2)), np.ones(50)]) * rng.uniform(
        1, 50, (50, 1)
    )
    world = (local - cam.tvec) @ cam.rotation  # R^T (x - t)
    pixels = cam.project(world)
    np.testing.assert_allclose(cam.undistort(pixels), local[:, :2] / local[:, 2:], atol=1e-10)
    # and the numpy lens model is OpenCV's
    xy = (local[:, :2] / local[:, 2:])[None]
    np.testing.assert_allclose(
        distort_normalized(xy, cam.matrix[None], cam.dist[None])[0], pixels, atol=1e-9
    )


def test_undistort_keeps_nan_and_shape():
    cam = camera_ring(1)[0]
    pts = np.full((4, 3, 2), 100.0)
    pts[1, 2] = np.nan
    out = cam.undistort(pts)
    assert out.shape == (4, 3, 2)
    assert np.isnan(out[1, 2]).all() and np.isfinite(np.delete(out.reshape(-1, 2), 5, 0)).all()


def test_camera_position_is_where_it_projects_from():
    group = camera_ring(3, seed=2)
    for cam in group:
        # a point a little in front of the camera along its axis lands on the principal point
        ahead = cam.position + 10 * cam.rotation[2]
        np.testing.assert_allclose(cam.project(ahead), cam.matrix[:2, 2], atol=1e-9)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "calibration.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            ("distortions = [ -0.1, 0.02, 0.001, -0.002, 0.0,]", "distortions = [1, 2]"),
            "[cam_0] name 'left'.*'distortions' must be 5",
        ),
        (("translation = [ 0.0, 0.0, 0.0,]", ""), "[cam_1] name 'right'.*missing 'translation'"),
        (('name = "right"', 'name = "right"\nfisheye = true'), "[cam_1].*fisheye"),
        (("[metadata]", "[camera]"), "unexpected entry 'camera'"),
        (
            ("size = [ 640, 480,]", "size = [ 640.5, 480,]"),
            "[cam_0].*'size' must be two positive integers",
        ),
        (("[cam_0]", "[cam_0"), "not a TOML file"),
        (('name = "right"', 'name = "left"'), "camera names repeat"),
    ],
)
def test_bad_files_name_the_file_and_camera(tmp_path, change, expected):
    path = write(tmp_path, ANIPOSE_TOML.replace(*change, 1))
    with pytest.raises(DataError, match=expected.replace("[", r"\[")) as info:
        read_calibration(path)
    assert str(path) in str(info.value)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such calibration file"):
        read_calibration(tmp_path / "nope.toml")


def test_project_matches_opencv_for_a_group():
    group = camera_ring(4, seed=5)
    pts = np.random.default_rng(0).uniform(-100, 100, (7, 3))
    uv = group.project(pts)
    for c, cam in enumerate(group):
        ref, _ = cv2.projectPoints(pts, cam.rvec, cam.tvec, cam.matrix, cam.dist)
        np.testing.assert_allclose(uv[c], ref.reshape(-1, 2))
