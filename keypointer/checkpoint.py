"""Checkpoints: written atomically, loaded with ``torch.load(weights_only=True)``.

A checkpoint holds only tensors and plain Python values (the resolved config as
a dict, the skeleton as a dict, state dicts, RNG state tensors), so loading it
never runs code. A file that needs anything else is refused.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from keypointer.config import from_dict
from keypointer.errors import CheckpointError, ConfigError
from keypointer.files import atomic_path
from keypointer.models.locator import LocatorModel, build_locator
from keypointer.models.model import KeypointModel, build_model
from keypointer.skeleton import Skeleton

State = dict[str, object]
"""A checkpoint's contents: ``model`` (state dict), ``config`` (:meth:`Config.to_dict`),
``skeleton`` (:meth:`Skeleton.to_dict`), ``epoch``, ``history``, optionally ``ema_model``,
``locator`` (see :func:`load_locator`) and the :data:`RESUME_ONLY` entries. Read from a file,
so nothing about the values is promised until they are restored."""

# What restoring from entries that do not fit together raises: a missing entry (KeyError), an
# entry of the wrong type or form (TypeError, ValueError, IndexError), weights whose names or
# shapes do not fit the model (RuntimeError from load_state_dict). A bug in the restoring code
# (AttributeError, NameError, AssertionError, ...) is none of these and keeps its traceback.
MISMATCH_ERRORS = (KeyError, TypeError, ValueError, IndexError, RuntimeError)


def save_checkpoint(state: State, path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, fsync, then
    a rename, so a kill at any moment leaves either the old file or the new one, never a torn
    one.

    Args:
        state: the checkpoint's contents (tensors and plain values only).
        path: the file to write.
    """
    with atomic_path(path, durable=True) as tmp, open(tmp, "wb") as f:
        torch.save(state, f)


# What only a resume needs: last.pt keeps it, best.pt (the file people deploy) does not.
RESUME_ONLY = ("optimizer", "scheduler", "scaler", "ema_n_averaged", "rng_torch", "rng_cuda")


def deployable(state: State) -> State:
    """``state`` without the resume-only entries (optimiser moments: 2x the weights with Adam).

    Args:
        state: a full checkpoint (last.pt).

    Returns:
        A new dict: weights (raw and EMA), config, skeleton, epoch and history, enough for
        eval, predict and export, and to start a new run from the weights.
    """
    return {k: v for k, v in state.items() if k not in RESUME_ONLY}


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files of saves that a kill interrupted (``.last.pt.*.tmp`` ...).

    Only call this when no other process writes to ``folder``.

    Args:
        folder: a run folder.

    Returns:
        The files removed.
    """
    stale = [p for p in Path(folder).glob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> State:
    """Load a checkpoint safely; anything but tensors and plain values is refused.

    Args:
        path: a .pt file, or a run folder (its best.pt, else its last.pt).
        map_location: where the tensors go.

    Returns:
        The checkpoint's contents, with at least ``model`` and ``config``.

    Raises:
        CheckpointError: no such file, a damaged one, or one holding other objects.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "best.pt" if (path / "best.pt").exists() else path / "last.pt"
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4" on a foreign file
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a damaged file makes torch.load fail in many ways (fuzzed)
        raise _load_error(path, err) from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise CheckpointError(f"{path}: not a keypointer checkpoint (no model or config inside)")
    return state


def _load_error(path: Path, err: Exception) -> CheckpointError:
    """What to tell the user when ``torch.load`` failed on ``path`` with ``err``.

    The file's form comes first: torch's own errors for a cut or foreign file ("101",
    "[Errno 22] Invalid argument", "weights only load failed") do not say what is wrong.
    """
    problem = _damage(path)
    if problem is not None:
        return CheckpointError(f"{path}: {problem}")
    if isinstance(err, pickle.UnpicklingError):  # an intact archive holding other objects
        return CheckpointError(
            f"{path}: refused to load: it contains objects other than tensors and plain values "
            f"(possibly code). Only load checkpoints you trust. Detail: {str(err).splitlines()[0]}"
        )
    detail = str(err).splitlines()[0] if str(err) else type(err).__name__
    return CheckpointError(f"{path}: not a readable checkpoint ({detail})")


