"""Ground truth of the synthetic video: the ``truth.json`` / ``truth.csv`` writers and the
loader. The schema is described in :mod:`keypointer.data.synthetic_video`, which re-exports
:class:`VideoTruth` and :func:`load_truth`.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keypointer.data.synthetic import EDGES, NAMES
from keypointer.errors import DataError
from keypointer.skeleton import Skeleton, guess_flip_pairs

FORMAT = "keypointer-synthetic-video"
SCORER = "synthetic"


@dataclass(frozen=True)
class VideoTruth:
    """A synthetic clip's ground truth; T frames, M tracks, K keypoints.

    ``keypoints`` (T, M, K, 3): x, y, v (2 visible, 1 hidden, 0 outside the image or track
    absent; absent tracks have x, y NaN); ``boxes`` (T, M, 4) COCO x, y, w, h (NaN where
    absent); ``fast`` (T, M); ``frames`` (T,) numbers from 0; ``times`` (T,) seconds.
    """

    frames: np.ndarray
    times: np.ndarray
    tracks: list[str]
    keypoints: np.ndarray
    boxes: np.ndarray
    fast: np.ndarray
    names: tuple[str, ...]
    skeleton: Skeleton
    fps: float
    size: tuple[int, int]  # (width, height)


def truth_json(frames: list, tracks: list[str], seed: int, size: int, fps: float) -> str:
    """The text of ``truth.json``; ``frames``: per frame (keypoints (M, K, 3), boxes (M, 4),
    fast (M,)), tracks in the order of ``tracks``."""
    records = []
    for number, (keypoints, boxes, fast) in enumerate(frames):
        instances = [
            {
                "track": track,
                "keypoints": [[float(x), float(y), int(v)] for x, y, v in keypoints[m]],
                "bbox": [round(float(b), 4) for b in boxes[m]],
                "fast": bool(fast[m]),
            }
            for m, track in enumerate(tracks)
        ]
        records.append({"frame": number, "time": number / fps, "instances": instances})
    truth = {
        "format": FORMAT,
        "version": 1,
        "video": "video.mp4",
        "fps": float(fps),
        "width": size,
        "height": size,
        "seed": seed,
        "keypoints": list(NAMES),
        "skeleton": [list(e) for e in EDGES],
        "flip_pairs": [list(p) for p in guess_flip_pairs(NAMES)],
        "tracks": tracks,
        "frames": records,
    }
    return json.dumps(truth)


def truth_csv(frames: list, tracks: list[str]) -> str:
    """The text of ``truth.csv`` (DeepLabCut's layout) for the same ``frames``."""
    multi = len(tracks) > 1
    cols = [(track, name, c) for track in tracks for name in NAMES for c in ("x", "y")]
    rows = [["scorer"] + [SCORER] * len(cols)]
    if multi:
        rows.append(["individuals"] + [c[0] for c in cols])
    rows.append(["bodyparts"] + [c[1] for c in cols])
    rows.append(["coords"] + [c[2] for c in cols])
    for number, (keypoints, _, _) in enumerate(frames):
        cells = [str(number)]
        for x, y, v in keypoints.reshape(-1, 3):
            cells += [f"{x:.4f}", f"{y:.4f}"] if v > 0 else ["", ""]
        rows.append(cells)
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue()


def load_truth(path: str | Path) -> VideoTruth:
    """Read a ``truth.json`` (or the folder holding it); raises :class:`DataError` when it is
    not one this module writes."""
    path = Path(path)
    path = path / "truth.json" if path.is_dir() else path
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read the truth file: {err}", path) from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DataError(f"not a synthetic video truth file (format is not {FORMAT!r})", path)
    try:
        names, tracks = tuple(data["keypoints"]), list(data["tracks"])
        column = {track: m for m, track in enumerate(tracks)}
        frames = data["frames"]
        t, m, k = len(frames), len(tracks), len(names)
        keypoints = np.full((t, m, k, 3), np.nan)
        keypoints[..., 2] = 0.0
        boxes, fast = np.full((t, m, 4), np.nan), np.zeros((t, m), bool)
        seen: dict[tuple[int, str], int] = {}  # (frame, track) -> its record
        for i, record in enumerate(frames):
            for inst in record["instances"]:
                _once(seen, int(record["frame"]), str(inst["track"]), i, path)
                j = column[inst["track"]]
                keypoints[i, j] = np.asarray(inst["keypoints"], dtype=float).reshape(k, 3)
                boxes[i, j] = np.asarray(inst["bbox"], dtype=float).reshape(4)
                fast[i, j] = bool(inst.get("fast", False))
        skeleton = Skeleton(names, data["skeleton"], data["flip_pairs"])
        numbers = np.array([r["frame"] for r in frames], dtype=int)
        times = np.array([r["time"] for r in frames], dtype=float)
        fps, size = float(data["fps"]), (int(data["width"]), int(data["height"]))
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"malformed truth file: {err!r}", path) from err
    return VideoTruth(numbers, times, tracks, keypoints, boxes, fast, names, skeleton, fps, size)


def _once(
    seen: dict[tuple[int, str], int], frame: int, track: str, record: int, path: Path
) -> None:
    """Note ``track`` in ``frame`` (``record`` of "frames"); DataError naming both records when
    it was listed before: one of the two would be kept silently."""
    first = seen.get((frame, track))
    if first is None:
        seen[(frame, track)] = record
        return
    where = f"in records {first} and {record}" if first != record else f"in record {record}"
    raise DataError(
        f"this track is listed twice for this frame ({where} of 'frames'); list each track "
        "once per frame",
        path,
        f"frame {frame}, track {track!r}",
    )
