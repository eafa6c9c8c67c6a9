"""keypointer: train, evaluate and deploy 2D keypoint detectors on your own labelled images.

Python API::

    import keypointer
    cfg = keypointer.load_config("configs/default.yaml", ["data.path=labels.json"])
    run = keypointer.train(cfg)                  # -> Run (folder, metrics, best checkpoint)
    model = keypointer.load(run.best)            # -> KeypointModel
    keypoints, scores = model.predict(images)    # (N, K, 2) input pixels, (N, K)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keypointer._malloc import tune_malloc

__version__ = "0.1.0"

tune_malloc()  # before torch allocates anything; see _malloc.py

if TYPE_CHECKING:
    from keypointer.config import Config
    from keypointer.engine.train import Run
    from keypointer.models.model import KeypointModel


def train(config: Config) -> Run:
    """Train a model; see :func:`keypointer.engine.train.train`."""
    from keypointer.engine.train import train as _train

    return _train(config)


def load(checkpoint: Any, device: str = "cpu") -> KeypointModel:
    """Load a trained model from a checkpoint file (``weights_only=True``)."""
    from keypointer.engine.checkpoint import load_model

    return load_model(checkpoint, device=device)


def load_config(path: Any = None, overrides: list[str] | None = None) -> Config:
    from keypointer.config import load_config as _load

    return _load(path, overrides)
