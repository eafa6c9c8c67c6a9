"""Typed configuration: the pydantic models *are* the config file and the CLI overrides.

A config is one flat YAML file (no inheritance) with the sections below. Every
field can be overridden from the command line as ``--set train.lr=1e-3``.
Unknown keys and wrong types are rejected with the dotted path of every bad field.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from keypointer.errors import ConfigError

# --------------------------------------------------------------------------- constants
# The one home of every default and constant that more than one module uses; a constant that
# one module alone uses is named at the top of that module.

BOX_MARGIN = 1.25
"""Default growth of an instance box into its crop (training, eval and predict alike)."""
LOCATOR_SCORE_THRESHOLD = 0.1
"""``locator.score_threshold``: the centre score a located instance needs."""
KEYPOINT_SCORE_THRESHOLD = 0.3
"""A keypoint scoring under this is "low score": flagged, not drawn, filled in by smoothing."""
HEATMAP_STRIDE = 4
"""Input pixels per heatmap pixel of the pose model's heatmap (and integral) heads."""
DEFAULT_FPS = 30.0
"""Frame rate assumed when a video does not state one, and of synthetic clips."""
VALIDATION_STEP_COST = 0.5
"""A validation batch costs about half a training step (forward only): time-budget planning."""

RECIPE = {"recipe": True}
"""``json_schema_extra`` of a field that the recipe (``train.recipe``) chooses from the data
when the user does not set it; :func:`recipe_fields` lists them, the README table says so."""


class _Section(BaseModel):
    # allow_inf_nan=False: every float field (tuples included) refuses inf and nan up front,
    # before a run folder exists; an infinite learning rate would otherwise train until the
    # loss overflows.
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, use_attribute_docstrings=True, allow_inf_nan=False
    )


class DataConfig(_Section):
    path: str | None = None
    """Training labels: a COCO JSON, a DeepLabCut project, a YOLO data.yaml or a CSV."""
    format: str | None = None
    """Reader to use: a registered label format (coco, dlc, yolo, csv, sleap; see
    keypointer/data/formats.py); None picks it from what the path holds."""
    images: str | None = None
    """Folder the image paths are relative to, when not next to the labels."""
    val_path: str | None = None
    """Separate validation labels; when None, ``val_fraction`` of the images are held out."""
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    """Share of images held out for validation when there is no ``val_path``."""
    split: Literal["auto", "random", "time", "video"] = "auto"
    """How ``val_fraction`` is held out: random (images at random), time (the last
    ``val_fraction`` of each video's labelled frames, a gap of frames left out before them),
    video (whole videos); auto: video or time when every image is a frame of a video (a SLEAP
    video, DeepLabCut's ``labeled-data/<video>/img<N>.png``), else random."""
    split_seed: int = 0
    """Seed of the random split, and of which videos are held out."""


class ModelConfig(_Section):
    backbone: str = "regnetx_002"
    """A timm model name; the model must support ``features_only``."""
    pretrained: bool | str = False
    """true: ImageNet weights when the machine can fetch them (offline: warn once, train from
    scratch); a path: a local weights file for the backbone (safetensors, or a timm/torchvision
    state dict), e.g. saved once on a networked machine."""
    head: str = "heatmap"
    """heatmap (Gaussian maps, stride 4), regression (u/w, v/h), simcc (1-D bins), integral
    (soft-argmax), or any head registered with ``keypointer.models.register_head`` (an unknown
    name is an error when the model is built)."""
    input_size: tuple[int, int] = Field((128, 128), json_schema_extra=RECIPE)
    """(width, height) of the network input in pixels."""
    out_indices: tuple[int, ...] | None = None
    """Backbone feature levels; None: heatmap/integral heads merge strides 8/16/32 (FPN-lite),
    regression/simcc take the deepest level with stride <= 32."""
    head_channels: int = 128
    """Channels of the heatmap head's layers."""
    upsample_stages: int | None = None
    """Deconvolution stages from the finest merged level; None: as many as reach stride 4."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout before the regression/SimCC output layer (off in ``model.eval()``)."""


