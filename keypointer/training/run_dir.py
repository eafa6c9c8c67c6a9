"""Run folders: ``runs/<name>/<YYYY-MM-DD-HH-MM>/``, the seed notes' time format."""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path

TIME_FORMAT = "%Y-%m-%d-%H-%M"


def new_run_dir(root: str | Path, name: str, now: datetime | None = None) -> Path:
    """Create and return a fresh run folder; a ``-2``, ``-3`` ... suffix avoids collisions."""
    safe = re.sub(r"[^\w.-]+", "_", name).strip("._") or "run"
    base = Path(root) / safe / (now or datetime.now()).strftime(TIME_FORMAT)
    for n in range(1, 10_000):
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        # In the loop: a run failing next door may just have pruned the empty parents.
        base.parent.mkdir(parents=True, exist_ok=True)
        try:
            candidate.mkdir()  # atomic: two runs starting the same minute get different folders
            return candidate
        except (FileExistsError, FileNotFoundError):
            continue
    raise RuntimeError(f"too many runs named {base}")


def remove_run_dir(run_dir: Path, root: str | Path) -> None:
    """Delete a run folder that holds nothing to resume, then ``<root>/<name>`` and ``root``
    when that leaves them empty: a run that fails before its first checkpoint leaves no trace."""
    shutil.rmtree(run_dir, ignore_errors=True)
    for folder in (run_dir.parent, Path(root)):
        try:
            folder.rmdir()  # only an empty folder goes; other runs' folders stay
        except OSError:
            return
