"""``keypointer convert``: labels from one format to another."""

from __future__ import annotations

from pathlib import Path

from keypointer.data.formats import convert


def convert_command(
    src: Path,
    dst: Path,
    to: str = "coco",
    format: str | None = None,
    images: Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert, then say what was written."""
    out = convert(src, dst, to=to, format=format, images=images, overwrite=overwrite)
    print(f"wrote {out}")
    return out
