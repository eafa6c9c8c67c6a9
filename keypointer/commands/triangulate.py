"""``keypointer triangulate``: 3D keypoints from each camera's 2D predictions.

Reads a calibration (Anipose's calibration.toml) and one 2D pose file per camera (``keypointer
predict``'s ``<video>.csv`` or ``.h5``, or DeepLabCut's own), triangulates every keypoint of
every frame (score-weighted, views that disagree left out: :mod:`keypointer.multiview.
triangulate`), optionally smooths the 3D tracks, and writes Anipose's ``pose_3d`` CSV (and with
``--h5`` DeepLabCut's 3D ``.h5``), a picture of the 3D poses and one of their quality, and with
``--videos`` each camera's video with its 2D input and the 3D points reprojected
(:mod:`keypointer.multiview.overlay`). Several animals are matched across views and tracked in
3D first (:mod:`keypointer.multiview.identities`).

Steps, a function each: :func:`check_options`, :func:`match_cameras`, :func:`stack_cameras`,
:func:`output_files`, :func:`triangulate_animals`, :func:`write_outputs`, :func:`print_report`,
:func:`draw_pictures`, :func:`draw_videos`.
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
from keypointer.commands.progress import progress
from keypointer.config import DEFAULT_FPS, KEYPOINT_SCORE_THRESHOLD
from keypointer.errors import ConfigError, DataError
from keypointer.inference.sources import VIDEO_EXTS
from keypointer.multiview.cameras import CameraGroup, read_calibration
from keypointer.multiview.identities import gather, match_views, reorder, track_animals
from keypointer.multiview.limbs import Limbs, learn_limbs
from keypointer.multiview.overlay import reprojection_path, write_reprojection_videos
from keypointer.multiview.plots import pictures_paths, poses_figure, quality_figure, save_png
from keypointer.multiview.poses import (
    Poses2D,
    Poses3D,
    read_pose3d_csv,
    read_poses_2d,
    write_pose3d_csv,
    write_pose3d_h5,
)
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
    animals: int | None = None,
    h5: bool = False,
    pictures: bool = True,
    videos: Sequence[Path] | None = None,
    limbs: Path | None = None,
    limb_noise: float | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    console: Console | None = None,
) -> dict[str, Poses3D]:
    """Triangulate the cameras' 2D predictions into ``out`` and print a report per keypoint.

    Cameras are matched to the calibration by ``names`` (one per file, in order), else by
    the files' names (``A.csv``, ``session1-camA.csv``, ``ADLC_resnet50_....h5`` are camera
    ``A``). Frames are matched by number; a camera whose file ends early has no points in
    the frames after. Several animals (``animals``: at most this many, default the most
    any file holds): each frame's animals are matched across views and tracked in 3D
    (:mod:`keypointer.multiview.identities`); the pose_3d CSV is written once per animal,
    ``<out stem>_animal<i>.csv``. ``h5``: also ``<out stem>.h5``, every animal in
    DeepLabCut's 3D layout. ``pictures``: ``<out stem>.3d.png`` (the poses and the cameras)
    and ``<out stem>.quality.png`` (reprojection error and views used, per keypoint and
    frame). ``videos``: each camera's video (in the files' order, or one folder holding
    them, matched to cameras by name as the 2D files are); each gets
    ``<out stem>.<camera>.reprojection.mp4``, its 2D input and the 3D points reprojected.
    ``limbs``: a pose_3d CSV of reference 3D poses (e.g. the labelled frames triangulated):
    the lengths of the limbs it shows are learnt from it and each frame's points are solved
    with a soft prior on them (:mod:`keypointer.multiview.limbs`), ``limb_noise`` (pixels,
    the 2D points' error) setting its weight.

    Returns:
        {animal name: its 3D poses} (one animal: ``animal0``).
    """
    console = console or Console()
    predictions = [Path(p) for p in predictions]
    inputs = [Path(calibration), *predictions, *([Path(limbs)] if limbs else [])]
    check_options(inputs, smooth, min_score, fps, animals)
    if limb_noise is not None and not limb_noise > 0:
        raise ConfigError(f"--limb-noise must be positive, got {limb_noise}")
    out = Path(out)
    # the files to write are known once the inputs say how many animals: here only that
    # ``out`` can be written (not an input, not a folder), the rest below, before any work
    check_target(out, inputs=inputs, overwrite=True, example="points3d.csv")
    group = read_calibration(calibration)
    cameras = match_cameras(predictions, group.names, split_names(names))
    video_files = camera_videos(videos, cameras, group.names)
    for path in video_files:
        if not path.is_file():
            raise DataError("no such file", path)
    poses = [read_poses_2d(p) for p in predictions]
    keypoints = poses[0].keypoints
    points, scores = stack_cameras(poses, predictions, keypoints)
    prior = reference_limbs(Path(limbs), keypoints) if limbs else None
    n_animals = animals or max(p.shape[1] for p in points)
    targets = output_files(out, n_animals, h5)
    drawings = list(pictures_paths(out)) if pictures else []
    drawings += [reprojection_path(out, c) for c in cameras] if video_files else []
    for path in [*targets.values(), *drawings]:
        check_target(
            path, inputs=[*inputs, *video_files], overwrite=overwrite, example="points3d.csv"
        )
    subgroup = CameraGroup([group[group.names.index(c)] for c in cameras], dict(group.metadata))

    tris, view_scores, observed = triangulate_animals(
        subgroup, points, scores, n_animals, min_score, prior, limb_noise
    )
    poses_3d = animal_poses(tris, view_scores, keypoints, smooth, fps)
    write_outputs(out, targets, poses_3d)
    if pictures:
        draw_pictures(out, poses_3d, tris, subgroup)
    if video_files:
        draw_videos(out, video_files, subgroup, cameras, observed, poses_3d, tris, quiet)
    for camera, path in zip(cameras, predictions, strict=True):
        console.print(f"camera {escape(camera)}: {escape(str(path))}", soft_wrap=True)
    if prior is not None:
        pairs = ", ".join(f"{keypoints[a]}-{keypoints[b]}" for a, b in prior.edges)
        console.print(
            f"limb prior: {len(prior.edges)} pairs from {escape(str(limbs))} ({escape(pairs)})",
            soft_wrap=True,
        )
    for name, tri in zip(poses_3d, tris, strict=True):
        title = f"{name}: " if len(poses_3d) > 1 else ""
        print_report(poses_3d[name], tri, len(cameras), smooth, console, title)
    unique = sorted({u for p in poses for u in p.unique})
    if unique:
        console.print(f"left out DeepLabCut's unique body parts (no animal's): {', '.join(unique)}")
    for name, path in targets.items():
        what = {"h5": f"{len(poses_3d)} animals, "}.get(name, f"{name}, " if n_animals > 1 else "")
        console.print(
            f"wrote {escape(str(path))} ({what}{len(tris[0].points)} frames, "
            f"{len(keypoints)} keypoints)",
            soft_wrap=True,
        )
    for path in drawings:
        console.print(f"wrote {escape(str(path))}", soft_wrap=True)
    return poses_3d


def check_options(
    inputs: Sequence[Path],
    smooth: str | None,
    min_score: float,
    fps: float,
    animals: int | None,
) -> None:
    """ConfigError for a bad option, DataError for a missing file (``inputs``: the
    calibration, then the 2D files)."""
    if smooth is not None and smooth not in METHODS:
        raise ConfigError(f"--smooth must be one of {', '.join(METHODS)}, not {smooth!r}")
    if not 0 <= min_score <= 1:
        raise ConfigError(f"--min-score must be in [0, 1], got {min_score}")
    if not fps > 0:
        raise ConfigError(f"--fps must be positive, got {fps}")
    if animals is not None and animals < 1:
        raise ConfigError(f"--animals must be 1 or more, got {animals}")
    if len(inputs) < 3:
        raise ConfigError(f"triangulating needs 2 cameras' files or more, got {len(inputs) - 1}")
    for path in inputs:
        if not path.is_file():
            raise DataError("no such file", path)


def output_files(out: Path, animals: int, h5: bool) -> dict[str, Path]:
    """{animal name or "h5": path}: one animal's pose_3d CSV is ``out``; several animals'
    are ``<out stem>_animal<i>.csv`` (the layout has no individuals); the h5 holds all."""
    if animals == 1:
        files = {"animal0": out}
    else:
        files = {f"animal{a}": out.with_name(f"{out.stem}_animal{a}.csv") for a in range(animals)}
    if h5:
        files["h5"] = out.with_suffix(".h5")
    return files


def triangulate_animals(
    group: CameraGroup,
    points: Sequence[np.ndarray],
    scores: Sequence[np.ndarray],
    animals: int,
    min_score: float,
    limbs: Limbs | None = None,
    limb_noise: float | None = None,
) -> tuple[list[Triangulation], list[np.ndarray], np.ndarray]:
    """Each animal's triangulation, its views' (C, F, K) scores and the 2D points it was
    made from.

    Args:
        group: the C cameras.
        points: per camera (F, I_c, K, 2) pixels.
        scores: per camera (F, I_c, K).
        animals: A, the most animals in a frame.
        min_score: 2D points under this are left out.
        limbs: limb lengths each animal's points are solved with (None: none).
        limb_noise: the 2D points' error (px) that weighs the limbs; None: estimated.

    Returns:
        A triangulations of (F, K) points, the same animal in every frame, A (C, F, K)
        scores of the views each animal was made from, and the (C, F, A, K, 2) 2D points
        (pixels) of each camera's view of each animal.
    """
    n_cams, n_frames = len(points), len(points[0])
    if animals == 1 and all(p.shape[1] == 1 for p in points):
        views = np.zeros((n_cams, n_frames, 1), dtype=np.int64)  # one animal: nothing to match
    else:
        views = match_views(group, points, scores, animals, min_score=min_score)
    xy, sc = gather(points, scores, views)  # (C, F, A, K, 2), (C, F, A, K)
    n_kp = xy.shape[3]
    flat = triangulate(
        group,
        xy.reshape(n_cams, -1, n_kp, 2),
        sc.reshape(n_cams, -1, n_kp),
        score_threshold=min_score,
        limbs=limbs,
        limb_noise=limb_noise,
    )
    shape = (n_frames, animals, n_kp)
    tri = Triangulation(
        points=flat.points.reshape(*shape, 3),
        error=flat.error.reshape(shape),
        views=flat.views.reshape(shape),
        used=flat.used.reshape(n_cams, *shape),
    )
    if animals > 1:
        order = track_animals(tri.points)
        tri = Triangulation(
            points=reorder(tri.points, order),
            error=reorder(tri.error, order),
            views=reorder(tri.views, order),
            used=reorder(tri.used, order, cameras=True),
        )
        sc = reorder(sc, order, cameras=True)
        xy = reorder(xy, order, cameras=True)
    per_animal = [
        Triangulation(
            points=tri.points[:, a],
            error=tri.error[:, a],
            views=tri.views[:, a],
            used=tri.used[:, :, a],
        )
        for a in range(animals)
    ]
    return per_animal, [sc[:, :, a] for a in range(animals)], xy


def animal_poses(
    tris: Sequence[Triangulation],
    view_scores: Sequence[np.ndarray],
    keypoints: Sequence[str],
    smooth: str | None,
    fps: float,
) -> dict[str, Poses3D]:
    """{``animal<i>``: its :class:`Poses3D`}, smoothed in 3D with ``smooth`` (a method of
    :mod:`keypointer.temporal.smooth`, or None)."""
    poses = {}
    for a, (tri, scores) in enumerate(zip(tris, view_scores, strict=True)):
        score = least_used_score(scores, tri)
        points = tri.points
        if smooth is not None:
            points = smooth_points(points, score, np.arange(len(points)) / fps, smooth)
        poses[f"animal{a}"] = Poses3D(list(keypoints), points, tri.error, tri.views, score)
    return poses


def write_outputs(out: Path, targets: dict[str, Path], poses: dict[str, Poses3D]) -> None:
    """Every file of ``targets``; on failure none is left (nor the folders made for them)."""
    created = make_output_dir(out.parent)
    written: list[Path] = []
    try:
        for name, path in targets.items():
            if name == "h5":
                write_pose3d_h5(path, poses)
            else:
                write_pose3d_csv(path, poses[name])
            written.append(path)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        remove_created(created)
        raise


def reference_limbs(path: Path, keypoints: Sequence[str]) -> Limbs:
    """The limb lengths a pose_3d CSV of reference poses shows, for ``keypoints`` (matched by
    name). DataError naming the file when fewer than 2 keypoints are shared or no limb is
    seen in enough frames."""
    reference = read_pose3d_csv(path)
    shared = [k for k in keypoints if k in reference.keypoints]
    if len(shared) < 2:
        raise DataError(
            f"shares {len(shared)} keypoint names with the 2D files; a limb needs 2", path
        )
    points = np.full((len(reference.points), len(keypoints), 3), np.nan)
    for k in shared:
        points[:, keypoints.index(k)] = reference.points[:, reference.keypoints.index(k)]
    limbs = learn_limbs(points)
    if not len(limbs.edges):
        raise DataError(
            f"no two keypoints keep their distance in enough of its {len(points)} frames to "
            "learn a limb from",
            path,
        )
    return limbs


def draw_pictures(
    out: Path, poses: dict[str, Poses3D], tris: Sequence[Triangulation], group: CameraGroup
) -> None:
    """``<out stem>.3d.png`` and ``<out stem>.quality.png`` (:func:`pictures_paths`)."""
    names = list(poses) if len(poses) > 1 else None
    points = np.stack([p.points for p in poses.values()], axis=1)  # (F, A, K, 3)
    error = np.stack([t.error for t in tris], axis=1)  # (F, A, K)
    views = np.stack([t.views for t in tris], axis=1)
    keypoints = next(iter(poses.values())).keypoints
    three_d, quality = pictures_paths(out)
    save_png(poses_figure(points, group, animals=names), three_d)
    save_png(quality_figure(error, views, keypoints, animals=names, cameras=len(group)), quality)


def draw_videos(
    out: Path,
    videos: Sequence[Path],
    group: CameraGroup,
    cameras: Sequence[str],
    observed: np.ndarray,
    poses: dict[str, Poses3D],
    tris: Sequence[Triangulation],
    quiet: bool,
) -> None:
    """Each camera's ``<out stem>.<camera>.reprojection.mp4``: its video, its (F, A, K, 2)
    slice of ``observed`` and the 3D points (smoothed, if they were) reprojected."""
    points = np.stack([p.points for p in poses.values()], axis=1)  # (F, A, K, 3)
    used = np.stack([t.used for t in tris], axis=2)  # (C, F, A, K)
    outs = [reprojection_path(out, c) for c in cameras]
    with progress(len(cameras) * len(points), quiet, "drawing reprojections") as advance:
        write_reprojection_videos(
            videos, outs, group, observed, points, used=used, progress=advance
        )


def camera_videos(
    videos: Sequence[Path] | None, cameras: Sequence[str], names: Sequence[str]
) -> list[Path]:
    """The video of each of ``cameras`` (the 2D files' cameras, in order): ``videos`` in
    that order (``A.mp4,B.mp4`` or repeated), or the videos of the one folder given, each
    matched to its camera by name (:func:`match_cameras`)."""
    files = [Path(v) for v in split_names([str(v) for v in videos or ()])]
    if len(files) == 1 and files[0].is_dir():
        folder = files[0]
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTS)
        by_camera = {}
        for path in found:
            matches = [c for c in names if c in name_words(path)]
            if len(matches) == 1:
                by_camera.setdefault(matches[0], []).append(path)
        missing = [c for c in cameras if len(by_camera.get(c, ())) != 1]
        if missing:
            raise ConfigError(
                f"--videos {folder}: no single video names camera {', '.join(missing)}: "
                "give one video per camera, in the 2D files' order"
            )
        return [by_camera[c][0] for c in cameras]
    if files and len(files) != len(cameras):
        raise ConfigError(f"--videos gives {len(files)} videos for {len(cameras)} 2D files")
    return files


def name_words(path: Path) -> set[str]:
    """The words of a file's name that may name its camera: the whole stem, the part before
    ``DLC``, each word, each word without a leading ``cam``/``camera``."""
    stem = path.stem
    words = {stem, stem.split("DLC")[0].rstrip("_-. ")}
    for word in re.split(r"[^A-Za-z0-9]+", stem):
        words |= {word, re.sub(r"^cam(era)?", "", word, flags=re.IGNORECASE)}
    return words


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
            matches = [c for c in cameras if c in name_words(path)]
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
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per camera (F, I_c, K, 2) points and (F, I_c, K) scores, keypoints in ``keypoints``'
    order, row f frame f (F: the last frame any file has, + 1)."""
    n_frames = max((int(p.frames.max()) + 1 if len(p.frames) else 0) for p in poses)
    points, scores = [], []
    for pose, path in zip(poses, files, strict=True):
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
        n_inst = pose.points.shape[1]
        xy = np.full((n_frames, n_inst, len(keypoints), 2), np.nan)
        sc = np.zeros((n_frames, n_inst, len(keypoints)))
        xy[pose.frames] = pose.points[:, :, order]
        sc[pose.frames] = pose.scores[:, :, order]
        points.append(xy)
        scores.append(sc)
    return points, scores


def least_used_score(scores: np.ndarray, tri: Triangulation) -> np.ndarray:
    """(F, K) the least 2D score of the views each point used (Anipose's ``_score``); NaN
    where no point."""
    used = np.where(tri.used, scores, np.inf).min(axis=0)
    return np.where(tri.views >= 2, used, np.nan)


def print_report(
    poses: Poses3D,
    tri: Triangulation,
    n_cams: int,
    smooth: str | None,
    console: Console,
    title: str = "",
) -> None:
    """Per keypoint: frames triangulated, median reprojection error and mean views used."""
    table = Table(title=f"{title}{len(poses.points)} frames from {n_cams} cameras")
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
            f"{title}all keypoints: median reprojection error {np.median(tri.error[ok]):.2f} px, "
            f"{tri.views[ok].mean():.2f} views per point"
            + (f"; smoothed in 3D ({smooth})" if smooth else "")
        )
