"""``keypointer eval``: score a model on labelled data, in original-image pixels.

Predictions come from :func:`keypointer.inference.labelled.predict_instances`; the metrics are
:mod:`keypointer.metrics`' (OKS AP included); this module adds a table, ``eval.json``,
plots and a gallery of the worst predictions.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from keypointer.commands.eval_located import located_metrics
from keypointer.commands.progress import progress
from keypointer.data import transforms as T
from keypointer.data.check import validate
from keypointer.data.dataset import KeypointDataset
from keypointer.data.formats import load_dataset
from keypointer.device import resolve_device
from keypointer.errors import DataError
from keypointer.files import write_text_atomic
from keypointer.inference.crops import crop_matrix
from keypointer.inference.labelled import Predictions, predict_instances
from keypointer.inference.pipeline import load_pipeline
from keypointer.metrics import bbox_norm, evaluate_keypoints, pck_curve
from keypointer.metrics.arrays import JsonValue
from keypointer.output_paths import output_dir_for
from keypointer.viz import draw_keypoints, plot_pck_curve, plot_per_keypoint, save_gallery

GENERIC_STEMS = {"annotations", "labels", "data", "instances", "person_keypoints", "config"}
EVAL_FILES = ("eval.json", "pck_curve.png", "per_keypoint_error.png", "worst.png")


def default_eval_dir(checkpoint: str | Path, data: str | Path) -> Path:
    """``<run>/eval-<dataset name>``: the folder holding the checkpoint (or the run folder)."""
    ckpt, data = Path(checkpoint), Path(data)
    run = ckpt if ckpt.is_dir() else ckpt.parent
    name = data.name if data.is_dir() else data.stem
    if name.lower() in GENERIC_STEMS or name.lower().startswith("collecteddata"):
        name = data.resolve().parent.name if not data.is_dir() else name
    return run / f"eval-{name or 'data'}"


def eval_command(
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
    max_instances: int | None = None,
    num_worst: int = 12,
    quiet: bool = False,
    overwrite: bool = False,
) -> dict[str, JsonValue]:
    """What ``keypointer eval`` does: predict every labelled instance of ``data`` and score it.

    Writes ``eval.json`` (atomically; all metrics, per keypoint, the PCK curve and the worst
    instances), ``pck_curve.png``, ``per_keypoint_error.png`` and ``worst.png`` (a gallery of
    the ``num_worst`` instances with the largest mean normalised error, predictions as filled
    dots, ground truth as rings) to ``out`` (default :func:`default_eval_dir`, numbered on:
    an earlier evaluation's files are replaced only with ``overwrite``); prints a table.
    Returns the metrics dict that ``eval.json`` holds.

    A two-stage model is scored twice: on the labelled boxes, and on the instances it finds
    itself ("located"), as ``predict`` finds them, with ``max_instances`` as
    ``predict --max-instances`` takes it.
    """

    out_dir = output_dir_for(  # before any work
        EVAL_FILES,
        out,
        default=default_eval_dir(checkpoint, data),
        inputs=(checkpoint, data),
        overwrite=overwrite,
    )
    pipe = load_pipeline(checkpoint, resolve_device(device), flip=flip)
    cfg, skeleton = pipe.config, pipe.skeleton
    pipe = pipe.with_options(
        batch_size=batch_size or cfg.loader.batch_size, max_instances=max_instances
    )
    kset = validate(load_dataset(data, format, images), check_images=False).cleaned
    if kset.skeleton.names != skeleton.names:
        raise DataError(
            f"its keypoints {list(kset.skeleton.names)} differ from the model's "
            f"{list(skeleton.names)}",
            data,
        )
    ds = KeypointDataset(kset, None, pipe.input_size, None, train=False, box_margin=pipe.margin)
    with progress(len(kset.samples), quiet) as advance:
        pred = predict_instances(pipe, ds, advance)
    metrics = evaluate_keypoints(
        pred.keypoints,
        pred.gt,
        pred.visible,
        scores=pred.scores,
        bboxes=pred.bboxes,
        skeleton=skeleton,
        alpha=alpha,
        pcutoff=pcutoff,
        image_ids=pred.image_ids,
    )
    alphas, curve = pck_curve(pred.keypoints, pred.gt, pred.visible, bbox_norm(pred.bboxes))
    worst = worst_instances(pred, num_worst)
    if pipe.two_stage and not kset.whole_image:  # also as predict runs: instances it finds
        metrics["located"] = located_metrics(pipe, kset, quiet)
    metrics.update(
        checkpoint=str(checkpoint),
        data=str(data),
        flip=flip,
        max_instances=max_instances,
        num_images=len(kset),
    )
    metrics["pck_curve"] = {"alpha": alphas.tolist(), "pck": [_num(v) for v in curve]}
    metrics["worst"] = [_worst_entry(ds, pred, i) for i in worst]
    write_eval_outputs(out_dir, metrics, pred, ds, worst, alphas, curve)
    if not quiet:
        print_eval_table(metrics, out_dir)
    return metrics


def _num(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def instance_errors(pred: Predictions) -> np.ndarray:
    """(M,) mean error over each instance's labelled keypoints / its box's longest side."""

    err = np.linalg.norm(pred.keypoints - pred.gt, axis=-1)
    total = np.where(pred.visible, err, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / pred.visible.sum(axis=1) / bbox_norm(pred.bboxes)


def worst_instances(pred: Predictions, n: int) -> list[int]:
    """Rows of the ``n`` instances with the largest mean normalised error, worst first."""
    err = instance_errors(pred)
    order = np.argsort(-np.nan_to_num(err, nan=-np.inf), kind="stable")
    return [int(i) for i in order[:n] if np.isfinite(err[i])]


def _worst_entry(ds: KeypointDataset, pred: Predictions, row: int) -> dict[str, JsonValue]:
    sample, inst = ds.entry(int(pred.index[row]))
    err = np.linalg.norm(pred.keypoints[row] - pred.gt[row], axis=-1)[pred.visible[row]]
    return {
        "image": str(sample.image),
        "record": inst.record,
        "mean_px": float(err.mean()) if err.size else None,
        "normalised": _num(float(instance_errors(pred)[row])),
    }


def write_eval_outputs(
    out: Path,
    metrics: dict[str, JsonValue],
    pred: Predictions,
    ds: KeypointDataset,
    worst: list[int],
    alphas: np.ndarray,
    curve: np.ndarray,
) -> None:
    """``eval.json`` (atomically), the PCK curve, the per-keypoint errors and the gallery of
    the ``worst`` rows of ``pred``."""
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "eval.json", json.dumps(metrics, indent=2))
    plot_pck_curve(alphas, np.nan_to_num(curve), out / "pck_curve.png", metrics["pck_auc"])
    per = metrics["per_keypoint"]
    mean_px = [np.nan if r["mean_px"] is None else r["mean_px"] for r in per]
    plot_per_keypoint([r["name"] for r in per], mean_px, out / "per_keypoint_error.png")
    if worst:
        save_gallery([draw_instance(ds, pred, i) for i in worst], out / "worst.png")


def draw_instance(ds: KeypointDataset, pred: Predictions, row: int, size: int = 256) -> np.ndarray:
    """A ``size`` x ``size`` view of one instance (its box, with a margin) with predictions
    (filled dots, score threshold 0) and the labels (rings) drawn, and its error written."""

    sample, _ = ds.entry(int(pred.index[row]))
    image = sample.read()
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


def cell(value: JsonValue, digits: int = 3) -> str:
    """A table cell: "-" for no value, a float with ``digits`` decimals, else as written."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def print_eval_table(metrics: dict[str, JsonValue], out: Path) -> None:
    """The overall and per-keypoint tables, and where the files went."""
    overall = Table(title=f"{metrics['data']}: {metrics['num_instances']} instances")
    for col in ("metric", "value"):
        overall.add_column(col)
    rows = [
        (f"PCK@{metrics['pck_alpha']:g} ({metrics['pck_norm']})", cell(metrics["pck"])),
        (f"PCK AUC (0-{metrics['pck_auc_max_alpha']:g})", cell(metrics["pck_auc"])),
        (f"NME ({metrics['nme_norm']})", cell(metrics["nme"], 4)),
        ("mean error px", cell(metrics["mean_px"], 2)),
        ("RMSE px", cell(metrics["rmse_px"], 2)),
    ]
    if "pcutoff" in metrics:
        rows.append(
            (f"mean error px, p >= {metrics['pcutoff']:g}", cell(metrics["mean_px_pcutoff"], 2))
        )
    for name in ("AP", "AP50", "AP75", "AR"):
        rows.append((f"OKS {name} (labelled boxes)", cell(metrics.get("oks", {}).get(name))))
    if "located" in metrics:
        oks, boxes = metrics["located"]["oks"], metrics["located"]["boxes"]
        for name in ("AP", "AP50", "AP75", "AR"):
            rows.append((f"OKS {name} (located instances)", cell(oks.get(name))))
        rows.append(
            ("instances: labelled / found", f"{oks['gt_instances']:.0f} / {oks['predicted']:.0f}")
        )
        rows.append(("instances: missed / extra", f"{oks['missed']:.0f} / {oks['extra']:.0f}"))
        recall_precision = f"{boxes['recall']:.3f} / {cell(boxes['precision'])}"
        rows.append(("locator boxes: recall / precision @IoU 0.5", recall_precision))
    for r in rows:
        overall.add_row(*r)
    per = Table(title="per keypoint")
    for col in ("keypoint", "count", "PCK", "mean px", "RMSE px", "NME"):
        per.add_column(col, justify="left" if col == "keypoint" else "right")
    for r in metrics["per_keypoint"]:
        numbers = (cell(r["count"]), cell(r["pck"]), cell(r["mean_px"], 2), cell(r["rmse_px"], 2))
        per.add_row(r["name"], *numbers, cell(r["nme"], 4))
    console = Console()
    console.print(overall)
    console.print(per)
    console.print(f"wrote {out}/ (eval.json, pck_curve.png, per_keypoint_error.png, worst.png)")
