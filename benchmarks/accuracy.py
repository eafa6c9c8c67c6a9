"""Accuracy on real labelled data, from scratch, against DeepLabCut 3 in the same run.

    .venv/bin/python benchmarks/accuracy.py                       # both sets, all runs
    .venv/bin/python benchmarks/accuracy.py --sets lp --runs time --minutes 15 --write
    .venv/bin/python benchmarks/accuracy.py --jobs 2              # two runs at once, 1 core each

Sets (../shared/data): ``lp`` = lp-mirror-mouse (90 frames, 17 keypoints), ``reaching`` =
dlc-reaching (55 frames, 5 keypoints). Fixed split: rows sorted by image path, the test set is
every 10th row starting with the first, the rest trains (keypointer holds out its own
validation images from those; nothing is chosen on the test rows).

Runs: ``default`` = ``keypointer train`` with no flags; ``time`` = ``--time MINUTES``;
``dlc`` = DeepLabCut 3 ``cspnext_s`` from scratch for MINUTES of training, through
``benchmarks/peer_dlc.py`` in its own venv (``--dlc-python``; skipped when absent). Each run is
scored on the test rows: mean and RMSE pixel error over labelled keypoints, PCK@0.05 of the
longer side of the labelled keypoints' box, and the training wall time.

With ``--jobs 2`` two runs share the machine, each pinned to one thread (``--threads``): both
peers then get the same half of it. ``--write`` replaces "## Accuracy on real data" in
RESULTS.md with the table, the machine and the command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _results import write_section

from keypointer.data.formats import load_dataset
from keypointer.data.types import KeypointSet

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SETS = {"lp": DATA / "lp-mirror-mouse", "reaching": DATA / "dlc-reaching"}
KEYPOINTER = [sys.executable, "-m", "keypointer"]


def split(name: str, out: Path) -> tuple[Path, Path, list[str]]:
    """Write the fixed train/test split of set ``name`` as plain CSVs under ``out``."""
    from keypointer.data.csv_format import write_csv

    ks = load_dataset(SETS[name])
    samples = sorted(ks.samples, key=lambda s: str(s.image))
    test = [s for i, s in enumerate(samples) if i % 10 == 0]
    train = [s for i, s in enumerate(samples) if i % 10 != 0]
    paths = []
    for part, rows in (("train", train), ("test", test)):
        kset = KeypointSet(ks.skeleton, rows, source=ks.source)
        paths.append(write_csv(kset, out / f"{name}_{part}.csv"))
    return paths[0], paths[1], [s.image.name for s in test]


def env_for(threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def run_ours(
    name: str, kind: str, minutes: float, work: Path, threads: int | None, sets: list[str]
) -> dict:
    """``keypointer train`` on the training rows (no flags, or ``--time``; ``sets`` are extra
    ``--set`` overrides for exploring), then ``keypointer eval`` of best.pt on the test rows."""
    train_csv, test_csv, _ = split(name, work / "splits")
    flags = (["--time", f"{minutes:g}"] if kind == "time" else []) + [
        arg for s in sets for arg in ("--set", s)
    ]
    tag = "-".join([kind, *sets]).replace("/", "_")
    root = work / f"runs-{name}-{tag}"
    cmd = [*KEYPOINTER, "train", "--data", str(train_csv), "--quiet", "--set", f"run.root={root}"]
    t0 = time.perf_counter()
    with open(work / f"{name}-{tag}.log", "w") as f:
        subprocess.run(
            cmd + flags, check=True, stdout=f, stderr=subprocess.STDOUT, env=env_for(threads)
        )
    seconds = time.perf_counter() - t0
    best = sorted(root.glob("*/*/best.pt"))[-1]
    out = work / f"eval-{name}-{tag}"
    subprocess.run(
        [*KEYPOINTER, "eval", str(best), "--data", str(test_csv), "--out", str(out)],
        check=True, capture_output=True, env=env_for(threads),
    )  # fmt: skip
    result = json.loads((out / "eval.json").read_text())
    return {
        "set": name, "run": "keypointer " + (" ".join(flags).replace("--set ", "") or "(no flags)"),
        "mean_px": result["mean_px"], "rmse_px": result["rmse_px"], "pck": result["pck"],
        "train_min": seconds / 60, "command": "keypointer train --data TRAIN " + " ".join(flags),
    }  # fmt: skip


def run_dlc(name: str, minutes: float, work: Path, threads: int | None, python: Path) -> dict:
    out = work / f"dlc-{name}"
    cmd = [str(python), str(ROOT / "benchmarks" / "peer_dlc.py"), "--data", str(SETS[name])]
    cmd += ["--minutes", f"{minutes:g}", "--out", str(out), "--device", "cpu"]
    if threads:
        cmd += ["--threads", str(threads)]
    with open(work / f"dlc-{name}.log", "w") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT, env=env_for(threads))
    r = json.loads((out / "result.json").read_text())
    return {
        "set": name, "run": f"DeepLabCut {r['version']} {r['net']} {minutes:g} min",
        "mean_px": r["test_mean_px"], "rmse_px": r["test_rmse_px"], "pck": r["test_pck05"],
        "train_min": r["train_seconds"] / 60, "command": "benchmarks/peer_dlc.py " + " ".join(cmd[3:]),
    }  # fmt: skip


def table(rows: list[dict]) -> str:
    lines = [
        "| set | run | test mean px | test RMSE px | PCK@0.05 | training min |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['set']} | {r['run']} | {r['mean_px']:.2f} | {r['rmse_px']:.2f} | "
            f"{r['pck']:.3f} | {r['train_min']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="lp,reaching")
    ap.add_argument("--runs", default="default,time,dlc")
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="per run (default: 2 // jobs)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/keypointer-accuracy"))
    ap.add_argument("--dlc-python", type=Path, default=ROOT.parent / "peers/dlc/bin/python")
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--set", action="append", default=[], help="extra config override (ours)")
    args = ap.parse_args()
    threads = args.threads or (
        max(1, (os.cpu_count() or 2) // args.jobs) if args.jobs > 1 else None
    )
    args.work.mkdir(parents=True, exist_ok=True)
    jobs = []
    for name in args.sets.split(","):
        for kind in args.runs.split(","):
            if kind == "dlc":
                if args.dlc_python.exists():
                    jobs.append(
                        lambda n=name: run_dlc(n, args.minutes, args.work, threads, args.dlc_python)
                    )
                else:
                    print(f"skipping DeepLabCut: no {args.dlc_python}", file=sys.stderr)
            else:
                jobs.append(
                    lambda n=name, k=kind: run_ours(
                        n, k, args.minutes, args.work, threads, args.set
                    )
                )
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda job: job(), jobs))
    text = table(rows)
    print(text)
    if args.write:
        machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
        body = (
            f"Machine: {machine}; {args.jobs} run(s) at a time, {threads or 'all'} thread(s) each.\n"
            f"Command: `.venv/bin/python benchmarks/accuracy.py {' '.join(sys.argv[1:])}`\n\n"
            + text + "\n\nCommands per run:\n\n" + "\n".join(f"- `{r['command']}`" for r in rows)
        )  # fmt: skip
        write_section("Accuracy on real data", body)


if __name__ == "__main__":
    main()
