"""The learned-nothing guard: is the model any better than predicting the average pose?

A model stuck on the heatmap loss's early plateau (too small an input, too few steps, a bad
learning rate) predicts about the same place for every image. Its validation error then sits
near that of the *mean-pose baseline*: each keypoint placed at its average position over the
training instances, in each instance's own frame (the image for whole-image crops, else the
box). When validation error stays near that baseline, the run says so once, with the causes.
"""

from __future__ import annotations

import numpy as np

from keypointer.data.boxes import scale_box
from keypointer.data.types import Instance, KeypointSet

NEAR = 0.6  # validation error above this share of the baseline counts as "learned nothing"
MIN_BASELINE_PX = 1.0  # below it the average pose is already right: no comparison to make


def _frames(ks: KeypointSet, whole_image: bool) -> list[tuple[Instance, np.ndarray]]:
    """(instance, frame) pairs: frame = (x, y, w, h) the keypoints are normalised by."""
    out = []
    for s in ks.samples:
        for inst in s.instances:
            if whole_image and s.width and s.height:
                frame = (0.0, 0.0, float(s.width), float(s.height))
            elif (box := scale_box(inst)) is not None:
                frame = (box[0], box[1], max(box[2], 1.0), max(box[3], 1.0))
            else:
                continue
            out.append((inst, np.asarray(frame, np.float64)))
    return out


def mean_pose_error(train: KeypointSet, val: KeypointSet) -> float:
    """Mean pixel error on ``val`` of the training set's average pose.

    Args:
        train: the training labels (the average pose comes from them).
        val: the validation labels.

    Returns:
        The mean error in pixels (NaN when undefined).
    """
    whole = train.whole_image and val.whole_image
    k = train.skeleton.num_keypoints
    total, count = np.zeros((k, 2)), np.zeros((k, 1))
    for inst, f in _frames(train, whole):
        lab = inst.labelled
        total[lab] += (inst.keypoints[lab, :2] - f[:2]) / f[2:]
        count[lab] += 1
    mean = np.where(count > 0, total / np.maximum(count, 1), 0.5)
    errors = []
    for inst, f in _frames(val, whole):
        lab = inst.labelled
        guess = f[:2] + mean[lab] * f[2:]
        errors.extend(np.linalg.norm(guess - inst.keypoints[lab, :2], axis=1))
    return float(np.mean(errors)) if errors else float("nan")


def learned_nothing_message(val_mean_px: float, baseline_px: float) -> str | None:
    """The warning to give when ``val_mean_px`` is no more than ``1 - NEAR`` below the mean-pose
    ``baseline_px``, or above it; None otherwise, and when the baseline is under
    :data:`MIN_BASELINE_PX` (the average pose is then already right to a pixel: every labelled
    point sits on about one spot, and there is nothing for a model to beat).

    Args:
        val_mean_px: the validation's mean pixel error.
        baseline_px: :func:`mean_pose_error`.

    Returns:
        The warning, or None.
    """
    if not np.isfinite(baseline_px) or not np.isfinite(val_mean_px):
        return None
    if baseline_px < MIN_BASELINE_PX or val_mean_px < NEAR * baseline_px:
        return None
    if val_mean_px > baseline_px:
        relation = "is worse than"
    else:
        relation = f"is only {100 * (1 - val_mean_px / baseline_px):.0f}% below"
    return (
        f"the model has not learned yet: validation error {val_mean_px:.1f} px {relation} the "
        f"{baseline_px:.1f} px of always predicting the average pose. Likely causes: an input "
        "too small for how close the keypoints are (model.input_size), too few steps "
        "(--time MINUTES or train.epochs), or the learning rate (train.lr). Leave these unset "
        "to let the recipe choose them from the data."
    )
