"""The ``keypointer`` command. Each command ``<name>`` is ``<name>_cli`` here, a thin wrapper
that parses the options and calls ``<name>_command`` of :mod:`keypointer.commands.<name>`.

Errors the user can fix (bad labels, bad config, unreadable images) end with one
message on stderr and exit code 2; see :mod:`keypointer.errors`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from keypointer.config import DEFAULT_FPS, KEYPOINT_SCORE_THRESHOLD
from keypointer.errors import ConfigError, KeypointerError
from keypointer.malloc import tune_malloc
from keypointer.version import __version__

app = typer.Typer(
    name="keypointer",
    help="Train, evaluate and deploy 2D keypoint detectors on your own labelled images.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config field, e.g. --set train.lr=1e-3 (repeatable)."),
]
FormatOpt = Annotated[
    str | None,
    typer.Option(
        "--format", help="coco | dlc | yolo | csv | sleap (default: detected from the path)."
    ),
]
ImagesOpt = Annotated[
    Path | None,
    typer.Option("--images", help="Folder the label file's image paths are relative to."),
]
OverwriteOpt = Annotated[
    bool,
    typer.Option(
        "--overwrite", help="Replace output files that exist (never a file this command reads)."
    ),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"keypointer {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Train, evaluate and deploy 2D keypoint detectors on your own labelled images."""


@app.command("check")
def check_cli(
    path: Annotated[
        Path,
        typer.Argument(
            help="Labels: COCO JSON, DeepLabCut project, YOLO data.yaml, CSV or SLEAP .slp."
        ),
    ],
    format: FormatOpt = None,
    images: ImagesOpt = None,
) -> None:
    """Load and validate a dataset, and print a summary of it and of any problems."""
    from keypointer.commands.check import check_command

    check_command(path, format=format, images=images)


@app.command("convert")
def convert_cli(
    src: Annotated[Path, typer.Argument(help="Labels to read.")],
    dst: Annotated[
        Path,
        typer.Argument(help="Where to write: a .json/.csv file for coco/csv, a folder otherwise."),
    ],
    to: Annotated[str, typer.Option("--to", help="coco | yolo | dlc | csv")] = "coco",
    format: FormatOpt = None,
    images: ImagesOpt = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing output file (coco, csv).")
    ] = False,
) -> None:
    """Convert labels from one format to another."""
    from keypointer.commands.convert import convert_command

    convert_command(src, dst, to=to, format=format, images=images, overwrite=overwrite)


