"""``keypointer calibrate``: a camera group from synchronised videos of a calibration board.

Writes the calibration (Anipose's ``calibration.toml`` layout) and, next to it,
``<name>.detections.png`` (where each camera saw the board's corners) and ``<name>.layout.png``
(where the cameras stand); prints a report per camera.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from keypointer.commands.camera_names import split_names
from keypointer.commands.progress import progress
from keypointer.errors import ConfigError, DataError, KeypointerError
from keypointer.files import atomic_path
from keypointer.multiview.calibrate import Board, Calibration, calibrate, detect_videos
from keypointer.multiview.cameras import write_calibration
from keypointer.multiview.plots import detections_figure, layout_figure, save_png
from keypointer.output_paths import check_targets, make_output_dir, remove_created

BOARDS = ("charuco", "checkerboard")


def calibrate_command(
    videos: Sequence[Path],
    out: Path,
    *,
    board: str = "charuco",
    squares: str = "7x5",
    square_mm: float = 40.0,
    marker_mm: float | None = None,
    dictionary: str = "DICT_4X4_50",
    names: Sequence[str] | None = None,
    every: int = 1,
    overwrite: bool = False,
    quiet: bool = False,
    console: Console | None = None,
) -> Calibration:
    """Detect the board in every ``every``-th frame of each camera's video, calibrate, write
    ``out`` and its two pictures, and print the report. Everything is checked before any
    video is read; a failure leaves none of the three files."""
    console = console or Console()
    the_board = parse_board(board, squares, square_mm, marker_mm, dictionary)
    videos = [Path(v) for v in videos]
    names = camera_names(videos, names)
    if every < 1:
        raise ConfigError(f"--every must be 1 or more, got {every}")
    for v in videos:
        if not v.is_file():
            raise DataError("no such video", v)
    out = Path(out)
    pictures = picture_paths(out)
    check_targets([out, *pictures], inputs=videos, overwrite=overwrite)

    total = sum(-(-frame_count(v) // every) for v in videos)
    with progress(total, quiet, label="finding the board") as advance:
        found = detect_videos(videos, the_board, every=every, progress=advance)
    result = calibrate(found.corners, the_board, found.sizes, names)

    board_centres = board_centres_of(result, the_board)
    written: list[Path] = []
    created = make_output_dir(out.parent)
    try:
        written.append(save_png(detections_figure(found.corners, names, found.sizes), pictures[0]))
        written.append(save_png(layout_figure(result.group, board_centres), pictures[1]))
        with atomic_path(out) as tmp:
            write_calibration(result.group, tmp)
        written.append(out)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        remove_created(created)
        raise
    print_report(result, videos, every, console)
    console.print("wrote " + ", ".join(escape(str(p)) for p in (out, *pictures)), soft_wrap=True)
    return result


def parse_board(
    kind: str, squares: str, square_mm: float, marker_mm: float | None, dictionary: str
) -> Board:
    """The :class:`Board` of the command's options; ConfigError names the option."""
    if kind not in BOARDS:
        raise ConfigError(f"--board must be one of {', '.join(BOARDS)}, not {kind!r}")
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", squares)
    if match is None:
        raise ConfigError(f"--squares must be WxH squares, e.g. 7x5, not {squares!r}")
    if not square_mm > 0:
        raise ConfigError(f"--square-mm must be positive, got {square_mm}")
    if kind == "charuco":
        if marker_mm is None:
            raise ConfigError("a ChArUco board needs --marker-mm, the side of its markers")
        if not 0 < marker_mm < square_mm:
            raise ConfigError(
                f"--marker-mm must be positive and under --square-mm ({square_mm}), got {marker_mm}"
            )
        if not hasattr(cv2.aruco, dictionary.upper()) or not dictionary.upper().startswith("DICT_"):
            raise ConfigError(
                f"--dict {dictionary!r} is not an ArUco dictionary (e.g. DICT_4X4_50, "
                "DICT_5X5_100, DICT_6X6_250)"
            )
    elif marker_mm is not None:
        raise ConfigError("--marker-mm is for a ChArUco board, not a checkerboard")
    try:
        return Board(
            squares=(int(match.group(1)), int(match.group(2))),
            square_length=float(square_mm),
            marker_length=float(marker_mm) if kind == "charuco" else None,
            dictionary=dictionary.upper(),
        )
    except KeypointerError as err:  # the board's own checks: about the options given
        raise ConfigError(f"--squares {squares}: {err}") from None


def camera_names(videos: Sequence[Path], names: Sequence[str] | None) -> list[str]:
    """The cameras' names: ``names`` (one a video), else the videos' stems; checked."""
    if len(videos) < 2:
        raise ConfigError(f"calibrating needs 2 videos or more (one a camera), got {len(videos)}")
    names = split_names(names)
    if names:
        if len(names) != len(videos):
            raise ConfigError(f"--names gives {len(names)} names for {len(videos)} videos")
        names = [str(n) for n in names]
    else:
        names = [v.stem for v in videos]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(
            f"camera names repeat ({', '.join(repeated)}): give each video's camera with "
            "--names, e.g. --names A,B,C"
        )
    return names


def picture_paths(out: Path) -> list[Path]:
    """``<out stem>.detections.png`` and ``<out stem>.layout.png`` beside ``out``."""
    stem = out.name[: -len(out.suffix)] if out.suffix else out.name
    return [out.with_name(f"{stem}.detections.png"), out.with_name(f"{stem}.layout.png")]


def frame_count(video: Path) -> int:
    """The frame count a video declares (for the progress bar; 0 if it does not open)."""
    cap = cv2.VideoCapture(str(video))
    try:
        return max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0) if cap.isOpened() else 0
    finally:
        cap.release()


def board_centres_of(result: Calibration, board: Board) -> np.ndarray:
    """(F, 3) the board's centre in world coordinates per frame (NaN: not seen)."""
    centre = board.object_points().mean(axis=0)
    poses = result.board_poses
    out = poses[:, 3:].copy()
    for f in range(len(poses)):
        if np.isfinite(poses[f]).all():
            out[f] += cv2.Rodrigues(poses[f, :3])[0] @ centre
    return out


def print_report(result: Calibration, videos: Sequence[Path], every: int, console: Console) -> None:
    """A table per camera: its video, reprojection error, frames used, board detections and
    position (world: the first camera's frame)."""
    table = Table(title="calibration")
    for column in ("camera", "video", "error (px)", "frames used", "board seen", "position (mm)"):
        table.add_column(
            column, justify="left" if column in ("camera", "video") else "right", no_wrap=True
        )
    for report, video, cam in zip(result.cameras, videos, result.group, strict=True):
        x, y, z = cam.position
        table.add_row(
            escape(report.name),
            escape(video.name),
            f"{report.error_px:.3f}",
            str(report.frames_used),
            str(report.detections),
            f"{x:.0f}, {y:.0f}, {z:.0f}",
        )
    console.print(table)
    step = f" (every {every}th frame searched)" if every > 1 else ""
    console.print(f"mean reprojection error {result.error_px:.3f} px over every corner used{step}")
