"""``keypointer predict``: images, folders and videos -> COCO results JSON, DeepLabCut-style
CSVs and drawn images/videos, with a progress bar."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TypedDict

from keypointer.commands.progress import counted
from keypointer.commands.video_options import video_post_process
from keypointer.config import KEYPOINT_SCORE_THRESHOLD
from keypointer.device import resolve_device
from keypointer.errors import ConfigError
from keypointer.inference.pipeline import load_pipeline
from keypointer.inference.runners import FramePrediction
from keypointer.inference.sources import (
    Frame,
    Source,
    collect_sources,
    count_frames,
    iter_frames,
    load_detections,
    read_ahead,
)
from keypointer.inference.video import FrameRange, VideoHeader, check_range, video_header
from keypointer.inference.writers import OutputNames, Outputs, planned_files
from keypointer.output_paths import check_output_dir, check_targets


class PredictSummary(TypedDict):
    """What :func:`predict_command` did: images and frames predicted, instances found, and
    every file written."""

    frames: int
    instances: int
    files: list[str]


def predict_command(
    model: str | Path,
    inputs: Sequence[str | Path],
    out: str | Path,
    boxes: str | Path | None = None,
    flip: bool = False,
    threshold: float = KEYPOINT_SCORE_THRESHOLD,
    batch_size: int = 16,
    draw: bool = True,
    device: str = "auto",
    quiet: bool = False,
    box_threshold: float = 0.0,
    start: str | int | float | None = None,
    stop: str | int | float | None = None,
    every: int = 1,
    smooth: str | None = None,
    max_gap: int = 10,
    max_instances: int | None = None,
    h5: bool = False,
    overwrite: bool = False,
) -> PredictSummary:
    """What ``keypointer predict`` does; returns a summary (frames, instances, files).

    Videos are tracked, flagged and, with ``smooth`` (a method of
    :data:`keypointer.temporal.smooth.METHODS`), smoothed, filling gaps of at most ``max_gap``
    frames; ``max_instances``: the N best instances of each frame are kept (after the pose
    check), then tracked into at most N identities.

    ``start``/``stop`` (stop exclusive) and ``every`` pick the frames of each video (images
    are unaffected): a frame number (``300`` or an int) or seconds (``"12.5s"`` or a float,
    compared with each frame's own timestamp); see
    :class:`~keypointer.inference.video.FrameRange`. A video of which they pick no frame is
    an error, found before any work.

    Every file the run will write is named and checked before any work: an input file is
    never written over; a file that exists (an earlier run's) only with ``overwrite``.
    """
    picked = FrameRange.parse(start, stop, every)  # before any work, as --out
    post = video_post_process(smooth, max_gap, max_instances, threshold)
    if h5:
        _check_h5()
    check_output_dir(out)
    sources = collect_sources(inputs, out=out)
    headers = _check_videos(sources, picked)
    names = OutputNames()
    sizes = {path: (h.width, h.height) for path, h in headers.items()}
    planned = planned_files(Path(out), sources, names, draw, h5, sizes)
    read = [model, *([boxes] if boxes else []), *(s.path for s in sources)]
    check_targets(planned, inputs=read, overwrite=overwrite)
    detections = load_detections(boxes, sources, box_threshold) if boxes else None
    pipe = load_pipeline(
        model, resolve_device(device), flip=flip, batch_size=batch_size, max_instances=max_instances
    )
    if not quiet:
        print(pipe.describe())
    outputs = Outputs(
        Path(out),
        pipe.skeleton,
        threshold=threshold,
        draw=draw,
        multi=detections is not None,
        post=post,
        h5=h5,
        reread=lambda path: _reread(path, picked, batch_size),
        names=names,
    )
    total = count_frames(sources, picked)
    began = time.perf_counter()
    stream = pipe.run(iter_frames(sources, picked), detections)
    try:
        frames, instances = _write_all(stream, outputs, total, quiet)
        files = outputs.close()
    except BaseException:
        stream.close()  # stops the reading thread and releases the video at once
        outputs.abort()  # no half-written video, no output folder of a failed run
        raise
    seconds = time.perf_counter() - began
    if not quiet:
        print(f"{frames} images/frames, {instances} instances -> {out}")
        print(f"{frames} frames in {seconds:.1f} s, {frames / max(seconds, 1e-9):.1f} frames/s")
    return {"frames": frames, "instances": instances, "files": [str(f) for f in files]}


def _check_h5() -> None:
    """``--h5`` needs pandas and tables (the h5 extra): known before the model loads, not
    after the whole video was predicted."""
    try:
        import pandas  # noqa: F401
        import tables  # noqa: F401
    except ImportError as err:
        raise ConfigError(
            f"--h5 needs pandas and tables ({err.name or 'one'} is missing): "
            "pip install 'keypointer[h5]'"
        ) from None


def _check_videos(sources: Sequence[Source], picked: FrameRange) -> dict[Path, VideoHeader]:
    """Every video's header, read before any work: a video that does not open, or of which
    ``picked`` holds no frame, is an error now, not an empty output after the others ran."""
    headers = {}
    for s in sources:
        if s.kind == "video" and s.path not in headers:
            headers[s.path] = video_header(s.path)
            check_range(s.path, headers[s.path], picked)
    return headers


def _reread(path: Path, picked: FrameRange, depth: int) -> Iterator[Frame]:
    """The frames of a video predicted before, again (to draw them), read ahead in a thread
    while the main one draws and encodes; its unreadable frames were named the first time."""
    frames = iter_frames([Source(Path(path), "video")], picked, warn=False)
    with contextlib.closing(read_ahead(frames, depth)) as ahead:
        yield from ahead


def _write_all(
    stream: Iterable[FramePrediction], outputs: Outputs, total: int, quiet: bool
) -> tuple[int, int]:
    """Feed the pipeline's predictions to the outputs; returns (frames, instances)."""
    frames = instances = 0
    for pred in counted(stream, total, quiet):
        outputs.add(pred)
        frames, instances = frames + 1, instances + len(pred.keypoints)
    return frames, instances
