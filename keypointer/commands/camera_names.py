"""The ``--names`` option of ``calibrate`` and ``triangulate``: camera names, one per file."""

from __future__ import annotations

from collections.abc import Sequence


def split_names(names: Sequence[str] | None) -> list[str]:
    """``--names``, given as ``A,B,C`` or repeated (``--names A --names B``), as one list."""
    return [part.strip() for item in names or () for part in str(item).split(",") if part.strip()]