@app.command("synth")
def synth_cli(
    out: Annotated[Path, typer.Argument(help="Output folder (COCO JSON + images, or a video).")],
    num_images: Annotated[int, typer.Option("--num-images", min=1)] = 500,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    size: Annotated[
        int | None,
        typer.Option(
            "--size", min=32, help="Image side in pixels (default 128; 256 for crowds and video)."
        ),
    ] = None,
    instances: Annotated[
        str, typer.Option("--instances", help="Figures per image: N, or a range like 1-4.")
    ] = "1",
    video: Annotated[
        bool, typer.Option("--video", help="A clip (video.mp4, truth.json, truth.csv) instead.")
    ] = False,
    frames: Annotated[int, typer.Option("--frames", min=1, help="Video length in frames.")] = 300,
    fps: Annotated[float, typer.Option("--fps", help="Video frame rate.")] = DEFAULT_FPS,
    cameras: Annotated[
        int | None,
        typer.Option(
            "--cameras",
            help="A figure in a box filmed by N calibrated cameras: videos, board clips, "
            "calibration.toml and the 3D truth.",
        ),
    ] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Render a synthetic dataset, video or N cameras' videos with exactly known keypoints."""
    from keypointer.commands.synth import synth_command

    synth_command(
        out,
        num_images=num_images,
        seed=seed,
        size=size,
        instances=instances,
        video=video,
        frames=frames,
        fps=fps,
        overwrite=overwrite,
        cameras=cameras,
    )


@app.command("calibrate")
def calibrate_cli(
    videos: Annotated[
        list[Path], typer.Argument(help="Synchronised videos of the board, one per camera.")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Calibration file to write (Anipose's calibration.toml).")
    ],
    squares: Annotated[str, typer.Option("--squares", help="Squares across x down, e.g. 7x5.")],
    square_mm: Annotated[
        float, typer.Option("--square-mm", help="Side of a square in mm (sets the units).")
    ],
    board: Annotated[str, typer.Option("--board", help="charuco | checkerboard")] = "charuco",
    marker_mm: Annotated[
        float | None, typer.Option("--marker-mm", help="ChArUco: side of a marker in mm.")
    ] = None,
    dictionary: Annotated[
        str, typer.Option("--dict", help="ChArUco: the ArUco dictionary.")
    ] = "DICT_4X4_50",
    names: Annotated[
        list[str] | None,
        typer.Option(
            "--names", help="Camera names in the videos' order, A,B,C (default: the video names)."
        ),
    ] = None,
    every: Annotated[int, typer.Option("--every", min=1, help="Search every Nth frame.")] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Calibrate cameras from synchronised videos of a ChArUco board or a checkerboard.

    Writes the calibration (Anipose's calibration.toml), a picture of the board detections and
    one of the camera layout next to it, and prints a report per camera."""
    from keypointer.commands.calibrate import calibrate_command

    calibrate_command(
        videos,
        out,
        board=board,
        squares=squares,
        square_mm=square_mm,
        marker_mm=marker_mm,
        dictionary=dictionary,
        names=names,
        every=every,
        overwrite=overwrite,
        quiet=quiet,
    )


@app.command("triangulate")
def triangulate_cli(
    calibration: Annotated[
        Path, typer.Argument(help="Calibration (calibration.toml, ours or Anipose's).")
    ],
    predictions: Annotated[
        list[Path],
        typer.Argument(help="2D predictions, one file a camera: predict, DeepLabCut, SLEAP."),
    ],
    out: Annotated[Path, typer.Option("--out", help="3D CSV to write (Anipose's pose_3d).")],
    names: Annotated[
        list[str] | None,
        typer.Option(
            "--names", help="Each file's camera, in order, A,B,C (default: from the file names)."
        ),
    ] = None,
    min_score: Annotated[
        float, typer.Option("--min-score", help="Leave out 2D points scoring below this.")
    ] = KEYPOINT_SCORE_THRESHOLD,
    smooth: Annotated[
        str | None,
        typer.Option("--smooth", help="Smooth the 3D tracks: savgol | median | kalman."),
    ] = None,
    fps: Annotated[
        float, typer.Option("--fps", help="Frame rate (sets the smoothing window).")
    ] = DEFAULT_FPS,
    animals: Annotated[
        int | None,
        typer.Option("--animals", help="At most this many animals (default: the most a file has)."),
    ] = None,
    h5: Annotated[
        bool, typer.Option("--h5", help="Also <out stem>.h5: DeepLabCut's 3D layout, all animals.")
    ] = False,
    pictures: Annotated[
        bool,
        typer.Option(
            "--pictures/--no-pictures",
            help="<out stem>.3d.png (poses, cameras) and <out stem>.quality.png (error, views).",
        ),
    ] = True,
    videos: Annotated[
        list[Path] | None,
        typer.Option(
            "--videos",
            help="Each camera's video (A.mp4,B.mp4 in the 2D files' order, or their folder): "
            "writes <out stem>.<camera>.reprojection.mp4, 2D input and 3D reprojected.",
        ),
    ] = None,
    limbs: Annotated[
        Path | None,
        typer.Option(
            "--limbs",
            help="Reference 3D poses (pose_3d CSV, e.g. the labelled frames triangulated): "
            "solve each frame with their limb lengths as a soft prior.",
        ),
    ] = None,
    limb_noise: Annotated[
        float | None,
        typer.Option("--limb-noise", help="The 2D points' error in px (weighs --limbs)."),
    ] = None,
    overwrite: OverwriteOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """3D keypoints from several cameras' 2D predictions (Anipose's pose_3d CSV).

    2D files: predict's or DeepLabCut's .csv/.h5, or SLEAP .slp. Several animals are matched
    across views and tracked in 3D; each gets its own CSV, <out stem>_animal<i>.csv.

    Views are weighted by score and those that disagree left out; prints per keypoint the
    reprojection error and the views used."""
    from keypointer.commands.triangulate import triangulate_command

    triangulate_command(
        calibration,
        predictions,
        out,
        names=names,
        min_score=min_score,
        smooth=smooth,
        fps=fps,
        animals=animals,
        h5=h5,
        pictures=pictures,
        videos=videos,
        limbs=limbs,
        limb_noise=limb_noise,
        overwrite=overwrite,
        quiet=quiet,
    )


@app.command("train")
def train_cli(
    data: Annotated[Path | None, typer.Option("--data", help="Training labels.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML config file.")] = None,
    set_: SetOpt = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Run folder to continue.")] = None,
    time: Annotated[
        float | None,
        typer.Option("--time", help="Wall-clock budget in minutes (= --set train.time=M)."),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="No progress bar; a line per validation.")
    ] = False,
) -> None:
    """Train a keypoint model; the run goes to runs/<name>/<YYYY-MM-DD-HH-MM>/.

    Settings you leave unset are chosen from the data (a table says which and why)."""
    from keypointer.commands.train import train_command

    overrides = (set_ or []) + ([f"train.time={time!r}"] if time is not None else [])
    train_command(data=data, config=config, overrides=overrides, resume=resume, quiet=quiet)


@app.command("demo")
def demo_cli(
    out: Annotated[Path, typer.Option("--out", help="Folder for the data and the run.")] = Path(
        "demo"
    ),
    quiet: Annotated[bool, typer.Option("--quiet")] = False,
) -> None:
    """Synthesise data, train the default model, evaluate it and draw its predictions."""
    from keypointer.commands.demo import demo_command

    demo_command(out, quiet=quiet)


DeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:1 ...")]
FlipOpt = Annotated[
    bool, typer.Option("--flip", help="Flip test-time augmentation (uses the flip pairs).")
]


@app.command("eval")
def eval_cli(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint (.pt) or run folder.")],
    data: Annotated[
        Path, typer.Option("--data", help="Labels, or a video truth.json (or its folder).")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: <run>/eval-<data>).")
    ] = None,
    format: FormatOpt = None,
    images: ImagesOpt = None,
    alpha: Annotated[float, typer.Option("--alpha", min=0.0, help="PCK threshold.")] = 0.05,
    pcutoff: Annotated[
        float | None, typer.Option("--pcutoff", help="Also report errors of scores >= this.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1)] = None,
    flip: FlipOpt = False,
    device: DeviceOpt = "auto",
    smooth: Annotated[
        str | None,
        typer.Option(
            "--smooth", help="Video truth: also score tracks smoothed by savgol | median | kalman."
        ),
    ] = None,
    max_instances: Annotated[
        int | None,
        typer.Option(
            "--max-instances",
            min=1,
            help="The known number of animals: at most N found per image, as predict keeps.",
        ),
    ] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Score a model on labelled data: table, eval.json, PCK curve, worst predictions.

    DATA may also be a video with known tracks (a truth.json from synth --video, or its
    folder): pixel error, jitter, ID switches and MOTA, tracker against nearest centroid."""
    from keypointer.commands.eval import eval_command
    from keypointer.commands.eval_video import eval_video_command, is_video_truth

    if is_video_truth(data):
        if format is not None or images is not None or pcutoff is not None:
            raise ConfigError(
                "--format, --images and --pcutoff are for labelled images, not a video truth"
            )
        eval_video_command(
            checkpoint,
            data,
            out,
            flip=flip,
            smooth=smooth,
            max_instances=max_instances,
            device=device,
            alpha=alpha,
            batch_size=batch_size or 16,
            overwrite=overwrite,
        )
        return
    if smooth is not None:
        raise ConfigError("--smooth is for a video truth (truth.json)")
    eval_command(
        checkpoint,
        data,
        out,
        format=format,
        images=images,
        alpha=alpha,
        pcutoff=pcutoff,
        batch_size=batch_size,
        flip=flip,
        device=device,
        max_instances=max_instances,
        overwrite=overwrite,
    )


@app.command("predict")
def predict_cli(
    model: Annotated[Path, typer.Argument(help="Checkpoint (.pt), run folder or .onnx file.")],
    inputs: Annotated[list[Path], typer.Argument(help="Images, folders and videos.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    boxes: Annotated[
        Path | None,
        typer.Option("--boxes", help="COCO detections JSON: one crop per box (images)."),
    ] = None,
    flip: FlipOpt = False,
    threshold: Annotated[
        float, typer.Option("--threshold", help="Draw keypoints scoring at least this.")
    ] = KEYPOINT_SCORE_THRESHOLD,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 16,
    draw: Annotated[
        bool, typer.Option("--draw/--no-draw", help="Write drawn images and videos.")
    ] = True,
    box_threshold: Annotated[
        float, typer.Option("--box-threshold", help="Skip boxes scoring below this.")
    ] = 0.0,
    device: DeviceOpt = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar or summary.")] = False,
    start: Annotated[
        str | None,
        typer.Option("--start", help="Videos: first frame, a number (300) or seconds (12.5s)."),
    ] = None,
    stop: Annotated[
        str | None,
        typer.Option("--stop", help="Videos: stop before this frame (300) or time (12.5s)."),
    ] = None,
    every: Annotated[int, typer.Option("--every", help="Videos: every Nth frame.")] = 1,
    smooth: Annotated[
        str | None,
        typer.Option(
            "--smooth",
            help="Videos: smooth each track with savgol, median or kalman (raw values are kept).",
        ),
    ] = None,
    max_gap: Annotated[
        int,
        typer.Option("--max-gap", min=0, help="Videos: fill gaps of at most this many frames."),
    ] = 10,
    max_instances: Annotated[
        int | None,
        typer.Option(
            "--max-instances", min=1, help="Known number of animals (tracks never exceed it)."
        ),
    ] = None,
    h5: Annotated[
        bool,
        typer.Option(
            # "\\[": rich would take [h5] for markup and print "keypointer".
            "--h5",
            help="Videos: also a DeepLabCut .h5 (needs pip install 'keypointer\\[h5]').",
        ),
    ] = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Predict keypoints: COCO results JSON, DeepLabCut-style CSV, drawn images/videos; per
    video also tracks, outlier flags and (with --smooth) smoothed values."""
    from keypointer.commands.predict import predict_command

    predict_command(
        model,
        inputs,
        out,
        boxes=boxes,
        flip=flip,
        threshold=threshold,
        batch_size=batch_size,
        draw=draw,
        device=device,
        quiet=quiet,
        box_threshold=box_threshold,
        start=start,
        stop=stop,
        every=every,
        smooth=smooth,
        max_gap=max_gap,
        max_instances=max_instances,
        h5=h5,
        overwrite=overwrite,
    )


@app.command("export")
def export_cli(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint (.pt) or run folder.")],
    format: Annotated[str, typer.Option("--format", help="onnx")] = "onnx",
    out: Annotated[
        Path | None, typer.Option("--out", help="Output file (default: next to the checkpoint).")
    ] = None,
    flip: Annotated[
        bool, typer.Option("--flip", help="Put flip test-time augmentation in the graph.")
    ] = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Export to one ONNX file with decoding inside; checked against PyTorch after export."""
    from keypointer.commands.export import export_command

    export_command(checkpoint, format=format, out=out, flip=flip, overwrite=overwrite)


@app.command("suggest")
def suggest_cli(
    model: Annotated[Path, typer.Argument(help="Checkpoint (.pt), run folder or .onnx file.")],
    videos: Annotated[list[Path], typer.Argument(help="Videos to pick frames from.")],
    out: Annotated[Path, typer.Option("--out", help="New or empty folder for frames + labels.")],
    num: Annotated[int, typer.Option("--num", help="Frames to pick.")] = 20,
    format: Annotated[
        str | None,
        typer.Option("--format", help="dlc | coco | yolo | csv (default: the model's, else dlc)."),
    ] = None,
    flip: Annotated[
        bool, typer.Option("--flip/--no-flip", help="Flip TTA: flip disagreement counts too.")
    ] = True,
    min_gap: Annotated[
        int | None,
        typer.Option("--min-gap", help="Frames between two picks of a video (default: 1 s)."),
    ] = None,
    threshold: Annotated[
        float, typer.Option("--threshold", help="Points scoring below this are left unlabelled.")
    ] = KEYPOINT_SCORE_THRESHOLD,
    scorer: Annotated[str, typer.Option("--scorer", help="DeepLabCut scorer name.")] = "keypointer",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 16,
    device: DeviceOpt = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar or table.")] = False,
    max_instances: Annotated[
        int | None,
        typer.Option("--max-instances", min=1, help="Keep the N best instances of each frame."),
    ] = None,
) -> None:
    """Pick the video frames most worth labelling next; write them with the model's labels."""
    from keypointer.commands.suggest import suggest_command

    suggest_command(
        model,
        videos,
        out,
        num=num,
        format=format,
        flip=flip,
        min_gap=min_gap,
        threshold=threshold,
        scorer=scorer,
        batch_size=batch_size,
        device=device,
        quiet=quiet,
        max_instances=max_instances,
    )


@app.command("merge")
def merge_cli(
    a: Annotated[Path, typer.Argument(help="Labels (any readable format).")],
    b: Annotated[Path, typer.Argument(help="Labels of the same skeleton; they win where both.")],
    out: Annotated[Path, typer.Option("--out", help="Output: .json (coco), .csv, or a folder.")],
    format: Annotated[
        str | None,
        typer.Option("--format", help="coco | dlc | yolo | csv (default: from --out, else A's)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing output file (coco, csv).")
    ] = False,
) -> None:
    """Join two label sets of one skeleton; an image in both takes B's labels."""
    from keypointer.commands.merge import merge_command

    merge_command(a, b, out, format=format, overwrite=overwrite)


def main(argv: list[str] | None = None) -> None:
    """Entry point: turn user errors into one message and exit code 2, without a traceback.

    Usage errors (unknown options) are handled by typer itself, also with exit code 2.
    """
    # OpenCV logs a warning for each corrupt image besides the DataError we raise; keep the
    # one message. Read when cv2 is first imported, which the commands do lazily.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    # FFmpeg prints a line per damaged packet of a video; predict names the unreadable frames
    # in one warning instead. -8 is AV_LOG_QUIET.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    tune_malloc()  # before torch allocates: training steps fault far less; see malloc.py
    try:
        app(args=argv)
    except KeypointerError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
