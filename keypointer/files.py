"""Atomic file writes: a temporary file beside the target, then a rename over it.

A failure (disk full, Ctrl-C, a kill) leaves either the old file or the new one, never half
of the new one. Temporary files are named ``.<name>.<random>.tmp`` and get the mode
``open()`` would give (the umask's), not ``tempfile``'s private 0600.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def plain_file_mode() -> int:
    """The mode ``open()`` gives a new file (0o666 less the umask), for files that are made
    through ``tempfile.mkstemp`` (0600) and renamed into place, like every other output."""
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: str | Path, durable: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` to write; renamed over ``path`` when the block ends
    without an error, deleted otherwise. ``durable``: fsync the file and its folder, so the
    rename survives a power cut (checkpoints)."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, plain_file_mode())
        os.close(fd)
        yield tmp
        if durable:
            _fsync(tmp, os.O_RDONLY)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if durable:
        _fsync(path.parent, os.O_RDONLY)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _fsync(path: Path, flags: int) -> None:
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
