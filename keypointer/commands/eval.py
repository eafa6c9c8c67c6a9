"""Run a model over a dataset and score it, in original-image pixels: ``keypointer eval``.

``predict_loader`` is shared by validation during training and by
``keypointer eval``: predictions in input pixels are mapped back through each
sample's affine, so metrics are in the pixels of the user's own images.
``evaluate_command`` adds the metrics of :mod:`keypointer.metrics` (OKS AP included),
a table, ``eval.json``, plots and a gallery of the worst predictions.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from keypointer.errors import DataError


@dataclass
class Predictions:
    """Everything needed to score a dataset; M instances, K keypoints, original pixels."""

    keypoints: np.ndarray  # (M, K, 2) predicted
    scores: np.ndarray  # (M, K)
    gt: np.ndarray  # (M, K, 2)
    visible: np.ndarray  # (M, K) bool: labelled ground truth
    bboxes: np.ndarray  # (M, 4) x, y, w, h of the instance box
    index: np.ndarray  # (M,) dataset index of each instance
    image_ids: np.ndarray | None = None  # (M,) position of each instance's image in the set


def apply_affine(points: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """Map (N, K, 2) points through (N, 2, 3) affine matrices."""
    a = affine.to(torch.float64)
    p = points.to(torch.float64)
    return p @ a[:, :, :2].transpose(1, 2) + a[:, None, :, 2]


def to_device(batch: dict, device: torch.device, channels_last: bool = False) -> dict:
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device, non_blocking=True)
            if key == "image" and channels_last:
                value = value.contiguous(memory_format=torch.channels_last)
        elif isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
            value = type(value)(v.to(device, non_blocking=True) for v in value)
        out[key] = value
    return out


@torch.inference_mode()
def predict_loader(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    autocast: contextlib.AbstractContextManager | None = None,
    channels_last: bool = False,
    flip_index: Sequence[int] | None = None,
) -> Predictions:
    """Predict every instance of ``loader``'s dataset and map results to original pixels.

    ``flip_index`` (the skeleton's): flip test-time augmentation, see
    :func:`keypointer.engine.predict.flip_average`. Boxes are the batch's "bbox" when the
    dataset gives one, else the instance's box, else the box around its labelled keypoints.
    """
    from keypointer.engine.predict import flip_average

    was_training = model.training
    model.eval()
    parts: dict[str, list[np.ndarray]] = {k: [] for k in Predictions.__dataclass_fields__}
    try:
        for batch in loader:
            batch = to_device(batch, device, channels_last)
            with autocast or contextlib.nullcontext():
                if flip_index is None:
                    kpts, scores = model.predict(batch["image"])
                else:
                    kpts, scores = flip_average(model, batch["image"], flip_index)
            affine = batch["affine"]
            index = batch["index"].cpu().numpy()
            parts["keypoints"].append(apply_affine(kpts.float(), affine).cpu().numpy())
            parts["gt"].append(apply_affine(batch["keypoints"], affine).cpu().numpy())
            parts["scores"].append(scores.float().cpu().numpy())
            parts["visible"].append(batch["visible"].cpu().numpy().astype(bool))
            if "bbox" in batch:
                parts["bboxes"].append(batch["bbox"].cpu().numpy().astype(np.float64))
            else:
                parts["bboxes"].append(instance_boxes(loader.dataset, index))
            parts["index"].append(index)
            if "image_id" in batch:
                parts["image_ids"].append(batch["image_id"].cpu().numpy())
    finally:
        model.train(was_training)
    return Predictions(**{k: np.concatenate(v) if v else _empty(k) for k, v in parts.items()})


def _empty(key: str) -> np.ndarray | None:
    return None if key == "image_ids" else np.zeros((0,))


def instance_boxes(dataset, index: np.ndarray) -> np.ndarray:
    """(M, 4) x, y, w, h original-pixel boxes of dataset items: the instance's box when it has
    one with an area, else the box around its labelled keypoints (NaN when none)."""
    from keypointer.metrics import bboxes_from_keypoints

    boxes = np.full((len(index), 4), np.nan)
    for row, i in enumerate(index):
        _, inst = dataset.entry(int(i))
        if inst.bbox is not None and inst.bbox[2] > 0 and inst.bbox[3] > 0:
            boxes[row] = inst.bbox
        else:
            kp = np.asarray(inst.keypoints, np.float64)
            boxes[row] = bboxes_from_keypoints(kp[None, :, :2], (kp[:, 2] > 0)[None])[0]
    return boxes


def quick_metrics(pred: Predictions, alpha: float) -> dict[str, float]:
    """Validation metrics logged every epoch: PCK@alpha (box-size normaliser) and mean pixel error."""
    from keypointer.metrics import bbox_norm, pck, pixel_errors

    result = pck(pred.keypoints, pred.gt, pred.visible, bbox_norm(pred.bboxes), alpha)
    errors = pixel_errors(pred.keypoints, pred.gt, pred.visible)
    return {"pck": float(result.overall), "mean_px": float(errors["mean"])}


# --------------------------------------------------------------------------- keypointer eval

GENERIC_STEMS = {"annotations", "labels", "data", "instances", "person_keypoints", "config"}


def default_eval_dir(checkpoint: str | Path, data: str | Path) -> Path:
    """``<run>/eval-<dataset name>``: the folder holding the checkpoint (or the run folder)."""
    ckpt, data = Path(checkpoint), Path(data)
    run = ckpt if ckpt.is_dir() else ckpt.parent
    name = data.name if data.is_dir() else data.stem
    if name.lower() in GENERIC_STEMS or name.lower().startswith("collecteddata"):
        name = data.resolve().parent.name if not data.is_dir() else name
    return run / f"eval-{name or 'data'}"


def evaluate_command(
    checkpoint: str | Path,
    data: str | Path,
    out: str | Path | None = None,
    format: str | None = None,
    images: str | Path | None = None,
    alpha: float = 0.05,
    pcutoff: float | None = None,
    batch_size: int | None = None,
    *,
    flip: bool = False,
    device: str = "auto",
    num_worst: int = 12,
    quiet: bool = False,
) -> dict[str, Any]:
    """What ``keypointer eval`` does: predict every labelled instance of ``data`` and score it.

    Writes ``eval.json`` (atomically; all metrics, per keypoint, the PCK curve and the worst
    instances), ``pck_curve.png``, ``per_keypoint_error.png`` and ``worst.png`` (a gallery of
    the ``num_worst`` instances with the largest mean normalised error, predictions as filled
    dots, ground truth as rings) to ``out`` (default :func:`default_eval_dir`); prints a table.
    Returns the metrics dict that ``eval.json`` holds.
    """
    from keypointer.data.check import validate
    from keypointer.data.dataset import KeypointDataset, make_loader
    from keypointer.data.formats import load_dataset
    from keypointer.engine.checkpoint import load_model
    from keypointer.engine.train import resolve_device
    from keypointer.metrics import bbox_norm, evaluate_keypoints, pck_curve
    from keypointer.output_paths import check_output_dir

    dev = resolve_device(device)
    model = load_model(checkpoint, dev)
    out_dir = Path(out) if out is not None else default_eval_dir(checkpoint, data)
    check_output_dir(out_dir)  # before the evaluation, not after it
    cfg, skeleton = model.config, model.skeleton
    kset = validate(load_dataset(data, format, images), check_images=False).cleaned
    if kset.skeleton.names != skeleton.names:
        raise DataError(
            f"its keypoints {list(kset.skeleton.names)} differ from the model's "
            f"{list(skeleton.names)}",
            data,
        )
    ds = KeypointDataset(
        kset,
        model.codec,
        cfg.model.input_size,
        None,
        train=False,
        box_margin=cfg.augment.box_margin,
    )
    loader_cfg = cfg.loader.model_copy(update={"batch_size": batch_size or cfg.loader.batch_size})
    loader = make_loader(ds, loader_cfg, train=False, device=dev)
    flip_index = skeleton.flip_index() if flip else None
    pred = predict_loader(model, loader, dev, flip_index=flip_index)
    if ds.bad_images:
        raise DataError(f"{len(ds.bad_images)} images could not be read, e.g. {ds.bad_images[0]}")
    metrics = evaluate_keypoints(
        pred.keypoints, pred.gt, pred.visible, pred.scores, pred.bboxes, skeleton, alpha, pcutoff,
        image_ids=pred.image_ids,
    )  # fmt: skip
    alphas, curve = pck_curve(pred.keypoints, pred.gt, pred.visible, bbox_norm(pred.bboxes))
    worst = worst_instances(pred, num_worst)
    metrics.update(
        checkpoint=str(checkpoint), data=str(data), flip=flip, num_images=len(kset),
        pck_curve={"alpha": alphas.tolist(), "pck": [_num(v) for v in curve]},
        worst=[_worst_entry(ds, pred, i) for i in worst],
    )  # fmt: skip
    write_eval_outputs(out_dir, metrics, pred, ds, worst, alphas, curve)
    if not quiet:
        print_eval_table(metrics, out_dir)
    return metrics


def _num(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def normalised_errors(pred: Predictions) -> np.ndarray:
    """(M,) mean error over each instance's labelled keypoints / its box's longest side."""
    from keypointer.metrics import bbox_norm

    err = np.linalg.norm(pred.keypoints - pred.gt, axis=-1)
    total = np.where(pred.visible, err, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / pred.visible.sum(axis=1) / bbox_norm(pred.bboxes)


def worst_instances(pred: Predictions, n: int) -> list[int]:
    """Rows of the ``n`` instances with the largest mean normalised error, worst first."""
    err = normalised_errors(pred)
    order = np.argsort(-np.nan_to_num(err, nan=-np.inf), kind="stable")
    return [int(i) for i in order[:n] if np.isfinite(err[i])]


def _worst_entry(ds, pred: Predictions, row: int) -> dict[str, Any]:
    sample, inst = ds.entry(int(pred.index[row]))
    err = np.linalg.norm(pred.keypoints[row] - pred.gt[row], axis=-1)[pred.visible[row]]
    return {
        "image": str(sample.image),
        "record": inst.record,
        "mean_px": float(err.mean()) if err.size else None,
        "normalised": _num(float(normalised_errors(pred)[row])),
    }


def write_eval_outputs(
    out: Path, metrics: dict, pred: Predictions, ds, worst: list[int], alphas, curve
) -> None:
    from keypointer.viz import plot_pck_curve, plot_per_keypoint, save_gallery

    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".eval.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    tmp.replace(out / "eval.json")
    plot_pck_curve(alphas, np.nan_to_num(curve), out / "pck_curve.png", metrics["pck_auc"])
    per = metrics["per_keypoint"]
    mean_px = [np.nan if r["mean_px"] is None else r["mean_px"] for r in per]
    plot_per_keypoint([r["name"] for r in per], mean_px, out / "per_keypoint_error.png")
    if worst:
        save_gallery([draw_instance(ds, pred, i) for i in worst], out / "worst.png")


def draw_instance(ds, pred: Predictions, row: int, size: int = 256) -> np.ndarray:
    """A ``size`` x ``size`` view of one instance (its box, with a margin) with predictions
    (filled dots, score threshold 0) and the labels (rings) drawn, and its error written."""
    import cv2

    from keypointer.data import transforms as T
    from keypointer.data.images import read_image
    from keypointer.engine.predict import crop_matrix
    from keypointer.viz import draw_keypoints

    sample, _ = ds.entry(int(pred.index[row]))
    image = read_image(sample.image)
    box = pred.bboxes[row]
    box = box if np.isfinite(box).all() and box[2] > 0 and box[3] > 0 else None
    mat = crop_matrix((image.shape[1], image.shape[0]), (size, size), box, margin=1.4)
    view = T.warp_image(image, mat, (size, size))
    inv = T.invert_affine(mat)
    gt = np.where(pred.visible[row][:, None], pred.gt[row], np.nan)
    view = draw_keypoints(
        view, T.apply_affine(pred.keypoints[row], inv), ds.kset.skeleton, gt=T.apply_affine(gt, inv)
    )
    err = np.linalg.norm(pred.keypoints[row] - pred.gt[row], axis=-1)[pred.visible[row]]
    text = f"{Path(sample.image).name} {err.mean():.1f}px"
    cv2.putText(view, text, (4, size - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
    return view


def print_eval_table(metrics: dict, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    def fmt(v: Any, digits: int = 3) -> str:
        return "-" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)

    overall = Table(title=f"{metrics['data']}: {metrics['num_instances']} instances")
    for col in ("metric", "value"):
        overall.add_column(col)
    rows = [
        (f"PCK@{metrics['pck_alpha']:g} ({metrics['pck_norm']})", fmt(metrics["pck"])),
        (f"PCK AUC (0-{metrics['pck_auc_max_alpha']:g})", fmt(metrics["pck_auc"])),
        (f"NME ({metrics['nme_norm']})", fmt(metrics["nme"], 4)),
        ("mean error px", fmt(metrics["mean_px"], 2)),
        ("RMSE px", fmt(metrics["rmse_px"], 2)),
    ]
    if "pcutoff" in metrics:
        rows.append(
            (f"mean error px, p >= {metrics['pcutoff']:g}", fmt(metrics["mean_px_pcutoff"], 2))
        )
    for name in ("AP", "AP50", "AP75", "AR"):
        rows.append((f"OKS {name}", fmt(metrics.get("oks", {}).get(name))))
    for r in rows:
        overall.add_row(*r)
    per = Table(title="per keypoint")
    for col in ("keypoint", "count", "PCK", "mean px", "RMSE px", "NME"):
        per.add_column(col, justify="left" if col == "keypoint" else "right")
    for r in metrics["per_keypoint"]:
        per.add_row(
            r["name"], fmt(r["count"]), fmt(r["pck"]), fmt(r["mean_px"], 2),
            fmt(r["rmse_px"], 2), fmt(r["nme"], 4),
        )  # fmt: skip
    console = Console()
    console.print(overall)
    console.print(per)
    console.print(f"wrote {out}/ (eval.json, pck_curve.png, per_keypoint_error.png, worst.png)")
