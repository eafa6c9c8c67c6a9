"""Output paths, checked before the work starts.

``predict``, ``eval`` and ``export`` check where they will write before loading data or
running a model, so a wrong ``--out`` ends at once with one :class:`~keypointer.errors.DataError`
naming it, instead of a traceback after minutes of work.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from keypointer.errors import DataError


def check_output_dir(path: str | Path) -> None:
    """Raise unless ``path`` is a folder, or a folder that can be created, and writable."""
    path = Path(path)
    with _os_refusals(path):
        if path.exists() and not path.is_dir():
            raise DataError("is a file, not a folder (the outputs go in a folder)", path)
        _check_parent(path)


def check_output_file(path: str | Path, example: str) -> None:
    """Raise unless ``path`` can be written as a file (``example``: a file name to suggest)."""
    path = Path(path)
    with _os_refusals(path):
        if path.is_dir():
            raise DataError(f"is a folder; give the file to write, e.g. {path / example}", path)
        if path.exists() and not os.access(path, os.W_OK):
            raise DataError("cannot overwrite this file: permission denied", path)
        _check_parent(path.parent)


@contextlib.contextmanager
def _os_refusals(path: Path) -> Iterator[None]:
    """The OS's own refusals of a path (a name too long, ...) as a DataError, not a traceback."""
    try:
        yield
    except OSError as err:
        raise DataError(f"cannot write here: {err.strerror or err}", path) from None


def _check_parent(folder: Path) -> None:
    """``folder`` exists, or its nearest existing ancestor is a writable folder."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DataError(f"cannot create a folder inside {existing}: it is a file", folder)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DataError(f"cannot write in {existing}: permission denied", folder)


def make_output_dir(path: str | Path) -> Path | None:
    """Create ``path`` with its parents; returns the topmost folder this created (None when
    ``path`` existed), for :func:`remove_created` to take away after a failure."""
    path = Path(path)
    top = None
    for folder in (path, *path.parents):
        if folder.exists():
            break
        top = folder
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create this folder: {err.strerror or err}", path) from None
    return top


def remove_created(top: Path | None) -> None:
    """Remove a folder :func:`make_output_dir` created (all of it: it holds only our files)."""
    if top is not None:
        shutil.rmtree(top, ignore_errors=True)
