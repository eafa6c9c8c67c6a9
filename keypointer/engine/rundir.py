"""Run folders: ``runs/<name>/<YYYY-MM-DD-HH-MM>/``, the seed notes' time format."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

TIME_FORMAT = "%Y-%m-%d-%H-%M"


def new_run_dir(root: str | Path, name: str, now: datetime | None = None) -> Path:
    """Create and return a fresh run folder; a ``-2``, ``-3`` ... suffix avoids collisions."""
    safe = re.sub(r"[^\w.-]+", "_", name).strip("._") or "run"
    base = Path(root) / safe / (now or datetime.now()).strftime(TIME_FORMAT)
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            candidate.mkdir()  # atomic: two runs starting the same minute get different folders
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"too many runs named {base}")
