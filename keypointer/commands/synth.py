"""``keypointer synth``: render the built-in synthetic dataset, or a synthetic video."""

from __future__ import annotations

import re
from pathlib import Path

from keypointer.config import DEFAULT_FPS
from keypointer.data.synthetic import generate
from keypointer.data.synthetic_video import generate_video
from keypointer.errors import ConfigError, DataError
from keypointer.output_paths import output_dir_for


def synth_command(
    out: Path,
    num_images: int = 500,
    seed: int = 0,
    size: int | None = None,
    instances: str = "1",
    video: bool = False,
    frames: int = 300,
    fps: float = DEFAULT_FPS,
    overwrite: bool = False,
) -> Path:
    """Render images and their COCO labels (or with ``video`` a clip and its ground truth) into
    ``out``; say what was written. ``instances``: figures per image, "3" or a range "1-4".
    A folder that already holds such files (a user's labels, an earlier synth) is written
    into only with ``overwrite``."""
    low, high = parse_instances(instances)
    _check_out(Path(out), video, overwrite)
    if video:
        if low != high:
            raise ConfigError(
                f"--instances: a video needs one number of figures, not {instances!r}"
            )
        if not fps > 0:
            raise ConfigError(f"--fps must be positive, got {fps}")
        path = generate_video(out, frames, instances=low, seed=seed, size=size or 256, fps=fps)
        print(f"wrote {path} ({frames} frames at {fps:g} fps, {low} figure(s)), ", end="")
        print(f"{out / 'truth.json'} and {out / 'truth.csv'}")
        return path
    path = generate(out, num_images=num_images, seed=seed, size=size, instances=(low, high))
    print(f"wrote {num_images} images and {path}")
    return path


def parse_instances(text: str) -> tuple[int, int]:
    """ "3" -> (3, 3); "1-4" -> (1, 4). Raises :class:`ConfigError` on anything else."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", str(text))
    low = int(match.group(1)) if match else 0
    high = int(match.group(2) or low) if match else 0
    if not 1 <= low <= high:
        raise ConfigError(f"--instances must be N or LOW-HIGH with 1 <= LOW <= HIGH, got {text!r}")
    return low, high


def _check_out(out: Path, video: bool, overwrite: bool) -> None:
    """Refuse before rendering when ``out`` holds a file this would write over."""
    names = ("video.mp4", "truth.json", "truth.csv") if video else ("annotations.json",)
    output_dir_for(names, out, default=out, overwrite=overwrite)
    images = out / "images"
    if not video and not overwrite and images.is_dir() and any(images.iterdir()):
        raise DataError("holds files already; pass --overwrite to render into it", images)
