"""keypointer: train, evaluate and deploy 2D keypoint detectors on your own labelled images.

Python API::

    import keypointer
    cfg = keypointer.load_config(None, ["data.path=labels.json"])  # or a YAML file
    run = keypointer.train(cfg)                  # -> Run (folder, metrics, best checkpoint)
    predictor = keypointer.load(run.best)        # -> Predictor (.model, .skeleton, .config)
    keypoints, scores = predictor.predict(rgb)   # (K, 2) in rgb's own pixels, (K,)

``predict`` also takes a list of images ((N, K, 2), (N, K); an empty list gives (0, K, 2),
(0, K)), gray (H, W) and RGBA (H, W, 4) arrays, image file paths, COCO ``boxes`` for one
image, and ``flip=True`` for flip test-time augmentation. ``keypointer.load`` opens exported
``.onnx`` files too. ``predictor.model`` is the plain ``nn.Module``: normalised tensors
(N, 3, H, W) in, keypoints (N, K, 2) in input pixels and scores (N, K) out.

Importing keypointer changes no process-wide setting; ``keypointer.train`` and the CLI tune
malloc (see ``keypointer/malloc.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keypointer.version import __version__

if TYPE_CHECKING:
    from pathlib import Path

    from keypointer.config import Config
    from keypointer.inference.predictor import Predictor
    from keypointer.training.loop import Run

__all__ = ["__version__", "load", "load_config", "train"]


def train(config: Config) -> Run:
    """Train a model; see :func:`keypointer.training.loop.train`."""
    from keypointer.training import loop

    return loop.train(config)


def load(path: str | Path, device: str = "cpu") -> Predictor:
    """A :class:`~keypointer.inference.Predictor` for a checkpoint (``.pt`` or run folder,
    loaded with ``weights_only=True``) or an exported ``.onnx`` file."""
    from keypointer.inference.predictor import Predictor

    return Predictor.load(path, device=device)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """A validated config from a YAML file (None: the defaults) and ``key=value`` overrides."""
    from keypointer import config

    return config.load_config(path, overrides)
