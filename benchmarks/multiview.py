"""Several cameras: calibration and triangulation on known truth, against aniposelib.

    .venv/bin/python benchmarks/multiview.py                        # ~3-5 min on 2 cores
    .venv/bin/python benchmarks/multiview.py --peer /work/peers/anipose/bin/python

The peer is aniposelib 0.8.0 in its own venv (``python3.11 -m venv /work/peers/anipose &&
/work/peers/anipose/bin/pip install aniposelib``: it needs opencv-contrib-python, which
conflicts with our opencv-python-headless, plus jax and numba). It runs in a subprocess on
.npy files; without ``--peer`` (or if the path is missing) its columns are left out.

Test bed (``keypointer.multiview.synthetic``): a 400 mm box, 3 or 6 cameras 20-45 degrees
above it with barrel distortion (k1 -0.25 to -0.05), 640x480 px.

1. Calibration: a ChArUco board (7x5 squares of 40 mm) in 100 (3 cameras) or 150 (6) frames,
   40% held close to one camera; corners with Gaussian noise of 0.2 px per axis. Camera
   positions against the truth (the calibration's world is camera 0's frame; scale comes from
   the board), and the mean reprojection error per camera; aniposelib's ``calibrate_rows``
   (its defaults) on the same corners.
2. Triangulation: a 20-keypoint figure moving in the box for 2,000 frames, projected to each
   camera with Gaussian noise of 2 / score px per axis, scores uniform in [0.4, 1] (a less sure
   detection is a worse one); "corrupted": camera 0's points moved by 40-120 px in 10% of the
   frames (one offset per frame, scores unchanged: a confident wrong detection);
   "occlusions": 10% of all views 20-60 px off with scores 0.3-0.5 (an unsure, wrong
   detection: how a heatmap model answers for a hidden keypoint). Both tools
   get the same pixels and the calibration from step 1 (written by us, loaded by aniposelib);
   points scoring under 0.3 would be NaN for both (none here). 3D error = distance to the
   truth (mm). Ours: ``triangulate`` with its defaults (score weights, view selection over
   camera pairs, Gauss-Newton refinement). aniposelib: ``CameraGroup.triangulate`` (its default,
   the one anipose's ``triangulate`` uses unless ``ransac = true``) and
   ``triangulate_ransac`` on the first 30 frames (a Python loop per point: slow).
3. Speed: triangulation alone, frames per second (3 cameras x 20 keypoints, median of 3).
4. Detector path: the 3-camera board clip rendered as images (no added noise) and found by
   OpenCV's ChArUco detector, then calibrated.
5. Round trip: our calibration.toml loaded by aniposelib (its projections against ours), and
   aniposelib's ``dump`` of it read back by us.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from keypointer.multiview.calibrate import Board, calibrate
from keypointer.multiview.cameras import CameraGroup, read_calibration, write_calibration
from keypointer.multiview.synthetic import (
    BOX_SIZE,
    board_clip,
    camera_ring,
    figure_motion,
    project_views,
    render_board,
)
from keypointer.multiview.triangulate import triangulate

OUT = Path("/tmp/kp19/results/multiview.md")
BOARD_FRAMES = {3: 100, 6: 150}
FRAMES = 2000
KEYPOINTS = 20
RANSAC_FRAMES = 30  # aniposelib: ~3 frames/s with 3 cameras, ~0.4 with 6

PEER_SCRIPT = r"""
import json, sys, time
import numpy as np
from aniposelib.cameras import CameraGroup

job = json.load(open(sys.argv[1]))
out = {}
cgroup = CameraGroup.load(job["calibration"])
out["names"] = [c.get_name() for c in cgroup.cameras]
np.save(job["projected"], cgroup.project(np.load(job["test_points"])))
cgroup.dump(job["dump"])
for name, path in job["points"].items():
    pts = np.load(path)  # (C, N, 2), NaN where skipped
    cgroup.triangulate(pts[:, :10])  # jax compiles on the first call: not timed
    t = time.perf_counter()
    p3d = cgroup.triangulate(pts)
    out[name + "_s"] = time.perf_counter() - t
    np.save(path.replace(".npy", "_dlt.npy"), p3d)
    sub = pts[:, : job["ransac_points"]]
    t = time.perf_counter()
    p3d, _, _, _ = cgroup.triangulate_ransac(sub)
    out[name + "_ransac_s"] = time.perf_counter() - t
    np.save(path.replace(".npy", "_ransac.npy"), p3d)
json.dump(out, open(job["result"], "w"))
"""

PEER_CALIBRATE = r"""
import json, sys, time
import numpy as np
from aniposelib.boards import CharucoBoard
from aniposelib.cameras import CameraGroup

