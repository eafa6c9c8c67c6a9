"""``keypointer demo``: synthetic data -> train -> held-out evaluation -> pictures, on a laptop CPU."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from keypointer.config import Config
from keypointer.data.dataset import KeypointDataset
from keypointer.data.formats import load_dataset
from keypointer.data.images import read_image
from keypointer.data.synthetic import SYNTH_DESCRIPTION, generate
from keypointer.errors import DataError
from keypointer.inference.labelled import predict_instances, quick_metrics
from keypointer.inference.pipeline import load_pipeline
from keypointer.training.loop import train
from keypointer.viz import draw_keypoints, save_gallery, write_image

DEMO_TRAIN_IMAGES = 1000
DEMO_TEST_IMAGES = 200


def demo_config(out: Path, quiet: bool) -> Config:
    """The default config pointed at the synthetic data."""
    cfg = Config()
    cfg.data.path = str(out / "data" / "train" / "annotations.json")
    cfg.data.val_fraction = 0.1
    cfg.run.name = "demo"
    cfg.run.root = str(out / "runs")
    cfg.run.quiet = quiet
    # The default model and augmentation; a short cosine schedule fits the 5-minute budget.
    # The settings measured for this data (benchmarks/RESULTS.md), not the recipe's: the
    # demo's 1000 small images would get a run far past its 5-minute budget.
    cfg.train.recipe = False
    cfg.train.epochs = 12
    cfg.train.warmup_epochs = 0.5
    cfg.train.schedule = "cosine"
    return cfg


def check_demo_folder(out: Path) -> None:
    """Refuse an ``out`` whose ``data/`` or ``predictions/`` holds anything an earlier demo did
    not write: the demo replaces both, and a user's folder must never be emptied."""
    data, pictures = out / "data", out / "predictions"
    if data.exists():
        for child in data.iterdir():
            labels = child / "annotations.json"
            try:
                ours = json.loads(labels.read_text())["info"]["description"] == SYNTH_DESCRIPTION
            except (OSError, ValueError, KeyError, TypeError):
                ours = False
            if child.name not in ("train", "test") or not ours:
                raise DataError(
                    "holds files the demo did not write, and the demo replaces this folder; "
                    "choose another --out",
                    child,
                )
    if pictures.exists():
        for child in pictures.iterdir():
            if not (child.suffix == ".png" and (child.stem.isdigit() or child.stem == "gallery")):
                raise DataError("is not a picture the demo drew; choose another --out", child)


def demo_command(out: Path, quiet: bool = False) -> dict[str, float]:
    """Generate data, train, evaluate on held-out images and draw predictions; returns the metrics."""
    t0 = time.perf_counter()
    out = Path(out)
    data = out / "data"
    check_demo_folder(out)
    if data.exists():  # regenerated: a few seconds, and always matches this version's renderer
        shutil.rmtree(data)
    print(f"[1/4] synthesising {DEMO_TRAIN_IMAGES} training and {DEMO_TEST_IMAGES} held-out images")
    generate(data / "train", num_images=DEMO_TRAIN_IMAGES, seed=0)
    test_json = generate(data / "test", num_images=DEMO_TEST_IMAGES, seed=1)
    print("[2/4] training the default model")
    cfg = demo_config(out, quiet)
    run = train(cfg)
    print("[3/4] evaluating on the held-out images")
    result = evaluate_held_out(run.best, test_json, out / "predictions")
    print("[4/4] drawing predictions")
    minutes = (time.perf_counter() - t0) / 60
    result["minutes"] = round(minutes, 2)
    (run.dir / "demo.json").write_text(json.dumps(result, indent=2))
    print(
        f"\nheld-out PCK@0.05: {result['pck']:.3f}   mean error: {result['mean_px']:.2f} px   "
        f"({minutes:.1f} min in all)\n"
        f"run folder:   {run.dir}  (config.yaml, metrics.csv, curves.png, best.pt, last.pt)\n"
        f"predictions:  {out / 'predictions'}  (gallery.png and one image per sample)\n"
        f"next: keypointer eval {run.best} --data {test_json}"
    )
    return result


def evaluate_held_out(
    checkpoint: Path, labels: Path, pictures: Path, n_draw: int = 8
) -> dict[str, float]:
    """PCK@0.05 (box-size normaliser) and mean pixel error on ``labels``; draws ``n_draw`` images."""
    pipe = load_pipeline(checkpoint)  # as predict and eval run it
    kset = load_dataset(labels)
    ds = KeypointDataset(kset, None, pipe.input_size, None, train=False, box_margin=pipe.margin)
    pred = predict_instances(pipe, ds)
    metrics = quick_metrics(pred, alpha=0.05)
    pictures.mkdir(parents=True, exist_ok=True)
    drawn = []
    for i in range(min(n_draw, len(pred.index))):
        sample = kset.samples[ds.position(int(pred.index[i]))[0]]
        image = draw_keypoints(
            read_image(sample.image),
            pred.keypoints[i],
            kset.skeleton,
            pred.scores[i],
            gt=pred.gt[i],
        )
        write_image(pictures / f"{Path(sample.image).stem}.png", image)
        drawn.append(image)
    save_gallery(drawn, pictures / "gallery.png")
    return {**metrics, "instances": len(pred.index)}
