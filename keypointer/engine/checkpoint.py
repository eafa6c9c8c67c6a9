"""Checkpoints: written atomically, loaded with ``torch.load(weights_only=True)``.

A checkpoint holds only tensors and plain Python values (the resolved config as
a dict, the skeleton as a dict, state dicts, RNG state tensors), so loading it
never runs code. A file that needs anything else is refused.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from keypointer.errors import CheckpointError

if TYPE_CHECKING:
    from keypointer.models.model import KeypointModel


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``.

    A kill at any moment leaves either the old file or the new one, never a torn one.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes it owner-only; a checkpoint is a normal file
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files of saves that a kill interrupted (``.last.pt.*.tmp`` ...).

    Only call this when no other process writes to ``folder``. Returns what was removed.
    """
    stale = [p for p in Path(folder).glob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely; anything but tensors and plain values is refused."""
    path = Path(path)
    if path.is_dir():
        path = path / "best.pt" if (path / "best.pt").exists() else path / "last.pt"
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: refused to load: it contains objects other than tensors and plain values "
            f"(possibly code). Only load checkpoints you trust. Detail: {str(err).splitlines()[0]}"
        ) from None
    except Exception as err:  # a damaged file makes torch.load fail in many ways (fuzzed)
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({detail})") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise CheckpointError(f"{path}: not a keypointer checkpoint (no model or config inside)")
    return state


@contextmanager
def damaged(path: str | Path) -> Iterator[None]:
    """Turn a checkpoint whose contents do not fit together (wrong shapes, missing or mistyped
    entries: a damaged or hand-edited file) into a CheckpointError."""
    try:
        yield
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(
            f"{path}: cannot restore from this checkpoint: it is damaged or does not match the "
            f"configured model ({detail[:300]})"
        ) from None


def load_model(path: str | Path, device: str | torch.device = "cpu") -> KeypointModel:
    """Rebuild the model from the config stored in the checkpoint and load its weights.

    Uses the EMA weights when the run kept them (they are what was validated).
    """
    from keypointer.config import from_dict
    from keypointer.models.model import build_model
    from keypointer.skeleton import Skeleton

    state = load_checkpoint(path, map_location="cpu")
    cfg = from_dict(state["config"], source=f"{path} (stored config)")
    with damaged(path):
        skeleton = Skeleton.from_dict(state["skeleton"])
    model = build_model(cfg, skeleton.num_keypoints, pretrained=False)
    with damaged(path):
        weights = state.get("ema_model") or state["model"]
        weights = {k.removeprefix("module."): v for k, v in weights.items() if k != "n_averaged"}
        model.load_state_dict(weights)
    model.skeleton = skeleton
    model.config = cfg
    return model.to(device).eval()
