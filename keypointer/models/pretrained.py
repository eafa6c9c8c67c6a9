"""Backbone weights from a local file: download once on a networked machine, reuse offline.

timm loads a state dict it is handed (``pretrained_cfg_overlay=dict(state_dict=...)``) into
the whole classifier model before cutting it down to features, dropping the classifier when
the class counts differ. That drop also makes timm load non-strictly, so a file of another
architecture would load *nothing* and only log it. We therefore check the file against the
model's own tensors first and name the first one that does not match.
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch

from keypointer.errors import ConfigError

_NESTED = ("state_dict", "model", "model_state_dict", "module")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file or a torch state dict (plain, nested under ``state_dict``
    / ``model``, or saved from DDP with ``module.`` prefixes). Loaded with ``weights_only``."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"model.pretrained: weights file not found: {p}")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(p))
        else:
            sd = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # safetensors, zip and pickle errors share no base class
        raise ConfigError(
            f"model.pretrained: {p} is not a readable weights file (safetensors, or a torch "
            f"state dict): {type(err).__name__}: {str(err).splitlines()[0][:200]}"
        ) from None
    while isinstance(sd, dict) and len(sd) == 1 and next(iter(sd)) in _NESTED:
        sd = next(iter(sd.values()))
    for key in _NESTED:  # {"state_dict": ..., "epoch": ...} as training scripts save them
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ConfigError(f"model.pretrained: {p} holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def check_state_dict(name: str, sd: dict[str, torch.Tensor], path: str | Path) -> None:
    """Raise a ConfigError naming the first tensor of timm model ``name`` that ``sd`` lacks or
    shapes differently, or the first tensor of ``sd`` the model does not have. The classifier's
    tensors may differ or be absent: a keypoint model does not use them."""
    with torch.device("meta"):
        full = timm.create_model(name, pretrained=False)
    expected = {k: tuple(v.shape) for k, v in full.state_dict().items()}
    classifier = full.pretrained_cfg.get("classifier") or ()
    heads = (classifier,) if isinstance(classifier, str) else tuple(classifier)

    def is_head(key: str) -> bool:
        return any(key.startswith(h + ".") for h in heads)

    where = f"model.pretrained: {path} does not fit {name}"
    for key, shape in expected.items():
        if is_head(key) or key.endswith("num_batches_tracked"):
            continue
        if key not in sd:
            raise ConfigError(f"{where}: it has no tensor {key!r} {list(shape)}")
        if tuple(sd[key].shape) != shape:
            raise ConfigError(
                f"{where}: tensor {key!r} is {list(sd[key].shape)} in the file, "
                f"{list(shape)} in the model"
            )
    extra = [k for k in sd if k not in expected and not is_head(k)]
    if extra:
        raise ConfigError(f"{where}: the model has no tensor {extra[0]!r} (of {len(extra)} extra)")


def create_with_weights(name: str, path: str | Path, **features: object) -> torch.nn.Module:
    """timm features-only backbone ``name`` initialised from the weights file at ``path``."""
    sd = read_state_dict(path)
    check_state_dict(name, sd, path)
    return timm.create_model(
        name, pretrained=True, pretrained_cfg_overlay={"state_dict": sd}, **features
    )
