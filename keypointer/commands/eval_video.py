"""``keypointer eval`` on a video with known identities: keypoint accuracy, jitter, ID switches.

The data is a ``truth.json`` as ``keypointer synth --video`` writes it (or the folder holding
it and its ``video.mp4``). The video is predicted as ``keypointer predict`` does (streamed,
batched, tracks and optional smoothing at the end), then scored by
:func:`keypointer.metrics.video.score_tracks`: pixel error, PCK and OKS AP of the raw (and
smoothed) tracks, jitter, and MOT counts of the tracker's identities next to those of the
nearest-centroid baseline re-tracking the very same per-frame instances. The plots are
:mod:`keypointer.viz`'s; this module checks the arguments, runs the steps and prints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from keypointer.commands.eval import cell, default_eval_dir
from keypointer.commands.progress import counted
from keypointer.commands.video_options import video_post_process
from keypointer.data.synthetic_truth import FORMAT, VideoTruth, load_truth
from keypointer.device import resolve_device
from keypointer.errors import DataError
from keypointer.files import write_text_atomic
from keypointer.inference.pipeline import Pipeline, load_pipeline
from keypointer.inference.sources import Frame, Source, iter_frames
from keypointer.inference.tracks import PostProcess, VideoTable, finish
from keypointer.inference.video import video_header
from keypointer.metrics.video import Metrics, VideoCurves, score_tracks
from keypointer.output_paths import output_dir_for
from keypointer.viz import plot_video_eval, save_gallery, switch_tile

TRUTH = "truth.json"
EVAL_JSON = "eval.json"
PLOT = "error_over_time.png"
SWITCHES = "switches.png"
MAX_SWITCH_TILES = 8
TILE_SIDE = 320  # px: smaller frames are enlarged by a whole factor in switches.png


def is_video_truth(path: str | Path) -> bool:
    """Whether ``path`` names a video truth: a folder with a ``truth.json`` or ``video.mp4``,
    a path named ``truth.json``, or a JSON file whose start declares the truth format (read
    only its first 4 KB: label files can be large)."""
    path = Path(path)
    if path.is_dir():
        return (path / TRUTH).exists() or (path / "video.mp4").exists()
    if path.name == TRUTH:
        return True
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    with open(path, "rb") as f:
        return FORMAT.encode() in f.read(4096)


def truth_files(path: str | Path) -> tuple[Path, Path]:
    """(truth.json, the video it names) of a truth path; DataError when either is missing."""
    path = Path(path)
    truth = path / TRUTH if path.is_dir() else path
    if not truth.is_file():
        raise DataError("no truth file here (keypointer synth --video writes one)", truth)
    try:
        name = json.loads(truth.read_text(encoding="utf-8")).get("video", "video.mp4")
    except (OSError, ValueError, AttributeError) as err:
        raise DataError(f"cannot read the truth file: {err}", truth) from None
    video = truth.parent / str(name)
    if not video.is_file():
        raise DataError(f"the video {name!r} that the truth file names is missing", video)
    return truth, video


def read_truth(truth_file: Path) -> VideoTruth:
    """The truth file's records in frame order.

    Records may come in any order (they are sorted by frame; a frame's instances may also be
    split over several records). Raises one :class:`DataError` naming the truth file and the
    record (frame, track) for a track listed twice in one frame, or a frame before 0. Frames
    past the video's end are refused as it is read (:func:`video_predictions`): the count in a
    video's header can be an estimate. Such records could never be predicted, and would
    count as misses.
    """
    truth = load_truth(truth_file)  # refuses a track listed twice for one frame
    truth = _in_frame_order(truth)
    if len(truth.frames) and truth.frames[0] < 0:
        raise DataError(
            "frames are numbered from 0, as the video's are", truth_file, _record(truth, 0)
        )
    return truth


def _record(truth: VideoTruth, row: int) -> str:
    """'frame N, track NAME' of a truth row (its first track present)."""
    present = [m for m in range(len(truth.tracks)) if _present(truth, row)[m]]
    track = f", track {truth.tracks[present[0]]!r}" if present else ""
    return f"frame {int(truth.frames[row])}{track}"


def _present(truth: VideoTruth, row: int) -> np.ndarray:
    """(M,) whether each track has a record in truth row ``row`` (a box or a labelled point)."""
    boxes, keypoints = truth.boxes[row], truth.keypoints[row]
    return np.isfinite(boxes).any(-1) | (keypoints[..., 2] > 0).any(-1)


def _in_frame_order(truth: VideoTruth) -> VideoTruth:
    """``truth`` with its rows sorted by frame, rows of one frame merged (their tracks are
    distinct: :func:`~keypointer.data.synthetic_truth.load_truth` checks)."""
    order = np.argsort(truth.frames, kind="stable")
    numbers, first = np.unique(truth.frames[order], return_index=True)
    if len(numbers) == len(order) and (order == np.arange(len(order))).all():
        return truth
    rows = order[first]
    keypoints, boxes = truth.keypoints[rows].copy(), truth.boxes[rows].copy()
    fast = truth.fast[rows].copy()
    for i in order:
        target = int(np.searchsorted(numbers, truth.frames[i]))
        if rows[target] == i:
            continue
        present = _present(truth, int(i))
        keypoints[target, present] = truth.keypoints[i, present]
        boxes[target, present] = truth.boxes[i, present]
        fast[target, present] = truth.fast[i, present]
    return dataclasses.replace(
        truth, frames=numbers, times=truth.times[rows], keypoints=keypoints, boxes=boxes, fast=fast
    )


def eval_video_command(
    model: str | Path,
    truth_path: str | Path,
    out: str | Path | None = None,
    flip: bool = False,
    smooth: str | None = None,
    max_instances: int | None = None,
    device: str = "auto",
    quiet: bool = False,
    *,
    alpha: float = 0.05,
    batch_size: int = 16,
    overwrite: bool = False,
) -> Metrics:
    """Predict the truth's video with ``model`` (checkpoint, run folder or .onnx) and score it.

    ``smooth``: None or a method of :data:`keypointer.temporal.smooth.METHODS` (then the
    smoothed tracks are scored too); ``max_instances``: the tracker's known number of animals.
    Writes ``eval.json`` (atomically; what this returns), ``error_over_time.png`` and, when
    the tracker switched identities, ``switches.png`` to ``out`` (default
    :func:`~keypointer.commands.eval.default_eval_dir`, numbered on: an earlier evaluation's
    files are replaced only with ``overwrite``); prints tables.
    """
    post = video_post_process(smooth, max_instances=max_instances)
    truth_file, video = truth_files(truth_path)
    out_dir = output_dir_for(  # before the work, not after it
        (EVAL_JSON, PLOT, SWITCHES),
        out,
        default=default_eval_dir(model, truth_file.parent),
        inputs=(model, truth_file.parent, truth_file, video),
        overwrite=overwrite,
    )
    truth = read_truth(truth_file)
    pipe = load_pipeline(
        model, resolve_device(device), flip=flip, batch_size=batch_size, max_instances=max_instances
    )
    if tuple(pipe.skeleton.names) != tuple(truth.names):
        raise DataError(
            f"its keypoints {list(truth.names)} differ from the model's "
            f"{list(pipe.skeleton.names)}",
            truth_file,
        )
    began = time.perf_counter()
    table = video_predictions(video, truth, pipe, quiet, truth_file)
    seconds = time.perf_counter() - began
    scores, curves = score_video(truth, table, post, alpha)
    run: Metrics = {"checkpoint": str(model), "truth": str(truth_file), "video": str(video)}
    run.update(flip=flip, smooth=smooth, max_instances=max_instances)
    speed = {"seconds": seconds, "frames_per_second": len(table) / max(seconds, 1e-9)}
    metrics: Metrics = {**run, **scores, **speed}
    write_video_eval(out_dir, metrics, curves, truth, video)
    if not quiet:
        print_video_tables(metrics, out_dir)
    return metrics


def write_video_eval(
    out: Path, metrics: Metrics, curves: VideoCurves, truth: VideoTruth, video: Path
) -> None:
    """``eval.json`` (atomically), the plot over time and, after ID switches, their frames."""
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / EVAL_JSON, json.dumps(metrics, indent=2))
    tracking = metrics["tracking"]  # method -> its MOT metrics
    title = f"{video.name}: error of the paired prediction"
    plot_video_eval(curves, truth, tracking, title, out / PLOT)
    switches = tracking["tracker"]["switch_frames"]
    if switches:
        switch_gallery(video, truth, curves.points, switches, out / SWITCHES)
    else:  # an earlier evaluation's (replaced with --overwrite) would tell of switches
        (out / SWITCHES).unlink(missing_ok=True)


def video_predictions(
    video: Path, truth: VideoTruth, pipe: Pipeline, quiet: bool, truth_file: Path | None = None
) -> VideoTable:
    """Every frame of ``video`` through ``pipe`` (as ``predict`` runs it), kept as small
    arrays per frame; DataError naming ``truth_file`` (``truth``'s) when the truth goes on
    past the video's end."""
    frames = _checked_frames(video, truth, truth_file or video)
    table = VideoTable(video, truth.fps)
    stream = pipe.run(frames)
    with contextlib.closing(stream):
        for pred in counted(stream, len(truth.frames), quiet):
            table.add(pred)
    return table


def _checked_frames(video: Path, truth: VideoTruth, truth_file: Path) -> Iterator[Frame]:
    """The video's frames; DataError when one does not fit the truth (size, frame count), and,
    after the last, when the truth goes on past the video's end."""
    known = {int(n) for n in truth.frames}
    last = -1
    for frame in iter_frames([Source(video, "video")]):
        h, w = frame.image.shape[:2]
        if (w, h) != tuple(truth.size):
            raise DataError(
                f"its frames are {w}x{h} px, the truth's {truth.size[0]}x{truth.size[1]}", video
            )
        if frame.number not in known:
            raise DataError(f"frame {frame.number} is not in the truth file", video)
        last = frame.number
        yield frame
    # The video's end: past its last frame read, and past the frames its header declares
    # (those between are a damaged tail: counted as frames without predictions).
    end = max(last + 1, video_header(video).frames)
    if len(truth.frames) and truth.frames[-1] >= end:
        row = int(np.searchsorted(truth.frames, end))
        raise DataError(
            f"frame {truth.frames[row]} is past the end of {video.name}, which has {end} "
            f"frames (0 to {end - 1}); {len(truth.frames) - row} frame(s) of the truth file "
            "are past it",
            truth_file,
            _record(truth, row),
        )


def score_video(
    truth: VideoTruth, table: VideoTable, post: PostProcess, alpha: float = 0.05
) -> tuple[Metrics, VideoCurves]:
    """Finish ``table`` (tracks, smoothing) as predict does and score it against ``truth``
    (:func:`keypointer.metrics.video.score_tracks`: the metrics, JSON-ready, and the curves
    the plots need). Frames the video could not give count as frames without predictions;
    a frame the truth lacks is a DataError."""
    tracks = finish(table, post)
    rows = np.searchsorted(truth.frames, tracks.numbers)
    known = rows < len(truth.frames)
    if not (known.all() and np.array_equal(truth.frames[rows], tracks.numbers)):
        bad = (
            tracks.numbers[~known]
            if not known.all()
            else np.setdiff1d(tracks.numbers, truth.frames)
        )
        raise DataError(f"frame {int(bad[0])} is not in the truth file", table.source)
    return score_tracks(truth, tracks, table, alpha=alpha, max_instances=post.max_instances)


def switch_gallery(
    video: Path, truth: VideoTruth, points: np.ndarray, switches: Sequence[int], path: Path
) -> Path | None:
    """The frames where the tracker switched identities (up to MAX_SWITCH_TILES), drawn by
    :func:`keypointer.viz.switch_tile` (``points``: the tracker's (T, N, K, 2) tracks on the
    truth's frames). Reads the video once more, up to the last of them."""
    wanted = sorted(set(switches))[:MAX_SWITCH_TILES]
    tiles = []
    frames = iter_frames([Source(video, "video")], warn=False)
    with contextlib.closing(frames):
        for frame in frames:
            if frame.number > wanted[-1]:
                break
            if frame.number not in wanted:
                continue
            row = int(np.searchsorted(truth.frames, frame.number))
            tiles.append(
                switch_tile(
                    frame.image,
                    truth=truth.keypoints[row],
                    tracks=points[row],
                    skeleton=truth.skeleton,
                    label=f"frame {frame.number}",
                    side=TILE_SIDE,
                )
            )
    return save_gallery(tiles, path) if tiles else None


def print_video_tables(metrics: Metrics, out: Path) -> None:
    """Keypoint accuracy (raw, smoothed) and identities (tracker, nearest centroid)."""
    scored = metrics["pose"]
    columns = [("raw", scored["raw"])]
    if scored["smoothed"] is not None:
        columns += [(f"{metrics['smooth']}-smoothed", scored["smoothed"])]
    m = len(metrics["truth_tracks"])
    name = Path(metrics["video"])
    title = f"{name.parent.name}/{name.name}: {metrics['num_frames']} frames, {m} track"
    pose = Table(title=title + ("s" if m != 1 else ""))
    for col in ("keypoints", *(c for c, _ in columns)):
        pose.add_column(col, justify="left" if col == "keypoints" else "right")
    rows = [
        ("mean error px", "mean_px", 2),
        ("median error px", "median_px", 2),
        ("RMSE px", "rmse_px", 2),
        (f"PCK@{metrics['alpha']:g} (box)", "pck", 3),
        ("mean error px, visible", "mean_px_visible", 2),
        ("mean error px, hidden", "mean_px_hidden", 2),
        ("mean error px, fast", "mean_px_fast", 2),
        ("jitter px/frame", "jitter_px", 3),
        ("excess motion px/frame", "excess_motion_px", 3),
        ("keypoints scored", "num_keypoints", 0),
        ("missing keypoints", "missing_keypoints", 0),
        ("missed instances", "missed_instances", 0),
        ("extra instances", "extra_instances", 0),
    ]
    for label, key, digits in rows:
        pose.add_row(label, *(cell(d.get(key), digits) for _, d in columns))
    for stat in ("AP", "AR"):
        pose.add_row(f"OKS {stat}", *(cell(d.get("oks", {}).get(stat)) for _, d in columns))
    if scored["common_points"] is not None:  # smoothing can leave points out, or fill gaps
        both = scored["common_points"]
        common_rows = (("mean error px", "mean_px", 2), ("jitter px/frame", "jitter_px", 3))
        for label, key, digits in common_rows:
            pose.add_row(f"{label}, points both have", *(cell(both[c][key], digits) for c in both))
    ids = Table(title="identities (OKS >= 0.5)")
    for col in ("tracks", "tracker", "nearest centroid"):
        ids.add_column(col, justify="left" if col == "tracks" else "right")
    a, b = metrics["tracking"]["tracker"], metrics["tracking"]["nearest_centroid"]
    for label, key, digits in (
        ("MOTA", "mota", 3),
        ("IDF1", "idf1", 3),
        ("ID switches", "num_switches", 0),
        ("ID switches / 1000 frames", "switches_per_1000_frames", 1),
        ("fragmentations", "num_fragmentations", 0),
        ("misses", "num_misses", 0),
        ("false positives", "num_false_positives", 0),
    ):
        ids.add_row(label, cell(a[key], digits), cell(b[key], digits))
    console = Console()
    console.print(pose)
    console.print(ids)
    console.print(
        f"wrote {out}/ (eval.json, {PLOT}" + (f", {SWITCHES})" if a["switch_frames"] else ")")
    )