def _damage(path: Path) -> str | None:
    """What is wrong with the form of a file ``torch.load`` refused; None if nothing shows.

    ``torch.save`` writes a zip archive, so: empty, not a zip, a zip cut short (its
    directory, at the end, is missing), or a zip whose checksums fail.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as err:
        return f"cannot read the file ({err.strerror or err})"
    if not head:
        return "not a readable checkpoint: the file is empty (an interrupted save or copy?)"
    if head != b"PK\x03\x04":
        return (
            "not a keypointer checkpoint: not the zip archive that keypointer (torch.save) "
            "writes (another kind of file, or one damaged from its first bytes)"
        )
    if not zipfile.is_zipfile(path):
        return (
            "not a readable checkpoint: the file is truncated or damaged (a zip archive whose "
            "end is missing; an interrupted save, copy or download?)"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()  # reads every member; only on this failure path
    except Exception as err:  # zlib, EOF, bad headers: all mean a damaged archive
        return f"not a readable checkpoint: the file is damaged ({err})"
    if bad is not None:
        return f"not a readable checkpoint: the file is damaged ({bad} fails its checksum)"
    return None


@contextmanager
def damaged(path: str | Path) -> Iterator[None]:
    """Around code that restores from the checkpoint at ``path``: turn contents that do not fit
    together (wrong shapes, missing or mistyped entries: a damaged or hand-edited file) into a
    CheckpointError naming the file. Only :data:`MISMATCH_ERRORS` are turned; a bug in the
    code inside keeps its traceback.

    Args:
        path: the checkpoint the code inside restores from.
    """
    try:
        yield
    except MISMATCH_ERRORS as err:
        # A changed byte can still unpickle, into entries that do not fit: say so if it shows.
        problem = _damage(Path(path)) if Path(path).is_file() else None
        if problem is not None:
            raise CheckpointError(f"{path}: {problem}") from None
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(
            f"{path}: cannot restore from this checkpoint: it is damaged or does not match the "
            f"configured model ({detail[:300]})"
        ) from None


def load_model(path: str | Path, device: str | torch.device = "cpu") -> KeypointModel:
    """Rebuild the model from the config stored in the checkpoint and load its weights.

    Args:
        path: as :func:`load_checkpoint`.
        device: where the model goes.

    Returns:
        The model in eval mode, with ``skeleton`` and ``config`` attached; the EMA weights when
        the run kept them (they are what was validated).
    """
    return model_from_state(load_checkpoint(path, map_location="cpu"), path, device)


def model_from_state(
    state: State, path: str | Path, device: str | torch.device = "cpu"
) -> KeypointModel:
    """:func:`load_model` from a checkpoint already read.

    Args:
        state: what :func:`load_checkpoint` returned.
        path: the file it came from (named in errors).
        device: where the model goes.

    Returns:
        As :func:`load_model`.
    """
    cfg = from_dict(state["config"], source=f"{path} (stored config)")
    with damaged(path):
        skeleton = Skeleton.from_dict(_mapping(state["skeleton"], "skeleton"))
    model = build_model(cfg, skeleton.num_keypoints, pretrained=False)
    with damaged(path):
        weights = _mapping(state.get("ema_model") or state["model"], "model weights")
        weights = {
            str(k).removeprefix("module."): v for k, v in weights.items() if k != "n_averaged"
        }
        model.load_state_dict(weights)
    model.skeleton = skeleton
    model.config = cfg
    return model.to(device).eval()


def load_models(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[KeypointModel, LocatorModel | None]:
    """The pose model and its locator, from one read of the checkpoint.

    Args:
        path: as :func:`load_checkpoint`.
        device: where the models go.

    Returns:
        (as :func:`load_model`, as :func:`load_locator`: None for a single-stage run).
    """
    state = load_checkpoint(path, map_location="cpu")
    return model_from_state(state, path, device), locator_from_state(state, path, device)


def load_locator(path: str | Path, device: str | torch.device = "cpu") -> LocatorModel | None:
    """The locator a run on multi-instance labels stored beside the pose model, rebuilt from
    the checkpoint's config and the entry's ``build_info``.

    Args:
        path: as :func:`load_checkpoint`.
        device: where the model goes.

    Returns:
        The locator in eval mode; None when the checkpoint has none.

    The entry (``keypointer.training.two_stage``): ``state["locator"] = {"model": state_dict,
    "build_info": {"input_size": [W, H], "box_ratio": [rw, rh], "min_pose_score": float},
    "metrics": {name: float}}`` (``box_ratio`` and ``min_pose_score`` are optional).
    """
    return locator_from_state(load_checkpoint(path, map_location="cpu"), path, device)


def locator_from_state(
    state: State, path: str | Path, device: str | torch.device = "cpu"
) -> LocatorModel | None:
    """:func:`load_locator` from a checkpoint already read.

    Args:
        state: what :func:`load_checkpoint` returned.
        path: the file it came from (named in errors).
        device: where the model goes.

    Returns:
        As :func:`load_locator`.
    """
    entry = state.get("locator")
    if entry is None:
        return None
    cfg = from_dict(state["config"], source=f"{path} (stored config)")
    with damaged(path):
        entry = _mapping(entry, "locator")
        info = _mapping(entry["build_info"], "locator build_info")
        width, height = (int(v) for v in info["input_size"])
        if not (32 <= width <= 4096 and 32 <= height <= 4096):  # what locator.input_size allows
            raise ValueError(f"locator input size {width}x{height} is out of range")
        try:
            model = build_locator(cfg, (width, height), pretrained=False)
        except ConfigError as err:  # an input size no locator can have
            raise ValueError(f"locator build_info: {err}") from None
        model.load_state_dict(entry["model"])
        ratio = info.get("box_ratio")  # none in runs before it existed
        model.box_ratio = None if ratio is None else (float(ratio[0]), float(ratio[1]))
        model.min_pose_score = float(info.get("min_pose_score", 0.0))
    return model.to(device).eval()


def _mapping(value: object, what: str) -> dict:
    """``value`` if it is a dict, else the TypeError that :func:`damaged` reports."""
    if not isinstance(value, dict):
        raise TypeError(f"{what} is a {type(value).__name__}, not a mapping")
    return value
