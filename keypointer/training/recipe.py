"""The recipe: every training setting the user did not set, chosen from the data and the machine.

A value the user set (in a config file, with ``--set`` or in Python) always wins: pydantic
records which fields were given (``model_fields_set``), and only the others are filled here.
Each choice comes with its reason, so ``keypointer train`` can print one table of them, and
the run's ``config.yaml`` stores the resolved values.

The fields it may fill are those ``keypointer.config`` marks :data:`~keypointer.config.RECIPE`
(the README's config table says "chosen from the data"); a rule for any other field is a bug.

The rules were chosen on real labelled data (../shared/data; benchmarks/RESULTS.md, "Recipe"):

- **Input size.** Neighbouring keypoints must stay apart on the heatmap (stride
  :data:`~keypointer.config.HEATMAP_STRIDE`), else their peaks merge (the snout and both ears
  collapsing onto one spot). The long side is set so that the typical nearest-neighbour
  distance between keypoints is :data:`MIN_SEPARATION` heatmap pixels, within
  [:data:`MIN_SIDE`, the budget's maximum], never above the crop's own resolution, with the
  crop's aspect ratio, in multiples of 32.
- **Length.** Counted in optimiser steps, with a floor: 50 images need as many steps as 500
  to leave the heatmap loss's early plateau; large sets get a few passes more, up to a cap.
- **Batch, learning rate, warm-up.** Small sets take small batches (more steps per pass).
- **Augmentation.** Flip only with flip pairs; rotation as wide as the poses' own spread of
  orientations (a camera looking down sees every heading; a side view sees few), and all the
  way round when the labelled poses already face half the circle or more
  (:data:`FREE_HEADINGS`): labels are often a few runs of frames, and the spread of those
  says little about the rest of the video (benchmarks/RESULTS.md, "Rotation for animals
  that turn freely").
- **Schedule.** Cosine decay after the warm-up, which ends exactly at a time budget.
- **Locator length** (labels with crowds: a locator follows the pose model). Steps as for the
  pose model: :data:`LOCATOR_PASSES` passes over the images, within [:data:`LOCATOR_MIN_STEPS`,
  :data:`LOCATOR_MAX_STEPS`]: box recall was still rising at 2000 steps on synthetic crowds,
  hence the floor (measured: benchmarks/RESULTS.md, "The locator's length on synthetic
  crowds"). A user's ``train.epochs`` scales it by the
  same ratio to the recipe's epochs, so a short run is short in both stages; with
  ``train.time`` it is only the first plan (two_stage.py splits the budget).
  ``keypointer train`` shows it with its time, measured on a few locator steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
from rich.console import Console
from rich.table import Table

from keypointer.config import HEATMAP_STRIDE, Config, recipe_fields
from keypointer.data.boxes import crop_box
from keypointer.data.types import KeypointSet

MIN_SEPARATION = 3.0  # heatmap pixels between neighbouring keypoints (1.5 sigma of 2)
MIN_SIDE = 192
MAX_SIDE = {"cpu": 384, "cuda": 512}  # the compute budget's bound on the long side
MIN_STEPS, MAX_STEPS, PASSES = 1500, 30000, 150  # steps = clamp(passes * images / batch)
WARMUP_SHARE, MAX_WARMUP_STEPS = 0.05, 300  # warm-up: this share of the steps, at most this
VALIDATIONS = 15  # about this many validations in a run
LOCATOR_MIN_STEPS, LOCATOR_MAX_STEPS, LOCATOR_PASSES = 2000, 6000, 60  # the locator's length
FREE_HEADINGS = 180.0  # degrees of headings labelled that mean any heading can come

Rule = Iterator[tuple[str, object, str]]  # (dotted field, value, reason) per field a rule sets


@dataclass(frozen=True)
class Choice:
    """One resolved setting: its dotted field, value, why, and whether the user set it."""

    field: str
    value: object
    reason: str
    user: bool = False


def plan(cfg: Config, train_set: KeypointSet, device_type: str = "cpu") -> list[Choice]:
    """Fill ``cfg``'s unset recipe fields from ``train_set`` in place.

    Args:
        cfg: the config; fields the user set (``model_fields_set``) are kept.
        train_set: the training split's labels.
        device_type: "cpu" or "cuda": the compute budget's bound on the input size.

    Returns:
        Every choice, in rule order, the user's marked ``user=True``.
    """
    rules = (_input_size, _batch_and_lr, _length, _flip, _rotation, _schedule, _locator_length)
    allowed = recipe_fields()
    choices: list[Choice] = []
    for rule in rules:
        for dotted, value, reason in rule(cfg, train_set, device_type):
            if dotted not in allowed:
                raise ValueError(f"recipe rule {rule.__name__} sets {dotted}, not marked RECIPE")
            section, name = dotted.split(".")
            part = getattr(cfg, section)
            if name in part.model_fields_set:
                choices.append(Choice(dotted, getattr(part, name), "set by you", user=True))
                continue
            setattr(part, name, value)
            part.model_fields_set.discard(name)  # still the recipe's, should plan run again
            choices.append(Choice(dotted, getattr(part, name), reason))
    return choices


def with_locator_time(choices: list[Choice], step_s: float) -> list[Choice]:
    """The choices with the locator's length given its time.

    Args:
        choices: what :func:`plan` returned.
        step_s: measured seconds per locator training step.

    Returns:
        The same choices, ``locator.steps``'s reason ending with its estimated minutes.
    """
    out = []
    for c in choices:
        if c.field == "locator.steps" and isinstance(c.value, int):
            minutes = c.value * step_s / 60.0
            c = replace(c, reason=f"{c.reason}; ~{minutes:.1f} min at {step_s:.2f} s/step")
        out.append(c)
    return out


def print_choices(choices: list[Choice]) -> None:
    """Print the table ``keypointer train`` shows before training: each setting, value, why.

    Args:
        choices: what :func:`plan` returned.
    """
    table = Table(title="settings (recipe: from the data; yours win)", title_justify="left")
    for column in ("setting", "value", "why"):
        table.add_column(column)
    for c in choices:
        value = list(c.value) if isinstance(c.value, tuple) else c.value
        value = f"{value:.3g}" if isinstance(value, float) else str(value)
        table.add_row(c.field, value, c.reason, style="bold" if c.user else None)
    Console(stderr=True, width=120).print(table)


# --------------------------------------------------------------------------- rules


def _input_size(cfg: Config, ks: KeypointSet, device_type: str) -> Rule:
    crop_w, crop_h = crop_size(ks, cfg.augment.box_margin)
    sep = separation(ks) / max(crop_w, crop_h)  # nearest neighbour, as a fraction of the crop
    cap = MAX_SIDE.get(device_type, MAX_SIDE["cpu"])
    wanted = MIN_SEPARATION * HEATMAP_STRIDE / sep if sep > 0 else cap
    native = max(crop_w, crop_h)
    side = min(max(wanted, MIN_SIDE), cap, max(native, MIN_SIDE))
    long_side = _round32(side)
    if crop_w >= crop_h:
        size = (long_side, max(_round32(long_side * crop_h / crop_w), 64))
    else:
        size = (max(_round32(long_side * crop_w / crop_h), 64), long_side)
    reason = (
        f"crop ~{crop_w:.0f}x{crop_h:.0f} px, keypoints ~{separation(ks):.0f} px apart: "
        f"{MIN_SEPARATION:g} heatmap px apart needs {wanted:.0f} px (bounds {MIN_SIDE}-{cap})"
    )
    yield "model.input_size", size, reason


def _batch_and_lr(cfg: Config, ks: KeypointSet, device_type: str) -> Rule:
    n = ks.num_instances
    batch = 8 if n < 200 else 16 if device_type == "cpu" else 32
    batch = max(1, min(batch, n // 2 or 1))
    yield "loader.batch_size", batch, f"{n} training instances ({device_type})"
    lr = 2e-3 * min(1.0, math.sqrt(batch / 8))
    yield "train.lr", lr, "Adam 2e-3 (better than 1e-3 on real sets); sqrt-scaled below batch 8"


def recipe_epochs(cfg: Config, ks: KeypointSet) -> tuple[int, int]:
    """The pose model's length the recipe picks at ``cfg.loader.batch_size``.

    Args:
        cfg: the config (its batch size final).
        ks: the training labels.

    Returns:
        (epochs, steps per epoch).
    """
    per_epoch = max(1, ks.num_instances // cfg.loader.batch_size)
    steps = int(np.clip(PASSES * ks.num_instances / cfg.loader.batch_size, MIN_STEPS, MAX_STEPS))
    return max(1, math.ceil(steps / per_epoch)), per_epoch


def _length(cfg: Config, ks: KeypointSet, device_type: str) -> Rule:
    epochs, per_epoch = recipe_epochs(cfg, ks)
    why = (
        f"~{epochs * per_epoch} steps ({per_epoch} per epoch): at least {MIN_STEPS}, "
        f"{PASSES} passes over the data, at most {MAX_STEPS}"
    )
    if cfg.train.time is not None:
        why = f"first plan only: --time {cfg.train.time:g} re-plans it from the step time"
    yield "train.epochs", epochs, why
    epochs = cfg.train.epochs  # now the final value: a user's epochs set warm-up and validation
    warmup = min(MAX_WARMUP_STEPS, WARMUP_SHARE * epochs * per_epoch) / per_epoch
    yield (
        "train.warmup_epochs",
        round(warmup, 3),
        f"{WARMUP_SHARE:.0%} of the steps, at most {MAX_WARMUP_STEPS}",
    )
    every = max(1, epochs // VALIDATIONS)
    yield "train.val_every", every, f"about {VALIDATIONS} validations in a run"


def _flip(cfg: Config, ks: KeypointSet, device_type: str) -> Rule:
    pairs = ks.skeleton.flip_pairs
    yield (
        "augment.flip",
        0.5 if pairs else 0.0,
        f"{len(pairs)} flip pairs" if pairs else "no flip pairs: a mirror image is another pose",
    )


def _rotation(cfg: Config, ks: KeypointSet, device_type: str) -> Rule:
    spread, cover = orientation_spread(ks), heading_cover(ks)
    if cover >= FREE_HEADINGS:
        # Labels are often a few runs of frames: what they show of a free animal's headings
        # is part of the circle, and the unlabelled rest of the video holds the others.
        why = f"the poses face {cover:.0f} of 360 degrees: an animal that turns freely"
        yield "augment.rotation", 180.0, why
        return
    degrees = 180.0 if spread >= 60 else float(max(30, 5 * round(2 * spread / 5)))
    yield "augment.rotation", degrees, f"the poses' headings spread ~{spread:.0f} degrees"


def _schedule(cfg: Config, ks: KeypointSet, device_type: str) -> Rule:
    yield "train.schedule", "cosine", "cosine decay after warm-up (ends at the time budget)"


def _locator_length(cfg: Config, ks: KeypointSet, device_type: str) -> Rule:
    enabled = cfg.locator.enabled
    if not (enabled or (enabled is None and any(len(s.instances) > 1 for s in ks.samples))):
        return  # no locator follows: nothing to choose
    batch = max(1, min(cfg.locator.batch_size, len(ks)))
    planned = LOCATOR_PASSES * len(ks) / batch
    steps = int(np.clip(planned, LOCATOR_MIN_STEPS, LOCATOR_MAX_STEPS))
    why = (
        f"{len(ks)} images, batch {batch}: {LOCATOR_PASSES} passes, "
        f"within {LOCATOR_MIN_STEPS}-{LOCATOR_MAX_STEPS}"
    )
    if cfg.train.time is not None:
        why = f"first plan only: --time {cfg.train.time:g} gives the locator a share of it"
    elif "epochs" in cfg.train.model_fields_set:
        # A short (or long) run asked for is so in both stages.
        mine, theirs = cfg.train.epochs, recipe_epochs(cfg, ks)[0]
        why = f"{steps} scaled as your train.epochs ({mine} of the recipe's {theirs})"
        steps = int(np.clip(round(steps * mine / theirs), 1, LOCATOR_MAX_STEPS))
    yield "locator.steps", steps, why


# --------------------------------------------------------------------------- statistics


def crop_size(ks: KeypointSet, margin: float) -> tuple[float, float]:
    """Median (w, h) of what the model sees: the whole image for single unboxed instances
    (as the dataset crops them), else :func:`~keypointer.data.boxes.crop_box` grown by
    ``margin``."""
    whole = ks.whole_image
    sizes = []
    for s in ks.samples:
        for inst in s.instances:
            if whole and s.width and s.height:
                sizes.append((s.width, s.height))
            elif (box := crop_box(inst, whole_image=False)) is not None:
                sizes.append((box[2] * margin, box[3] * margin))
    if not sizes:
        return 256.0, 256.0
    w, h = np.median(np.asarray(sizes, np.float64), axis=0)
    return max(float(w), 16.0), max(float(h), 16.0)


def separation(ks: KeypointSet) -> float:
    """Typical distance (px) from a keypoint to its nearest labelled neighbour: the median
    over instances of each instance's 25th percentile (a few touching points are normal)."""
    per_instance = []
    for s in ks.samples:
        for inst in s.instances:
            pts = inst.keypoints[inst.labelled, :2].astype(np.float64)
            if len(pts) < 2:
                continue
            d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
            np.fill_diagonal(d, np.inf)
            per_instance.append(np.percentile(d.min(1), 25))
    return float(np.median(per_instance)) if per_instance else 0.0


