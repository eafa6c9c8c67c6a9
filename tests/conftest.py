"""Shared fixtures. Real data lives in ../shared/data/ and tests using it skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

# Torch's OpenMP threads busy-wait by default; on a 2-core machine shared by pytest and the
# subprocesses it starts, that stalls steps by up to 100x. Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
from helpers import TINY_LOCATOR, tiny_config

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_report_header(config) -> list[str]:
    """The CPU kernels and precision this run uses (``make test-dispatch`` lowers them): where
    a test fails on one machine only, these lines differ."""
    import cv2
    import torch
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    from keypointer.device import resolve_amp

    amp = resolve_amp("auto", torch.device("cpu"))
    numpy = [g for g in __cpu_dispatch__ if __cpu_features__.get(g)]
    return [
        f"cpu kernels: torch {torch.backends.cpu.get_cpu_capability()}, numpy "
        f"{' '.join(numpy) or 'baseline'}, train.amp=auto on cpu: {amp or 'float32'}",
        f"opencv: {cv2.getCPUFeaturesLine()} (?: off)",
    ]


@pytest.fixture(scope="session", autouse=True)
def training_curves_not_rendered():
    """Training redraws curves.png after every validated epoch, and matplotlib's layout and
    rendering are most of a tiny in-process run's time (the figures are checked in
    test_viz.py). In this process the figure is still built from the history (a history it
    cannot draw still fails), and curves.png is a 1x1 PNG. A test that needs training's own
    curves.png drawn asks for the ``real_training_curves`` fixture. Trainings run as
    subprocesses draw it as usual."""
    import cv2
    import numpy as np

    from keypointer.training import records
    from keypointer.viz import curves_figure

    png = cv2.imencode(".png", np.zeros((1, 1), np.uint8))[1].tobytes()

    def build_only(metrics, out_png) -> Path:
        curves_figure(metrics)
        path = Path(out_png)
        path.write_bytes(png)
        return path

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(records, "plot_curves", build_only)
        yield


@pytest.fixture
def real_training_curves(monkeypatch) -> None:
    """Training draws curves.png for real in this test (see training_curves_not_rendered)."""
    from keypointer.training import records
    from keypointer.viz import plot_curves

    monkeypatch.setattr(records, "plot_curves", plot_curves)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> Path:
    """Eight 64x64 synthetic images (COCO JSON path), made once per test session."""
    from keypointer.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("synth"), num_images=8, seed=0, size=64)


@pytest.fixture(scope="session")
def checkpoint(synth, tmp_path_factory) -> Path:
    """best.pt of a one-epoch 64x64 run on ``synth``, trained once per test session."""
    from keypointer.training.loop import train

    return train(tiny_config(synth, tmp_path_factory.mktemp("runs"))).best


@pytest.fixture(scope="session")
def model(checkpoint):
    from keypointer.checkpoint import load_model

    return load_model(checkpoint)


@pytest.fixture(scope="session")
def two_stage(tmp_path_factory) -> tuple[Path, Path]:
    """best.pt of a tiny two-stage run (pose model + locator) on synthetic crowds (96 px, 2-3
    figures, 6 images), and its COCO labels; trained once per test session."""
    from keypointer.data.synthetic import generate
    from keypointer.training.loop import train

    root = tmp_path_factory.mktemp("two_stage")
    data = generate(root / "data", num_images=6, seed=1, size=96, instances=(2, 3))
    # every located candidate is kept (threshold 0), up to four per image
    cfg = tiny_config(
        data,
        root,
        *TINY_LOCATOR,
        "locator.score_threshold=0.0",
        "locator.max_instances=4",
        epochs=2,
    )
    return train(cfg).best, data
