"""How far a reference's keypoints sit from its video's pixels, and AP against it moved back.

SLEAP's two-fly predictions (``../shared/data/sleap-samples``; issue 20's reference) are a
model's output. This measures, without any keypointer model, where they sit on the video's
pixels: for every ``--every``-th frame and each instance, the whole-pixel shift (dx, dy) in
[-6, 6] that puts its keypoints on the brightest pixels (the flies are bright on a dark
arena; the frame is blurred 3x3 first), median per block of frames. A reference that sits on
its animals gives a median of (0, 0).

    .venv/bin/python benchmarks/reference_offset.py estimate
    .venv/bin/python benchmarks/reference_offset.py align W/test.slp W/test_aligned.slp --shift 2,-2
    .venv/bin/python -m keypointer eval RUN/best.pt --data W/test_aligned.slp --out W/eval-aligned

``align`` writes a copy of a ``.slp`` with every keypoint moved by the shift (what
``estimate`` measured on the first half only, so the test half does not choose it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sleap-samples"
SLP = DATA / "hdf5_format_v1" / "centered_pair_predictions.slp"
VIDEO = DATA / "json_format_v1" / "centered_pair_low_quality.mp4"
SHIFTS = np.arange(-6, 7)


def brightest_shift(image: np.ndarray, points: np.ndarray) -> tuple[int, int]:
    """The (dx, dy) in :data:`SHIFTS` that maximises the mean of ``image`` (H, W) float32
    sampled at ``points`` (K, 2) + (dx, dy); NaN points are left out."""
    points = points[np.isfinite(points).all(axis=1)].astype(np.float32)
    best, where = -np.inf, (0, 0)
    for dx in SHIFTS:
        for dy in SHIFTS:
            q = points + np.array([dx, dy], np.float32)
            value = cv2.remap(image, q[:, :1], q[:, 1:], cv2.INTER_LINEAR).mean()
            if value > best:
                best, where = value, (int(dx), int(dy))
    return where


def estimate(args: argparse.Namespace) -> dict:
    import sleap_io as sio

    labels = sio.load_slp(str(args.data), open_videos=False)
    by_frame = {lf.frame_idx: [i.numpy() for i in lf.instances] for lf in labels}
    capture = cv2.VideoCapture(str(args.video))
    shifts: list[tuple[int, int, int]] = []
    number = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if number % args.every == 0 and by_frame.get(number):
            gray = cv2.GaussianBlur(frame[..., 0].astype(np.float32), (3, 3), 0)
            shifts += [(number, *brightest_shift(gray, p)) for p in by_frame[number]]
        number += 1
    rows = np.array(shifts, np.float64)
    half = number // 2

    def summary(mask: np.ndarray) -> dict:
        part = rows[mask]
        return {
            "instances": int(len(part)),
            "median": [float(v) for v in np.median(part[:, 1:], axis=0)],
            "mean": [round(float(v), 2) for v in part[:, 1:].mean(axis=0)],
        }

    blocks = {
        f"{lo}-{lo + args.block - 1}": summary((rows[:, 0] >= lo) & (rows[:, 0] < lo + args.block))
        for lo in range(0, number, args.block)
        if ((rows[:, 0] >= lo) & (rows[:, 0] < lo + args.block)).any()
    }
    return {
        "data": str(args.data),
        "video": str(args.video),
        "frames": number,
        "first_half": summary(rows[:, 0] < half),
        "second_half": summary(rows[:, 0] >= half),
        "blocks": blocks,
    }


def align(args: argparse.Namespace) -> dict:
    import sleap_io as sio

    dx, dy = (float(v) for v in args.shift.split(","))
    labels = sio.load_slp(str(args.src), open_videos=False)
    for lf in labels:
        for inst in lf.instances:
            inst.points["xy"] += (dx, dy)  # sleap-io's structured points (xy, visible, ...)
    tmp = args.dst.with_name(f".{args.dst.name}")
    sio.save_slp(labels, str(tmp), embed=False)
    tmp.replace(args.dst)
    return {"src": str(args.src), "dst": str(args.dst), "shift": [dx, dy]}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = p.add_subparsers(dest="what", required=True)
    e = sub.add_parser("estimate", help="the reference's offset from its video's pixels")
    e.add_argument("--data", type=Path, default=SLP)
    e.add_argument("--video", type=Path, default=VIDEO)
    e.add_argument("--every", type=int, default=5, help="every n-th frame")
    e.add_argument("--block", type=int, default=100, help="frames per block of the table")
    a = sub.add_parser("align", help="a copy of a .slp with every keypoint moved")
    a.add_argument("src", type=Path)
    a.add_argument("dst", type=Path)
    a.add_argument("--shift", required=True, help="dx,dy in pixels")
    args = p.parse_args(argv)
    out = estimate(args) if args.what == "estimate" else align(args)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
