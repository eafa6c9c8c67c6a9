"""Run folders: ``runs/<name>/<YYYY-MM-DD-HH-MM>/``, the seed notes' time format."""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path

from keypointer.errors import ConfigError

TIME_FORMAT = "%Y-%m-%d-%H-%M"
MAX_RUNS_PER_MINUTE = 10_000  # suffixes tried before a full run folder is reported


def new_run_dir(root: str | Path, name: str, now: datetime | None = None) -> Path:
    """Create a fresh run folder; a ``-2``, ``-3`` ... suffix avoids collisions.

    Args:
        root: ``run.root``.
        name: ``run.name`` (characters unsafe in a file name become ``_``).
        now: the time to name it by (default: now).

    Returns:
        The new, empty folder ``<root>/<name>/<YYYY-MM-DD-HH-MM>[-n]``.

    Raises:
        ConfigError: every suffix of this minute is taken.
    """
    safe = re.sub(r"[^\w.-]+", "_", name).strip("._") or "run"
    base = Path(root) / safe / (now or datetime.now()).strftime(TIME_FORMAT)
    for n in range(1, MAX_RUNS_PER_MINUTE):
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        # In the loop: a run failing next door may just have pruned the empty parents.
        base.parent.mkdir(parents=True, exist_ok=True)
        try:
            candidate.mkdir()  # atomic: two runs starting the same minute get different folders
            return candidate
        except (FileExistsError, FileNotFoundError):
            continue
    raise ConfigError(
        f"run.root: {base.parent} already holds {MAX_RUNS_PER_MINUTE - 1} runs started at "
        f"{base.name}; choose another run.name or run.root, or remove old runs"
    )


def remove_run_dir(run_dir: Path, root: str | Path) -> None:
    """Delete a run folder that holds nothing to resume, then ``<root>/<name>`` and ``root``
    when that leaves them empty: a run that fails before its first checkpoint leaves no trace.

    Args:
        run_dir: the run folder.
        root: ``run.root``.
    """
    shutil.rmtree(run_dir, ignore_errors=True)
    for folder in (run_dir.parent, Path(root)):
        try:
            folder.rmdir()  # only an empty folder goes; other runs' folders stay
        except OSError:
            return
