"""``keypointer synth``: render the built-in synthetic dataset."""

from __future__ import annotations

from pathlib import Path

from keypointer.data.synthetic import generate


def synth_command(out: Path, num_images: int = 500, seed: int = 0, size: int = 128) -> Path:
    """Render ``num_images`` images and their COCO labels into ``out``; say what was written."""
    path = generate(out, num_images=num_images, seed=seed, size=size)
    print(f"wrote {num_images} images and {path}")
    return path
