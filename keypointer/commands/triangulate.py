"""``keypointer triangulate``: 3D keypoints from each camera's 2D predictions.

Reads a calibration (Anipose's calibration.toml) and one 2D pose file per camera (``keypointer
predict``'s ``<video>.csv`` or ``.h5``, or DeepLabCut's own), triangulates every keypoint of
every frame (score-weighted, views that disagree left out: :mod:`keypointer.multiview.
triangulate`), optionally smooths the 3D tracks, and writes Anipose's ``pose_3d`` CSV.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from keypointer.commands.camera_names import split_names
from keypointer.config import DEFAULT_FPS, KEYPOINT_SCORE_THRESHOLD
from keypointer.errors import ConfigError, DataError
from keypointer.multiview.cameras import CameraGroup, read_calibration
from keypointer.multiview.poses import Poses2D, Poses3D, read_poses_2d, write_pose3d_csv
from keypointer.multiview.triangulate import Triangulation, smooth_points, triangulate
from keypointer.output_paths import check_target, make_output_dir, remove_created
from keypointer.temporal.smooth import METHODS


def triangulate_command(
    calibration: Path,
    predictions: Sequence[Path],
    out: Path,
    *,
    names: Sequence[str] | None = None,
    min_score: float = KEYPOINT_SCORE_THRESHOLD,
    smooth: str | None = None,
    fps: float = DEFAULT_FPS,
    overwrite: bool = False,
    console: Console | None = None,
) -> Poses3D:
    """Triangulate the cameras' 2D predictions into ``out`` and print a report per keypoint.

    Cameras are matched to the calibration by ``names`` (one per file, in order), else by
    the files' names (``A.csv``, ``session1-camA.csv``, ``ADLC_resnet50_....h5`` are camera
    ``A``). Frames are matched by number; a camera whose file ends early has no points in
    the frames after."""
    console = console or Console()
    if smooth is not None and smooth not in METHODS:
        raise ConfigError(f"--smooth must be one of {', '.join(METHODS)}, not {smooth!r}")
    if not 0 <= min_score <= 1:
        raise ConfigError(f"--min-score must be in [0, 1], got {min_score}")
    if not fps > 0:
        raise ConfigError(f"--fps must be positive, got {fps}")
    predictions = [Path(p) for p in predictions]
    if len(predictions) < 2:
        raise ConfigError(f"triangulating needs 2 cameras' files or more, got {len(predictions)}")
    for path in (Path(calibration), *predictions):
        if not path.is_file():
            raise DataError("no such file", path)
    out = Path(out)
    check_target(
        out, inputs=[calibration, *predictions], overwrite=overwrite, example="points3d.csv"
    )
    group = read_calibration(calibration)
    cameras = match_cameras(predictions, group.names, split_names(names))
    poses = [read_poses_2d(p) for p in predictions]
    keypoints = poses[0].keypoints
    points, scores = stack_cameras(poses, predictions, keypoints)
    subgroup = CameraGroup([group[group.names.index(c)] for c in cameras], dict(group.metadata))

    tri = triangulate(subgroup, points, scores, score_threshold=min_score)
    score = least_used_score(scores, tri)
    result = tri.points
    if smooth is not None:
        result = smooth_points(result, score, np.arange(len(result)) / fps, smooth)
    poses_3d = Poses3D(keypoints, result, tri.error, tri.views, score)
    created = make_output_dir(out.parent)
    try:
        write_pose3d_csv(out, poses_3d)
    except BaseException:
        remove_created(created)
        raise
    print_report(poses_3d, tri, cameras, predictions, smooth, console)
    console.print(
        f"wrote {escape(str(out))} ({len(result)} frames, {len(keypoints)} keypoints)",
        soft_wrap=True,
    )
    return poses_3d


def match_cameras(files: Sequence[Path], cameras: Sequence[str], names: Sequence[str]) -> list[str]:
    """The calibration's camera of each file: ``names`` in order when given, else the one
    camera name the file's name holds (the whole stem, the part before ``DLC``, or a word of
    it, ``cam`` before the name allowed). ConfigError says what to pass."""
    listing = ", ".join(cameras)
    if names:
        if len(names) != len(files):
            raise ConfigError(f"--names gives {len(names)} names for {len(files)} files")
        for name in names:
            if name not in cameras:
                raise ConfigError(f"--names: no camera {name!r} in the calibration ({listing})")
        found = list(names)
    else:
        found = []
        for path in files:
            stem = path.stem
            words = {stem, stem.split("DLC")[0].rstrip("_-. ")}
            for word in re.split(r"[^A-Za-z0-9]+", stem):
                words |= {word, re.sub(r"^cam(era)?", "", word, flags=re.IGNORECASE)}
            matches = [c for c in cameras if c in words]
            if len(matches) != 1:
                what = "names no camera" if not matches else f"could be {', '.join(matches)}"
                raise ConfigError(
                    f"{path.name} {what} of the calibration ({listing}): give each file's "
                    "camera with --names, e.g. --names " + ",".join(cameras[: len(files)])
                )
            found.append(matches[0])
    repeated = sorted({c for c in found if found.count(c) > 1})
    if repeated:
        raise ConfigError(
            f"two files are camera {', '.join(repeated)}: give one file per camera "
            "(--names sets which is which)"
        )
    return found


def stack_cameras(
    poses: Sequence[Poses2D], files: Sequence[Path], keypoints: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(C, F, K, 2) points and (C, F, K) scores, keypoints in ``keypoints``' order, row f
    frame f (F: the last frame any file has, + 1)."""
    n_frames = max((int(p.frames.max()) + 1 if len(p.frames) else 0) for p in poses)
    points = np.full((len(poses), n_frames, len(keypoints), 2), np.nan)
    scores = np.zeros((len(poses), n_frames, len(keypoints)))
    for c, (pose, path) in enumerate(zip(poses, files, strict=True)):
        missing = [k for k in keypoints if k not in pose.keypoints]
        extra = [k for k in pose.keypoints if k not in keypoints]
        if missing or extra:
            raise DataError(
                f"its keypoints differ from {files[0].name}'s: "
                + "; ".join(
                    part
                    for part in (
                        f"missing {', '.join(missing)}" if missing else "",
                        f"extra {', '.join(extra)}" if extra else "",
                    )
                    if part
                ),
                path,
            )
        if (pose.frames < 0).any() or len(set(pose.frames.tolist())) != len(pose.frames):
            raise DataError("frame numbers must be distinct and not negative", path)
        order = [pose.keypoints.index(k) for k in keypoints]
        points[c, pose.frames] = pose.points[:, order]
        scores[c, pose.frames] = pose.scores[:, order]
    return points, scores


