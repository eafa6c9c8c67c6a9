"""An exported ONNX file in ONNX Runtime, usable where a KeypointModel or a runner is."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from keypointer.config import BOX_MARGIN
from keypointer.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from keypointer.errors import CheckpointError, ConfigError
from keypointer.skeleton import Skeleton

FLIP_GAP = "flip_gap"
"""The third output of a graph exported with flip TTA (exports before it had two)."""


class OnnxModel:
    """An exported model in ONNX Runtime (CPU), with the same uses as a KeypointModel.

    ``predict(images)`` takes what ``KeypointModel.predict`` takes (normalised (N, 3, H, W),
    tensor or array) and returns torch tensors; ``run(images)`` takes the graph's own input
    (0-255 float) and returns numpy arrays; calling it on uint8 crops (N, H, W, 3) is the
    runner protocol of :mod:`keypointer.inference.runners`. ``skeleton``, ``input_size``,
    ``config`` and ``flip_in_graph`` come from the file's metadata.

    Flip TTA is in the graph or nowhere: a graph exported with ``flip`` always flips (asked
    or not; ``flip_in_graph`` says so), the same computation as PyTorch's flip TTA, and
    (exported since keypointer had the ``flip_gap`` output) gives the flip gap too. A graph
    exported without it outputs decoded keypoints only, from which PyTorch's flip TTA (heatmap
    averaging) cannot be had: asking it to flip raises :class:`ConfigError`.
    """

    def __init__(self, path: str | Path, threads: int | None = None, spin: bool | None = None):
        """``threads``: intra-op threads (None: ORT's choice); ``spin`` False: idle threads
        sleep instead of spin-waiting (better on a machine shared with other jobs)."""
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"ONNX model not found: {self.path}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = int(threads)
        if spin is not None:
            options.add_session_config_entry("session.intra_op.allow_spinning", str(int(spin)))
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
            meta = self.session.get_modelmeta().custom_metadata_map
            self.skeleton = Skeleton.from_dict(json.loads(meta["skeleton"]))
            self.input_size = tuple(int(v) for v in json.loads(meta["input_size"]))
            self.flip_in_graph = bool(json.loads(meta.get("flip_tta", "false")))
            # a two-stage export's pose file names its locator (None: single-stage, or older)
            self.locator_file = meta.get("locator_file")
            config = json.loads(meta.get("config", "null"))
            self._gap_output = FLIP_GAP in {o.name for o in self.session.get_outputs()}
        except (KeyError, ValueError) as err:
            raise CheckpointError(
                f"{self.path}: not a keypointer ONNX export (metadata: {err})"
            ) from None
        except Exception as err:  # onnxruntime raises its own exception types
            raise CheckpointError(f"{self.path}: not a readable ONNX model ({err})") from None
        self.config = config
        self.margin = float(((config or {}).get("augment") or {}).get("box_margin", BOX_MARGIN))

    @property
    def has_flip_gap(self) -> bool:
        """Whether :meth:`run_with_gap` gives a flip gap: the graph flips and outputs it (not
        so in exports older than that output), and the skeleton has flip pairs."""
        return self._gap_output and bool(self.skeleton.flip_pairs)

    def check_flip(self, flip: bool) -> None:
        """Raise :class:`ConfigError` when ``flip`` is asked of a graph exported without it
        (callable up front, before any work)."""
        if flip and not self.flip_in_graph:
            raise ConfigError(
                f"{self.path} was exported without flip test-time augmentation; export it with "
                "`keypointer export --flip` to flip in ONNX (the same computation as PyTorch's "
                "--flip)"
            )

    def run_graph(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """0-255 float RGB (N, 3, H, W) -> keypoints (N, K, 2) input px, scores (N, K), and
        the graph's flip gap (N, K) input px (None when it has no such output)."""
        x = np.ascontiguousarray(images, dtype=np.float32)
        keypoints, scores, *gap = self.session.run(None, {"images": x})
        return keypoints, scores, (gap[0] if self._gap_output else None)

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """0-255 float RGB (N, 3, H, W) -> keypoints (N, K, 2) input px, scores (N, K)."""
        keypoints, scores, _ = self.run_graph(images)
        return keypoints, scores

    def __call__(self, crops: np.ndarray, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """uint8 RGB crops (N, H, W, 3) -> keypoints (N, K, 2) input px, scores (N, K).

        Flip TTA when the graph has it, ``flip`` or not; ``flip`` asked of a graph without it
        raises :class:`ConfigError` (see :meth:`check_flip`).
        """
        keypoints, scores, _ = self.run_with_gap(crops, flip)
        return keypoints, scores

    def run_with_gap(
        self, crops: np.ndarray, flip: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Like calling it, plus the flip gap (N, K): input pixels between the keypoints of
        the crops alone and those of their mirror images alone, mirrored back, as PyTorch's
        ``predict_batch_with_gap`` measures it. Given whenever the graph flipped (``flip``
        asked or not) and :attr:`has_flip_gap`; else None."""
        self.check_flip(flip)
        x = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)
        keypoints, scores, gap = self.run_graph(x)
        return keypoints, scores, (gap if self.has_flip_gap else None)

    def predict(self, images: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Like ``KeypointModel.predict``.

        Args:
            images: normalised (N, 3, H, W), or one (3, H, W) image.

        Returns:
            Keypoints (N, K, 2) input px and scores (N, K), as tensors.
        """
        x = images.detach().cpu().float().numpy() if isinstance(images, torch.Tensor) else images
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        std = np.array(IMAGENET_STD, np.float32).reshape(1, 3, 1, 1) * 255.0
        mean = np.array(IMAGENET_MEAN, np.float32).reshape(1, 3, 1, 1) * 255.0
        kp, scores = self.run(x * std + mean)
        return torch.from_numpy(kp), torch.from_numpy(scores)
