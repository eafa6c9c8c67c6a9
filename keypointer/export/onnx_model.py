"""An exported ONNX file in ONNX Runtime, usable where a KeypointModel or a runner is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from keypointer.config import BOX_MARGIN
from keypointer.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from keypointer.errors import CheckpointError
from keypointer.skeleton import Skeleton


class OnnxModel:
    """An exported model in ONNX Runtime (CPU), with the same uses as a KeypointModel.

    ``predict(images)`` takes what ``KeypointModel.predict`` takes (normalised (N, 3, H, W),
    tensor or array) and returns torch tensors; ``run(images)`` takes the graph's own input
    (0-255 float) and returns numpy arrays; calling it on uint8 crops (N, H, W, 3) is the
    runner protocol of :mod:`keypointer.inference.runners`. ``skeleton``, ``input_size``,
    ``config`` and ``flip_in_graph`` come from the file's metadata.
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
            config = json.loads(meta.get("config", "null"))
        except (KeyError, ValueError) as err:
            raise CheckpointError(
                f"{self.path}: not a keypointer ONNX export (metadata: {err})"
            ) from None
        except Exception as err:  # onnxruntime raises its own exception types
            raise CheckpointError(f"{self.path}: not a readable ONNX model ({err})") from None
        self.config = config
        self.margin = float(((config or {}).get("augment") or {}).get("box_margin", BOX_MARGIN))
        self._warned = False

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """0-255 float RGB (N, 3, H, W) -> keypoints (N, K, 2) input px, scores (N, K)."""
        x = np.ascontiguousarray(images, dtype=np.float32)
        keypoints, scores = self.session.run(None, {"images": x})
        return keypoints, scores

    def __call__(self, crops: np.ndarray, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """uint8 RGB crops (N, H, W, 3) -> keypoints (N, K, 2) input px, scores (N, K).

        ``flip`` on a graph exported without flip TTA runs the mirrored crops too and averages
        the decoded coordinates (export with ``--flip`` for heatmap averaging, as PyTorch does).
        """
        keypoints, scores, _ = self.run_with_gap(crops, flip)
        return keypoints, scores

    def run_with_gap(
        self, crops: np.ndarray, flip: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Like calling it, plus the flip gap (N, K): input pixels between the keypoints of
        the crops and those of their mirror images mirrored back. None without flip, without
        flip pairs, or when the graph flips inside (it returns only the average)."""
        x = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)
        if not flip or self.flip_in_graph:
            return (*self.run(x), None)
        kp, scores = self.run(np.concatenate([x, x[..., ::-1]]))
        n, index = len(x), self.skeleton.flip_index()
        mirrored = kp[n:, index].copy()
        mirrored[..., 0] = (self.input_size[0] - 1) - mirrored[..., 0]
        gap = np.linalg.norm(kp[:n] - mirrored, axis=-1) if self.skeleton.flip_pairs else None
        return (kp[:n] + mirrored) * 0.5, (scores[:n] + scores[n:, index]) * 0.5, gap

    def predict(self, images: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Like ``KeypointModel.predict``: normalised images (N, 3, H, W) or (3, H, W)."""
        x = images.detach().cpu().float().numpy() if hasattr(images, "detach") else images
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        std = np.array(IMAGENET_STD, np.float32).reshape(1, 3, 1, 1) * 255.0
        mean = np.array(IMAGENET_MEAN, np.float32).reshape(1, 3, 1, 1) * 255.0
        kp, scores = self.run(x * std + mean)
        return torch.from_numpy(kp), torch.from_numpy(scores)
