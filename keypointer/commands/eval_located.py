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

from keypointer.commands.progress import progress
from keypointer.data.types import KeypointSet
from keypointer.data.whole_images import instance_boxes
from keypointer.inference.pipeline import Pipeline
from keypointer.inference.sources import Frame, Source
from keypointer.metrics.boxes import box_metrics
from keypointer.metrics.located import located_oks


def located_metrics(pipe: Pipeline, kset: KeypointSet, quiet: bool = False) -> dict[str, Any]:
    """OKS AP/AR of the instances ``pipe`` (two-stage) finds in ``kset``'s images, exactly as
    ``predict`` finds them, with missed/extra counts and the locator's box metrics."""
    k = kset.skeleton.num_keypoints
    cols: dict[str, list] = {n: [] for n in ("pred", "scores", "inst", "gt", "vis", "gt_boxes")}
    found: list[np.ndarray] = []
    frames = (Frame(Source(s.image, "image"), s.read()) for s in kset.samples)
    with progress(len(kset.samples), quiet, "locating") as advance:
        for sample, pred in zip(kset.samples, pipe.run(frames), strict=True):
            found.append(pred.located if pred.located is not None else np.zeros((0, 4)))
            gt = np.array([i.keypoints for i in sample.instances], np.float64).reshape(-1, k, 3)
            cols["pred"].append(pred.keypoints)
            cols["scores"].append(pred.scores)
            cols["inst"].append(pred.instance_scores)
            cols["gt"].append(gt[..., :2])
            cols["vis"].append(gt[..., 2] > 0)
            cols["gt_boxes"].append(instance_boxes(sample))
            advance()
    sigmas = kset.skeleton.oks_sigmas
    oks = located_oks(cols["pred"], cols["scores"], cols["inst"], cols["gt"], cols["vis"],
                      _box_per_instance(cols), sigmas)  # fmt: skip
    boxes = {k: None if v != v else v for k, v in box_metrics(found, cols["gt_boxes"]).items()}
    return {"oks": oks, "boxes": boxes, "threshold": pipe.locator.threshold}  # NaN: null


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
