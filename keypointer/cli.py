"""The ``keypointer`` command. Each command is a thin wrapper over a library function.

Errors the user can fix (bad labels, bad config, unreadable images) end with one
message on stderr and exit code 2; see :mod:`keypointer.errors`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from keypointer._malloc import tune_malloc
from keypointer._version import __version__
from keypointer.errors import KeypointerError

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
    typer.Option("--format", help="coco | dlc | yolo | csv (default: detected from the path)."),
]
ImagesOpt = Annotated[
    Path | None,
    typer.Option("--images", help="Folder the label file's image paths are relative to."),
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


@app.command()
def check(
    path: Annotated[
        Path, typer.Argument(help="Labels: COCO JSON, DeepLabCut project, YOLO data.yaml or CSV.")
    ],
    format: FormatOpt = None,
    images: ImagesOpt = None,
) -> None:
    """Load and validate a dataset, and print a summary of it and of any problems."""
    from keypointer.commands.check import run_check

    run_check(path, format=format, images=images)


@app.command()
def convert(
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


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Output folder (COCO JSON + images).")],
    num_images: Annotated[int, typer.Option("--num-images", min=1)] = 500,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    size: Annotated[int, typer.Option("--size", min=32, help="Image side in pixels.")] = 128,
) -> None:
    """Render a synthetic dataset with exactly known keypoints."""
    from keypointer.commands.synth import synth_command

    synth_command(out, num_images=num_images, seed=seed, size=size)


@app.command()
def train(
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


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for the data and the run.")] = Path(
        "demo"
    ),
    quiet: Annotated[bool, typer.Option("--quiet")] = False,
) -> None:
    """Synthesise data, train the default model, evaluate it and draw its predictions."""
    from keypointer.commands.demo import run_demo

    run_demo(out, quiet=quiet)


DeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:1 ...")]
FlipOpt = Annotated[
    bool, typer.Option("--flip", help="Flip test-time augmentation (uses the flip pairs).")
]


@app.command("eval")
def eval_(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint (.pt) or run folder.")],
    data: Annotated[Path, typer.Option("--data", help="Labels to evaluate on.")],
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
) -> None:
    """Score a model on labelled data: table, eval.json, PCK curve, worst predictions."""
    from keypointer.commands.eval import evaluate_command

    evaluate_command(
        checkpoint, data, out, format=format, images=images, alpha=alpha, pcutoff=pcutoff,
        batch_size=batch_size, flip=flip, device=device,
    )  # fmt: skip


@app.command()
def predict(
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
    ] = 0.3,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 16,
    draw: Annotated[
        bool, typer.Option("--draw/--no-draw", help="Write drawn images and videos.")
    ] = True,
    box_threshold: Annotated[
        float, typer.Option("--box-threshold", help="Skip boxes scoring below this.")
    ] = 0.0,
    device: DeviceOpt = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar or summary.")] = False,
) -> None:
    """Predict keypoints: COCO results JSON, DeepLabCut-style CSV, drawn images/videos."""
    from keypointer.commands.predict import predict_command

    predict_command(
        model, inputs, out, boxes=boxes, flip=flip, threshold=threshold, batch_size=batch_size,
        draw=draw, device=device, quiet=quiet, box_threshold=box_threshold,
    )  # fmt: skip


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint (.pt) or run folder.")],
    format: Annotated[str, typer.Option("--format", help="onnx")] = "onnx",
    out: Annotated[
        Path | None, typer.Option("--out", help="Output file (default: next to the checkpoint).")
    ] = None,
    flip: Annotated[
        bool, typer.Option("--flip", help="Put flip test-time augmentation in the graph.")
    ] = False,
) -> None:
    """Export to one ONNX file with decoding inside; checked against PyTorch after export."""
    from keypointer.commands.export import export_command

    export_command(checkpoint, format=format, out=out, flip=flip)


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
    tune_malloc()  # before torch allocates: training steps fault far less; see _malloc.py
    try:
        app(args=argv)
    except KeypointerError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
