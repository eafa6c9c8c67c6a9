"""Does ``movement`` read the DeepLabCut-style CSV that ``keypointer predict`` writes?

    .venv/bin/python benchmarks/movement_check.py --python /tmp/mvenv/bin/python

``movement`` (0.16 on) needs Python >= 3.12 and is not one of our dependencies, so this script
runs in two interpreters: ours writes the CSVs with :func:`keypointer.inference.writers.
write_dlc_csv` (single animal, and two individuals with one missing in a frame; frame numbers
with one skipped, as after an undecodable frame; missing points as empty cells), then the given
Python loads each with ``movement.io.load_poses.from_dlc_file(path, fps=...)`` and sends back
what it read, which is compared value by value. Exit code 0 when everything matches.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from keypointer.inference.writers import ImageTable, write_dlc_csv
from keypointer.skeleton import Skeleton

FPS = 25.0
NUMBERS = [0, 1, 2, 3, 4]
SKIPPED = [0, 1, 2, 4, 5]  # frame 3 left out, as predict does with a frame it cannot decode

LOADER = r"""
import json, sys, time
import numpy as np
t0 = time.perf_counter()
from movement.io import load_poses
import movement
t1 = time.perf_counter()
out = {"version": movement.__version__, "import_s": t1 - t0, "files": {}}
for path in sys.argv[2:]:
    ds = load_poses.from_dlc_file(path, fps=float(sys.argv[1]))
    ind, kp = [next(d for d in ds.dims if d.startswith(n)) for n in ("individual", "keypoint")]
    pos = ds["position"].transpose("time", ind, kp, "space")  # 0.17: singular names
    conf = ds["confidence"].transpose("time", ind, kp)
    out["files"][path] = {
        "dims": {k: int(v) for k, v in ds.sizes.items()},
        "time": ds["time"].values.tolist(),
        "individuals": [str(v) for v in ds[ind].values],
        "keypoints": [str(v) for v in ds[kp].values],
        "position": np.where(np.isnan(pos.values), None, pos.values).tolist(),
        "confidence": np.where(np.isnan(conf.values), None, conf.values).tolist(),
        "attrs": {k: str(v) for k, v in ds.attrs.items()},
    }
print(json.dumps(out))
"""


def cases(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray, bool, list]]:
    """name -> (keypoints (T, N, K, 2) NaN where no instance, scores (T, N, K), multi, frame
    numbers)."""
    t, k = len(NUMBERS), 3
    single = rng.uniform(0, 640, (t, 1, k, 2)).round(4), rng.uniform(0, 1, (t, 1, k)).round(4)
    single[0][1, 0, 2] = np.nan  # a missing point: empty cells
    single[1][1, 0, 2] = np.nan
    multi = rng.uniform(0, 640, (t, 2, k, 2)).round(4), rng.uniform(0, 1, (t, 2, k)).round(4)
    multi[0][3, 1], multi[1][3, 1] = np.nan, np.nan  # second individual absent in one frame
    return {
        "single": (*single, False, NUMBERS),
        "multi": (*multi, True, NUMBERS),
        "single, frame 3 skipped": (*single, False, SKIPPED),
    }


def write(path: Path, case: tuple, skeleton: Skeleton) -> None:
    kp, sc, multi, numbers = case
    table = ImageTable()
    for number, kps, scs in zip(numbers, kp, sc, strict=True):
        present = [i for i in range(len(kps)) if np.isfinite(kps[i]).any()]
        table.rows.append((str(number), [(kps[i], scs[i]) for i in present]))
    write_dlc_csv(path, table, skeleton, "keypointer", multi)


def compare(name: str, got: dict, case: tuple) -> list[str]:
    """Differences between what was written and what movement read."""
    kp, sc, _, numbers = case
    problems = []
    pos = np.array(got["position"], dtype=np.float64)
    conf = np.array(got["confidence"], dtype=np.float64)
    if pos.shape != kp.shape:
        return [f"{name}: position shape {pos.shape}, wrote {kp.shape}"]
    if not np.allclose(pos, kp, atol=1e-4, equal_nan=True):
        problems.append(f"{name}: positions differ by up to {np.nanmax(np.abs(pos - kp)):.4g} px")
    if not np.allclose(conf, sc, atol=1e-4, equal_nan=True):
        problems.append(f"{name}: confidences differ")
    want_time = (np.array(numbers) / FPS).tolist()
    if not np.allclose(got["time"], want_time):
        problems.append(f"{name}: time {got['time']} s, frame numbers / fps are {want_time}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="an interpreter that has movement")
    args = parser.parse_args()
    skeleton = Skeleton(("nose", "left_ear", "tail_base"))
    written = cases(np.random.default_rng(0))
    with tempfile.TemporaryDirectory() as tmp:
        paths = {name: Path(tmp) / f"case{i}.csv" for i, name in enumerate(written)}
        for name, case in written.items():
            write(paths[name], case, skeleton)
        print("written (single):\n" + "\n".join(paths["single"].read_text().splitlines()[:5]))
        run = subprocess.run(
            [args.python, "-c", LOADER, str(FPS), *map(str, paths.values())],
            capture_output=True,
            text=True,
        )
        if run.returncode:
            print(run.stderr[-3000:])
            return 1
        got = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"movement {got['version']}, import {got['import_s']:.1f} s")
    problems = []
    for name, case in written.items():
        read = got["files"][str(paths[name])]
        print(f"{name}: dims {read['dims']}, individuals {read['individuals']}, "
              f"keypoints {read['keypoints']}, time {read['time']}")  # fmt: skip
        problems += compare(name, read, case)
    print("\n".join(problems) if problems else "all values match")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
