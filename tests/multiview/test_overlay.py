"""keypointer.multiview.overlay: the reprojected 3D points land where the camera projects them,
frame by frame, in the animal's colour (read back from the written video); the 2D input, the
error line, unused views and the caption are drawn; frames are streamed; a bad video is a
DataError naming it, with nothing written."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import decoded_frames, write_video

from keypointer.errors import DataError
from keypointer.multiview.cameras import Camera, CameraGroup
from keypointer.multiview.overlay import (
    UNUSED_COLOR,
    draw_reprojection,
    reproject,
    reprojection_images,
    reprojection_path,
    video_images,
    write_reprojection_videos,
)
from keypointer.viz import track_colors

SIZE = (96, 64)  # width, height
FOCAL, DEPTH = 80.0, 100.0
CENTRE = (47.0, 31.0)
BACKGROUND = 60
# Frame f's keypoints land on these pixels (x, y): 10 px apart, far from the edges.
PIXELS = np.array([[[30.0, 40.0], [40.0, 40.0]], [[50.0, 44.0], [60.0, 44.0]]])  # (F, K, 2)
ABOVE = np.array([0.0, -12.0])  # where the 2D input is, from the reprojection


def camera(name: str = "A") -> Camera:
    """No distortion, looking down +z from DEPTH away: pixel = FOCAL * x / DEPTH + centre."""
    matrix = [[FOCAL, 0, CENTRE[0]], [0, FOCAL, CENTRE[1]], [0, 0, 1]]
    return Camera(name, SIZE, matrix, tvec=[0.0, 0.0, DEPTH])


def world(pixels: np.ndarray) -> np.ndarray:
    """(..., 2) pixels -> (..., 3) world points on the plane z = 0 that land on them."""
    xy = (pixels - np.array(CENTRE)) * DEPTH / FOCAL
    return np.concatenate([xy, np.zeros((*xy.shape[:-1], 1))], axis=-1)


def grey_video(path, frames: int = 2, size: tuple[int, int] = SIZE):
    image = np.full((size[1], size[0], 3), BACKGROUND, np.uint8)
    return write_video(path, [image] * frames, fps=10.0)


def patch(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """The mean RGB of the 3 x 3 pixels around (x, y)."""
    x, y = (int(round(v)) for v in xy)
    return image[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3).mean(axis=0)


def test_reprojected_dots_land_on_the_projected_pixels_frame_by_frame(tmp_path):
    video = grey_video(tmp_path / "A.mp4")
    observed = PIXELS + ABOVE
    group, outs = CameraGroup([camera()]), [tmp_path / "A.reprojection.mp4"]
    (out,) = write_reprojection_videos(
        [video], outs, group, observed[None], world(PIXELS), caption=False
    )
    frames = decoded_frames(out)
    assert len(frames) == 2 and frames[0].shape == (SIZE[1], SIZE[0], 3)
    red = np.array(track_colors(1)[0], float)  # RGB: a swap to BGR would turn it blue
    for f, image in enumerate(frames):
        for xy in PIXELS[f]:
            assert np.abs(patch(image, xy) - red).max() < 50, (f, xy, patch(image, xy))
        # the other frame's positions are background: frame f holds frame f's points only
        for xy in PIXELS[1 - f]:
            assert np.abs(patch(image, xy) - BACKGROUND).max() < 25, (f, xy)
    # the corners (no caption) keep the video's own pixels
    assert np.abs(frames[0][:8, :8].astype(float) - BACKGROUND).max() < 10


def test_marks_ring_line_dot_and_unused_views():
    image = np.zeros((64, 96, 3), np.uint8)
    reprojected = PIXELS[:1]  # (I=1, K=2, 2)
    observed = reprojected + ABOVE
    used = np.array([[True, False]])
    out = draw_reprojection(image, observed, reprojected, used=used, radius=2)
    color = np.array(track_colors(1)[0])
    a, ring = reprojected[0, 0], 4  # the ring's radius: twice the dot's
    np.testing.assert_array_equal(out[int(a[1]), int(a[0])], color)  # dot
    mid = (a + observed[0, 0]) / 2
    assert (out[int(mid[1]), int(mid[0])] > 0).any()  # the error line
    assert out[int(mid[1]), int(mid[0]) + 2].max() == 0  # a line, not a band
    o_used, o_unused = observed[0]
    left = out[int(o_used[1]), int(o_used[0]) - ring]
    assert left.argmax() == 0 and left[0] > 100  # ring of a used view: the animal's colour
    right = out[int(o_unused[1]), int(o_unused[0]) + ring]
    assert right.min() > 100 and np.ptp(right) < 30  # unused view: white (grey where faint)
    assert UNUSED_COLOR == (255, 255, 255)
    np.testing.assert_array_equal(image, 0)  # the input is left untouched


def test_missing_points_draw_nothing():
    image = np.zeros((64, 96, 3), np.uint8)
    nan = np.full((1, 2, 2), np.nan)
    np.testing.assert_array_equal(draw_reprojection(image, nan, nan), image)
    only_3d = draw_reprojection(image, nan, PIXELS[:1])
    assert only_3d.any() and only_3d[:, :20].max() == 0  # dots, no line to a missing input


def test_each_animal_gets_its_colour():
    image = np.zeros((64, 96, 3), np.uint8)
    reprojected = PIXELS  # (I=2, K=2, 2): here the two rows are two animals
    out = draw_reprojection(image, np.full_like(reprojected, np.nan), reprojected, radius=2)
    for i, color in enumerate(track_colors(2)):
        for x, y in reprojected[i]:
            np.testing.assert_array_equal(out[int(y), int(x)], color)
    assert track_colors(2)[0] != track_colors(2)[1]


def test_caption_in_the_corner_leaves_the_rest():
    image = np.full((96, 128, 3), 80, np.uint8)
    nan = np.full((1, 1, 2), np.nan)
    out = draw_reprojection(image, nan, nan, caption=["camera A  frame 3"], used=np.ones((1, 1)))
    corner = out[:40, :60]
    assert (corner.min(-1) > 150).sum() > 20  # white text
    assert (corner < 80).any()  # the box behind it is darkened
    np.testing.assert_array_equal(out[60:, 100:], 80)


def test_reproject_gives_nan_behind_the_camera_and_for_nan():
    points = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, -2 * DEPTH], [np.nan, 0.0, 0.0]])
    uv = reproject(camera(), points)
    np.testing.assert_allclose(uv[0], CENTRE)
    assert np.isnan(uv[1:]).all()


def test_frames_are_drawn_one_at_a_time():
    taken = []

    def images():
        for i in range(5):
            taken.append(i)
            yield np.zeros((SIZE[1], SIZE[0], 3), np.uint8)

    points = np.repeat(world(PIXELS[:1]), 5, axis=0)  # (5, K, 3)
    drawn = reprojection_images(images(), camera(), np.full((5, 2, 2), np.nan), points)
    next(drawn)
    assert taken == [0]  # one frame read for one drawn


def test_several_cameras_each_get_a_video_and_progress(tmp_path):
    group = CameraGroup([camera("A"), camera("B")])
    videos = [grey_video(tmp_path / f"{n}.mp4", frames=3) for n in group.names]
    outs = [reprojection_path(tmp_path / "points3d.csv", n) for n in group.names]
    assert outs[1].name == "points3d.B.reprojection.mp4"
    calls = []
    points = np.concatenate([world(PIXELS), world(PIXELS[:1])])  # (F=3, K, 3)
    observed = np.broadcast_to(PIXELS[0], (2, 3, 2, 2))  # (C, F, K, 2)
    written = write_reprojection_videos(
        videos, outs, group, observed, points, progress=lambda: calls.append(1)
    )
    assert written == outs and all(len(decoded_frames(p)) == 3 for p in outs)
    assert len(calls) == 6  # C x F


def test_unreadable_video_is_a_data_error_naming_it(tmp_path):
    video = tmp_path / "A.mp4"
    video.write_text("not a video")
    out = tmp_path / "o.mp4"
    with pytest.raises(DataError, match="A.mp4"):
        write_reprojection_videos(
            [video], [out], CameraGroup([camera()]), PIXELS[None], world(PIXELS)
        )
    assert list(tmp_path.iterdir()) == [video]


@pytest.mark.parametrize(
    "frames, size, message",
    [(1, SIZE, "has 1 frames, the poses 2"), (2, (64, 64), "64x64, camera B")],
)
def test_wrong_video_is_a_data_error_and_nothing_is_written(tmp_path, frames, size, message):
    group = CameraGroup([camera("A"), camera("B")])
    good = grey_video(tmp_path / "A.mp4")
    bad = grey_video(tmp_path / "B.mp4", frames=frames, size=size)
    outs = [tmp_path / "A.out.mp4", tmp_path / "B.out.mp4"]
    observed = np.stack([PIXELS, PIXELS])
    with pytest.raises(DataError, match=message) as err:
        write_reprojection_videos([good, bad], outs, group, observed, world(PIXELS))
    assert err.value.file == str(bad) or str(bad) in str(err.value)
    assert not any(p.exists() for p in outs)


def test_a_video_that_ends_early_while_decoding_is_a_data_error(tmp_path):
    """The header may overstate the frames: decoding tells, naming the video."""
    video = grey_video(tmp_path / "A.mp4", frames=2)
    images = video_images(video, 3)
    assert next(images).shape == (SIZE[1], SIZE[0], 3)
    next(images)
    with pytest.raises(DataError, match=r"A\.mp4.*ends at frame 2; the poses go on to frame 2"):
        next(images)
