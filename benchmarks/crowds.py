"""Several instances per image: locate, then pose, then track (issue 13's targets).

    .venv/bin/python benchmarks/crowds.py --minutes 15 --write
    .venv/bin/python benchmarks/crowds.py --run runs/crowds/<stamp>   # re-score a trained run

1. Synthetic crowds (``keypointer synth --instances 1-4``, 256 px): ``--train`` images for
   training, ``--test`` held-out images (another seed). ``keypointer train --time MINUTES``
   trains the pose model and the locator (the labels hold several figures per image).
2. ``keypointer eval`` on the held-out images: OKS AP with the labelled boxes (the pose model
   alone) and with the instances the model located itself, missed and extra instances, and
   the locator's box recall and precision.
3. A synthetic video of ``--instances`` figures that cross and occlude each other
   (``keypointer synth --video``): ``keypointer eval`` on it gives ID switches per 1,000 frames
   for the tracker (Kalman + Hungarian) and for frame-by-frame nearest-centroid matching, on
   the same per-frame instances; and the locator's share of the time per frame.

``--write`` replaces "## Several instances" in RESULTS.md with the table, machine and command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import write_section

ROOT = Path(__file__).resolve().parents[1]
KEYPOINTER = [sys.executable, "-m", "keypointer"]


def run(*args: str, env: dict | None = None) -> None:
    subprocess.run([*KEYPOINTER, *args], check=True, env=env, cwd=ROOT)


def train(work: Path, minutes: float, n_train: int, threads: int) -> tuple[Path, float]:
    """Render the crowds and train both models; returns the run folder and wall minutes."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    run("synth", str(work / "train"), "--num-images", str(n_train), "--instances", "1-4",
        "--seed", "0")  # fmt: skip
    began = time.perf_counter()
    run("train", "--data", str(work / "train" / "annotations.json"), "--time", str(minutes),
        "--set", f"run.root={work / 'runs'}", "--set", "run.name=crowds", env=env)  # fmt: skip
    wall = (time.perf_counter() - began) / 60
    return max((work / "runs" / "crowds").iterdir()), wall


def locator_share(run_dir: Path, video: Path) -> dict[str, float]:
    """Time per frame of the locator alone and of locate + pose, on the video's frames."""
    from keypointer.inference.locate import find_boxes
    from keypointer.inference.pipeline import load_pipeline
    from keypointer.inference.sources import Source, iter_frames

    pipe = load_pipeline(run_dir / "best.pt")
    frames = list(iter_frames([Source(video, "video")]))[:200]
    began = time.perf_counter()
    for f in frames:
        find_boxes(pipe.locator.model, [f.image], pipe.locator.threshold)
    loc = (time.perf_counter() - began) / len(frames)
    began = time.perf_counter()
    sum(1 for _ in pipe.run(frames))
    total = (time.perf_counter() - began) / len(frames)
    return {"locator_ms": 1e3 * loc, "total_ms": 1e3 * total, "share": loc / total}


def score(run_dir: Path, work: Path, n_test: int, frames: int, instances: int) -> dict:
    from keypointer.commands.eval import eval_command
    from keypointer.commands.eval_video import eval_video_command

    if not (work / "test" / "annotations.json").exists():
        run("synth", str(work / "test"), "--num-images", str(n_test), "--instances", "1-4",
            "--seed", "1")  # fmt: skip
    images = eval_command(run_dir / "best.pt", work / "test" / "annotations.json",
                              out=work / "eval-test", quiet=True, overwrite=True)  # fmt: skip
    clip = work / "clip"
    if not (clip / "truth.json").exists():
        run("synth", str(clip), "--video", "--frames", str(frames), "--instances", str(instances),
            "--seed", "3")  # fmt: skip
    video = eval_video_command(
        run_dir / "best.pt", clip, out=work / "eval-clip", quiet=True, overwrite=True
    )
    return {"images": images, "video": video, "speed": locator_share(run_dir, clip / "video.mp4")}


def table(res: dict, wall: float | None) -> str:
    im, located = res["images"], res["images"].get("located", {})
    oks, boxes = located.get("oks", {}), located.get("boxes", {})
    trk = res["video"]["tracking"]
    rows = [
        ("OKS AP, located instances", f"{oks.get('AP', float('nan')):.3f}"),
        ("OKS AP, labelled boxes", f"{im['oks']['AP']:.3f}"),
        ("instances labelled / found / missed / extra",
         f"{oks.get('gt_instances', 0):.0f} / {oks.get('predicted', 0):.0f} / "
         f"{oks.get('missed', 0):.0f} / {oks.get('extra', 0):.0f}"),
        ("locator box recall / precision @IoU 0.5",
         f"{boxes.get('recall', float('nan')):.3f} / {boxes.get('precision', float('nan')):.3f}"),
        ("ID switches per 1,000 frames: tracker / nearest centroid",
         f"{trk['tracker']['switches_per_1000_frames']:.1f} / "
         f"{trk['nearest_centroid']['switches_per_1000_frames']:.1f}"),
        ("MOTA: tracker / nearest centroid",
         f"{trk['tracker']['mota']:.3f} / {trk['nearest_centroid']['mota']:.3f}"),
        ("locator share of the time per frame",
         f"{res['speed']['share']:.2f} ({res['speed']['locator_ms']:.1f} of "
         f"{res['speed']['total_ms']:.1f} ms)"),
    ]  # fmt: skip
    if wall is not None:
        rows.insert(0, ("training both models, wall minutes", f"{wall:.1f}"))
    return "\n".join(["| measure | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--train", type=int, default=400)
    ap.add_argument("--test", type=int, default=100)
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--instances", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--run", type=Path, default=None, help="score this run; do not train")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="kp-crowds-"))
    work.mkdir(parents=True, exist_ok=True)
    run_dir, wall = (
        (args.run, None) if args.run else train(work, args.minutes, args.train, args.threads)
    )
    res = score(run_dir, work, args.test, args.frames, args.instances)
    (work / "crowds.json").write_text(json.dumps(res, default=str, indent=1))
    body = table(res, wall)
    print(body)
    if args.write:
        machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, no GPU"
        command = " ".join(["benchmarks/crowds.py", *sys.argv[1:]])
        write_section("Several instances", f"Machine: {machine}. Command: `{command}`.\n\n{body}")


if __name__ == "__main__":
    main()
