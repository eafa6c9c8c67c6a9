"""Output paths, checked before the work starts: the one output-target policy.

Every command checks where it will write before loading data or running a model, so a wrong
``--out`` ends at once with one :class:`~keypointer.errors.DataError` naming it, instead of a
traceback after minutes of work. The policy (:func:`check_target`):

- a path is compared by identity, never by spelling: :func:`canonical` resolves symlinks and
  ``..`` (also through folders that do not exist yet), :func:`same_file` also knows hard links;
- a file the command reads is never written over, not even with ``--overwrite``;
- an existing file is written over only with ``--overwrite``;
- a folder where a file should go is refused up front.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from keypointer.errors import DataError


def canonical(path: str | Path) -> Path:
    """``path`` absolute, with symlinks and ``..`` resolved the way the OS will once the
    missing folders exist (``nosub/../a.json`` is ``a.json``)."""
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` name one file: the same inode when both exist (hard links,
    case-insensitive file systems), else the same canonical path."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return canonical(a) == canonical(b)


def check_target(
    path: str | Path,
    inputs: Iterable[str | Path] = (),
    overwrite: bool = False,
    example: str = "",
) -> Path:
    """Refuse to write the file ``path`` when it is one of ``inputs`` (always), an existing
    file (unless ``overwrite``), a folder, or cannot be created; returns its canonical path,
    the one to write (so a later spelling trick cannot point elsewhere)."""
    target = canonical(path)
    with _os_refusals(Path(path)):
        for src in inputs:
            if same_file(target, src):
                raise DataError(f"refusing to overwrite an input file ({src})", path)
        if target.is_dir():
            hint = f"; give the file to write, e.g. {Path(path) / example}" if example else ""
            raise DataError(f"is a folder{hint}", path)
        if target.exists() and not overwrite:
            raise DataError("the output file exists; pass --overwrite to replace it", path)
        if target.exists() and not os.access(target, os.W_OK):
            raise DataError("cannot overwrite this file: permission denied", path)
        _check_parent(target.parent)
    return target


def check_targets(
    paths: Iterable[str | Path], inputs: Iterable[str | Path] = (), overwrite: bool = False
) -> list[Path]:
    """:func:`check_target` for every file a run plans to write (each once), against every
    file it reads; an input is compared only with the targets that exist and share its inode
    (a target that does not exist yet is no input), so 10,000 images against 10,000 outputs
    take 20,000 ``stat`` calls, not 10**8. Returns the canonical paths."""
    by_inode: dict[tuple[int, int], list[Path]] = {}
    for src in inputs:
        with contextlib.suppress(OSError):
            st = os.stat(src)
            by_inode.setdefault((st.st_dev, st.st_ino), []).append(Path(src))
    checked: list[Path] = []
    seen: set[Path] = set()
    for path in paths:
        if (key := canonical(path)) in seen:
            continue
        seen.add(key)
        try:
            st = os.stat(path)
            same = by_inode.get((st.st_dev, st.st_ino), [])
        except OSError:
            same = []
        checked.append(check_target(path, inputs=same, overwrite=overwrite))
    return checked


def is_inside(path: str | Path, folder: str | Path) -> bool:
    """Whether ``path`` is ``folder`` or lies under it, by canonical path (symlinks, ``..``)."""
    path, folder = canonical(path), canonical(folder)
    return path == folder or folder in path.parents


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
