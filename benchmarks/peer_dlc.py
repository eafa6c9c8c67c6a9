"""Peer benchmark: train and evaluate DeepLabCut 3 (PyTorch engine) on a fixed split, on a time budget.

Benchmark-only: DeepLabCut is never a dependency of keypointer. Run it with the python of the
separate DeepLabCut venv:

    /work/peers/dlc/bin/python benchmarks/peer_dlc.py --data /work/shared/data/dlc-reaching \\
        --minutes 10 --out /tmp/dlc-reaching [--threads 1] [--net cspnext_s]

DATASET is either a DeepLabCut project (``config.yaml`` + ``labeled-data/<video>/
CollectedData_<scorer>.csv``) or a folder with a DLC-style ``CollectedData.csv`` at its root
whose image paths are relative to that folder (the Lightning Pose layout). Nothing in DATASET
is modified: the labelled images and labels are copied into a fresh DLC project in
``WORKDIR/dlc-project`` (removed first if present), and the result goes to
``WORKDIR/result.json`` (also printed as the last line of stdout).

Split (identical to keypointer's benchmark): all labelled rows sorted by image path as written
in the CSV (plain string sort); the test set is every 10th row starting with the first (0, 10,
20, ...), the rest is training. It is passed to ``deeplabcut.create_training_dataset`` as
explicit ``trainIndices``/``testIndices`` (indices into DLC's merged annotations, which DLC sorts
by its (labeled-data, video, image) index), with ``TrainingFraction = [round(n_train / n, 2)]``;
the split DLC actually uses is read back and checked against ours.

Training: DLC's own defaults for ``--net`` (cspnext_s: AdamW 5e-4, batch 8, 448x448 crops,
200 epochs with LR drops at 90 and 120, DLC's default augmentation, seed 42), from scratch,
with these wrappers around DeepLabCut 3.0.x:

* ``PoseModel.build`` is wrapped to pass ``pretrained_backbone=False``: DLC's ``train()``
  forces True (ImageNet weights from the Hugging Face hub), which cannot be downloaded here, and
  we train from scratch anyway.
* ``TrainingRunner.fit`` is wrapped to start the clock when the epoch loop starts (the budget
  covers training only: not project creation, model building or evaluation), and the runner's
  ``step`` is wrapped to stop before the first training step that would start after the budget
  is spent (so training overshoots it by at most one step). The weights at that point are saved
  as the last snapshot, and that snapshot is evaluated: no selection on the test set. Epochs
  count fractionally (completed epochs + share of the partial one). If DLC's 200 epochs end
  first, training stops there (``notes`` says so). Periodic validation during training (DLC
  runs it every 10 epochs on the test set) is switched off so it does not eat the budget, and
  intermediate snapshots are not written.

Evaluation: DLC's own inference (``get_inference_runners`` + ``evaluation.predict``, full
image, as ``evaluate_network`` does it) on the test images, then errors computed here against
the CSV ground truth on labelled keypoints only: mean Euclidean error (px), RMSE (root of the
mean squared Euclidean error, px; note that what ``evaluate_network`` calls "rmse" is the mean
error) and PCK@0.05: a keypoint is correct when within 0.05 x the longer side of the bounding
box of that image's labelled keypoints.

``--threads T`` sets torch's intra-op threads (and OpenCV's and the usual BLAS/OpenMP env
variables) so two runs can share a machine one core each. ``--device`` defaults to DLC's
``auto`` (GPU if any).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--data", required=True, type=Path, help="dataset folder")
    p.add_argument("--minutes", required=True, type=float, help="training wall-clock budget")
    p.add_argument("--out", required=True, type=Path, help="work folder (gets result.json)")
    p.add_argument("--threads", type=int, default=None, help="torch/OpenCV threads")
    p.add_argument("--net", default="cspnext_s", help="DLC 3 net_type (default cspnext_s)")
    p.add_argument("--device", default="auto", help="torch device for DLC (default auto)")
    p.add_argument("--max-epochs", type=int, default=None, help="override DLC's epochs (200)")
    return p.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None and ARGS.threads:
    # Before numpy/torch/cv2 are imported, so their thread pools start at this size.
    for var in (
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
    ):
        os.environ[var] = str(ARGS.threads)

# isort: split
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

# ---------------------------------------------------------------- labels and split


def read_dlc_csv(path: Path) -> pd.DataFrame:
    """A DLC single-animal CSV (3 header rows: scorer, bodyparts, coords) indexed by image path."""
    df = pd.read_csv(path, header=[0, 1, 2], index_col=0)
    df.index = df.index.astype(str)
    return df


def load_labels(data: Path) -> tuple[str, list[str], pd.DataFrame]:
    """(scorer, bodyparts, table) where table has one row per labelled image, indexed by the
    image path as written in the CSV (relative to ``data``), columns (bodypart, 'x'|'y')."""
    import yaml

    if (data / "config.yaml").is_file():
        cfg = yaml.safe_load((data / "config.yaml").read_text())
        scorer, bodyparts = cfg["scorer"], list(cfg["bodyparts"])
        csvs = sorted((data / "labeled-data").glob(f"*/CollectedData_{scorer}.csv"))
    else:
        csvs = [data / "CollectedData.csv"] if (data / "CollectedData.csv").is_file() else []
        csvs = csvs or sorted(data.glob("*.csv"))
        scorer, bodyparts = None, None
    if not csvs:
        raise SystemExit(f"no labels found in {data}")
    frames = []
    for csv in csvs:
        df = read_dlc_csv(csv)
        scorers = df.columns.get_level_values(0).unique().tolist()
        if len(scorers) != 1:
            raise SystemExit(f"{csv}: expected one scorer, found {scorers}")
        scorer = scorer or scorers[0]
        df = df.droplevel(0, axis=1)
        if bodyparts is None:
            bodyparts = list(dict.fromkeys(df.columns.get_level_values(0)))
        frames.append(df)
    table = pd.concat(frames)
    cols = pd.MultiIndex.from_product([bodyparts, ["x", "y"]])
    table = table.reindex(columns=cols).astype(float)
    if table.index.duplicated().any():
        raise SystemExit("duplicate image paths in the labels")
    return scorer, bodyparts, table


def fixed_split(paths: list[str]) -> tuple[list[str], list[str]]:
    """Rows sorted by image path; every 10th from the first is test, the rest train."""
    ordered = sorted(paths)
    test = ordered[::10]
    test_set = set(test)
    return [p for p in ordered if p not in test_set], test


# ---------------------------------------------------------------- DLC project


def project_image_path(csv_path: str, dataset_name: str) -> tuple[str, str, str]:
    """The (labeled-data, video, image) DLC index for an image path from the CSV."""
    parts = Path(csv_path).parts
    if len(parts) == 3 and parts[0] == "labeled-data":
        return parts[0], parts[1], parts[2]
    return "labeled-data", dataset_name, Path(csv_path).name


def make_project(
    data: Path, root: Path, scorer: str, bodyparts: list[str], table: pd.DataFrame, net: str
) -> tuple[Path, dict[tuple[str, str, str], str]]:
    """Write a single-animal DLC project; return its config path and index -> CSV path."""
    from deeplabcut.utils import auxiliaryfunctions

    if root.exists():
        shutil.rmtree(root)
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in data.name) or "data"
    index_of = {p: project_image_path(p, name) for p in table.index}
    back = {v: k for k, v in index_of.items()}
    if len(back) != len(index_of):
        raise SystemExit("image paths collide once mapped into the DLC project")
    videos = sorted({v for _, v, _ in index_of.values()})
    for p, (ld, video, img) in index_of.items():
        dst = root / ld / video / img
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(data / p, dst)
    for video in videos:
        rows = [p for p in table.index if index_of[p][1] == video]
        df = table.loc[rows].copy()
        df.index = pd.MultiIndex.from_tuples([index_of[p] for p in rows])
        df.columns = pd.MultiIndex.from_tuples(
            [(scorer, bp, c) for bp, c in df.columns], names=["scorer", "bodyparts", "coords"]
        )
        out = root / "labeled-data" / video / f"CollectedData_{scorer}"
        df.to_hdf(f"{out}.h5", key="df_with_missing", mode="w")
        df.to_csv(f"{out}.csv")

    with warnings.catch_warnings():  # deprecated in 3.0.1 but still what create_new_project uses
        warnings.simplefilter("ignore")
        cfg, _ = auxiliaryfunctions.create_config_template()
    cfg["Task"] = name
    cfg["scorer"] = scorer
    cfg["date"] = "bench"
    cfg["project_path"] = str(root)
    cfg["engine"] = "pytorch"
    cfg["multianimalproject"] = False
    cfg["identity"] = None
    cfg["bodyparts"] = list(bodyparts)
    cfg["skeleton"] = []
    # DLC finds labeled-data/<video> from the stems of the video_sets keys.
    cfg["video_sets"] = {str(root / "videos" / f"{v}.mp4"): {"crop": "0, 1, 0, 1"} for v in videos}
    cfg["cropping"] = False
    cfg["start"], cfg["stop"], cfg["numframes2pick"] = 0, 1, 20
    cfg["iteration"] = 0
    cfg["snapshotindex"] = -1
    cfg["detector_snapshotindex"] = -1
    cfg["default_net_type"] = net
    cfg["default_augmenter"] = "default"
    cfg["batch_size"] = 1
    cfg["detector_batch_size"] = 1
    cfg["pcutoff"] = 0.6
    cfg["skeleton_color"], cfg["dotsize"], cfg["alphavalue"], cfg["colormap"] = (
        "black",
        12,
        0.7,
        "rainbow",
    )
    cfg["corner2move2"], cfg["move2corner"] = [50, 50], True
    cfg["x1"], cfg["x2"], cfg["y1"], cfg["y2"] = 0, 640, 277, 624
    n = len(table)
    n_test = len(fixed_split(list(table.index))[1])
    cfg["TrainingFraction"] = [round((n - n_test) / n, 2)]
    config_path = root / "config.yaml"
    auxiliaryfunctions.write_config(str(config_path), cfg)
    return config_path, back


# ---------------------------------------------------------------- wrappers


class BudgetSpent(Exception):
    """Raised from inside DLC's epoch loop to stop training."""


