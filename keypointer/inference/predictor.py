"""A trained model ready for plain images: what ``keypointer.load(path)`` returns.

    predictor = keypointer.load("runs/x/best.pt")         # or an exported .onnx file
    keypoints, scores = predictor.predict(rgb)           # (K, 2) in rgb's own pixels, (K,)

The wrapped :class:`~keypointer.models.model.KeypointModel` stays a plain ``nn.Module``
(tensors in, tensors out); reading, letterboxing, cropping and mapping back live here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from keypointer.config import Config, from_dict
from keypointer.data.images import read_image
from keypointer.export.onnx_model import OnnxModel
from keypointer.inference.pipeline import Pipeline, Poses, load_pipeline
from keypointer.inference.runners import TorchRunner, as_runner
from keypointer.skeleton import Skeleton

ImageLike = np.ndarray | str | Path  # an image array, or the path of an image file


class Predictor:
    """Keypoints in the pixels of RGB uint8 images of any size, from a PyTorch checkpoint or an
    ONNX export (like Ultralytics' ``Model``: load once, call ``predict`` on images).

    It runs the :class:`~keypointer.inference.pipeline.Pipeline` that ``keypointer predict``
    runs, so both give the same answer for the same image. ``model`` is the
    :class:`~keypointer.models.model.KeypointModel` (or the
    :class:`~keypointer.export.OnnxModel`); ``skeleton`` names the keypoints; ``config`` is
    the resolved training config (defaults for an ONNX file exported without one).
    """

    def __init__(self, model: nn.Module | OnnxModel, device: str | torch.device | None = None):
        """From a model in memory: a KeypointModel (with ``.skeleton``) or an OnnxModel; a
        single-stage pipeline (a two-stage model comes with :meth:`load`)."""
        pose = TorchRunner(model, device) if device is not None else as_runner(model)
        config = getattr(getattr(pose, "model", None), "config", None)
        self.pipeline = Pipeline(pose, config=config if isinstance(config, Config) else None)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> Predictor:
        """A predictor of a trained model.

        Args:
            path: a checkpoint (``.pt`` or run folder, loaded with ``weights_only=True``) or
                an exported ``.onnx`` file (with its ``.locator.onnx`` for a two-stage model).
            device: where a PyTorch model runs.

        Returns:
            The :class:`Predictor`.
        """
        predictor = cls.__new__(cls)
        predictor.pipeline = load_pipeline(path, device)
        return predictor

    @property
    def model(self) -> nn.Module | OnnxModel:
        pose = self.pipeline.pose
        return pose.model if isinstance(pose, TorchRunner) else pose

    @property
    def skeleton(self) -> Skeleton:
        return self.pipeline.skeleton

    @property
    def config(self) -> Config | None:
        if self.pipeline.config is not None:
            return self.pipeline.config
        config = getattr(self.model, "config", None)
        if isinstance(config, dict):  # an ONNX file's metadata
            return from_dict(config, source="ONNX metadata")
        return config

    @property
    def input_size(self) -> tuple[int, int]:
        """The model's input (width, height)."""
        return self.pipeline.input_size

    def predict(
        self,
        images: ImageLike | Sequence[ImageLike],
        boxes: Sequence[Sequence[float]] | None = None,
        flip: bool = False,
        max_instances: int | None = None,
    ) -> tuple[Poses, Poses]:
        """Keypoints and scores for one image or a list (or tuple) of them.

        An image is a uint8 array: (H, W, 3) RGB, (H, W) or (H, W, 1) grayscale (made RGB),
        or (H, W, 4) RGBA (alpha dropped); or the path (str or Path) of an image file, read
        as :func:`keypointer.data.images.read_image` reads it (EXIF orientation applied). A
        4-D array (N, H, W, C) is a list of N images. An empty image (0 pixels in a
        dimension) raises ValueError naming it; a file that cannot be read, DataError.

        Each image is letterboxed whole into the model's input, or, with ``boxes`` (one image
        only), cropped to each COCO (x, y, w, h) box. A model trained on several instances
        per image finds them itself (its locator) in every image, as ``predict`` does.
        ``flip``: flip test-time augmentation. ``max_instances``: the known number of
        animals, as ``predict --max-instances`` takes it: at most that many per image, the
        best, and a two-stage model looks again in an image with fewer (None: as loaded).

        Returns:
            a single-instance model: one image: (K, 2) keypoints in its own pixels and (K,)
            scores (with boxes: (M, K, 2) and (M, K)); a list: (N, K, 2) and (N, K), so an
            empty list gives (0, K, 2) and (0, K). A two-stage model: one image: (M, K, 2)
            and (M, K), the M instances found (M may be 0); a list: a list of those, one
            per image.
        """
        single, batch = as_images(images)
        pipe = self.pipeline
        if flip != pipe.flip:
            pipe = pipe.with_options(flip=flip)
        if max_instances is not None:
            pipe = pipe.with_options(max_instances=max_instances)
        if single:
            return pipe.predict(batch[0], boxes)
        if boxes is not None:
            raise ValueError("boxes are for one image; call once per image")
        return pipe.predict(batch)

    __call__ = predict


def as_images(images: object) -> tuple[bool, list[np.ndarray]]:
    """Images as :meth:`Predictor.predict` takes them, made RGB arrays.

    Args:
        images: one image: a path, or an array (or what ``np.asarray`` makes one of: a PIL
            image) of 2 dimensions, or of 3 whose last is 1, 3 or 4 channels. A list: any
            other iterable (of arrays or paths), or a 4-D array.

    Returns:
        (whether ``images`` is one image, the images as (H, W, 3) uint8 RGB arrays). Raises
        ValueError naming the image ("the image", or "image i of the list") when it is empty
        or not an image, DataError for an unreadable file.
    """
    if isinstance(images, str | Path):
        return True, [read_image(images)]
    if not isinstance(images, np.ndarray | list | tuple) and hasattr(images, "__array__"):
        images = np.asarray(images)  # a PIL image, a CPU tensor
    if isinstance(images, np.ndarray) and images.ndim in (2, 3) and images.dtype != object:
        if images.ndim == 2 or images.shape[-1] in (1, 3, 4):
            return True, [_to_rgb(images, "the image")]
    if isinstance(images, np.ndarray) and images.ndim != 4 and images.dtype != object:
        raise ValueError(
            f"expected an image (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), a list of them or "
            f"an (N, H, W, C) array; got an array of shape {images.shape}"
        )
    if not isinstance(images, np.ndarray | Iterable) or isinstance(images, bytes):
        raise ValueError(
            f"expected an image array, an image file's path or a list of them; got "
            f"{type(images).__name__}"
        )
    out = []
    for i, image in enumerate(images):
        name = f"image {i} of the list"
        out.append(read_image(image) if isinstance(image, str | Path) else _to_rgb(image, name))
    return False, out


def _to_rgb(image: object, name: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB from gray (H, W) or (H, W, 1), RGB, or RGBA (H, W, 4)."""
    array = np.asarray(image)
    shape = array.shape
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"{name}: expected (H, W) gray, (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA, got "
            f"shape {shape}"
        )
    if array.dtype != np.uint8:
        raise ValueError(f"{name}: expected uint8 pixels (0-255), got {array.dtype}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} is empty: {shape[1]}x{shape[0]} px")
    if array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array[..., :3])
