"""``keypointer check``: load, validate (reading every image) and print a summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from keypointer.data.check import CheckReport, validate
from keypointer.data.formats import detect_format, load_dataset
from keypointer.data.split import clustering_warning, frame_refs, video_timings


def check_command(
    path: str | Path,
    format: str | None = None,
    images: str | Path | None = None,
    console: Console | None = None,
) -> CheckReport:
    """``keypointer check``: load, validate (reading every image) and print a summary."""
    console = console or Console()
    fmt = format or detect_format(path)
    kset = load_dataset(path, fmt, images)
    # Frames not labelled yet (what ``suggest`` writes when the model is unsure of every
    # point) are a labelling project's normal state: a warning here, fatal only for training.
    report = validate(kset, check_images=True, progress=True, require_labels=False)
    clustered = clustering_warning(frame_refs(report.cleaned), video_timings(report.cleaned))
    if clustered:
        report.warnings.append(clustered)
    _print(report, Path(path), fmt, console)
    return report


def per_image_text(per_image: dict[int, int]) -> str:
    """ "min 1 / median 2 / max 3: 1 x 10 images, 2 x 5 images" from {instances: images}."""
    if not per_image:
        return "no images"
    counts = np.repeat(list(per_image), list(per_image.values()))
    stats = f"min {counts.min()} / median {np.median(counts):g} / max {counts.max()}"
    bins = ", ".join(f"{k} x {n} image{'s' if n != 1 else ''}" for k, n in per_image.items())
    return f"{stats}: {bins}"


def tracks_text(tracks: dict[str, int], shown: int = 8) -> str:
    """ "none" or "3: a (10 instances), b (9), c (2)"; the most frequent first."""
    if not tracks:
        return "none (no identities in the labels)"
    top = sorted(tracks.items(), key=lambda kv: -kv[1])[:shown]
    listed = ", ".join(
        f"{name} ({n}{' instances' if i == 0 else ''})" for i, (name, n) in enumerate(top)
    )
    more = f", and {len(tracks) - shown} more" if len(tracks) > shown else ""
    return f"{len(tracks)}: {listed}{more}"


def _print(report: CheckReport, path: Path, fmt: str, console: Console) -> None:
    summary = Table(title=f"{path} ({fmt})", show_header=False, title_justify="left")
    summary.add_row("images", str(report.num_images))
    summary.add_row(
        "instances", f"{report.num_instances} to train on ({report.total_instances} in the labels)"
    )
    summary.add_row("instances per image", per_image_text(report.per_image))
    summary.add_row("tracks", tracks_text(report.tracks))
    if report.image_sizes:
        w0, h0, w1, h1 = report.image_sizes
        summary.add_row(
            "image sizes", f"{w0}x{h0}" if (w0, h0) == (w1, h1) else f"{w0}x{h0} .. {w1}x{h1}"
        )
    for reason, n in report.counts.items():
        summary.add_row(reason, str(n))
    console.print(summary)
    kps = Table("keypoint", "labelled", "%", title="labelled per keypoint", title_justify="left")
    for name, n in report.labelled.items():
        kps.add_row(name, str(n), f"{100 * n / max(report.num_instances, 1):.0f}")
    console.print(kps)
    shown = report.warnings[:20]
    for w in shown:
        console.print(f"[yellow]warning[/yellow] {escape(w)}", highlight=False)
    if len(report.warnings) > len(shown):
        console.print(f"... and {len(report.warnings) - len(shown)} more warnings")
    n = len(report.warnings)
    verdict = f"{n} warning{'s' if n > 1 else ''}" if n else "no problems found"
    console.print(f"[green]OK[/green]: {verdict}")
