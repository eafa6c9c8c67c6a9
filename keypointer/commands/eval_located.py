"""``keypointer eval`` of a two-stage model: instances located by the model itself.

The top-down scores of :mod:`keypointer.commands.eval` crop each labelled instance from its
labelled box: they say how good the poses are, not whether the instances are found. Here each
image goes through what ``predict`` does (the locator on the whole image, then the pose model
on each box it found), and the predictions are scored against every labelled instance with
pycocotools' OKS AP (:func:`keypointer.metrics.located.located_oks`), with missed and extra
instances counted, and the locator's boxes with recall, precision and IoU.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np

from keypointer.commands.progress import counted
from keypointer.data.boxes import scale_boxes
from keypointer.data.types import KeypointSet
from keypointer.data.whole_images import instance_boxes
from keypointer.inference.pipeline import Pipeline
from keypointer.inference.sources import Frame, Source
from keypointer.metrics.boxes import box_metrics
from keypointer.metrics.located import LocatedOks, located_oks


class LocatedMetrics(TypedDict):
    """:func:`located_metrics`' result: OKS AP/AR with instance counts, the locator's box
    metrics (NaN as None) and its score threshold."""

    oks: LocatedOks
    boxes: dict[str, float | None]
    threshold: float


def located_metrics(pipe: Pipeline, kset: KeypointSet, quiet: bool = False) -> LocatedMetrics:
    """OKS AP/AR of the instances ``pipe`` (two-stage) finds in ``kset``'s images, exactly as
    ``predict`` finds them, with missed/extra counts and the locator's box metrics."""
    k = kset.skeleton.num_keypoints
    names = ("pred", "scores", "inst", "gt", "vis", "gt_boxes", "scale")  # scale: OKS box
    cols: dict[str, list] = {n: [] for n in names}
    found: list[np.ndarray] = []
    frames = (Frame(Source(s.image, "image"), s.read()) for s in kset.samples)
    predictions = counted(pipe.run(frames), len(kset.samples), quiet, "locating")
    for sample, pred in zip(kset.samples, predictions, strict=True):
        found.append(pred.located if pred.located is not None else np.zeros((0, 4)))
        gt = np.array([i.keypoints for i in sample.instances], np.float64).reshape(-1, k, 3)
        cols["pred"].append(pred.keypoints)
        cols["scores"].append(pred.scores)
        cols["inst"].append(pred.instance_scores)
        cols["gt"].append(gt[..., :2])
        cols["vis"].append(gt[..., 2] > 0)
        cols["gt_boxes"].append(instance_boxes(sample))
        cols["scale"].append(np.nan_to_num(scale_boxes(sample.instances)))  # none: 0
    oks = located_oks(
        pred=cols["pred"],
        scores=cols["scores"],
        instance_scores=cols["inst"],
        gt=cols["gt"],
        visible=cols["vis"],
        bboxes=cols["scale"],
        sigmas=kset.skeleton.oks_sigmas,
    )
    boxes = {k: None if v != v else v for k, v in box_metrics(found, cols["gt_boxes"]).items()}
    return {"oks": oks, "boxes": boxes, "threshold": pipe.locator.threshold}  # NaN: null
