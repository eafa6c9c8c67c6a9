"""A trained model ready for plain images: what ``keypointer.load(path)`` returns.

    predictor = keypointer.load("runs/x/best.pt")         # or an exported .onnx file
    keypoints, scores = predictor.predict(rgb)           # (K, 2) in rgb's own pixels, (K,)

The wrapped :class:`~keypointer.models.model.KeypointModel` stays a plain ``nn.Module``
(tensors in, tensors out); reading, letterboxing, cropping and mapping back live here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from keypointer.config import Config, from_dict
from keypointer.inference.runners import (
    TorchRunner,
    as_runner,
    load_runner,
    predict_image,
    predict_located,
)
from keypointer.skeleton import Skeleton


class Predictor:
    """Keypoints in the pixels of RGB uint8 images of any size, from a PyTorch checkpoint or an
    ONNX export (like Ultralytics' ``Model``: load once, call ``predict`` on images).

    ``model`` is the :class:`~keypointer.models.model.KeypointModel` (or the
    :class:`~keypointer.export.OnnxModel`); ``skeleton`` names the keypoints; ``config`` is
    the resolved training config (None for an ONNX file exported without one).
    """

    def __init__(self, model: nn.Module | Any, device: str | torch.device | None = None):
        self.runner = TorchRunner(model, device) if device is not None else as_runner(model)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> Predictor:
        """From a checkpoint (``.pt`` or run folder, loaded with ``weights_only=True``) or an
        exported ``.onnx`` file."""
        predictor = cls.__new__(cls)
        predictor.runner = load_runner(path, device)
        return predictor

    @property
    def model(self) -> nn.Module | Any:
        return self.runner.model if isinstance(self.runner, TorchRunner) else self.runner

    @property
    def skeleton(self) -> Skeleton:
        return self.runner.skeleton

    @property
    def config(self) -> Config | None:
        config = getattr(self.model, "config", None)
        if isinstance(config, dict):  # an ONNX file's metadata
            return from_dict(config, source="ONNX metadata")
        return config

    @property
    def input_size(self) -> tuple[int, int]:
        """The model's input (width, height)."""
        return tuple(self.runner.input_size)

    def predict(
        self,
        images: np.ndarray | Sequence[np.ndarray],
        boxes: Sequence[Sequence[float]] | None = None,
        flip: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints and scores for one (H, W, 3) uint8 RGB image or a list of them.

        Each image is letterboxed whole into the model's input, or, with ``boxes`` (one image
        only), cropped to each COCO (x, y, w, h) box. A model trained on several instances
        per image finds the boxes itself (its locator) when none are given.
        ``flip``: flip test-time augmentation.

        Returns:
            one image: (K, 2) keypoints in its own pixels and (K,) scores (with boxes, or a
            locator: (M, K, 2) and (M, K)); a list: (N, K, 2) and (N, K).
        """
        single = isinstance(images, np.ndarray) and images.ndim == 3
        if boxes is None and single and getattr(self.runner, "locator", None) is not None:
            _, found = predict_located(self.runner, images, flip)
            return found.keypoints, found.scores
        return predict_image(self.runner, images, boxes, flip)

    __call__ = predict
