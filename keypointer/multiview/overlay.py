"""Reprojections on the videos: each camera's video with its 2D input points and the 3D points
projected back through that camera, drawn on every frame.

Per point: the 2D input as a ring, the reprojected 3D point as a filled dot (with the skeleton's
edges between the dots), and a line from one to the other, whose length is the point's
reprojection error in that view. 2D points the triangulation did not use (a low score, a view
that disagreed) get a white ring. One colour an animal (:func:`keypointer.viz.track_colors`,
as in the drawn videos of ``predict``); a caption in the top left corner says which camera and
frame it is, the frame's median error, and what the marks are.

Frames are read, drawn and written one at a time (a whole video is never held in memory),
into ``<name>.mp4`` through a temporary file renamed when whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from keypointer.config import DEFAULT_FPS
from keypointer.data.frames import video_info
from keypointer.errors import DataError
from keypointer.multiview.cameras import Camera, CameraGroup
from keypointer.multiview.plots import as_animals
from keypointer.multiview.synthetic import camera_depths, write_video
from keypointer.skeleton import Skeleton
from keypointer.viz import draw_keypoints, ring_points, track_colors

UNUSED_COLOR = (255, 255, 255)  # RGB ring of a 2D point the triangulation left out
CAPTION_FONT = cv2.FONT_HERSHEY_SIMPLEX
CAPTION_HEIGHT_SHARE = 1 / 30  # a caption line's height, of the frame's height (16 px at 480)
MIN_CAPTION_LINE_PX = 10
DOT_SHARE = 300  # a dot's radius: the frame's longer side over this (2 px at 640, 6 at 1920)
SHIFT = 4  # cv2 fixed-point fraction bits: positions to 1/16 px, as keypointer.viz draws


def reprojection_path(out: str | Path, camera: str) -> Path:
    """Where the reprojection video of ``camera`` goes for 3D poses written to ``out``:
    ``<out stem>.<camera>.reprojection.mp4`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}.{camera}.reprojection.mp4")


def reproject(camera: Camera, points: np.ndarray) -> np.ndarray:
    """Pixels of world points in ``camera``; NaN for NaN points and for points at or behind
    the camera (which would otherwise land on the image mirrored).

    Args:
        points: (..., 3) world points.

    Returns:
        (..., 2) pixels.
    """
    points = np.asarray(points, dtype=np.float64)
    uv = camera.project(np.nan_to_num(points))
    behind = ~(camera_depths(CameraGroup([camera]), points)[0] > 0)  # NaN depth: no point
    return np.where((behind | ~np.isfinite(points).all(-1))[..., None], np.nan, uv)


def draw_reprojection(
    image: np.ndarray,
    observed: np.ndarray,
    reprojected: np.ndarray,
    *,
    used: np.ndarray | None = None,
    edges: Sequence[tuple[int, int]] = (),
    caption: Sequence[str] | None = None,
    radius: int | None = None,
    colors: Sequence[tuple[int, int, int]] | None = None,
) -> np.ndarray:
    """A copy of ``image`` with one frame's 2D input points and reprojected 3D points drawn.

    Args:
        image: (H, W, 3) uint8, RGB unless ``colors`` are in another order; left untouched.
        observed: (I, K, 2) the camera's 2D input points (pixels, x, y), NaN where none.
        reprojected: (I, K, 2) the 3D points projected through the camera, NaN where none.
        used: (I, K) whether the triangulation used each 2D point; those it did not get a
            white ring. None: all drawn as used.
        edges: keypoint index pairs joined between the reprojected dots.
        caption: lines written in the top left corner above a legend of the marks (camera,
            frame); None: neither.
        radius: the dots' radius in pixels; default grows with the image (rings are twice it).
        colors: the I animals' colours, in the image's channel order; None: RGB
            :func:`keypointer.viz.track_colors` (a BGR frame drawn with them reversed needs
            no conversion).

    Returns:
        The (H, W, 3) uint8 drawing.
    """
    out = np.asarray(image, dtype=np.uint8)
    colors = track_colors(len(observed)) if colors is None else list(colors)
    radius = radius or max(2, round(max(out.shape[:2]) / DOT_SHARE))
    skeleton = Skeleton(tuple(map(str, range(observed.shape[1]))), tuple(edges))
    for i, color in enumerate(colors):
        kept = np.ones(len(observed[i]), bool) if used is None else np.asarray(used[i], bool)
        out = ring_points(out, observed[i][kept], color, 2 * radius)  # a copy: image untouched
        if not kept.all():
            out = ring_points(out, observed[i][~kept], UNUSED_COLOR, 2 * radius)
        both = np.isfinite(observed[i]).all(-1) & np.isfinite(reprojected[i]).all(-1)
        for a, b in zip(observed[i][both], reprojected[i][both], strict=True):
            cv2.line(out, fixed(a), fixed(b), color, 1, cv2.LINE_AA, SHIFT)
        out = draw_keypoints(out, reprojected[i], skeleton, radius=radius, color=color)
    if out is image:
        out = out.copy()  # no animal drawn: still a copy
    if caption is None:
        return out
    return draw_caption(out, caption, colors[0] if len(colors) == 1 else (200, 200, 200), used)


def fixed(p: np.ndarray) -> tuple[int, int]:
    """(x, y) pixels as OpenCV's fixed-point integers (``SHIFT`` fraction bits)."""
    return int(round(float(p[0]) * (1 << SHIFT))), int(round(float(p[1]) * (1 << SHIFT)))


def draw_caption(
    image: np.ndarray,
    lines: Sequence[str],
    color: tuple[int, int, int],
    used: np.ndarray | None,
) -> np.ndarray:
    """``lines`` and a legend of the marks (ring: 2D input, dot: reprojected 3D point, line:
    error, white ring: not used when ``used`` is given) in the top left corner of the
    (H, W, 3) uint8 ``image``, on a darkened box; drawn in place, returned. ``color``, the
    marks', is in the image's channel order (the text is white)."""
    h, w = image.shape[:2]
    step = max(MIN_CAPTION_LINE_PX, round(h * CAPTION_HEIGHT_SHARE))
    scale = cv2.getFontScaleFromHeight(CAPTION_FONT, round(step * 0.6))
    legend = ["2D input", "3D reprojected", "error (px)"] + (
        ["not used"] if used is not None else []
    )
    rows = [*lines, *legend]
    widths = [cv2.getTextSize(t, CAPTION_FONT, scale, 1)[0][0] for t in rows]
    icon = step  # the legend's marks sit in a square of a line's height before the text
    box_w = min(w, max(widths, default=0) + icon + 8)
    box_h = min(h, step * len(rows) + 4)
    image[:box_h, :box_w] //= 2  # darken: the text stays readable on any background
    for n, text in enumerate(rows):
        base = step * (n + 1)
        x = 4
        if n >= len(lines):
            cy, cx, r = base - step // 3, 4 + icon // 2, max(2, step // 4)
            kind = n - len(lines)
            if kind == 0:
                cv2.circle(image, (cx, cy), r, color, 1, cv2.LINE_AA)
            elif kind == 1:
                cv2.circle(image, (cx, cy), max(1, r // 2 + 1), color, -1, cv2.LINE_AA)
            elif kind == 2:
                cv2.line(image, (4, cy), (4 + icon - 2, cy), color, 1, cv2.LINE_AA)
            else:
                cv2.circle(image, (cx, cy), r, UNUSED_COLOR, 1, cv2.LINE_AA)
            x += icon
        cv2.putText(
            image, text, (x, base - 3), CAPTION_FONT, scale, (255, 255, 255), 1, cv2.LINE_AA
        )
    return image


def video_images(path: Path, count: int) -> Iterator[np.ndarray]:
    """The first ``count`` frames of the video ``path``, BGR (H, W, 3) uint8, one at a time.

    Raises:
        DataError: the video cannot be opened, or ends before ``count`` frames.
    """
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise DataError("cannot open this video", path)
        for i in range(count):
            ok, image = capture.read()
            if not ok or image is None:
                raise DataError(
                    f"the video ends at frame {i}; the poses go on to frame {count - 1}", path
                )
            yield image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    finally:
        capture.release()


def reprojection_images(
    images: Iterable[np.ndarray],
    camera: Camera,
    observed: np.ndarray,
    points: np.ndarray,
    *,
    used: np.ndarray | None = None,
    edges: Sequence[tuple[int, int]] = (),
    caption: bool = True,
) -> Iterator[np.ndarray]:
    """Each of ``images`` with :func:`draw_reprojection` of its frame, lazily.

    Args:
        images: the camera's frames 0, 1, ... as BGR (H, W, 3) uint8 (a video read one frame
            at a time); only the first F are drawn.
        camera: the camera the images come from.
        observed: (F, K, 2) or (F, I, K, 2) the camera's 2D input points, NaN where none.
        points: (F, K, 3) or (F, I, K, 3) 3D points, NaN where none.
        used: (F, K) or (F, I, K) whether the triangulation used each 2D point; None: all.
        edges: keypoint index pairs joined between the reprojected dots.
        caption: write the camera, frame, median error and legend in the corner.

    Returns:
        An iterator of BGR (H, W, 3) uint8 drawings, one a frame.
    """
    obs = as_animals(np.asarray(observed, dtype=np.float64), 1)
    uv = reproject(camera, as_animals(points, 1))
    if obs.shape != uv.shape:
        raise ValueError(f"2D points {obs.shape} and 3D points' reprojections {uv.shape} differ")
    kept = None if used is None else as_animals(np.asarray(used, bool), 0)
    errors = np.linalg.norm(obs - uv, axis=-1)
    bgr = [c[::-1] for c in track_colors(obs.shape[1])]  # drawn on the BGR frames as they are
    for f, image in zip(range(len(obs)), images, strict=False):
        lines = None
        if caption:
            err = errors[f] if kept is None else errors[f][kept[f]]
            err = err[np.isfinite(err)]
            median = f"median error {np.median(err):.1f} px" if err.size else "no 3D point"
            lines = (f"camera {camera.name}  frame {f}", median)
        yield draw_reprojection(
            image,
            obs[f],
            uv[f],
            used=None if kept is None else kept[f],
            edges=edges,
            caption=lines,
            colors=bgr,
        )


def check_video(path: Path, camera: Camera, frames: int) -> float:
    """The frame rate of camera ``camera``'s video ``path``, once its header shows that it
    holds the poses' ``frames`` frames at the calibration's image size.

    Raises:
        DataError: naming the video: it cannot be opened, is of another size, or is shorter.
    """
    info = video_info(path)
    if info is None:
        raise DataError("cannot open this video", path)
    width, height, count = info
    if (width, height) != tuple(camera.size):
        raise DataError(
            f"the video is {width}x{height}, camera {camera.name} of the calibration "
            f"{camera.size[0]}x{camera.size[1]}: is it this camera's video?",
            path,
        )
    if 0 < count < frames:  # a count of 0: the container does not say; decoding will tell
        raise DataError(
            f"the video has {count} frames, the poses {frames}: is it this camera's video?", path
        )
    capture = cv2.VideoCapture(str(path))
    fps = float(capture.get(cv2.CAP_PROP_FPS))
    capture.release()
    return fps if fps > 0 else DEFAULT_FPS


def counted_images(images: Iterable[np.ndarray], progress: Callable[[], None]) -> Iterator:
    """``images`` unchanged, ``progress()`` called after each is consumed."""
    for image in images:
        yield image
        progress()


def write_reprojection_videos(
    videos: Sequence[str | Path],
    outs: Sequence[str | Path],
    group: CameraGroup,
    observed: np.ndarray,
    points: np.ndarray,
    *,
    used: np.ndarray | None = None,
    edges: Sequence[tuple[int, int]] = (),
    caption: bool = True,
    progress: Callable[[], None] | None = None,
) -> list[Path]:
    """Write each camera's video with its 2D input and the reprojected 3D points drawn
    (:func:`reprojection_images`), frames 0 to F - 1 at the video's frame rate. Streams: one
    frame in memory at a time. Every video is checked before any is written; each is written
    under a temporary name and renamed when whole, and if one fails those already written
    are removed (all or none).

    Args:
        videos: the C cameras' videos, in ``group``'s order.
        outs: the C videos to write (:func:`reprojection_path`).
        group: the cameras.
        observed: (C, F, K, 2) or (C, F, I, K, 2) 2D input points.
        points: (F, K, 3) or (F, I, K, 3) 3D points.
        used: (C, F, K) or (C, F, I, K) the triangulation's views used (its ``used``); None:
            all.
        edges: keypoint index pairs joined between the reprojected dots.
        caption: write the camera, frame, median error and legend in the corner.
        progress: called once a frame written (C x F calls in all).

    Returns:
        The paths written, ``outs``.

    Raises:
        DataError: naming the video when it cannot be read, is not of its camera's size, or
            has fewer frames than the poses; or OpenCV cannot write the output.
    """
    if not len(videos) == len(outs) == len(group) == len(observed):
        raise ValueError(
            f"{len(videos)} videos, {len(outs)} outputs, {len(group)} cameras and "
            f"{len(observed)} cameras' 2D points differ"
        )
    frames = observed.shape[1]
    rates = [check_video(Path(v), camera, frames) for v, camera in zip(videos, group, strict=True)]
    written: list[Path] = []
    try:
        for c, (video, camera) in enumerate(zip(videos, group, strict=True)):
            images = reprojection_images(
                video_images(Path(video), frames),
                camera,
                observed[c],
                points,
                used=None if used is None else used[c],
                edges=edges,
                caption=caption,
            )
            if progress is not None:
                images = counted_images(images, progress)
            written.append(write_video(Path(outs[c]), images, rates[c], camera.size))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return written
