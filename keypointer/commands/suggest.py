"""``keypointer suggest``: predict every frame of some videos, pick the frames most worth
labelling next, and write them with the model's predictions as labels to correct."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypedDict

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from keypointer.commands.progress import counted
from keypointer.config import KEYPOINT_SCORE_THRESHOLD, Config
from keypointer.data.formats import (
    FORMATS,
    REGISTRY,
    detect_format,
    label_format,
    unique_name,
    write_labels,
)
from keypointer.data.types import Instance, KeypointSet, Sample
from keypointer.device import resolve_device
from keypointer.errors import ConfigError, DataError
from keypointer.inference.pipeline import load_pipeline
from keypointer.inference.sources import Source, collect_sources, count_frames, iter_frames
from keypointer.inference.suggest import (
    Suggestion,
    VideoTrack,
    collect_tracks,
    default_gap,
    read_frames,
    suggest_frames,
)
from keypointer.output_paths import check_new_dir, filling_dir
from keypointer.skeleton import Skeleton
from keypointer.viz import write_image

log = logging.getLogger("keypointer")


class SuggestSummary(TypedDict):
    """What :func:`suggest_command` wrote: the labels to check, their format, and the
    (video, frame number) of every frame picked."""

    labels: Path
    format: str
    frames: list[tuple[str, int]]


def suggest_command(
    model: str | Path,
    videos: Sequence[str | Path],
    out: str | Path,
    num: int = 20,
    format: str | None = None,
    flip: bool = True,
    min_gap: int | None = None,
    threshold: float = KEYPOINT_SCORE_THRESHOLD,
    scorer: str = "keypointer",
    batch_size: int = 16,
    device: str = "auto",
    quiet: bool = False,
    max_instances: int | None = None,
) -> SuggestSummary:
    """What ``keypointer suggest`` does; returns what it wrote (:class:`SuggestSummary`).

    ``out`` must be new or empty. ``threshold``: predicted points scoring below it are written
    unlabelled. ``min_gap``: frames between two picks of one video (None: one second). The
    frames are predicted as ``predict`` predicts them (one
    :class:`~keypointer.inference.pipeline.Pipeline`); a two-stage model's picks hold every
    instance found (at most ``max_instances``), each an individual to correct.
    """
    out = Path(out)
    _check_arguments(num, min_gap, format, scorer)
    check_new_dir(out)  # before any work: a wrong --out ends at once
    sources = _videos(videos)
    pipe = load_pipeline(
        model, resolve_device(device), batch_size=batch_size, max_instances=max_instances
    )
    if flip and not pipe.can_flip:  # ranking loses the flip flag, not the predictions
        log.warning(
            "%s was exported without flip TTA: frames are ranked without the flip flag "
            "(export with --flip to use it)",
            model,
        )
    pipe = pipe.with_options(flip=flip and pipe.can_flip)
    fmt = format or trained_format(pipe.config)
    stream = pipe.run(iter_frames(sources))
    frames = counted(stream, count_frames(sources), quiet)
    tracks = collect_tracks(frames, pipe.two_stage, threshold, max_instances)
    picks = suggest_frames(tracks, pipe.skeleton.names, num, min_gap, threshold)
    short = shortfall_message(len(picks), num, sum(len(t) for t in tracks), min_gap)
    if short:
        log.warning("%s", short)
    with filling_dir(out):  # nothing half-written
        labels = write_suggestions(out, fmt, tracks, picks, pipe.skeleton, threshold, scorer)
    if not quiet:
        _print(tracks, picks, labels, fmt, min_gap)
    picked = [(str(tracks[p.track].path), p.number) for p in picks]
    return {"labels": labels, "format": fmt, "frames": picked}


def shortfall_message(picked: int, num: int, frames: int, min_gap: int | None) -> str | None:
    """Why fewer than ``num`` frames were picked, and what would give more; None when not.
    Every frame picked: the videos hold no more (a lower --min-gap cannot help); else the
    gap between picks of one video is what limits them."""
    if picked >= num:
        return None
    if picked >= frames:
        return (
            f"only {picked} frames picked: the videos hold no more frames than that "
            "(give more or longer videos for more)"
        )
    gap = f"--min-gap {min_gap} frames" if min_gap is not None else "one second (--min-gap)"
    return f"only {picked} frames lie {gap} apart; lower --min-gap for more"


def _check_arguments(num: int, min_gap: int | None, format: str | None, scorer: str) -> None:
    if num < 1:
        raise ConfigError(f"--num must be at least 1, got {num}")
    if min_gap is not None and min_gap < 0:
        raise ConfigError(f"--min-gap must be 0 or more frames, got {min_gap}")
    if format is not None:
        label_format(format, written=True)
    if not scorer.strip() or any(c in scorer for c in '/\\:*?"<>|'):
        raise ConfigError(f"--scorer {scorer!r}: a name for a file (CollectedData_<scorer>.csv)")


def _videos(inputs: Sequence[str | Path]) -> list[Source]:
    """The videos among ``inputs`` and in their folders; an image given by name is an error."""
    sources = collect_sources(inputs)
    for s in sources:
        if s.kind == "image" and any(Path(i) == s.path for i in inputs):
            raise DataError("suggest picks frames of videos; this is an image", s.path)
    seen: set[Path] = set()
    found = []
    for s in sources:  # a video named twice (or also inside a folder given) counts once
        if s.kind == "video" and s.path.resolve() not in seen:
            seen.add(s.path.resolve())
            found.append(s)
    if not found:
        raise DataError("no videos here (suggest picks frames of videos)", inputs[0])
    return found


def trained_format(config: Config | Mapping[str, object] | None) -> str:
    """The label format a model was trained on, from its config (a :class:`Config`, or one
    read as a dict: ``data.format``, else what ``data.path`` holds or is named like);
    ``dlc`` when it does not say or is one keypointer only reads."""
    if isinstance(config, Config):
        fmt, where = config.data.format, config.data.path
    else:
        data = config.get("data") if config is not None else None
        fmt = data.get("format") if isinstance(data, Mapping) else None
        where = data.get("path") if isinstance(data, Mapping) else None
    if fmt in FORMATS:
        return str(fmt)
    path = Path(str(where)) if where else None
    if path is None:
        return "dlc"
    try:
        found = detect_format(path)
        return found if found in FORMATS else "dlc"  # read-only formats (SLEAP): dlc
    except DataError:  # not on this machine (trained elsewhere): go by its name
        pass
    name = path.name.lower()
    if name.endswith(".json"):
        return "coco"
    if name in ("data.yaml", "data.yml"):
        return "yolo"
    if name.endswith(".csv") and not name.startswith("collecteddata"):
        return "csv"
    return "dlc"


# --------------------------------------------------------------------------- writing


def write_suggestions(
    out: Path,
    fmt: str,
    tracks: Sequence[VideoTrack],
    picks: Sequence[Suggestion],
    skeleton: Skeleton,
    threshold: float = KEYPOINT_SCORE_THRESHOLD,
    scorer: str = "keypointer",
) -> Path:
    """The picked frames as PNGs plus one label file of ``fmt`` in ``out``; returns the path
    :meth:`~keypointer.data.formats.LabelFormat.labels` names. DeepLabCut: ``labeled-data/<video>/img<frame>.png`` (frame
    numbers zero-padded as DeepLabCut's own frame extraction pads them) and
    ``CollectedData_<scorer>.csv``; COCO and CSV: ``images/<video>_img<frame>.png``. A frame
    where no predicted point reaches ``threshold`` gets no instance: it is still listed, to
    be labelled from scratch, and ``keypointer check`` passes it with a warning."""
    names = _video_names(tracks)
    labels = REGISTRY[fmt].labels(out)
    # A folder format's writer copies the images into its own layout: stage them beside.
    folder = REGISTRY[fmt].file_name is None
    staged = tempfile.TemporaryDirectory(dir=out, prefix=".frames-") if folder else None
    with staged or contextlib.nullcontext(str(out)) as root_name:
        samples = _write_frames(Path(root_name), fmt, tracks, picks, names, threshold)
        kset = KeypointSet(skeleton, samples, out)
        write_labels(kset, fmt, out if folder else labels, scorer)
    return labels


def _write_frames(
    root: Path,
    fmt: str,
    tracks: Sequence[VideoTrack],
    picks: Sequence[Suggestion],
    names: list[str],
    threshold: float,
) -> list[Sample]:
    samples = []
    for ti, track in enumerate(tracks):
        mine = sorted((p for p in picks if p.track == ti), key=lambda p: p.number)
        if not mine:
            continue
        images = read_frames(track.path, [p.number for p in mine])
        digits = _digits(track)
        for p in mine:
            if p.number not in images:
                raise DataError(f"frame {p.number} could not be read again", track.path)
            stem = f"img{p.number:0{digits}d}"
            png = (
                root / "labeled-data" / names[ti] / f"{stem}.png"
                if fmt == "dlc"
                else root / "images" / f"{names[ti]}_{stem}.png"
            )
            write_image(png, images[p.number])
            record = f"{track.path.name} frame {p.number}"
            w, h = track.size
            insts = _instances(p, threshold, record, (w, h))
            samples.append(Sample(png, w, h, insts, None, record))
    return samples


def _instances(
    pick: Suggestion, threshold: float, record: str, size: tuple[int, int]
) -> list[Instance]:
    """The pick's predictions as labels to correct: points scoring below ``threshold``, or
    outside the frame of ``size`` (width, height), unlabelled (no tool labels a point off
    its image); an instance with no point left is left out (not one: the frame is
    written with no instance, an image still to label: an empty row, label file or image
    entry, valid in every format's tools). Several instances carry their identity (a
    DeepLabCut individual, a COCO track_id, a CSV track)."""
    several = pick.names is not None
    kps = pick.keypoints if several else pick.keypoints[None]
    scores = pick.scores if several else pick.scores[None]
    out = []
    for m, (points, sc) in enumerate(zip(kps, scores, strict=True)):
        kp = np.zeros((len(sc), 3))
        w, h = size
        x, y = points[:, 0], points[:, 1]
        inside = (x >= -0.5) & (x < w - 0.5) & (y >= -0.5) & (y < h - 0.5)
        sure = (np.nan_to_num(sc) >= threshold) & inside
        kp[sure, :2], kp[sure, 2] = points[sure], 2.0
        if sure.any():
            name = pick.names[m] if several else None
            out.append(Instance(kp, None, record if name is None else f"{record}, {name}", name))
    return out


def _digits(track: VideoTrack) -> int:
    """DeepLabCut names extracted frames img + the number zero-padded to ceil(log10(frames))."""
    declared = count_frames([Source(track.path, "video")])
    frames = max(declared, int(track.numbers.max()) + 1)
    return max(int(np.ceil(np.log10(frames))), 1)


def _video_names(tracks: Sequence[VideoTrack]) -> list[str]:
    """Each video's file stem, made unique (clip, clip_2, ...)."""
    names: list[str] = []
    for t in tracks:
        names.append(unique_name(t.path.stem, names))
    return names


def _print(
    tracks: Sequence[VideoTrack],
    picks: Sequence[Suggestion],
    labels: Path,
    fmt: str,
    min_gap: int | None,
) -> None:
    console = Console()
    table = Table(title=f"{len(picks)} frames to label", title_justify="left")
    several = len(tracks) > 1
    for column in (["video"] if several else []) + ["frame", "time", "uncertainty", "why"]:
        table.add_column(column, justify="right" if column in ("frame", "uncertainty") else None)
    names = _video_names(tracks)
    for p in sorted(picks, key=lambda p: (p.track, p.number)):
        cells = [names[p.track]] if several else []
        cells += [str(p.number), _clock(p.time), f"{p.uncertainty:.3f}", p.reason]
        table.add_row(*map(escape, cells))
    console.print(table)
    gaps = sorted({min_gap if min_gap is not None else default_gap(t.fps) for t in tracks})
    console.print(f"picks of one video lie at least {'/'.join(map(str, gaps))} frames apart")
    console.print(
        f"wrote {fmt} labels to correct: {escape(str(labels))}\n"
        f"check them with: keypointer check {escape(str(labels))}",
        highlight=False,
    )


def _clock(seconds: float) -> str:
    minutes, rest = divmod(max(seconds, 0.0), 60.0)
    return f"{int(minutes)}:{rest:05.2f}"
