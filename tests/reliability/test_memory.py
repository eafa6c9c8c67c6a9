"""Long runs keep a flat memory profile: the short version of benchmarks/memory.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "memory.py"


@pytest.mark.slow
def test_resident_memory_stays_flat_over_epochs():
    args = ["--epochs", "8", "--images", "16", "--size", "64", "--input", "64", "--batch", "4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread: fast on a shared 2-core machine
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    peaks = result["per_epoch_peak_mib"]
    assert len(peaks) == 8 and min(peaks) > 0
    assert result["growth"] < 0.05, peaks  # last epoch vs the first
    assert result["worst"] < 0.05, peaks
    assert result["slope_mib_per_epoch"] < 1.0, peaks  # ~4-6 MiB/epoch when figures piled up