def least_used_score(scores: np.ndarray, tri: Triangulation) -> np.ndarray:
    """(F, K) the least 2D score of the views each point used (Anipose's ``_score``); NaN
    where no point."""
    used = np.where(tri.used, scores, np.inf).min(axis=0)
    return np.where(tri.views >= 2, used, np.nan)


def print_report(
    poses: Poses3D,
    tri: Triangulation,
    cameras: Sequence[str],
    files: Sequence[Path],
    smooth: str | None,
    console: Console,
) -> None:
    """Which file is which camera, then per keypoint: frames triangulated, median
    reprojection error and mean views used."""
    for camera, path in zip(cameras, files, strict=True):
        console.print(f"camera {escape(camera)}: {escape(str(path))}", soft_wrap=True)
    table = Table(title=f"{len(poses.points)} frames from {len(cameras)} cameras")
    for column in ("keypoint", "frames in 3D", "median error (px)", "views used (mean)"):
        table.add_column(column, justify="left" if column == "keypoint" else "right")
    n_frames = max(len(poses.points), 1)
    for k, name in enumerate(poses.keypoints):
        ok = tri.views[:, k] >= 2
        error = f"{np.median(tri.error[ok, k]):.2f}" if ok.any() else "-"
        views = f"{tri.views[ok, k].mean():.2f}" if ok.any() else "-"
        table.add_row(escape(name), f"{ok.sum()} ({100 * ok.sum() / n_frames:.0f}%)", error, views)
    console.print(table)
    ok = tri.views >= 2
    if ok.any():
        console.print(
            f"all keypoints: median reprojection error {np.median(tri.error[ok]):.2f} px, "
            f"{tri.views[ok].mean():.2f} views per point"
            + (f"; smoothed in 3D ({smooth})" if smooth else "")
        )
