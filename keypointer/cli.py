"""The ``keypointer`` command. Each command is a thin wrapper over a library function.

Errors the user can fix (bad labels, bad config, unreadable images) end with one
message on stderr and exit code 2; see :mod:`keypointer.errors`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from keypointer import __version__
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
    from keypointer.data.check import run_check

    run_check(path, format=format, images=images)


@app.command()
def convert(
    src: Annotated[Path, typer.Argument(help="Labels to read.")],
    dst: Annotated[
        Path, typer.Argument(help="Where to write: a .json file for coco, a folder otherwise.")
    ],
    to: Annotated[str, typer.Option("--to", help="coco | yolo | dlc")] = "coco",
    format: FormatOpt = None,
    images: ImagesOpt = None,
) -> None:
    """Convert labels from one format to another."""
    from keypointer.data.formats import convert as _convert

    out = _convert(src, dst, to=to, format=format, images=images)
    typer.echo(f"wrote {out}")


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Output folder (COCO JSON + images).")],
    num_images: Annotated[int, typer.Option("--num-images", min=1)] = 500,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    size: Annotated[int, typer.Option("--size", min=32, help="Image side in pixels.")] = 128,
) -> None:
    """Render a synthetic dataset with exactly known keypoints."""
    from keypointer.data.synthetic import generate

    path = generate(out, num_images=num_images, seed=seed, size=size)
    typer.echo(f"wrote {num_images} images and {path}")


@app.command()
def train(
    data: Annotated[Path | None, typer.Option("--data", help="Training labels.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML config file.")] = None,
    set_: SetOpt = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Run folder to continue.")] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="No progress bar; a line per epoch.")
    ] = False,
) -> None:
    """Train a keypoint model; the run goes to runs/<name>/<YYYY-MM-DD-HH-MM>/."""
    from keypointer.engine.train import train_command

    train_command(data=data, config=config, overrides=set_ or [], resume=resume, quiet=quiet)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for the data and the run.")] = Path(
        "demo"
    ),
    quiet: Annotated[bool, typer.Option("--quiet")] = False,
) -> None:
    """Synthesise data, train the default model, evaluate it and draw its predictions."""
    from keypointer.engine.demo import run_demo

    run_demo(out, quiet=quiet)


def main(argv: list[str] | None = None) -> None:
    """Entry point: turn user errors into one message and exit code 2, without a traceback.

    Usage errors (unknown options) are handled by typer itself, also with exit code 2.
    """
    try:
        app(args=argv)
    except KeypointerError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
