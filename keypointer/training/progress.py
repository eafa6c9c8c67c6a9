"""Progress display: a rich bar with loss, lr, samples/s and ETA, or one line per epoch when quiet."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainProgress:
    """One bar for the whole run (ETA covers all remaining epochs)."""

    def __init__(
        self, total_steps: int, done_steps: int = 0, quiet: bool = False, enabled: bool = True
    ):
        self.quiet = quiet or not enabled
        self.enabled = enabled
        self.console = Console(stderr=True)
        self._bar: Progress | None = None
        if not self.quiet:
            self._bar = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4g}  lr {task.fields[lr]:.2e}"),
                TextColumn("{task.fields[speed]:.0f} samples/s"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._task = self._bar.add_task(
                "train",
                total=total_steps,
                completed=done_steps,
                epoch="-",
                loss=float("nan"),
                lr=0.0,
                speed=0.0,
            )
            self._bar.start()

    def step(self, epoch: int, loss: float, lr: float, speed: float) -> None:
        """One step more on the bar, with the epoch (from 1), loss, lr and samples/s shown."""
        if self._bar is not None:
            self._bar.update(self._task, advance=1, epoch=epoch, loss=loss, lr=lr, speed=speed)

    def set_total(self, total_steps: int) -> None:
        """The run was re-planned (a time budget): the bar and its ETA follow."""
        if self._bar is not None:
            self._bar.update(self._task, total=total_steps)

    def log(self, message: str) -> None:
        """A line above the bar (stderr), on the main process only."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(message, highlight=False)
        else:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        """Stop the bar (its last state stays on screen)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
