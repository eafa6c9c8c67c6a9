"""``keypointer synth``: render the built-in synthetic dataset, a synthetic video, or a scene
filmed by several calibrated cameras (``--cameras N``)."""

from __future__ import annotations

import re
from pathlib import Path

from keypointer.config import DEFAULT_FPS
from keypointer.data.synthetic import generate
from keypointer.data.synthetic_video import generate_video
from keypointer.errors import ConfigError, DataError
from keypointer.multiview.synthetic import SCENE_BOARD, camera_names, scene_files, write_scene
from keypointer.output_paths import make_output_dir, output_dir_for, remove_created

MIN_CAMERAS, MAX_CAMERAS = 2, 26  # cameras are named A to Z


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
    cameras: int | None = None,
) -> Path:
    """Render images and their COCO labels (or with ``video`` a clip and its ground truth) into
    ``out``; say what was written. ``instances``: figures per image, "3" or a range "1-4".
    A folder that already holds such files (a user's labels, an earlier synth) is written
    into only with ``overwrite``. With ``cameras``: the multi-camera scene of
    :func:`synth_cameras`."""
    if cameras is not None:
        if video or instances != "1" or size is not None:
            raise ConfigError(
                "--cameras renders one figure seen by N cameras: without --video, "
                "--instances or --size"
            )
        return synth_cameras(out, cameras, frames=frames, seed=seed, fps=fps, overwrite=overwrite)
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


def synth_cameras(
    out: Path, cameras: int, frames: int, seed: int, fps: float, overwrite: bool
) -> Path:
    """A figure moving in a box, filmed by ``cameras`` calibrated virtual cameras with lens
    distortion (:func:`keypointer.multiview.synthetic.write_scene`); returns ``out``."""
    if not MIN_CAMERAS <= cameras <= MAX_CAMERAS:
        raise ConfigError(f"--cameras must be {MIN_CAMERAS} to {MAX_CAMERAS}, got {cameras}")
    if not fps > 0:
        raise ConfigError(f"--fps must be positive, got {fps}")
    out = Path(out)
    names = camera_names(cameras)
    output_dir_for(scene_files(out, names), out, default=out, overwrite=overwrite)
    created = make_output_dir(out)
    try:
        scene = write_scene(out, cameras, frames=frames, seed=seed, fps=fps)
    except BaseException:
        remove_created(created)
        raise
    board = SCENE_BOARD
    print(f"wrote {cameras} cameras' videos ({frames} frames at {fps:g} fps) to {out}: ")
    print(f"  {', '.join(p.name for p in scene.videos)}: the figure")
    print(f"  calibration/*.mp4: the board ({len(scene.board_videos)} videos)")
    print("  calibration.toml: the true cameras; truth3d.csv: the figure in 3D (mm);")
    print("  truth2d/*.csv: its exact 2D keypoints per camera; scene.json: the set-up")
    print(
        f"calibrate with: keypointer calibrate {out / 'calibration'}/*.mp4 --board charuco "
        f"--squares {board.squares[0]}x{board.squares[1]} --square-mm {board.square_length:g} "
        f"--marker-mm {board.marker_length:g} --out <folder>/calibration.toml"
    )
    return out


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
