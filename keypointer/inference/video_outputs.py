"""The files one video's predictions go to, next to ``predictions.json``:

- ``<video>.csv``: DeepLabCut's layout (header rows scorer, [individuals,] bodyparts, coords;
  one row per frame, the frame number first; x, y, likelihood), so DeepLabCut and ``movement``
  (``movement.io.load_poses.from_dlc_file``) read it. It holds the final values: smoothed when
  smoothing ran. Several tracks: an ``individuals`` row names them. Row i is frame i, from 0 to
  the last predicted frame (empty where a frame has no prediction), as DeepLabCut writes it.
- ``<video>.h5`` (``--h5``; needs the ``h5`` extra: pandas and tables): the same table as
  DeepLabCut writes it (key ``df_with_missing``).
- ``<video>.frames.csv``: one row per frame and track, with everything: frame, time in seconds,
  track, and per keypoint x, y, score, the raw x and y when smoothed, and the outlier flags.
- ``drawn/<video>.mp4``: the drawn video (a second pass over the video, after tracking and
  smoothing): one colour per track, flagged points ringed; ``drawn/<video>.avi`` (Motion
  JPEG) when the video's width or height is odd, so it keeps the input's size.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from keypointer.files import atomic_path, write_h5_table
from keypointer.inference.sources import Frame
from keypointer.inference.tracks import FLAGS, VideoTracks
from keypointer.inference.video import DrawnVideo, VideoWriteError
from keypointer.skeleton import Skeleton
from keypointer.viz import draw_keypoints, ring_points, track_colors

log = logging.getLogger("keypointer")


def _cell(v: float) -> str:
    return f"{v:.4f}" if np.isfinite(v) else ""


def write_dlc_video_csv(path: Path, tracks: VideoTracks, skeleton: Skeleton, scorer: str) -> Path:
    """``tracks.final`` and scores in DeepLabCut's CSV layout (see the module doc)."""
    cols = _dlc_columns(tracks, skeleton, scorer)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        for level, name in enumerate(["scorer", "individuals", "bodyparts", "coords"]):
            if name == "individuals" and not tracks.multi:
                continue
            writer.writerow([name] + [c[level] for c in cols])
        for number, row in enumerate(_every_frame(tracks)):
            # pandas (so DeepLabCut and movement) takes an all-empty row right under a
            # multi-row header for the index names and drops it: such rows spell out NaN.
            cells = [_cell(v) for v in row] if np.isfinite(row).any() else ["NaN"] * len(row)
            writer.writerow([number] + cells)
    return path


def _every_frame(tracks: VideoTracks) -> np.ndarray:
    """(frames, N * K * 3) x, y, likelihood for every frame number from 0 to the last predicted
    one, NaN where none was predicted (unreadable frames, --start, --every): readers such as
    ``movement`` take row i as frame i and ignore the index column."""
    values = np.concatenate([tracks.final, tracks.scores[..., None]], axis=-1)
    values = values.reshape(len(values), -1)
    n = int(tracks.numbers.max()) + 1 if len(tracks.numbers) else 0
    full = np.full((n, values.shape[1]), np.nan)
    full[tracks.numbers.astype(int)] = values
    return full


def _dlc_columns(
    tracks: VideoTracks, skeleton: Skeleton, scorer: str
) -> list[tuple[str, str, str, str]]:
    return [
        (scorer, t, name, c)
        for t in tracks.tracks
        for name in skeleton.names
        for c in ("x", "y", "likelihood")
    ]


def write_dlc_video_h5(path: Path, tracks: VideoTracks, skeleton: Skeleton, scorer: str) -> Path:
    """The DeepLabCut ``.h5`` of :func:`write_dlc_video_csv` (pandas + tables: the h5 extra)."""
    cols = _dlc_columns(tracks, skeleton, scorer)
    levels = ["scorer", "individuals", "bodyparts", "coords"]
    if not tracks.multi:
        cols, levels = [(c[0], c[2], c[3]) for c in cols], ["scorer", "bodyparts", "coords"]
    return write_h5_table(path, _every_frame(tracks), cols, levels)