job = json.load(open(sys.argv[1]))
corners = np.load(job["corners"])  # (C, F, M, 2), NaN where not seen
board = CharucoBoard(*job["squares"], job["square_length"], job["marker_length"], 4, 50)
all_rows = []
for c in range(corners.shape[0]):
    rows = []
    for f in range(corners.shape[1]):
        ok = np.isfinite(corners[c, f, :, 0])
        if ok.sum() >= 6:
            rows.append({"framenum": (0, f), "ids": np.flatnonzero(ok).reshape(-1, 1),
                         "corners": corners[c, f, ok].reshape(-1, 1, 2).astype("float32")})
    all_rows.append(rows)
cgroup = CameraGroup.from_names(job["names"])
for cam, size in zip(cgroup.cameras, job["sizes"]):
    cam.set_size(size)
t = time.perf_counter()
error = cgroup.calibrate_rows(all_rows, board, verbose=False)
seconds = time.perf_counter() - t
cgroup.dump(job["out"])
json.dump({"error": float(error), "seconds": seconds}, open(job["result"], "w"))
"""


def to_camera0(points: np.ndarray, truth: CameraGroup) -> np.ndarray:
    """World points -> camera 0's frame (the calibration's world)."""
    return points @ truth[0].rotation.T + truth[0].tvec


def error_mm(points: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    e = np.linalg.norm(points - truth, axis=-1)
    return float(np.nanmean(e)), float(np.nanmedian(e))


def rigid_fit_error(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(C,) distances between (C, 3) camera centres and the truth's after the best rotation and
    translation (Kabsch; no scale: the board sets it)."""
    a, b = found - found.mean(0), truth - truth.mean(0)
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.diag([1, 1, np.sign(np.linalg.det(u @ vt))])
    return np.linalg.norm(a @ (u @ d @ vt) - b, axis=1)


