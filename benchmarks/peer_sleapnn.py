"""Peer benchmark: sleap-nn top-down (centroid + centered instance) on a video split in time.

Benchmark-only: sleap-nn is never a dependency of keypointer. It runs in its own venv; the
scoring (and the keypointer side) runs with keypointer's venv, so both sides get the same
figures from keypointer's own metric code:

    python3.11 -m venv /work/peers/sleapnn && /work/peers/sleapnn/bin/pip install sleap-nn
    /work/peers/sleapnn/bin/python benchmarks/peer_sleapnn.py sleapnn --work W --minutes 15
    .venv/bin/python benchmarks/peer_sleapnn.py keypointer --work W --minutes 15

Split (``split``, run by either command when ``W/split.json`` is absent): the labelled frames
of ``--data`` (default: SLEAP's two-fly predictions, ../shared/data/sleap-samples) in frame
order; those in the first half of the video (frame < frames // 2) are the training side, of
which every ``--train-step``-th is kept (default 2: frames 0, 2, ... 548, 275 frames); those
in the second half are the test side, of which every ``--test-step``-th is kept (default 11:
frames 550, 561, ... 1089, 50 frames). Predicted instances are written as user instances
(sleap-nn trains on user instances only; keypointer reads both) and the video path is made
absolute, so both tools read the same frames and the same instances.

sleap-nn side (``sleapnn``): configs from sleap-nn's own ``ConfigGenerator`` (``auto`` for a
top view, pipeline ``topdown``: UNet backbones, its batch size, sigmas, crop size, input
scale, rotation +-180), with only these changes: CPU, 1 device, no visualisation or progress
bar, run folders under ``W/sleapnn/models``, and frames decoded once into memory
(``torch_dataset_cache_img_memory``, before the clock starts) instead of a video seek per
sample. The budget ``--minutes`` is split between the centroid model (``--centroid-share``,
default 0.4: the most keypointer's locator gets) and the centered-instance model (the rest,
less what the centroid model overran). A Lightning callback starts the clock at the first
training batch (setup and frame caching are not counted) and stops after the first step past
the model's share; Lightning then runs the validation pass, which counts (so a model overruns
its share by one step and one validation pass). The weights at the stop are saved as
``final.ckpt``. ``--weights`` picks what is scored: sleap-nn's own ``best.ckpt``
(``best_val``, the default: lowest loss on its validation fraction of the training frames; it
validates at each epoch end and when the budget stops it) and/or ``final``. Inference
is ``sleap_nn.predict`` on the test frames of the video, once with sleap-nn's defaults and
once with ``max_instances=2``.

keypointer side (``keypointer``): ``keypointer train --data W/train.slp --time MINUTES`` with
``OMP_NUM_THREADS=--threads``, then ``keypointer eval`` of its ``best.pt`` on ``W/test.slp``
(the located-instance figures).

Scoring (``score``, keypointer's venv): ``keypointer.metrics.located.located_oks`` with the
test set's OKS sigmas and scale boxes exactly as ``keypointer eval`` builds them for located
instances: COCO OKS AP/AR, and missed/extra instances at OKS >= 0.5. A keypoint sleap-nn
leaves out (NaN: below its peak threshold) is put at the mean of the instance's other keypoints
with score 0, as COCOeval would otherwise drop the whole instance. Each side's result goes to
``W/<side>.json`` and is printed as the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "data" / "sleap-samples"
SLP = SAMPLES / "hdf5_format_v1" / "centered_pair_predictions.slp"
VIDEO = SAMPLES / "json_format_v1" / "centered_pair_low_quality.mp4"
KP_PYTHON = ROOT / ".venv" / "bin" / "python"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("side", choices=["split", "sleapnn", "keypointer", "score"])
    p.add_argument("--work", required=True, type=Path, help="work folder")
    p.add_argument("--minutes", type=float, default=15.0, help="training budget, both models")
    p.add_argument("--threads", type=int, default=2, help="torch/OpenMP threads")
    p.add_argument("--data", type=Path, default=SLP, help="SLEAP labels (.slp)")
    p.add_argument("--video", type=Path, default=VIDEO, help="the video the labels point into")
    p.add_argument("--train-step", type=int, default=2, help="keep every n-th first-half frame")
    p.add_argument("--test-step", type=int, default=11, help="keep every n-th second-half frame")
    p.add_argument("--centroid-share", type=float, default=0.4, help="sleap-nn centroid share")
    p.add_argument(
        "--weights",
        nargs="+",
        default=["best_val"],
        choices=["best_val", "final"],
        help="sleap-nn checkpoints to score: its own best.ckpt and/or the weights at the stop",
    )
    p.add_argument("--pred", type=Path, help="score: predictions (.slp)")
    p.add_argument("--kp-python", type=Path, default=KP_PYTHON, help="keypointer's python")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keypointer: a config override passed to train (repeatable)",
    )
    return p.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    # Before numpy/torch/cv2 are imported, so their thread pools start at this size.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

# ---------------------------------------------------------------- split


def write_split(args: argparse.Namespace) -> dict:
    """Write ``work/train.slp`` and ``work/test.slp`` (see the module docstring)."""
    import sleap_io as sio

    labels = sio.load_slp(str(args.data), open_videos=False)
    if len(labels.videos) != 1 or len(labels.skeletons) != 1:
        raise SystemExit(f"{args.data}: expected one video and one skeleton")
    video = sio.Video.from_filename(str(args.video.resolve()))
    n_frames = int(video.shape[0])
    skeleton = labels.skeletons[0]
    frames = sorted((lf for lf in labels if lf.instances), key=lambda lf: lf.frame_idx)
    half = n_frames // 2
    train = [lf for lf in frames if lf.frame_idx < half][:: args.train_step]
    test = [lf for lf in frames if lf.frame_idx >= half][:: args.test_step]

    def user(lfs: list) -> sio.Labels:
        out = [
            sio.LabeledFrame(
                video=video,
                frame_idx=int(lf.frame_idx),
                instances=[sio.Instance.from_numpy(i.numpy(), skeleton=skeleton) for i in lf],
            )
            for lf in lfs
        ]
        return sio.Labels(labeled_frames=out, videos=[video], skeletons=[skeleton])

    args.work.mkdir(parents=True, exist_ok=True)
    info = {
        "data": str(args.data),
        "video": str(args.video.resolve()),
        "video_frames": n_frames,
        "half": half,
        "train_frames": [int(lf.frame_idx) for lf in train],
        "test_frames": [int(lf.frame_idx) for lf in test],
        "train_instances": sum(len(lf.instances) for lf in train),
        "test_instances": sum(len(lf.instances) for lf in test),
    }
    for name, lfs in (("train", train), ("test", test)):
        tmp = args.work / f".{name}.slp"
        sio.save_slp(user(lfs), str(tmp), embed=False)
        tmp.replace(args.work / f"{name}.slp")
    (args.work / "split.json").write_text(json.dumps(info) + "\n")
    return info


def ensure_split(args: argparse.Namespace) -> dict:
    if not (args.work / "split.json").is_file():
        return write_split(args)
    return json.loads((args.work / "split.json").read_text())


# ---------------------------------------------------------------- sleap-nn


def sleapnn_configs(train: Path, models: Path) -> dict:
    """sleap-nn's own auto configs for a top-down pipeline, with CPU-only changes."""
    from sleap_nn.config_generator import ConfigGenerator

    gen = ConfigGenerator.from_slp(str(train)).auto(view="top").pipeline("topdown")
    configs = {"centroid": gen.build_centroid(), "centered_instance": gen.build_centered_instance()}
    for name, cfg in configs.items():
        t = cfg.trainer_config
        t.trainer_accelerator, t.trainer_devices = "cpu", 1
        t.visualize_preds_during_training, t.enable_progress_bar = False, False
        t.ckpt_dir, t.run_name = str(models), name
        # Decode the labelled frames once (sleap-nn's in-memory cache) rather than seeking in
        # the video for every sample, as keypointer does for video labels.
        cfg.data_config.data_pipeline_fw = "torch_dataset_cache_img_memory"
    return configs


