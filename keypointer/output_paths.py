"""Output paths, checked before the work starts: the one output-target policy.

Every command checks where it will write before loading data or running a model, so a wrong
``--out`` ends at once with one :class:`~keypointer.errors.DataError` naming it, instead of a
traceback after minutes of work. The policy (:func:`check_target`):

- a path is compared by identity, never by spelling: :func:`canonical` resolves symlinks and
  ``..`` (also through folders that do not exist yet), :func:`same_file` also knows hard links;
- a file the command reads is never written over, not even with ``--overwrite``;
- an existing file is written over only with ``--overwrite``;
- a folder where a file should go is refused up front;
- a command that fills a whole folder (convert, merge and suggest to a folder) takes a new
  or empty one (:func:`check_new_dir`), and a failed run leaves nothing in it
  (:func:`filling_dir`);
- an evaluation without ``--out`` numbers its default folder on rather than write over an
  earlier one (:func:`output_dir_for`).
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


def check_new_dir(
    path: str | Path, what: str = "the output folder", shown: Path | None = None
) -> None:
    """Raise unless ``path`` is a folder that does not exist yet or is empty (``what``: how
    the message names it; ``shown``: the spelling to name, default ``path``), and can be
    written: what a command that fills a whole folder writes into."""
    path = Path(path)
    check_output_dir(path)
    with _os_refusals(path):
        if path.is_dir() and any(path.iterdir()):
            raise DataError(f"{what} exists and is not empty; choose a new one", shown or path)


def output_dir_for(
    files: Iterable[str],
    out: str | Path | None,
    default: Path,
    inputs: Iterable[str | Path] = (),
    overwrite: bool = False,
) -> Path:
    """The folder a command writes its ``files`` (names) to, checked before any work.

    ``out`` given: an existing file of those names is refused unless ``overwrite``, an input
    always. ``out`` None: ``default``, numbered on (``name-2``, ``name-3``, ...) while it
    holds any of ``files``, so an earlier run's files are never written over."""
    names = list(files)
    if out is None:
        out, n = default, 1
        while any((out / name).exists() for name in names):
            n += 1
            out = default.with_name(f"{default.name}-{n}")
    out = Path(out)
    check_output_dir(out)
    read = list(inputs)
    for name in names:
        check_target(out / name, inputs=read, overwrite=overwrite)
    return out


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


@contextlib.contextmanager
def filling_dir(path: str | Path) -> Iterator[Path]:
    """Create the new or empty folder ``path`` (see :func:`check_new_dir`) for the block to
    fill; when the block fails, take away what it wrote: the folders this created, or (the
    folder was there, empty) everything now in it. No half-written output is left."""
    path = Path(path)
    top = make_output_dir(path)
    try:
        yield path
    except BaseException:
        if top is not None:
            remove_created(top)
        else:
            for child in path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise
