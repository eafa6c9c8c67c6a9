"""Shared fixtures. Real data lives in ../shared/data/ and tests using it skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

# Torch's OpenMP threads busy-wait by default; on a 2-core machine shared by pytest and the
# subprocesses it starts, that stalls steps by up to 100x. Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA
