"""Fixtures of the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """Eight 64x64 synthetic images (COCO JSON path), made once per test module."""
    from keypointer.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("synth"), num_images=8, seed=3, size=64)
