"""Atomic file writes: a temporary file beside the target, then a rename over it.

A failure (disk full, Ctrl-C, a kill) leaves either the old file or the new one, never half
of the new one. Temporary files are named ``.<name>.<random>.tmp`` and get the mode
``open()`` would give (the umask's), not ``tempfile``'s private 0600.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from keypointer.errors import DataError


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


def write_h5_table(
    path: str | Path, values: np.ndarray, columns: Sequence[tuple[str, ...]], levels: Sequence[str]
) -> Path:
    """(F, M) ``values`` as DeepLabCut's ``.h5`` table (pandas + tables: the h5 extra), one row
    a frame, atomically: the M ``columns`` are tuples of ``levels`` (scorer, [individuals,]
    bodyparts, coords). DataError naming ``path`` when pandas or tables is missing."""
    path = Path(path)
    try:
        import pandas as pd  # optional: the h5 extra
    except ImportError:
        raise DataError(
            "writing .h5 needs pandas and tables: pip install 'keypointer[h5]'", path
        ) from None
    frame = pd.DataFrame(
        values,
        index=np.arange(len(values)),
        columns=pd.MultiIndex.from_tuples(list(columns), names=list(levels)),
    )
    with atomic_path(path) as tmp:
        try:
            frame.to_hdf(tmp, key="df_with_missing", mode="w", format="table")
        except ImportError:
            raise DataError(
                "writing .h5 needs tables: pip install 'keypointer[h5]'", path
            ) from None
    return path
