"""``keypointer eval`` of a two-stage model: instances located by the model itself.

The top-down scores of :mod:`keypointer.commands.eval` crop each labelled instance from its
labelled box: they say how good the poses are, not whether the instances are found. Here each
image goes through what ``predict`` does (the locator on the whole image, then the pose model
on each box it found), and the predictions are scored against every labelled instance with
pycocotools' OKS AP (:func:`keypointer.metrics.located.located_oks`), with missed and extra
instances counted, and the locator's boxes with recall, precision and IoU.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from keypointer.data.types import KeypointSet
from keypointer.data.whole_images import instance_boxes
from keypointer.inference.runners import as_runner, predict_located
from keypointer.metrics.boxes import box_metrics
from keypointer.metrics.located import located_oks


def located_metrics(
    model: Any,
    locator: Any,
    kset: KeypointSet,
    flip: bool = False,
    threshold: float = 0.3,
    max_instances: int | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """OKS AP/AR of located instances, missed/extra counts and box metrics over ``kset``."""
    k = kset.skeleton.num_keypoints
    cols: dict[str, list] = {n: [] for n in ("pred", "scores", "inst", "gt", "vis", "gt_boxes")}
    found: list[np.ndarray] = []
    runner = as_runner(model)
    runner.locator, runner.locator_threshold, runner.max_instances = (
        locator,
        threshold,
        max_instances,
    )
    with _progress(len(kset.samples), quiet) as advance:
        for sample in kset.samples:
            boxes, pred = predict_located(runner, sample.read(), flip)  # as predict does
            kp, sc, inst = pred.keypoints, pred.scores, pred.instance_scores
            found.append(boxes)
            gt = np.array([i.keypoints for i in sample.instances], np.float64).reshape(-1, k, 3)
            cols["pred"].append(kp)
            cols["scores"].append(sc)
            cols["inst"].append(inst)
            cols["gt"].append(gt[..., :2])
            cols["vis"].append(gt[..., 2] > 0)
            cols["gt_boxes"].append(instance_boxes(sample))
            advance()
    sigmas = kset.skeleton.oks_sigmas
    oks = located_oks(cols["pred"], cols["scores"], cols["inst"], cols["gt"], cols["vis"],
                      _box_per_instance(cols), sigmas)  # fmt: skip
    boxes = box_metrics(found, cols["gt_boxes"])
    return {"oks": oks, "boxes": boxes, "threshold": threshold}


def _box_per_instance(cols: dict[str, list]) -> list[np.ndarray]:
    """The OKS scale of each labelled instance: its box, or its keypoints' extent (as
    :func:`~keypointer.data.whole_images.instance_boxes` gives; NaN rows when none)."""
    out = []
    for gt, vis, boxes in zip(cols["gt"], cols["vis"], cols["gt_boxes"], strict=True):
        if len(boxes) == len(gt):
            out.append(boxes)
            continue  # instances without a label have no box there: rebuild row by row
        rows = np.zeros((len(gt), 4))
        for j in range(len(gt)):
            pts = gt[j][vis[j]]
            if len(pts):
                lo, hi = pts.min(0), pts.max(0)
                rows[j] = [lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]]
        out.append(rows)
    return out


class _progress:
    """A progress bar with ETA over the images (nothing when quiet)."""

    def __init__(self, total: int, quiet: bool):
        self.total, self.quiet = total, quiet

    def __enter__(self):
        if self.quiet:
            return lambda: None
        columns = ("locating", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        self.bar = Progress(*columns, transient=True)
        self.bar.__enter__()
        task = self.bar.add_task("locate", total=self.total)
        return lambda: self.bar.advance(task)

    def __exit__(self, *exc):
        if not self.quiet:
            self.bar.__exit__(*exc)