def orientation_spread(ks: KeypointSet, min_count: int = 5) -> float:
    """Circular standard deviation (degrees) of the direction between keypoint pairs, median
    over pairs labelled together at least ``min_count`` times: how much the poses turn."""
    spreads = []
    for angle in _pair_directions(ks, min_count):
        r = abs(np.mean(np.exp(1j * angle)))
        spreads.append(math.degrees(math.sqrt(-2 * math.log(max(r, 1e-12)))))
    return float(np.median(spreads)) if spreads else 0.0


def heading_cover(ks: KeypointSet, min_count: int = 5) -> float:
    """Degrees of the circle the poses face (0-360): per keypoint pair labelled together at
    least ``min_count`` times, the 10-degree sectors of its direction that hold at least 1%
    of its labels (so a few mislabelled frames do not count); the median over pairs."""
    covers = []
    for angle in _pair_directions(ks, min_count):
        counts, _ = np.histogram(angle, bins=36, range=(-math.pi, math.pi))
        covers.append(10.0 * np.count_nonzero(counts >= max(1.0, 0.01 * len(angle))))
    return float(np.median(covers)) if covers else 0.0


def _pair_directions(ks: KeypointSet, min_count: int) -> Iterator[np.ndarray]:
    """Per keypoint pair (a, b) labelled together (apart) at least ``min_count`` times: the
    directions from a to b, radians (n,)."""
    points = [i.keypoints for s in ks.samples for i in s.instances]
    if len(points) < min_count:
        return
    kp = np.stack(points).astype(np.float64)  # (M, K, 3)
    k = kp.shape[1]
    for a in range(k):
        for b in range(a + 1, k):
            both = (kp[:, a, 2] > 0) & (kp[:, b, 2] > 0)
            v = kp[both, b, :2] - kp[both, a, :2]
            v = v[np.linalg.norm(v, axis=1) > 1e-6]
            if len(v) >= min_count:
                yield np.arctan2(v[:, 1], v[:, 0])


def _round32(x: float) -> int:
    return max(32, math.floor(x / 32 + 0.5) * 32)
