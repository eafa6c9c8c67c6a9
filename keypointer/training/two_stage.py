"""Two-stage training: on labels with crowds, ``keypointer train`` trains the pose model and
then the locator (the instance finder, :mod:`keypointer.training.locator`) on the same
train/validation split, into one run folder and one checkpoint.

Checkpoint layout: best.pt and last.pt get a top-level entry, plain values and tensors only
(``torch.load(weights_only=True)`` reads it; :func:`keypointer.checkpoint.load_locator`
rebuilds the model)::

    "locator": {"model": state_dict,
                "build_info": {"input_size": [W, H], "box_ratio": [rw, rh], "min_pose_score": s},
                "metrics": {"val_recall": float, "val_precision": float, ...}}

The run folder also gets ``locator_metrics.json``. Labels with one instance per image are
left exactly as before (``locator.enabled`` None): no locator, no extra time, no new entry.

With ``train.time`` the locator gets what its planned schedule costs on this machine and data
(a few of its steps are timed first), at most :data:`MAX_SHARE` of the budget; the pose model
gets the rest and then the locator what is left (:func:`pose_budget`, :func:`locator_share`).
Without it the locator runs ``locator.steps`` (the recipe's, scaled with a user's
``train.epochs``: training/recipe.py).
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

from keypointer.checkpoint import damaged, load_checkpoint, save_checkpoint
from keypointer.config import Config
from keypointer.data.types import KeypointSet
from keypointer.device import make_autocast, resolve_amp
from keypointer.files import write_text_atomic
from keypointer.training import distributed as dist
from keypointer.training.budget import TimeBudget
from keypointer.training.loaders import Batch, TrainData
from keypointer.training.locator import (
    LocatorEntry,
    locator_optimizer,
    locator_setup,
    locator_step,
    train_locator,
)
from keypointer.training.progress import TrainProgress
from keypointer.training.records import Row
from keypointer.training.state import TrainState

KEY = "locator"  # the checkpoint entry
METRICS_FILE = "locator_metrics.json"
MAX_SHARE = 0.4  # the locator's most of a time budget (measured: locator_share)
PROBE_SKIP, PROBE_TIMED = 3, 5  # locator steps run to time one: start-up ones, then timed ones
MIN_POSE_SHARE = 0.5
"""A located instance is kept when its mean keypoint score is at least this share of the median
of labelled ones. On synthetic crowds (benchmarks/RESULTS.md, "Several instances") floors of
0.4-0.5 of 0.85 removed most extra instances at no cost in AP; 0.6 began to lose real ones."""
SAVE_SLACK_S = 1.0  # beyond the two re-saves: the metrics file, the locator's bytes, noise


def wants_locator(cfg: Config, data: TrainData) -> bool:
    """Whether a locator follows the pose model.

    Args:
        cfg: the run's config (``locator.enabled``).
        data: the pose model's data.

    Returns:
        ``locator.enabled`` when set; when None, whether any image of the training labels
        (either split) holds more than one instance.
    """
    if cfg.locator.enabled is not None:
        return cfg.locator.enabled
    ksets = (data.train_set.kset, data.val_set.kset)
    return any(len(s.instances) > 1 for k in ksets for s in k.samples)


def pose_done(state: TrainState) -> bool:
    """The pose model's schedule is complete, not stopped early (as ``stop_after`` does).

    Args:
        state: the loop's state after its fit.

    Returns:
        Whether the second stage may start.
    """
    epochs = int(state.history[-1]["epoch"]) if state.history else 0
    time_set = state.cfg.train.time is not None
    return state.schedule.finished or (not time_set and epochs >= state.cfg.train.epochs)


# --------------------------------------------------------------------------- time budget


def pose_budget(state: TrainState, elapsed_s: float, crowd: bool) -> TimeBudget:
    """``train.time``'s budget for the pose model: all of it, or when a new locator follows
    what :func:`locator_share` leaves it, after timing a few locator steps (on the main
    process, whose plan all follow; that time counts too).

    Args:
        state: the loop's state.
        elapsed_s: seconds of the budget spent before now.
        crowd: a locator follows (a resumed last.pt that holds one trains none).

    Returns:
        The pose model's budget.
    """
    cfg = state.cfg
    if not (crowd and state.locator_entry is None and state.info.is_main):
        return TimeBudget(cfg.train.time, elapsed_s)
    started = time.perf_counter()
    step_s = state.locator_step_s  # timed in setup for the recipe's table, else now
    if step_s is None:
        step_s = probe_step_s(state.data.train_set.kset, cfg, state.device)
    locator_s = cfg.locator.steps * step_s
    elapsed_s += time.perf_counter() - started
    left_s = cfg.train.time * 60.0 - elapsed_s
    pose_s = elapsed_s + left_s * (1.0 - locator_share(locator_s, left_s))
    return TimeBudget(pose_s / 60.0, elapsed_s)


def locator_share(locator_s: float, left_s: float) -> float:
    """The locator's share of the seconds both models have left.

    Its recall climbs steeply to ~1000 steps and levels off near its default 3000, while the
    pose model's accuracy moves little once it has most of a short budget (measured:
    benchmarks/RESULTS.md, two-stage training); so the locator gets its default when the
    budget allows it, and the pose model all the rest.

    Args:
        locator_s: what the locator's default schedule costs (``locator.steps`` at its
            measured step time).
        left_s: the seconds both models have.

    Returns:
        A share in [0, :data:`MAX_SHARE`].
    """
    if left_s <= 0:
        return MAX_SHARE
    return min(max(locator_s, 0.0) / left_s, MAX_SHARE)


def probe_step_s(train_set: KeypointSet, cfg: Config, device: torch.device) -> float:
    """Seconds per locator training step on this machine and data: a throwaway locator
    trained for a few steps (the first :data:`PROBE_SKIP` pay for start-up and are not
    timed). The caller's random state is left as it was (a resumed run stays exact).

    Args:
        train_set: the training labels.
        cfg: the run's config.
        device: where the locator will train.

    Returns:
        The median seconds of the timed steps.
    """
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda, device_type="cuda"):
        model, _, loader = locator_setup(train_set, cfg, device)
        optimizer, scheduler = locator_optimizer(model, cfg, len(loader), cfg.locator.steps)
        autocast = make_autocast(device, resolve_amp(cfg.train.amp, device))
        times, tick = [], time.perf_counter()
        for batch in _batches(loader, PROBE_SKIP + PROBE_TIMED):
            locator_step(model, batch, optimizer, scheduler, autocast, device, cfg)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            now = time.perf_counter()
            times.append(now - tick)
            tick = now
    return statistics.median(times[PROBE_SKIP:])


def _batches(loader: Iterable[Batch], n: int) -> Iterator[Batch]:
    """``n`` batches from ``loader``, passing over it again when it holds fewer."""
    while True:
        for batch in loader:
            yield batch
            n -= 1
            if n <= 0:
                return


# --------------------------------------------------------------------------- the second stage


def after_fit(state: TrainState) -> dict[str, float] | None:
    """The second stage, once the pose model's schedule is complete: the main process trains
    the locator (or keeps the one of a resumed run's last.pt), adds it to best.pt and
    last.pt, writes ``locator_metrics.json`` and logs its validation; the others wait.

    Args:
        state: the loop's state after its fit.

    Returns:
        The locator's metrics (None on the other processes, or when the pose model is not
        done).
    """
    if not pose_done(state):
        return None
    metrics = None
    if state.info.is_main:
        metrics = add_locator(
            state.cfg,
            state.device,
            state.data,
            state.run_dir,
            prior=state.locator_entry,
            budget=state.schedule.budget,
            floor=min_pose_score(state.history),
        )
    dist.barrier(state.info)
    return metrics


def add_locator(
    cfg: Config,
    device: torch.device,
    data: TrainData,
    run_dir: Path,
    *,
    prior: LocatorEntry | None,
    budget: TimeBudget | None,
    floor: float = 0.0,
) -> dict[str, float]:
    """Train the locator unless one is kept, add it to the run's checkpoints and log it.

    Args:
        cfg: the run's config.
        device: where to train.
        data: the pose model's data (its train/val split).
        run_dir: the run folder.
        prior: the locator of a resumed last.pt, or None.
        budget: the pose model's time budget (the locator gets what it left), or None.
        floor: the located instances' minimum mean keypoint score (:func:`min_pose_score`).

    Returns:
        The locator's metrics.
    """
    started = time.perf_counter()
    # best.pt first: last.pt is the commit point a resume starts from (as records.py saves).
    paths = [run_dir / "best.pt", run_dir / "last.pt"]
    states = [load_checkpoint(p) for p in paths]
    entry = prior or next((s[KEY] for s in states if s.get(KEY) is not None), None)
    if entry is None:
        time_s = None
        if budget is not None:  # what the pose model left, less the two re-saves (~ two loads)
            reserve = 2 * (time.perf_counter() - started) + SAVE_SLACK_S
            time_s = max(cfg.train.time * 60.0 - budget.elapsed() - reserve, 1.0)
        entry = fit_locator(cfg, device, data, time_s)
        entry["build_info"]["min_pose_score"] = floor
    with damaged(paths[1]):  # a kept entry that is no locator's: say which file
        metrics = {k: float(v) for k, v in entry["metrics"].items()}
    for path, state in zip(paths, states, strict=True):
        if state.get(KEY) is None:
            save_checkpoint({**state, KEY: entry}, path)
    plain = {k: v if math.isfinite(v) else None for k, v in metrics.items()}  # strict JSON
    write_text_atomic(run_dir / METRICS_FILE, json.dumps(plain, indent=2) + "\n")
    print(summary_line(metrics), file=sys.stderr, flush=True)
    return metrics


def min_pose_score(history: list[Row]) -> float:
    """The score a located instance needs, set by what real animals score here (scores
    differ from data to data); one scoring under it is dropped
    (:func:`~keypointer.inference.locate.keep_located`).

    Args:
        history: the pose model's rows.

    Returns:
        :data:`MIN_POSE_SHARE` of the median mean keypoint score of the labelled validation
        instances (``val_score``) at the pose model's best epoch (best.pt's); 0 when unknown.
    """
    rows = [r for r in history if math.isfinite(r.get("val_score", math.nan))]
    if not rows:
        return 0.0
    best = max(rows, key=lambda r: r.get("val_pck", -math.inf))
    return MIN_POSE_SHARE * float(best["val_score"])


def fit_locator(
    cfg: Config, device: torch.device, data: TrainData, time_s: float | None = None
) -> LocatorEntry:
    """Train the locator on the pose model's train/val split.

    Args:
        cfg: the run's config.
        device: where to train.
        data: the pose model's data.
        time_s: the locator's wall seconds, or None: ``locator.steps``.

    Returns:
        The checkpoint entry.
    """
    train_set, val_set = data.train_set.kset, data.val_set.kset
    plan = f"{cfg.locator.steps} steps" if time_s is None else f"{time_s / 60:.1f} min"
    progress = TrainProgress(cfg.locator.steps, quiet=cfg.run.quiet)
    progress.log(
        f"locator: training the instance finder ({cfg.locator.backbone}) on {len(train_set)} "
        f"images, {plan}"
    )
    try:
        model, metrics = train_locator(
            train_set, val_set, cfg, device, time_budget_s=time_s, progress=progress
        )
    finally:
        progress.close()
    if time_s is not None:
        metrics["time_budget_s"] = time_s
    return {
        "model": model.state_dict(),
        "build_info": dict(model.build_info or {}),
        "metrics": {k: float(v) for k, v in metrics.items()},
    }


def summary_line(metrics: dict[str, float]) -> str:
    """One line for the log: the locator's validation, its length and time.

    Args:
        metrics: the locator's metrics (:func:`fit_locator`'s entry).

    Returns:
        The line.
    """
    m = metrics
    precision, iou = m["val_precision"], m["val_mean_iou"]
    if m.get("val_predicted", 1) == 0 or not math.isfinite(precision):
        # precision of no box is undefined (older checkpoints stored 1.0 for it)
        found = (
            f"found no box for {m['val_instances']:.0f} labelled instances (recall "
            f"{m['val_recall']:.3f}, precision n/a)"
        )
    else:
        mean_iou = f"mean IoU {iou:.3f}" if math.isfinite(iou) else "no box matched"
        found = (
            f"recall {m['val_recall']:.3f}, precision {precision:.3f} "
            f"(IoU 0.5, {m['val_instances']:.0f} instances), {mean_iou}"
        )
    return f"locator: val {found}; {m['steps']:.0f} steps in {m['seconds'] / 60:.1f} min"