class CodecConfig(_Section):
    sigma: float = Field(2.0, gt=0)
    """Gaussian sigma of heatmap targets, in heatmap pixels."""
    unbiased: bool = True
    """UDP mapping between input and heatmap pixels."""
    refine: Literal["none", "quarter", "dark"] = "dark"
    """Sub-pixel decoding: none (argmax), quarter (+0.25 px towards the higher neighbour), dark."""
    simcc_split_ratio: float = Field(2.0, gt=0)
    """SimCC bins per input pixel."""
    simcc_sigma: tuple[float, float] = (4.9, 5.66)
    """SimCC label sigma (x, y), in bins."""


class AugmentConfig(_Section):
    scale: tuple[float, float] = (0.75, 1.25)
    """Random scale range of the crop."""
    rotation: float = Field(30.0, ge=0, json_schema_extra=RECIPE)
    """Maximum rotation in degrees, either way."""
    shift: float = Field(0.1, ge=0)
    """Maximum shift as a fraction of the crop size."""
    flip: float = Field(0.5, ge=0, le=1, json_schema_extra=RECIPE)
    """Probability of a horizontal flip (flip pairs swapped)."""
    brightness: float = Field(0.2, ge=0)
    """Colour jitter: maximum relative brightness change."""
    contrast: float = Field(0.2, ge=0)
    """Colour jitter: maximum relative contrast change."""
    saturation: float = Field(0.2, ge=0)
    """Colour jitter: maximum relative saturation change."""
    hue: float = Field(0.02, ge=0, le=0.5)
    """Colour jitter: maximum hue shift, as a fraction of the hue circle."""
    half_body: float = Field(0.0, ge=0, le=1)
    """Probability of cropping to the upper or lower half of the keypoints."""
    erase: float = Field(0.0, ge=0, le=1)
    """Probability of random erasing."""
    box_margin: float = Field(BOX_MARGIN, ge=1.0)
    """Crop size relative to the box (or to the keypoints' extent when there is no box)."""


class LoaderConfig(_Section):
    batch_size: int = Field(32, ge=1, json_schema_extra=RECIPE)
    """Global batch: under torchrun each of N processes loads batch_size // N."""
    num_workers: int | None = Field(None, ge=0)
    """None: chosen for the machine (0 on a 2-core CPU, more on a GPU machine)."""
    pin_memory: bool | None = None
    """None: on when training on CUDA."""
    drop_last: bool = True
    """Drop the last incomplete training batch (never the only one)."""
    persistent_workers: bool = True
    """Keep loader worker processes alive between epochs."""


