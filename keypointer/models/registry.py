"""The head registry: everything that makes a head kind, in one :class:`HeadSpec` per name.

A head kind (``model.head``) is its network module, its codec (targets, decoding, flip-TTA
behaviour and the ONNX export's near-tie test, see :class:`keypointer.codecs.Codec`), the
losses it trains with and whether it wants multi-scale backbone features. Each kind's module
(:mod:`keypointer.models.heads`) registers one spec; :func:`build_model`
(:mod:`keypointer.models.model`), :func:`make_codec` and :func:`make_loss` only look the name
up. Adding a head kind is one module that calls :func:`register_head`::

    register_head(HeadSpec(name="mine", build=build_mine, make_codec=mine_codec,
                           losses={"auto": MyLoss}))

Importing :mod:`keypointer.models` registers the built-in kinds (heatmap, regression, simcc,
integral).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from torch import nn

from keypointer.codecs import Codec
from keypointer.config import Config
from keypointer.errors import ConfigError
from keypointer.losses import Reduction
from keypointer.models.backbones import FeatureSpec

HeadBuilder = Callable[[Sequence[FeatureSpec], int, Config], nn.Module]
"""(backbone feature specs, finest first; number of keypoints K; config) -> head module."""
CodecMaker = Callable[[Config], Codec]
LossMaker = Callable[[Reduction], nn.Module]
"""A loss class (or factory) taking the reduction: ``loss(output, target, weights)``."""


@dataclass(frozen=True)
class HeadSpec:
    """One head kind.

    Attributes:
        name: the ``model.head`` value that selects it (stored in checkpoints: keep it).
        build: (feature specs, K, config) -> the head module; its output is what ``codec``
            decodes and the losses take.
        make_codec: config -> the codec of this head's outputs and targets.
        losses: ``train.loss`` name -> loss class taking ``reduction``; "auto" is required
            (the default).
        multi_scale: the backbone gives several feature levels (FPN-lite) rather than the
            deepest one, when ``model.out_indices`` is not set.
    """

    name: str
    build: HeadBuilder
    make_codec: CodecMaker
    losses: Mapping[str, LossMaker]
    multi_scale: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("HeadSpec: a head needs a name")
        if "auto" not in self.losses:
            raise ValueError(f"HeadSpec {self.name!r}: losses need an 'auto' entry")
        object.__setattr__(self, "losses", MappingProxyType(dict(self.losses)))


_REGISTRY: dict[str, HeadSpec] = {}


def register_head(spec: HeadSpec) -> HeadSpec:
    """Make ``spec`` selectable as ``model.head = spec.name``.

    Args:
        spec: the head kind.

    Returns:
        ``spec``. A name registered already raises ValueError (unregister it first).
    """
    if spec.name in _REGISTRY:
        raise ValueError(f"a head named {spec.name!r} is registered already")
    _REGISTRY[spec.name] = spec
    return spec


def unregister_head(name: str) -> HeadSpec:
    """Remove a registered head kind (tests that register their own use it to clean up).

    Args:
        name: the head's name.

    Returns:
        The removed spec; an unknown name raises KeyError.
    """
    return _REGISTRY.pop(name)


def registered_heads() -> tuple[str, ...]:
    """The registered head names, sorted."""
    return tuple(sorted(_REGISTRY))


def head_spec(name: str) -> HeadSpec:
    """The spec registered as ``name``.

    Args:
        name: a ``model.head`` value.

    Returns:
        Its :class:`HeadSpec`; an unknown name raises :class:`ConfigError` naming the
        registered heads.
    """
    spec = _REGISTRY.get(name)
    if spec is None:
        raise ConfigError(
            f"model.head: unknown head {name!r}; registered heads: {', '.join(registered_heads())}"
        )
    return spec


def make_codec(cfg: Config) -> Codec:
    """The codec of ``cfg.model.head``, built from ``cfg`` (the one place codecs come from a
    config).

    Args:
        cfg: the run's config.

    Returns:
        The head's codec; an unknown head raises :class:`ConfigError`.
    """
    return head_spec(cfg.model.head).make_codec(cfg)


def make_loss(cfg: Config, reduction: Reduction = "mean") -> nn.Module:
    """The loss ``cfg.train.loss`` names among ``cfg.model.head``'s losses ("auto": the head's
    default, e.g. MSE for heatmaps, L1 for regression and integral, KL for SimCC).

    Args:
        cfg: the run's config.
        reduction: see :mod:`keypointer.losses`.

    Returns:
        The loss module; a loss the head cannot use raises :class:`ConfigError`.
    """
    choices = head_spec(cfg.model.head).losses
    if cfg.train.loss not in choices:
        names = ", ".join(choices)
        raise ConfigError(
            f"train.loss: {cfg.train.loss!r} does not fit a {cfg.model.head} head; use {names}"
        )
    return choices[cfg.train.loss](reduction)