def train_sleapnn(cfg, seconds: float) -> dict:
    """Train one sleap-nn model for at most ``seconds`` of training; returns the counts."""
    import lightning as L
    import torch
    from sleap_nn.training.model_trainer import ModelTrainer

    state = {"t0": None, "t_end": None, "steps": 0, "images": 0, "stopped_by_budget": False}

    class Budget(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
            if state["t0"] is None:
                state["t0"] = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            state["steps"] += 1
            state["images"] += cfg.trainer_config.train_data_loader.batch_size
            if time.perf_counter() - state["t0"] >= seconds:
                state["stopped_by_budget"] = True
                trainer.should_stop = True

        def on_train_end(self, trainer, module) -> None:
            state["t_end"] = time.perf_counter()
            state["epochs"] = trainer.current_epoch
            trainer.save_checkpoint(str(run_dir / "final.ckpt"))

    original = ModelTrainer._setup_loggers_callbacks

    def with_budget(self, *a, **k):
        loggers, callbacks = original(self, *a, **k)
        return loggers, [*callbacks, Budget()]

    ModelTrainer._setup_loggers_callbacks = with_budget
    run_dir = Path(cfg.trainer_config.ckpt_dir) / cfg.trainer_config.run_name
    try:
        trainer = ModelTrainer.get_model_trainer_from_config(cfg)
        trainer.train()
    finally:
        ModelTrainer._setup_loggers_callbacks = original
    state["train_seconds"] = state["t_end"] - state["t0"]
    state["threads"] = torch.get_num_threads()
    state["run_dir"] = str(run_dir)
    return state


def use_weights(run_dir: Path, which: str) -> bool:
    """Put ``final.ckpt`` or sleap-nn's own best checkpoint in place as ``best.ckpt``, which
    is what sleap-nn's inference loads; False when that checkpoint does not exist."""
    if not (run_dir / "best_val.ckpt").exists() and (run_dir / "best.ckpt").exists():
        shutil.copy2(run_dir / "best.ckpt", run_dir / "best_val.ckpt")
    src = run_dir / ("final.ckpt" if which == "final" else "best_val.ckpt")
    if not src.exists():
        return False
    shutil.copy2(src, run_dir / "best.ckpt")
    return True


def run_sleapnn(args: argparse.Namespace) -> dict:
    import sleap_io as sio
    import sleap_nn
    import torch

    torch.set_num_threads(args.threads)
    split = ensure_split(args)
    work = args.work / "sleapnn"
    models = work / "models"
    if models.exists():
        shutil.rmtree(models)
    configs = sleapnn_configs(args.work / "train.slp", models)
    budget = args.minutes * 60.0
    began = time.perf_counter()
    trained = {"centroid": train_sleapnn(configs["centroid"], budget * args.centroid_share)}
    left = budget - trained["centroid"]["train_seconds"]
    trained["centered_instance"] = train_sleapnn(configs["centered_instance"], left)
    wall = time.perf_counter() - began

    dirs = [models / "centroid", models / "centered_instance"]
    video = sio.Video.from_filename(split["video"])
    result: dict = {"peer": "sleap-nn", "version": sleap_nn.__version__, "scores": {}}
    for which in args.weights:
        if not all(use_weights(d, which) for d in dirs):
            continue
        for max_instances in (None, 2):
            name = f"{which}_max{max_instances or 'default'}"
            pred = work / f"pred_{name}.slp"
            t = time.perf_counter()
            labels = sleap_nn.predict(
                video,
                model_paths=[str(d) for d in dirs],
                device="cpu",
                frames=split["test_frames"],
                max_instances=max_instances,
            )
            seconds = time.perf_counter() - t
            sio.save_slp(labels, str(pred), embed=False)
            scores = score_with_keypointer(args, pred)
            scores["predict_frames_per_s"] = len(split["test_frames"]) / seconds
            result["scores"][name] = scores
    for d in dirs:  # leave sleap-nn's own choice in place
        use_weights(d, "best_val")
    result.update(
        budget_minutes=args.minutes,
        threads=args.threads,
        wall_minutes_both_models=wall / 60,
        n_train_frames=len(split["train_frames"]),
        n_test_frames=len(split["test_frames"]),
        models={
            k: {key: v[key] for key in ("train_seconds", "steps", "images", "epochs")}
            | {"stopped_by_budget": v["stopped_by_budget"], "threads": v["threads"]}
            for k, v in trained.items()
        },
        configs={k: os.fspath(models / k / "training_config.yaml") for k in configs},
    )
    return result


def score_with_keypointer(args: argparse.Namespace, pred: Path) -> dict:
    """Run ``score`` with keypointer's python (this venv has no keypointer)."""
    cmd = [str(args.kp_python), __file__, "score", "--work", str(args.work), "--pred", str(pred)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- keypointer


def run_keypointer(args: argparse.Namespace) -> dict:
    from keypointer.commands.eval import eval_command

    ensure_split(args)
    work = args.work / "keypointer"
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    began = time.perf_counter()
    cmd = [sys.executable, "-m", "keypointer", "train", "--data", str(args.work / "train.slp")]
    cmd += ["--time", str(args.minutes), "--quiet", "--set", f"run.root={work / 'runs'}"]
    cmd += [arg for kv in args.overrides for arg in ("--set", kv)]
    subprocess.run([*cmd, "--set", "run.name=flies"], check=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - began
    run_dir = max((work / "runs" / "flies").iterdir())
    res = eval_command(
        run_dir / "best.pt", args.work / "test.slp", out=work / "eval", quiet=True, overwrite=True
    )
    located = res.get("located", {})
    oks = located.get("oks", {})
    return {
        "peer": "keypointer",
        "budget_minutes": args.minutes,
        "threads": args.threads,
        "wall_minutes_train": wall / 60,
        "run": str(run_dir),
        "scores": {"best_maxdefault": summary(oks) | {"boxes": located.get("boxes")}},
        "labelled_boxes_oks_ap": res.get("oks", {}).get("AP"),
    }


# ---------------------------------------------------------------- scoring


def summary(oks: dict) -> dict:
    """The located figures: AP, AP50, AP75, AR and instance counts, % missed."""
    keys = ("AP", "AP50", "AP75", "AR", "gt_instances", "predicted", "missed", "extra")
    out = {k: oks.get(k) for k in keys}
    gt = oks.get("gt_instances") or 0
    out["missed_pct"] = 100.0 * oks.get("missed", 0) / gt if gt else None
    return out


def point_scores(instance, k: int):
    """(K,) keypoint scores of a SLEAP instance (ones for a user instance)."""
    import numpy as np

    scores = getattr(instance, "point_scores", None)
    return np.ones(k) if scores is None else np.asarray(scores, np.float64)


def score(args: argparse.Namespace) -> dict:
    """keypointer's located OKS figures of the predictions in ``args.pred`` on ``test.slp``."""
    import numpy as np
    import sleap_io as sio

    from keypointer.data.boxes import scale_boxes
    from keypointer.data.formats import load_dataset
    from keypointer.metrics.located import located_oks

    kset = load_dataset(args.work / "test.slp")
    names = list(kset.skeleton.names)
    k = len(names)
    labels = sio.load_slp(str(args.pred), open_videos=False)
    by_frame: dict[int, list] = {}
    for lf in labels:
        by_frame.setdefault(int(lf.frame_idx), []).extend(lf.instances)
    # located_oks' arguments, one entry per test frame (as keypointer eval builds them).
    keys = ("pred", "scores", "instance_scores", "gt", "visible", "bboxes")
    cols: dict[str, list] = {n: [] for n in keys}
    filled = 0
    for sample in kset.samples:
        insts = by_frame.get(int(sample.frame), [])
        pts, ps = np.zeros((0, k, 2)), np.zeros((0, k))
        if insts:
            idx = [[i.skeleton.node_names.index(n) for n in names] for i in insts]
            pts = np.array([i.numpy()[j, :2] for i, j in zip(insts, idx, strict=True)], np.float64)
            ps = np.array(
                [point_scores(i, k)[j] for i, j in zip(insts, idx, strict=True)], np.float64
            )
            # A keypoint SLEAP left out (NaN) would void its whole instance in COCOeval:
            # put it at the mean of the instance's other keypoints, with score 0.
            missing = ~np.isfinite(pts).all(-1)
            filled += int(missing[~missing.all(-1)].sum())
            with warnings.catch_warnings():  # an instance with no keypoint at all stays NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(pts, axis=1, keepdims=True)
            pts = np.where(missing[..., None], mean, pts)
            ps = np.where(missing, 0.0, ps)
        cols["pred"].append(pts)
        cols["scores"].append(ps)
        cols["instance_scores"].append(np.array([float(getattr(i, "score", 1.0)) for i in insts]))
        gt = np.array([i.keypoints for i in sample.instances], np.float64).reshape(-1, k, 3)
        cols["gt"].append(gt[..., :2])
        cols["visible"].append(gt[..., 2] > 0)
        cols["bboxes"].append(np.nan_to_num(scale_boxes(sample.instances)))  # the OKS scale
    oks = located_oks(**cols, sigmas=kset.skeleton.oks_sigmas)
    return summary(dict(oks)) | {"keypoints_filled": filled}


def main(args: argparse.Namespace) -> dict:
    sides = {"split": write_split, "sleapnn": run_sleapnn, "keypointer": run_keypointer}
    if args.side == "score":
        result = score(args)
        print(json.dumps(result))
        return result
    result = sides[args.side](args)
    if args.side != "split":
        (args.work / f"{args.side}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(ARGS)