class TrainConfig(_Section):
    epochs: int = Field(30, ge=1, json_schema_extra=RECIPE)
    """Passes over the training data."""
    time: float | None = Field(None, gt=0, le=100000)
    """Wall-clock budget in minutes (``--time``): the whole schedule (warm-up, decay, a final
    validation and best.pt) fits into it, re-planned from the measured step time and the cost
    of the validations so far; the epochs are then only the first plan. None: train for
    ``epochs``."""
    recipe: bool = True
    """Fill the fields marked "chosen from the data" that you did not set, from the training
    labels and the machine (``keypointer train`` prints each choice and why); false: defaults."""
    loss: str = "auto"
    """auto: MSE for heatmap heads, L1 for regression/integral, KL for SimCC. Heatmap heads
    also take awing (Adaptive Wing), regression/integral heads smooth_l1 (each head's losses
    are registered with it: keypointer/models/registry.py)."""
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    """adam (the seed notes'), adamw, or sgd (momentum, Nesterov)."""
    lr: float = Field(1e-3, gt=0, le=10, json_schema_extra=RECIPE)
    """Peak learning rate, at most 10 (more only diverges; past 3e38 float32 overflows)."""
    weight_decay: float = Field(0.0, ge=0)
    """Weight decay (not applied to norms and biases)."""
    momentum: float = Field(0.9, ge=0, lt=1)
    """SGD momentum."""
    schedule: Literal["multistep", "cosine", "constant"] = Field(
        "multistep", json_schema_extra=RECIPE
    )
    """multistep (MultiStepLR, the seed notes'), cosine, or constant; stepped per iteration."""
    milestones: tuple[float, ...] = (0.7, 0.9)
    """MultiStepLR milestones: epochs, or fractions of ``epochs`` when below 1."""
    gamma: float = Field(0.1, gt=0, le=1)
    """MultiStepLR factor at each milestone."""
    warmup_epochs: float = Field(0.0, ge=0, json_schema_extra=RECIPE)
    """Linear warm-up length in epochs (fractions allowed)."""
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    """Mixed precision: auto = bf16 on CUDA GPUs (fp16 + grad scaler on older ones) and on
    CPUs with native bf16 (AVX512-BF16/AMX), off elsewhere."""
    grad_clip: float | None = Field(None, gt=0)
    """Clip the gradient norm to this value; null: no clipping."""
    ema: bool = False
    """Keep an exponential moving average of the weights (validated and saved)."""
    ema_decay: float = Field(0.999, gt=0, lt=1)
    """EMA decay per step."""
    val_every: int = Field(1, ge=1, json_schema_extra=RECIPE)
    """Validate every N epochs (and after the last)."""
    seed: int = 0
    """Seed of initialisation, shuffling and augmentation."""
    deterministic: bool = False
    """Deterministic algorithms: a resumed run ends with the same weights (CPU)."""
    cudnn_benchmark: bool = True
    """torch.backends.cudnn.benchmark on CUDA (input size is fixed, so autotuning pays)."""
    sync_bn: bool = False
    """SyncBatchNorm across processes under torchrun (CUDA)."""
    channels_last: bool = True
    """channels_last memory format for the model and images (faster convolutions)."""
    device: str = "auto"
    """"auto", "cpu", "cuda", "cuda:1", ..."""
    pck_alpha: float = Field(0.05, gt=0)
    """Validation PCK threshold as a fraction of the instance box's longer side."""

    @field_validator("amp", mode="before")
    @classmethod
    def _amp_off(cls, value: object) -> object:
        # YAML 1.1 reads an unquoted ``off`` (``amp: off``, ``--set train.amp=off``) as false.
        return "off" if value is False else value


class RunConfig(_Section):
    name: str = "keypointer"
    """Run name: runs go to ``<root>/<name>/<YYYY-MM-DD-HH-MM>/``."""
    root: str = "runs"
    """Folder holding all runs."""
    quiet: bool = False
    """No progress bar: one line per validation (for logs and CI)."""
    tensorboard: bool = False
    """Also write TensorBoard events to the run folder (needs the tensorboard package)."""


class LocatorConfig(_Section):
    enabled: bool | None = None
    """Train the locator (the instance finder) after the pose model, into the same run and
    checkpoints. None: when any image of the training labels holds more than one instance;
    false: never; true: always."""
    input_size: int | None = Field(None, ge=64, le=4096, multiple_of=32)
    """Long side of the locator's whole-image input in pixels (a multiple of 32; the short side
    follows the images' aspect ratio). None: from the data, so that the median instance box is
    ~64 px long in the input (128 to 512 px, at most the images' own size)."""
    backbone: str = "lcnet_050"
    """The locator's own timm backbone (any name that supports ``features_only``)."""
    pretrained: bool | str = False
    """As ``model.pretrained``, for the locator's backbone."""
    stride: Literal[4, 8] = 4
    """Stride of the centre and size maps: 4 as CenterNet, 8 for a cheaper head and coarser centres."""
    channels: int = Field(64, ge=8)
    """Channels of the locator's neck and head."""
    size_region: float = Field(0.0, ge=0, lt=1)
    """0: sizes learned at the centre pixels only (CenterNet); above 0: also around them,
    wherever the centre Gaussian is at least this, weighted by it (TTFNet's dense regression)."""
    steps: int = Field(3000, ge=1, json_schema_extra=RECIPE)
    """Optimiser steps of the locator's cosine schedule. The recipe: 60 passes over the
    training images, within 2000-6000 steps; scaled by the ratio of your ``train.epochs`` to
    the recipe's when you set them (3 epochs where the recipe picks 150: 2% of the steps). With
    ``train.time`` the locator gets a share of the budget instead (at most 40%)."""
    batch_size: int = Field(8, ge=1)
    """Images per locator training step; small, for more updates in a time budget."""
    lr: float = Field(1.6e-2, gt=0, le=10)
    """Peak learning rate of the locator (Adam); high, as it trains from scratch in minutes
    (measured: benchmarks/RESULTS.md, "Several instances")."""
    score_threshold: float = Field(LOCATOR_SCORE_THRESHOLD, ge=0, le=1)
    """Centre score a located instance needs (sigmoid of the centre logit). Low on purpose: each
    find is then posed, and kept only if its pose scores well (``min_pose_score`` in the
    checkpoint, half the median of labelled animals). Measured: benchmarks/RESULTS.md,
    "Several instances"."""
    max_instances: int = Field(20, ge=1)
    """Most instances the locator reports per image (top-k of the centre peaks)."""


