"""What :mod:`.oks` and :mod:`.located` share to score keypoints with pycocotools' COCOeval:
the in-memory COCO ground truth and results, and one quiet ``COCOeval(iouType="keypoints")``
run whose ten statistics come back as :class:`OksStats`.

Every instance is of category 1; ground truth keypoints are written (x, y, 2) when labelled and
(0, 0, 0) when not; statistics that COCOeval reports as -1 (no ground truth in that area range)
become NaN.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Sequence
from typing import TypedDict

import numpy as np
import numpy.typing as npt
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from keypointer.metrics.arrays import to_numpy


class OksStats(TypedDict):
    """COCO keypoint AP and AR: at OKS 0.50:0.95, 0.5 and 0.75, medium and large instances."""

    AP: float
    AP50: float
    AP75: float
    APm: float
    APl: float
    AR: float
    AR50: float
    AR75: float
    ARm: float
    ARl: float


OKS_STAT_NAMES = tuple(OksStats.__annotations__)  # in COCOeval.stats' order


class CocoAnnotation(TypedDict):
    """One ground-truth instance as COCO writes it."""

    id: int
    image_id: int
    category_id: int
    keypoints: list[float]  # K x (x, y, v)
    num_keypoints: int
    bbox: list[float]  # x, y, w, h
    area: float
    iscrowd: int


class CocoResult(TypedDict):
    """One predicted instance as COCO results files write it."""

    image_id: int
    category_id: int
    keypoints: list[float]  # K x (x, y, score)
    score: float


class CocoDataset(TypedDict):
    """An in-memory COCO ground-truth file."""

    images: list[dict[str, int]]
    annotations: list[CocoAnnotation]
    categories: list[dict[str, object]]


def boxes_and_areas(
    gt: np.ndarray,
    labelled: np.ndarray,
    bboxes: npt.ArrayLike | None,
    areas: npt.ArrayLike | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ground truth's boxes and OKS scales s^2.

    Args:
        gt: (N, K, 2) ground-truth keypoints, image pixels.
        labelled: (N, K) bool, the keypoints that count.
        bboxes: (N, 4) boxes x, y, w, h, or None: the box around each instance's labelled
            keypoints (zeros without any).
        areas: (N,) OKS scales, or None: the boxes' ``w * h``.

    Returns:
        boxes (N, 4) and areas (N,).
    """
    n = len(gt)
    if bboxes is None and areas is None:
        raise ValueError("OKS needs the instance scale: pass bboxes or areas")
    if bboxes is not None:
        boxes = to_numpy(bboxes).reshape(n, 4)
    else:  # only used by COCOeval for instances without labels, which it ignores
        boxes = np.zeros((n, 4))
        for i in np.flatnonzero(labelled.any(axis=1)):
            lo, hi = gt[i][labelled[i]].min(0), gt[i][labelled[i]].max(0)
            boxes[i] = [lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]]
    area = boxes[:, 2] * boxes[:, 3] if areas is None else to_numpy(areas).reshape(n)
    return boxes, area


def coco_annotations(
    gt: np.ndarray,
    labelled: np.ndarray,
    boxes: np.ndarray,
    areas: np.ndarray,
    image_ids: Sequence[int] | np.ndarray,
    first_id: int = 1,
) -> list[CocoAnnotation]:
    """COCO ground-truth annotations of N instances.

    Args:
        gt: (N, K, 2) keypoints, image pixels.
        labelled: (N, K) bool; unlabelled keypoints are written (0, 0, 0).
        boxes: (N, 4) x, y, w, h.
        areas: (N,) OKS scales s^2.
        image_ids: (N,) the image of each instance.
        first_id: the first annotation id (COCOeval takes id 0 to mean "unmatched").

    Returns:
        N annotations with ids ``first_id``, ``first_id + 1``, ...
    """
    xyv = np.concatenate([np.where(labelled[..., None], gt, 0.0), 2.0 * labelled[..., None]], -1)
    return [
        {
            "id": first_id + i,
            "image_id": int(image_ids[i]),
            "category_id": 1,
            "keypoints": xyv[i].reshape(-1).tolist(),
            "num_keypoints": int(labelled[i].sum()),
            "bbox": boxes[i].tolist(),
            "area": float(areas[i]),
            "iscrowd": 0,
        }
        for i in range(len(gt))
    ]


def coco_result(image_id: int, keypoints: np.ndarray, score: float) -> CocoResult:
    """One prediction as a COCO result.

    Args:
        image_id: its image.
        keypoints: (K, 3) x, y in image pixels and the keypoint score (COCOeval ignores it).
        score: the instance score that ranks it for AP.

    Returns:
        The result dict.
    """
    return {
        "image_id": int(image_id),
        "category_id": 1,
        "keypoints": keypoints.reshape(-1).tolist(),
        "score": float(score),
    }


def coco_dataset(
    image_ids: Iterable[int], annotations: list[CocoAnnotation], num_keypoints: int
) -> CocoDataset:
    """An in-memory COCO ground-truth file.

    Args:
        image_ids: the images, each once.
        annotations: the instances, from :func:`coco_annotations`.
        num_keypoints: K.

    Returns:
        The dataset dict, one category with keypoints named "0" to "K-1".
    """
    return {
        "images": [{"id": int(i)} for i in image_ids],
        "annotations": annotations,
        "categories": [
            {"id": 1, "name": "object", "keypoints": [str(j) for j in range(num_keypoints)]}
        ],
    }


def run_cocoeval(
    dataset: CocoDataset, results: list[CocoResult], sigmas: Sequence[float]
) -> tuple[OksStats, COCOeval]:
    """Score results against a dataset with ``COCOeval(iouType="keypoints")``, quietly.

    Args:
        dataset: the ground truth, from :func:`coco_dataset`.
        results: the predictions, at least one.
        sigmas: (K,) OKS sigmas.

    Returns:
        The statistics (NaN where COCOeval gives -1) and the evaluator, evaluated.
    """
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt = COCO()
        coco_gt.dataset = dataset
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = zip(OKS_STAT_NAMES, evaluator.stats, strict=True)
    return {name: float("nan") if v == -1 else float(v) for name, v in stats}, evaluator