class Budget:
    """State shared by the wrappers around DLC's training runner."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.t0: float | None = None
        self.t_end: float | None = None
        self.steps = 0
        self.images = 0
        self.steps_in_epoch = 0
        self.batches_per_epoch = 0
        self.epoch = 0
        self.stopped_by_budget = False
        self.snapshot: Path | None = None
        self.epochs_done = 0.0


def install_wrappers(budget: Budget) -> None:
    from deeplabcut.pose_estimation_pytorch.models import model as model_module
    from deeplabcut.pose_estimation_pytorch.runners import train as train_module

    original_build = model_module.PoseModel.build

    def build(cfg, weight_init=None, pretrained_backbone=False):  # noqa: ARG001
        return original_build(cfg, weight_init=weight_init, pretrained_backbone=False)

    model_module.PoseModel.build = staticmethod(build)

    runner_cls = train_module.TrainingRunner
    original_fit = runner_cls.fit

    def fit(self, train_loader, valid_loader, epochs, display_iters):
        self.eval_interval = 10**9  # no validation passes inside the budget
        self.snapshot_manager.save_epochs = 10**9  # only the final snapshot is written
        budget.batches_per_epoch = len(train_loader)
        original_step = self.step

        def step(batch, mode="train"):
            if mode == "train":
                if self.current_epoch != budget.epoch:
                    budget.epoch, budget.steps_in_epoch = self.current_epoch, 0
                if time.perf_counter() - budget.t0 >= budget.seconds:
                    raise BudgetSpent
                out = original_step(batch, mode)
                budget.steps += 1
                budget.steps_in_epoch += 1
                budget.images += len(batch["image"])
                return out
            return original_step(batch, mode)

        self.step = step
        budget.t0 = time.perf_counter()
        try:
            original_fit(self, train_loader, valid_loader, epochs, display_iters)
            budget.t_end = time.perf_counter()
            budget.epochs_done = float(self.current_epoch)
            last = self.snapshot_manager.last()
            budget.snapshot = last.path if last is not None else None
        except BudgetSpent:
            budget.t_end = time.perf_counter()
            budget.stopped_by_budget = True
            e = self.current_epoch
            partial = budget.steps_in_epoch if budget.epoch == e else 0
            budget.epochs_done = (e - 1) + partial / max(budget.batches_per_epoch, 1)
            self._metadata["epoch"] = e if partial else e - 1
            path = self.snapshot_manager.snapshot_path(epoch=e if partial else e - 1)
            state = {k: v for k, v in self.state_dict().items() if k != "optimizer"}
            import torch

            torch.save(state, path)
            budget.snapshot = path

    runner_cls.fit = fit


# ---------------------------------------------------------------- metrics


def errors(
    table: pd.DataFrame, bodyparts: list[str], preds: dict[str, np.ndarray]
) -> tuple[dict[str, float], str]:
    """Mean px, RMSE px and PCK@0.05 (of the labelled keypoints' bbox longer side) over the
    labelled keypoints of the test images; ``preds`` maps CSV path -> (K, 2+) array."""
    dists, thresholds = [], []
    missing = 0
    for path, pred in preds.items():
        gt = table.loc[path].to_numpy(dtype=float).reshape(len(bodyparts), 2)
        labelled = ~np.isnan(gt).any(axis=1)
        if not labelled.any():
            continue
        pts = gt[labelled]
        side = float(max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1])))
        d = np.linalg.norm(pred[labelled, :2] - pts, axis=1)
        missing += int(np.isnan(d).sum())
        dists.append(d)
        thresholds.append(np.full(len(d), 0.05 * side))
    d = np.concatenate(dists)
    thr = np.concatenate(thresholds)
    ok = ~np.isnan(d)
    result = {
        "test_mean_px": float(np.mean(d[ok])),
        "test_rmse_px": float(np.sqrt(np.mean(d[ok] ** 2))),
        "test_pck05": float(np.mean(np.where(ok, d <= thr, False))),
        "n_test_keypoints": int(len(d)),
    }
    note = (
        f"{missing} labelled test keypoints had no prediction (counted as PCK misses)"
        if missing
        else ""
    )
    return result, note


# ---------------------------------------------------------------- main


def main(args: argparse.Namespace) -> dict:
    import cv2
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
        cv2.setNumThreads(args.threads)

    import deeplabcut
    from deeplabcut.core.engine import Engine
    from deeplabcut.pose_estimation_pytorch.apis import evaluation
    from deeplabcut.pose_estimation_pytorch.apis.utils import get_inference_runners
    from deeplabcut.pose_estimation_pytorch.data import DLCLoader
    from deeplabcut.pose_estimation_pytorch.runners.logger import destroy_file_logging

    data, out = args.data.resolve(), args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    scorer, bodyparts, table = load_labels(data)
    train_paths, test_paths = fixed_split(list(table.index))
    root = out / "dlc-project"
    config_path, back = make_project(data, root, scorer, bodyparts, table, args.net)

    # DLC's merged annotations are sorted by their (labeled-data, video, image) index.
    dlc_order = sorted(back)
    position = {back[key]: i for i, key in enumerate(dlc_order)}
    train_idx = sorted(position[p] for p in train_paths)
    test_idx = sorted(position[p] for p in test_paths)
    deeplabcut.create_training_dataset(
        str(config_path),
        Shuffles=[1],
        trainIndices=[train_idx],
        testIndices=[test_idx],
        net_type=args.net,
        userfeedback=False,
        engine=Engine.PYTORCH,
    )
    loader = DLCLoader(config=str(config_path), shuffle=1, trainset_index=0)

    def csv_path_of(image_file: str) -> str:
        p = Path(image_file)
        return back[(p.parent.parent.name, p.parent.name, p.name)]

    used_test = sorted(csv_path_of(f) for f in loader.image_filenames("test"))
    used_train = sorted(csv_path_of(f) for f in loader.image_filenames("train"))
    if used_test != sorted(test_paths) or used_train != sorted(train_paths):
        raise SystemExit("DLC's split differs from the fixed split")

    budget = Budget(args.minutes * 60.0)
    install_wrappers(budget)
    device = None if args.device == "auto" else args.device
    try:
        deeplabcut.train_network(
            str(config_path),
            shuffle=1,
            trainingsetindex=0,
            device=device,
            epochs=args.max_epochs,
            display_iters=10**9,
        )
    finally:
        destroy_file_logging()
    if budget.snapshot is None or budget.t0 is None:
        raise SystemExit("training produced no snapshot")
    train_seconds = budget.t_end - budget.t0

    # Evaluate the last snapshot on the test images, as evaluate_network would predict them.
    loader = DLCLoader(config=str(config_path), shuffle=1, trainset_index=0)
    params = loader.get_dataset_parameters()
    pose_runner, _ = get_inference_runners(
        model_config=loader.model_cfg,
        snapshot_path=budget.snapshot,
        max_individuals=params.max_num_animals,
        num_bodyparts=params.num_joints,
        num_unique_bodyparts=params.num_unique_bpts,
        with_identity=False,
        device=device,
    )
    t_eval = time.perf_counter()
    raw = evaluation.predict(pose_runner, loader, mode="test")
    eval_seconds = time.perf_counter() - t_eval
    preds = {csv_path_of(f): np.asarray(p["bodyparts"])[0] for f, p in raw.items()}
    metrics, note = errors(table, bodyparts, preds)

    cfg = loader.model_cfg
    notes = [
        f"DLC {deeplabcut.__version__} PyTorch engine, {args.net} from scratch (pretrained_backbone forced False)",
        f"device {pose_runner.device}, torch threads {torch.get_num_threads()}",
        f"DLC defaults: batch {cfg['train_settings']['batch_size']}, "
        f"{cfg['train_settings']['epochs']} epochs max, optimizer {cfg['runner']['optimizer']}, "
        f"scheduler {cfg['runner'].get('scheduler')}",
        "stopped by the time budget (before the first step past it)"
        if budget.stopped_by_budget
        else "finished all DLC epochs before the budget",
        "PCK@0.05 reference: longer side of the bounding box of each test image's labelled keypoints",
        "errors over labelled keypoints only, from DLC's full-image inference of the last snapshot",
        f"evaluation took {eval_seconds:.1f}s (not in train_seconds)",
    ]
    if note:
        notes.append(note)
    result = {
        "peer": "deeplabcut",
        "version": deeplabcut.__version__,
        "net": args.net,
        "n_train": len(train_paths),
        "n_test": len(test_paths),
        "epochs_done": round(budget.epochs_done, 3),
        "steps_done": budget.steps,
        "train_seconds": round(train_seconds, 2),
        "train_images_per_s": round(budget.images / train_seconds, 3)
        if train_seconds > 0
        else None,
        "test_mean_px": round(metrics["test_mean_px"], 3),
        "test_rmse_px": round(metrics["test_rmse_px"], 3),
        "test_pck05": round(metrics["test_pck05"], 4),
        "n_test_keypoints": metrics["n_test_keypoints"],
        "pck_reference": "labelled-keypoint bbox longer side",
        "budget_minutes": args.minutes,
        "threads": args.threads,
        "snapshot": str(budget.snapshot),
        "test_images": list(test_paths),
        "notes": "; ".join(notes),
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(ARGS)
    sys.exit(0)