def write_frames_csv(path: Path, tracks: VideoTracks, skeleton: Skeleton) -> Path:
    """One row per frame and track present in it: frame, time_s, track, then per keypoint
    ``<name>_x``, ``_y``, ``_score``, (``_x_raw``, ``_y_raw`` when smoothed,) the flags as
    0/1 and (with flip TTA) ``_flip_gap`` in px."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["frame", "time_s", "track"] + _frame_columns(tracks, skeleton))
        for f_i, number in enumerate(tracks.numbers):
            for t_i, name in enumerate(tracks.tracks):
                if not np.isfinite(tracks.raw[f_i, t_i]).any():
                    continue  # this track is not in this frame
                cells = [int(number), f"{tracks.times[f_i]:.6f}", name]
                writer.writerow(cells + _frame_cells(tracks, f_i, t_i))
    return path


def _frame_columns(tracks: VideoTracks, skeleton: Skeleton) -> list[str]:
    parts = ["x", "y", "score"] + (["x_raw", "y_raw"] if tracks.smoothed else []) + list(FLAGS)
    parts += ["flip_gap"] if tracks.flip_gap is not None else []
    return [f"{name}_{p}" for name in skeleton.names for p in parts]


def _frame_cells(tracks: VideoTracks, f: int, t: int) -> list[str]:
    cells: list[str] = []
    for j in range(tracks.raw.shape[2]):
        cells += [_cell(tracks.final[f, t, j, 0]), _cell(tracks.final[f, t, j, 1])]
        cells.append(_cell(tracks.scores[f, t, j]))
        if tracks.smoothed:
            cells += [_cell(tracks.raw[f, t, j, 0]), _cell(tracks.raw[f, t, j, 1])]
        cells += [str(int(tracks.flags[name][f, t, j])) for name in FLAGS]
        if tracks.flip_gap is not None:
            cells.append(_cell(tracks.flip_gap[f, t, j]))
    return cells


def json_results(tracks: VideoTracks, image_ids: Iterable[int]) -> Iterator[dict]:
    """COCO-style results of every instance of every frame (``image_id`` from ``image_ids``,
    one per frame), with ``frame``, ``time``, ``track``, per-keypoint ``flags`` and, when
    smoothed, ``keypoints_raw``; no null (see :func:`coco_triplets`)."""
    for f, image_id in zip(range(len(tracks.numbers)), image_ids, strict=False):
        for t, name in enumerate(tracks.tracks):
            if not np.isfinite(tracks.raw[f, t]).any():
                continue
            entry = {
                "image_id": image_id,
                "category_id": 1,
                "keypoints": coco_triplets(tracks.final[f, t], tracks.scores[f, t]),
                "score": round(float(np.nan_to_num(tracks.instance_scores[f, t])), 6),
                "frame": int(tracks.numbers[f]),
                "time": round(float(tracks.times[f]), 6),
                "track": name,
                "flags": {n: tracks.flags[n][f, t].astype(int).tolist() for n in FLAGS},
            }
            if tracks.smoothed:
                entry["keypoints_raw"] = coco_triplets(tracks.raw[f, t], tracks.scores[f, t])
            yield entry


def coco_triplets(kp: np.ndarray, scores: np.ndarray) -> list[float]:
    """COCO's flat [x, y, score] * K for keypoints (K, 2) and scores (K,). A point without a
    value (NaN: a gap smoothing did not fill) is x = y = score = 0, COCO's own convention for
    a missing point: pycocotools' ``loadRes`` fails on null, and OKS ignores score 0 here."""
    kp, scores = np.asarray(kp, np.float64), np.asarray(scores, np.float64)
    missing = ~np.isfinite(kp).all(axis=1) | ~np.isfinite(scores)
    flat = np.concatenate([kp, scores[:, None]], axis=1)
    flat[missing] = 0.0
    return [round(float(v), 4) for v in flat.reshape(-1)]


def draw_video(
    path: Path,
    frames: Iterable[Frame],
    tracks: VideoTracks,
    skeleton: Skeleton,
    threshold: float,
) -> Path | None:
    """Write the drawn video from ``frames`` (a second read of the video): the final keypoints
    of each track in the track's colour (one colour per keypoint for a single animal), flagged
    points ringed. Returns the path, or None (with one warning) when OpenCV cannot write it."""
    rows = {int(n): i for i, n in enumerate(tracks.numbers)}
    colours = track_colors(len(tracks.tracks)) if tracks.multi else [None]
    # With --every N the drawn video holds every Nth frame at fps / N; a frame the input
    # lacked (damage) stays a black frame, so the drawn video keeps the input's timing.
    step = int(np.median(np.diff(tracks.numbers))) if len(tracks.numbers) > 1 else 1
    first, video = int(tracks.numbers[0]) if len(tracks.numbers) else 0, None
    try:
        for frame in frames:
            row = rows.get(int(frame.number))
            if row is None:
                continue  # --every/--start/--stop: frames without predictions are not drawn
            image = _draw_frame(frame.image, tracks, row, skeleton, threshold, colours)
            if video is None:
                size = (image.shape[1], image.shape[0])
                video = DrawnVideo(path, tracks.fps / max(step, 1), size)
            video.write((int(frame.number) - first) // max(step, 1), image)
    except VideoWriteError as err:
        log.warning("%s: drawn video not written (%s); the predictions still are", path, err)
        return None
    except BaseException:
        if video is not None:
            video.abort()
        raise
    return video.close() if video is not None else None


def _draw_frame(
    image: np.ndarray,
    tracks: VideoTracks,
    row: int,
    skeleton: Skeleton,
    threshold: float,
    colours: list[tuple[int, int, int]] | list[None],
) -> np.ndarray:
    flagged = np.zeros(tracks.final.shape[1:3], bool)
    for name in FLAGS:
        flagged |= tracks.flags[name][row]
    for t, colour in enumerate(colours):
        kp, sc = tracks.final[row, t], tracks.scores[row, t]
        if np.isfinite(kp).any():
            image = draw_keypoints(image, kp, skeleton, sc, threshold, color=colour)
            image = ring_points(image, kp[flagged[t] & (sc >= threshold)])
    return image