def peer_calibration(
    peer: Path, work: Path, n: int, clip_corners: np.ndarray, truth: CameraGroup, board: Board
) -> list[str]:
    """aniposelib's ``calibrate_rows`` (its defaults) on the same corners."""
    job = {
        "corners": str(work / f"board_{n}.npy"),
        "squares": list(board.squares),
        "square_length": board.square_length,
        "marker_length": board.marker_length,
        "names": truth.names,
        "sizes": [list(c.size) for c in truth],
        "out": str(work / f"anipose_calibration_{n}.toml"),
        "result": str(work / f"anipose_calibration_{n}.json"),
    }
    np.save(job["corners"], clip_corners)
    (work / "calib_job.json").write_text(json.dumps(job))
    (work / "peer_calibrate.py").write_text(PEER_CALIBRATE)
    run = subprocess.run(
        [str(peer), str(work / "peer_calibrate.py"), str(work / "calib_job.json")],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        return [f"aniposelib calibrate_rows failed: {run.stderr.strip().splitlines()[-1]}"]
    result = json.loads(Path(job["result"]).read_text())
    group = read_calibration(job["out"])
    pos = rigid_fit_error(group.positions, truth.positions)
    return [
        f"aniposelib ``calibrate_rows`` (defaults) on the same corners: {result['seconds']:.0f} s, "
        f"its own error measure {result['error']:.3f} px (a median after triangulating the corners: not comparable with ours), camera positions off by "
        f"{pos.max():.2f} mm at most ({100 * pos.max() / BOX_SIZE:.3f}% of the box) after the "
        "best rigid fit (its world is not pinned to a camera)",
    ]


def bench_calibration(
    n: int, peer: Path | None = None, work: Path | None = None
) -> tuple[CameraGroup, CameraGroup, list[str]]:
    truth = camera_ring(n, seed=n)
    board = Board()
    clip = board_clip(truth, board, BOARD_FRAMES[n], noise_px=0.2, seed=1)
    t = time.perf_counter()
    result = calibrate(clip.corners, board, [c.size for c in truth], truth.names)
    seconds = time.perf_counter() - t
    found = (result.group.positions - truth[0].tvec) @ truth[0].rotation
    pos = np.linalg.norm(found - truth.positions, axis=1)
    lines = [
        f"**{n} cameras**: {BOARD_FRAMES[n]} board frames, calibrated in {seconds:.1f} s; "
        f"mean reprojection error {result.error_px:.3f} px; camera positions off by "
        f"{pos.max():.2f} mm at most ({100 * pos.max() / BOX_SIZE:.3f}% of the box), "
        f"{pos[1:].mean():.2f} mm on average (camera 0 defines the world)",
        "",
        "| camera | reprojection error (px) | frames used | board detections | position error (mm) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.name} | {r.error_px:.3f} | {r.frames_used} | {r.detections} | {p:.2f} |"
        for r, p in zip(result.cameras, pos, strict=True)
    ]
    rigid = rigid_fit_error(result.group.positions, truth.positions)
    lines += ["", f"Ours after the best rigid fit (as for the peer): {rigid.max():.2f} mm at most."]
    if peer is not None and work is not None:
        lines += ["", *peer_calibration(peer, work, n, clip.corners, truth, board)]
    return truth, result.group, lines


def bench_rendered(n: int = 3, frames: int = 100) -> list[str]:
    """Calibration through the detector: the board clip rendered (ChArUco picture warped into
    each camera, lens distortion included), corners found by OpenCV's CharucoDetector."""
    truth = camera_ring(n, seed=n)
    board = Board()
    clip = board_clip(truth, board, frames, seed=1)
    t = time.perf_counter()
    corners = np.full(clip.corners.shape, np.nan)
    for c, cam in enumerate(truth):
        for f in range(frames):
            if np.isfinite(clip.corners[c, f, :, 0]).sum() >= 4:
                corners[c, f] = board.detect(render_board(board, cam, clip.rvecs[f], clip.tvecs[f]))
    detect_s = time.perf_counter() - t
    both = np.isfinite(corners[..., 0]) & np.isfinite(clip.corners[..., 0])
    det_err = np.linalg.norm(corners - clip.corners, axis=-1)[both]
    result = calibrate(corners, board, [c.size for c in truth], truth.names)
    found = (result.group.positions - truth[0].tvec) @ truth[0].rotation
    pos = np.linalg.norm(found - truth.positions, axis=1)
    return [
        f"**Detector path, {n} cameras**: {frames} rendered board frames per camera "
        f"(rendered and detected in {detect_s:.0f} s); {both.sum()} corners found, "
        f"{np.median(det_err):.2f} px median from the truth (rendering is not exact); "
        f"calibration: reprojection error {result.error_px:.3f} px, camera positions off by "
        f"{pos.max():.2f} mm at most ({100 * pos.max() / BOX_SIZE:.3f}% of the box).",
    ]


def time_triangulation(group: CameraGroup, uv: np.ndarray, scores: np.ndarray) -> float:
    times = []
    for _ in range(3):
        t = time.perf_counter()
        triangulate(group, uv, scores)
        times.append(time.perf_counter() - t)
    return uv.shape[1] / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", default="/work/peers/anipose/bin/python")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    peer = Path(args.peer) if args.peer and Path(args.peer).exists() else None
    work = Path(tempfile.mkdtemp(prefix="kp-multiview-"))
    report = [
        f"Machine: {platform.processor() or platform.machine()}, numpy {np.__version__}; "
        f"peer: {'aniposelib 0.8.0 (own venv)' if peer else 'none'}. "
        "Script: benchmarks/multiview.py (its docstring describes the test bed).",
        "",
    ]
    tri_rows = []
    roundtrip = []
    fps = None
    for n in (3, 6):
        truth, group, lines = bench_calibration(n, peer, work)
        report += ["### Calibration, " + f"{n} cameras", "", *lines, ""]
        print("\n".join(lines), flush=True)
        cal_path = write_calibration(group, work / f"calibration_{n}.toml")
        figure = figure_motion(FRAMES, KEYPOINTS, seed=7)
        target = to_camera0(figure.points, truth)
        cases = {
            "clean": project_views(truth, figure.points, noise_px=2.0, seed=8),
            "corrupted": project_views(
                truth, figure.points, noise_px=2.0, corrupt_camera=0, corrupt_share=0.1, seed=8
            ),
            "occlusions": project_views(
                truth, figure.points, noise_px=2.0, occluded_share=0.1, seed=8
            ),
        }
        job = {
            "calibration": str(cal_path),
            "test_points": str(work / "test_points.npy"),
            "projected": str(work / f"projected_{n}.npy"),
            "dump": str(work / f"anipose_dump_{n}.toml"),
            "points": {},
            "ransac_points": RANSAC_FRAMES * KEYPOINTS,
            "result": str(work / f"peer_{n}.json"),
        }
        test_points = np.random.default_rng(0).uniform(-BOX_SIZE / 2, BOX_SIZE / 2, (50, 3))
        np.save(job["test_points"], to_camera0(test_points, truth))
        ours = {}
        for name, (uv, scores) in cases.items():
            out = triangulate(group, uv, scores)
            ours[name] = out
            skipped = np.where((scores >= 0.3)[..., None], uv, np.nan)
            path = work / f"{name}_{n}.npy"
            np.save(path, skipped.reshape(n, -1, 2))
            job["points"][name] = str(path)
        if n == 3:
            fps = time_triangulation(group, *cases["clean"])
        peer_out = {}
        if peer is not None:
            (work / "job.json").write_text(json.dumps(job))
            (work / "peer.py").write_text(PEER_SCRIPT)
            t = time.perf_counter()
            subprocess.run([str(peer), str(work / "peer.py"), str(work / "job.json")], check=True)
            print(f"peer ran in {time.perf_counter() - t:.0f} s", flush=True)
            peer_out = json.loads(Path(job["result"]).read_text())
        for name, out in ours.items():
            mean, median = error_mm(out.points, target)
            row = {"cams": n, "case": name, "ours": (mean, median)}
            sub = slice(0, RANSAC_FRAMES)
            row["ours_sub"] = error_mm(out.points[sub], target[sub])
            if peer_out:
                dlt = np.load(job["points"][name].replace(".npy", "_dlt.npy"))
                ransac = np.load(job["points"][name].replace(".npy", "_ransac.npy"))
                row["dlt"] = error_mm(dlt.reshape(FRAMES, KEYPOINTS, 3), target)
                row["ransac"] = error_mm(
                    ransac.reshape(RANSAC_FRAMES, KEYPOINTS, 3), target[:RANSAC_FRAMES]
                )
                row["dlt_fps"] = FRAMES / peer_out[name + "_s"]
                row["ransac_fps"] = RANSAC_FRAMES / peer_out[name + "_ransac_s"]
            tri_rows.append(row)
            print(row, flush=True)
        if peer_out:
            theirs = np.load(job["projected"])
            mine = group.project(np.load(job["test_points"]))
            back = read_calibration(job["dump"])
            same = all(
                np.array_equal(getattr(a, f), getattr(b, f))
                for a, b in zip(group, back, strict=True)
                for f in ("matrix", "dist", "rvec", "tvec")
            )
            roundtrip.append(
                f"- {n} cameras: our calibration.toml loads in aniposelib "
                f"(names {peer_out['names']}); its projections of 50 points differ from ours by "
                f"{np.abs(theirs - mine).max():.2e} px at most. aniposelib's dump of it reads "
                f"back in ours with {'identical' if same else 'DIFFERENT'} values "
                f"(names {back.names}, metadata {back.metadata})."
            )

    lines = bench_rendered()
    print("\n".join(lines), flush=True)
    report += ["### Calibration from rendered board images", "", *lines, ""]
    report += ["### Triangulation: 3D error (mm; mean / median) against the truth", ""]
    head = "| cameras | inputs | ours | aniposelib triangulate | ours vs it |"
    if peer is None:
        head = "| cameras | inputs | ours |"
    report += [head, "|" + "---|" * (head.count("|") - 1)]
    for r in tri_rows:
        cells = [str(r["cams"]), r["case"], "{:.2f} / {:.2f}".format(*r["ours"])]
        if "dlt" in r:
            cells += [
                "{:.2f} / {:.2f}".format(*r["dlt"]),
                f"{100 * (1 - r['ours'][0] / r['dlt'][0]):.0f}% lower (mean)",
            ]
        report.append("| " + " | ".join(cells) + " |")
    if any("ransac" in r for r in tri_rows):
        report += [
            "",
            f"aniposelib ``triangulate_ransac`` on the first {RANSAC_FRAMES} frames "
            "(mean / median mm; ours on the same frames):",
            "",
            "| cameras | inputs | ours | aniposelib ransac | its speed (frames/s) |",
            "|---|---|---|---|---|",
        ]
        for r in tri_rows:
            report.append(
                f"| {r['cams']} | {r['case']} | {r['ours_sub'][0]:.2f} / {r['ours_sub'][1]:.2f} "
                f"| {r['ransac'][0]:.2f} / {r['ransac'][1]:.2f} | {r['ransac_fps']:.1f} |"
            )
    report += [
        "",
        "### Speed",
        "",
        f"- ours, triangulation alone (3 cameras x {KEYPOINTS} keypoints, {FRAMES} frames, "
        f"robust, defaults): **{fps:,.0f} frames/s**",
    ]
    report += [
        f"- aniposelib triangulate, {r['cams']} cameras, {r['case']}: {r['dlt_fps']:,.0f} frames/s"
        for r in tri_rows
        if "dlt_fps" in r
    ]
    if roundtrip:
        report += ["", "### calibration.toml round trip with aniposelib", "", *roundtrip]
    text = "\n".join(report) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("## Several cameras (benchmarks/multiview.py)\n\n" + text)
    print(f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
