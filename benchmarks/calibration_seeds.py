"""Calibration through the user's path, over several seeds: ``synth --cameras N`` board clips
(rendered, lens distortion included, mp4v-encoded) -> OpenCV's ChArUco detector ->
``calibrate``. Per seed: reprojection error and the worst camera position error against the
truth, in % of the box (issue "Several cameras": below 0.5 px and 1%).

    nice -n 10 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/calibration_seeds.py
    .venv/bin/python benchmarks/calibration_seeds.py --cameras 3 --seeds 0 1 2 --exact

``--cache DIR`` keeps each seed's detected corners and reuses them (render and detect once, then
try changes to ``calibrate``). ``--exact`` also calibrates from the exact corners of the frames the detector found (same
views): what is left of the error then is the calibration's, not the images'.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from keypointer.multiview.calibrate import BoardVideos, calibrate, detect_videos
from keypointer.multiview.cameras import CameraGroup
from keypointer.multiview.synthetic import BOARD_FRAMES_PER_CAMERA as PER_CAMERA
from keypointer.multiview.synthetic import (
    BOX_SIZE,
    MIN_BOARD_FRAMES,
    SCENE_BOARD,
    board_clip,
    camera_names,
    camera_ring,
    write_scene,
)


def position_error(found: CameraGroup, truth: CameraGroup) -> np.ndarray:
    """(C,) distances (mm) between the found camera centres, taken from camera 0's frame (the
    calibration's world) into the truth's, and the true centres."""
    world = (found.positions - truth[0].tvec) @ truth[0].rotation
    return np.linalg.norm(world - truth.positions, axis=1)


def detections(n: int, seed: int, cache: Path | None) -> tuple[BoardVideos, float, float]:
    """The corners ``calibrate`` finds in ``synth --cameras n --seed seed``'s board clips,
    and the seconds spent rendering and detecting (NaN when read from ``cache``)."""
    saved = cache / f"corners_{n}_{seed}.npz" if cache is not None else None
    if saved is not None and saved.exists():
        z = np.load(saved)
        sizes = [(int(w), int(h)) for w, h in z["sizes"]]
        return BoardVideos(z["corners"], camera_names(n), sizes, 30.0), np.nan, np.nan
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        scene = write_scene(Path(tmp), n, frames=2, seed=seed)
        render_s = time.perf_counter() - t
        t = time.perf_counter()
        found = detect_videos(scene.board_videos, SCENE_BOARD)
        detect_s = time.perf_counter() - t
    if saved is not None:
        saved.parent.mkdir(parents=True, exist_ok=True)
        np.savez(saved, corners=found.corners, sizes=np.array(found.sizes))
    return found, render_s, detect_s


def run_seed(n: int, seed: int, exact: bool, cache: Path | None) -> dict[str, float]:
    found, render_s, detect_s = detections(n, seed, cache)
    truth = camera_ring(n, seed=seed)  # as write_scene draws it
    frames = found.corners.shape[1]
    clip = board_clip(truth, SCENE_BOARD, frames, seed=seed + 1)  # as write_scene drew it
    both = np.isfinite(found.corners[..., 0]) & np.isfinite(clip.corners[..., 0])
    corner_err = np.linalg.norm(found.corners - clip.corners, axis=-1)[both]
    t = time.process_time()  # CPU seconds: the machine may be shared
    result = calibrate(found.corners, SCENE_BOARD, found.sizes, found.names)
    calib_s = time.process_time() - t
    pos = position_error(result.group, truth)
    row = {
        "cameras": n,
        "seed": seed,
        "frames": frames,
        "corners": int(both.sum()),
        "corner_px": float(np.median(corner_err)),
        "corner_p95": float(np.percentile(corner_err, 95)),
        "reproj_px": result.error_px,
        "max_pos_pct": 100 * float(pos.max()) / BOX_SIZE,
        "render_s": render_s,
        "detect_s": detect_s,
        "calib_s": calib_s,
    }
    if exact:
        # the exact corners where the detector found them: same views, no image error
        same = np.where(both[..., None], clip.corners, np.nan)
        ideal = calibrate(same, SCENE_BOARD, found.sizes, found.names)
        row["exact_pos_pct"] = 100 * float(position_error(ideal.group, truth).max()) / BOX_SIZE
        # the detected corners with the true intrinsics, kept: what the intrinsics cost
        known = calibrate(
            found.corners,
            SCENE_BOARD,
            found.sizes,
            found.names,
            intrinsics=truth,
            optimise_intrinsics=False,
        )
        row["true_intr_pos_pct"] = 100 * float(position_error(known.group, truth).max()) / BOX_SIZE
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, nargs="+", default=[3, 6])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--exact", action="store_true", help="diagnostic calibrations too")
    parser.add_argument(
        "--cache",
        type=Path,
        help="keep the detected corners here and reuse them (for changes to calibrate only)",
    )
    args = parser.parse_args()
    cv2.setNumThreads(1)
    print(
        f"board frames: max({MIN_BOARD_FRAMES}, {PER_CAMERA} x cameras); box {BOX_SIZE:g} mm; "
        "done when: reprojection < 0.5 px, positions within 1% of the box"
    )
    head = "cameras seed frames corners corner_px(med/p95) reproj_px max_pos_%box"
    print(head + ("  exact_%box true_intr_%box" if args.exact else "") + "  times(s)")
    for n in args.cameras:
        rows = []
        for seed in args.seeds:
            r = run_seed(n, seed, args.exact, args.cache)
            rows.append(r)
            line = (
                f"{n:7d} {seed:4d} {r['frames']:6d} {r['corners']:7d} "
                f"{r['corner_px']:9.3f}/{r['corner_p95']:.3f} {r['reproj_px']:9.3f} "
                f"{r['max_pos_pct']:12.3f}"
            )
            if args.exact:
                line += f"  {r['exact_pos_pct']:10.3f} {r['true_intr_pos_pct']:14.3f}"
            line += f"  render {r['render_s']:.0f} detect {r['detect_s']:.0f} "
            line += f"calibrate {r['calib_s']:.1f} (CPU)"
            print(line, flush=True)
        pct = np.array([r["max_pos_pct"] for r in rows])
        reproj = np.array([r["reproj_px"] for r in rows])
        print(
            f"summary {n} cameras, {len(rows)} seeds: max position error {pct.mean():.3f}% "
            f"mean, {pct.max():.3f}% worst ({(pct < 1).sum()}/{len(rows)} within 1%); "
            f"reprojection {reproj.mean():.3f} px mean, {reproj.max():.3f} px worst; "
            f"calibrate {np.mean([r['calib_s'] for r in rows]):.1f} CPU s mean",
            flush=True,
        )


if __name__ == "__main__":
    main()
