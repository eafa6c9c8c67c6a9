"""The one progress bar of the commands: a bar, done/total and the time left (ETA), on
standard error so that piped output stays clean."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

PROGRESS_FROM = 20  # images or frames; fewer run without a progress bar
Item = TypeVar("Item")


@contextlib.contextmanager
def progress(
    total: int, quiet: bool = False, label: str = "predicting"
) -> Iterator[Callable[[], None]]:
    """Yields ``advance()``, to call once per item done; nothing is shown when ``quiet`` or
    for fewer than :data:`PROGRESS_FROM` items (over before a bar would help)."""
    if quiet or total < PROGRESS_FROM:
        yield lambda: None
        return
    columns = (label, BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(label, total=total or None)
        yield lambda: bar.advance(task)


def counted(
    items: Iterable[Item], total: int, quiet: bool = False, label: str = "predicting"
) -> Iterator[Item]:
    """``items``, unchanged, with the :func:`progress` bar advanced past each one once the
    consumer is done with it (the bar ends when the items do, or the consumer stops)."""
    with progress(total, quiet, label) as advance:
        for item in items:
            yield item
            advance()