class Config(_Section):
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    codec: CodecConfig = Field(default_factory=CodecConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    loader: LoaderConfig = Field(default_factory=LoaderConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    locator: LocatorConfig = Field(default_factory=LocatorConfig)

    @model_validator(mode="after")
    def _check(self) -> Config:
        w, h = self.model.input_size
        if w < 16 or h < 16:
            raise ValueError("model.input_size must be at least 16x16")
        return self

    def to_dict(self) -> dict[str, dict[str, object]]:
        """The config as plain YAML/JSON data: ``{section: {field: value}}``."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def recipe_fields() -> tuple[str, ...]:
    """Dotted names (``"train.lr"``) of the fields marked :data:`RECIPE`, in config order."""
    return tuple(
        f"{section}.{name}"
        for section, info in Config.model_fields.items()
        for name, field in info.annotation.model_fields.items()
        if field.json_schema_extra == RECIPE
    )


def reference_markdown() -> str:
    """The config reference table for the README: every field, its default, its meaning; the
    recipe's fields say that their default is chosen from the data."""
    lines = ["| field | default | meaning |", "|---|---|---|"]
    chosen = recipe_fields()
    for section, info in Config.model_fields.items():
        for name, field in info.annotation.model_fields.items():
            default = f"`{_yaml_value(field.get_default(call_default_factory=True))}`"
            if f"{section}.{name}" in chosen:
                default = f"chosen from the data ({default} with `train.recipe: false`)"
            doc = " ".join((field.description or "").split())
            lines.append(f"| `{section}.{name}` | {default} | {doc} |")
    return "\n".join(lines)


def _yaml_value(value: object) -> str:
    if isinstance(value, tuple):
        value = list(value)
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid config ({source}):"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {path}: {msg}")
    return "\n".join(lines)


def from_dict(d: Mapping[str, object], source: str = "config") -> Config:
    if not isinstance(d, dict):
        raise ConfigError(
            f"invalid config ({source}): expected a mapping of sections, got {type(d).__name__}"
        )
    try:
        return Config.model_validate(d)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (safe loader) and apply ``key.sub=value`` overrides."""
    d: dict[str, object] = {}
    source = "defaults"
    if path is not None:
        p = Path(path)
        source = str(p)
        try:
            d = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {p}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{p}: not UTF-8 text (save it as UTF-8)") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{p}: not valid YAML: {_yaml_problem(err)}") from None
        except RecursionError:
            raise ConfigError(f"{p}: not valid YAML: nested too deeply") from None
        if not isinstance(d, dict):
            raise ConfigError(f"{p}: expected a mapping of sections at the top level")
    for item in overrides or []:
        apply_override(d, item)
    if overrides:
        source += " + --set"
    return from_dict(d, source)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """The problem and where, e.g. "line 3 column 7: expected ',' or ']'", on one line."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"line {mark.line + 1} column {mark.column + 1}: {problem}" if mark else problem


def apply_override(d: dict[str, object], item: str) -> None:
    """Set ``d["train"]["lr"] = 1e-3`` from ``"train.lr=1e-3"``; the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.lr=1e-3")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {item!r}: bad key {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except (yaml.YAMLError, RecursionError):
        value = raw
    node = d
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {item!r}: {p} is not a section")
    node[parts[-1]] = value


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(cfg.to_yaml(), encoding="utf-8")
