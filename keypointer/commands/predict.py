"""``keypointer predict``: images, folders and videos -> COCO results JSON, DeepLabCut-style
CSVs and drawn images/videos, with a progress bar."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from keypointer.device import resolve_device
from keypointer.inference.runners import load_runner, predict_frames
from keypointer.inference.sources import collect_sources, count_frames, iter_frames, load_detections
from keypointer.inference.writers import Outputs
from keypointer.output_paths import check_output_dir


def predict_command(
    model: str | Path,
    inputs: Sequence[str | Path],
    out: str | Path,
    boxes: str | Path | None = None,
    flip: bool = False,
    threshold: float = 0.3,
    batch_size: int = 16,
    draw: bool = True,
    device: str = "auto",
    quiet: bool = False,
    box_threshold: float = 0.0,
) -> dict[str, Any]:
    """What ``keypointer predict`` does; returns a summary (frames, instances, files)."""
    check_output_dir(out)  # before any work: a wrong --out ends at once
    sources = collect_sources(inputs)
    detections = load_detections(boxes, sources, box_threshold) if boxes else None
    runner = load_runner(model, resolve_device(device))
    outputs = Outputs(Path(out), runner.skeleton, threshold, draw, detections is not None)
    total = count_frames(sources)
    stream = predict_frames(iter_frames(sources), runner, detections, batch_size, flip)
    try:
        frames, instances = _write_all(stream, outputs, total, quiet)
        files = outputs.close()
    except BaseException:
        outputs.abort()  # no half-written video, no output folder of a failed run
        raise
    if not quiet:
        print(f"{frames} images/frames, {instances} instances -> {out}")
    return {"frames": frames, "instances": instances, "files": [str(f) for f in files]}


def _write_all(stream: Iterable[tuple], outputs: Any, total: int, quiet: bool) -> tuple[int, int]:
    """Feed :func:`predict_frames`' results to the outputs; returns (frames, instances)."""
    frames = instances = 0
    with _progress(total, quiet or total < PROGRESS_FROM) as advance:
        for pred in stream:
            outputs.add(pred)
            frames, instances = frames + 1, instances + len(pred.keypoints)
            advance()
    return frames, instances


PROGRESS_FROM = 20  # images or frames; fewer run without a progress bar


@contextlib.contextmanager
def _progress(total: int, quiet: bool) -> Iterator[Callable[[], None]]:
    if quiet:
        yield lambda: None
        return
    columns = ("predicting", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("predict", total=total or None)
        yield lambda: bar.advance(task)
