"""Synthetic video with exactly known keypoints, motion, occlusion and identities.

Ground truth for video tools (smoothing, tracking, frame suggestion)::

    from keypointer.data.synthetic_video import generate_video, load_truth, render_video

    video = generate_video("clip/", num_frames=300, instances=2, seed=0)  # -> clip/video.mp4
    truth = load_truth("clip/truth.json")   # or load_truth("clip/")
    truth.keypoints   # (T, M, K, 3) float64: x, y in image pixels and v; T frames, M tracks
    truth.tracks      # ["figure0", "figure1"]: track m is truth.keypoints[:, m] in every frame
    truth.boxes       # (T, M, 4) COCO boxes x, y, w, h around each drawn figure
    truth.fast        # (T, M) bool: that figure is in a burst of fast motion (made on purpose)
    truth.frames, truth.times   # (T,) frame numbers from 0, seconds (frame / fps)
    truth.names, truth.skeleton, truth.fps, truth.size   # K names, Skeleton, float, (w, h)

    for image, keypoints, boxes, fast in render_video(300, instances=2, seed=0):
        ...   # RGB (H, W, 3) uint8, (M, K, 3), (M, 4), (M,): the same frames, no codec loss

The same arguments (seed, num_frames, instances, size, fps) give the same frames and the same
files, byte for byte. Signature: ``generate_video(out, num_frames=300, instances=1, seed=0,
size=256, fps=DEFAULT_FPS)`` (rendering speed: benchmarks/RESULTS.md, "Synthetic video and
crowds"); the mp4v codec is lossy (under a visible keypoint the decoded frame's colour is within
about 20 levels of its marker's).

**What is drawn.** The stick figures of :mod:`keypointer.data.synthetic` (11 keypoints: head,
neck, pelvis, left/right elbow, hand, knee, foot; a marker of one colour per joint type centred
exactly on each keypoint) on a static background with clutter. Each figure has its own limb
colours and follows a smooth path (sums of sinusoids); its joint angles are smooth functions of
time (arms swing, legs walk), it turns and changes size slowly, and now and then strikes a rare
pose for about a second (arms up, a wave, a kick, a strong lean: rare in the clip, so a model
trained on a few of its frames is likely to miss them). About once every 4 s (at least once per
clip) each figure runs 4 to 6 times faster than usual for about half a second (``fast``);
outside these bursts a keypoint moves at most about 4% of the image side per frame at 30 fps.
Textured ellipses and poles (long bars) slide across the frame in front of everything, one
about every 2.5 s, each aimed at a figure. With
``instances`` > 1 the figures swing left and right across the same space, so they cross and hide
each other; the one whose path is lower in the image is nearer the camera (drawn in front).
Figures are 35-50% of the image side tall, divided by sqrt(instances). Sensor noise is light.

**Files** in ``out``: ``video.mp4`` (OpenCV, fourcc ``mp4v``, ``size`` x ``size`` px, ``fps``),
``truth.json`` and ``truth.csv``.

``truth.json``::

    {"format": "keypointer-synthetic-video", "version": 1, "video": "video.mp4",
     "fps": 30.0, "width": 256, "height": 256, "seed": 0,
     "keypoints": ["head", "neck", ...],          # K names
     "skeleton": [[0, 1], ...],                   # edges, 0-based keypoint indices
     "flip_pairs": [[3, 4], ...],                 # left/right pairs, 0-based
     "tracks": ["figure0", ...],                  # M identities
     "frames": [{"frame": 0, "time": 0.0,         # frame number from 0; time = frame / fps
                 "instances": [{"track": "figure0",
                                "keypoints": [[x, y, v], ...],   # K triples
                                "bbox": [x, y, w, h],             # COCO box, clipped to the image
                                "fast": false}, ...]}, ...]}

x, y are in image pixels, pixel centres at integers (on a 1/16 px grid, as drawn), and always
the true position, also when the point is hidden or outside the image. v = 2 visible, 1 hidden
(under an occluder or a figure in front, counting points within 1 px of an occluder's edge and
2 px of a figure's outline, whose pixel anti-aliasing tints), 0 outside the image.
A track may be missing from a frame's ``instances`` (this generator lists every track in every
frame; other writers of the schema may not): :func:`load_truth` then gives NaN, NaN, 0.

(Writers and loader live in :mod:`keypointer.data.synthetic_truth`; import them from here.)

``truth.csv``: DeepLabCut's layout for analysis tools: header rows ``scorer``
(``synthetic``), with instances > 1 ``individuals`` (the track names), ``bodyparts``,
``coords`` (x, y); then one row per frame, first cell the frame number. Points with v > 0 have
x, y (DeepLabCut has no occlusion flag); points outside the image are empty cells.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from keypointer.config import DEFAULT_FPS
from keypointer.data import synthetic as syn
from keypointer.data.synthetic_truth import VideoTruth, load_truth, truth_csv, truth_json
from keypointer.errors import DataError
from keypointer.files import write_text_atomic

__all__ = ["VideoTruth", "generate_video", "load_truth", "render_video"]

FOURCC = "mp4v"  # as keypointer/inference/video.py writes drawn videos
BURST_EVERY_S = 4.0  # one burst of fast motion per figure per this many seconds
BURST_SPEED = (4.0, 6.0)
EVENT_EVERY_S = 3.0  # one rare pose per figure per this many seconds
OCCLUDER_EVERY_S = 2.5
FAST_SPEED = 1.5  # a frame is "fast" where the figure's time runs this much faster than real
_ONE = 16  # keypoints on the 1/16 px grid the drawing uses
_TILE = 64  # side of an occluder's texture tile, px


def generate_video(
    out: str | Path,
    num_frames: int = 300,
    instances: int = 1,
    seed: int = 0,
    size: int = 256,
    fps: float = DEFAULT_FPS,
) -> Path:
    """Write ``out/video.mp4``, ``out/truth.json`` and ``out/truth.csv``; return the video path.

    The video is written under a temporary name, the truth files atomically, and the video is
    renamed into place last: a failure leaves no half-written file, and no ``video.mp4``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    video = out / "video.mp4"
    tmp = out / ".video.partial.mp4"  # OpenCV picks the container from the extension
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*FOURCC), fps, (size, size))
    try:
        if not writer.isOpened():
            raise DataError(f"OpenCV cannot write {FOURCC!r} video here", tmp)
        frames = []
        for image, keypoints, boxes, fast in render_video(num_frames, instances, seed, size, fps):
            writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            frames.append((keypoints, boxes, fast))
        writer.release()
        tracks = [f"figure{m}" for m in range(instances)]
        write_text_atomic(out / "truth.json", truth_json(frames, tracks, seed, size, fps))
        write_text_atomic(out / "truth.csv", truth_csv(frames, tracks))
        os.replace(tmp, video)
    finally:
        writer.release()
        tmp.unlink(missing_ok=True)
    return video


def render_video(
    num_frames: int = 300,
    instances: int = 1,
    seed: int = 0,
    size: int = 256,
    fps: float = DEFAULT_FPS,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per frame: RGB image (size, size, 3) uint8, keypoints (M, K, 3), boxes (M, 4), fast (M,).

    Exactly what :func:`generate_video` encodes and writes as truth, before the codec's loss.
    """
    if num_frames < 1 or instances < 1 or size < 32 or not fps > 0:
        raise ValueError("need num_frames >= 1, instances >= 1, size >= 32 and fps > 0")
    rng = np.random.default_rng([seed, 1_000_003])  # apart from generate()'s (seed, i) images
    scene = syn.background(rng, size)
    scene = np.clip(scene, 0, 255).astype(np.uint8)
    syn.clutter(scene, rng, size)
    times = np.arange(num_frames) / fps
    motion = _motion(rng, times, instances, size)
    colours = [syn.figure_colours(rng) for _ in range(instances)]
    occluders = _occluders(rng, times, motion, size)
    noise = _noise_bank(rng, size)
    for t in range(num_frames):
        image = scene.copy()
        points, heights = motion["points"][t], motion["heights"][t]
        order = np.argsort(motion["depth"][t], kind="stable")  # back to front
        hidden = np.zeros(points.shape[:2], bool)
        for i, m in enumerate(order):
            syn.draw_figure(image, points[m], heights[m], colours[m])
            for front in order[i + 1 :]:
                hidden[m] |= syn.covered_by_figure(points[m], points[front], heights[front])
        for occ in occluders:
            polygon = _occluder_polygon(occ, times[t], size)
            if polygon is not None:
                _draw_occluder(image, occ, polygon)
                hidden |= _inside(points, polygon, margin=1.0)
        plus, minus = noise[t % len(noise)]
        image = cv2.subtract(cv2.add(image, plus), minus)
        v = np.where(hidden, 1.0, 2.0)
        v[~np.all((points >= 0) & (points <= size - 1), axis=2)] = 0.0
        boxes = np.array([syn.figure_box(points[m], heights[m], size) for m in range(instances)])
        yield image, np.concatenate([points, v[..., None]], axis=2), boxes, motion["fast"][t]


def _bump(t: np.ndarray, centre: float, half: float) -> np.ndarray:
    """Raised cosine: 1 at ``centre``, 0 beyond ``half`` seconds from it, smooth in between."""
    u = np.clip((t - centre) / half, -1.0, 1.0)
    return 0.5 + 0.5 * np.cos(math.pi * u)


def _wave(rng: np.random.Generator, tau: np.ndarray, amp: float, freq: tuple) -> np.ndarray:
    return amp * np.sin(2 * math.pi * rng.uniform(*freq) * tau + rng.uniform(0, 2 * math.pi))


def _motion(rng: np.random.Generator, times: np.ndarray, count: int, size: int) -> dict:
    """Per frame and figure: points (T, M, K, 2), heights (T, M), depth (T, M), fast (T, M)."""
    n, duration = len(times), float(times[-1]) + 1e-9
    base_freq, base_phase = rng.uniform(0.08, 0.15), rng.uniform(0, 2 * math.pi)
    points = np.zeros((n, count, len(syn.NAMES), 2))
    heights, depth, fast = np.zeros((n, count)), np.zeros((n, count)), np.zeros((n, count), bool)
    for m in range(count):
        h0 = size * rng.uniform(0.35, 0.5) / math.sqrt(count)
        prop = rng.uniform(0.85, 1.15, 8)
        tau, speed = _time_warp(rng, times, duration)
        fast[:, m] = speed > FAST_SPEED
        # The figures share one swing frequency with spread phases, so their paths cross.
        phase = base_phase + 2 * math.pi * m / count + rng.uniform(-0.4, 0.4)
        reach_x = max(size / 2 - 0.3 * h0, 0.0) * rng.uniform(0.7, 1.0)
        x = size / 2 + reach_x * (0.8 * np.sin(2 * math.pi * base_freq * tau + phase))
        x += _wave(rng, tau, 0.2 * reach_x, (0.2, 0.4))
        reach_y = max(size / 2 - 0.6 * h0, 0.0)
        y = (
            size / 2
            + rng.uniform(-0.5, 0.5) * reach_y
            + _wave(rng, tau, 0.4 * reach_y, (0.05, 0.2))
        )
        pose = _pose_curves(rng, tau, times, duration)
        heights[:, m] = h0 * np.exp(pose["log_scale"])
        depth[:, m] = y
        for t in range(n):
            p = syn.body_points(prop * heights[t, m], pose["angles"][t], pose["turn"][t])
            p += np.array([x[t], y[t]]) - 0.5 * (p[1] + p[2])  # the torso's middle on the path
            points[t, m] = np.round(p * _ONE) / _ONE
    return {"points": points, "heights": heights, "depth": depth, "fast": fast}


def _time_warp(
    rng: np.random.Generator, times: np.ndarray, duration: float
) -> tuple[np.ndarray, np.ndarray]:
    """The figure's own clock (T,) and its speed (T,): 1, and 4-6 in short bursts."""
    speed = np.ones_like(times)
    for _ in range(max(1, round(duration / BURST_EVERY_S))):
        centre = rng.uniform(0.1, 0.9) * duration
        speed += (rng.uniform(*BURST_SPEED) - 1) * _bump(times, centre, rng.uniform(0.2, 0.35))
    steps = 0.5 * (speed[1:] + speed[:-1]) * np.diff(times)
    return np.concatenate([[0.0], np.cumsum(steps)]), speed


def _pose_curves(
    rng: np.random.Generator, tau: np.ndarray, times: np.ndarray, duration: float
) -> dict:
    """Smooth joint angles (T, 2, 4) in degrees, turn (T,) in radians and log scale (T,)."""
    n = len(tau)
    angles = np.zeros((n, 2, 4))
    walk, walk_phase = rng.uniform(0.6, 1.2), rng.uniform(0, 2 * math.pi)
    for side in range(2):
        arm = rng.uniform(35, 80) + _wave(rng, tau, rng.uniform(15, 40), (0.3, 0.8))
        bend = rng.uniform(-20, 40) + _wave(rng, tau, rng.uniform(10, 40), (0.3, 0.9))
        step = 2 * math.pi * walk * tau + walk_phase + math.pi * side  # legs in opposite phase
        thigh = rng.uniform(10, 25) + rng.uniform(5, 15) * np.sin(step)
        knee = rng.uniform(0, 20) + rng.uniform(5, 20) * (0.5 + 0.5 * np.sin(step + math.pi / 2))
        angles[:, side] = np.stack([arm, arm + bend, thigh, thigh + knee], axis=1)
    turn = rng.uniform(-15, 15) + _wave(rng, tau, 12.0, (0.03, 0.08))
    log_scale = _wave(rng, tau, 0.12, (0.03, 0.08))
    for _ in range(max(1, round(duration / EVENT_EVERY_S))):
        bump = _bump(times, rng.uniform(0, duration), rng.uniform(0.4, 1.0))
        kind, side = int(rng.integers(4)), int(rng.integers(2))
        if kind == 0:  # both arms up
            angles[:, :, :2] += rng.uniform(60, 90) * bump[:, None, None]
        elif kind == 1:  # one arm waves high
            angles[:, side, :2] += (rng.uniform(70, 100) + 20 * np.sin(12 * tau))[:, None] * bump[
                :, None
            ]
        elif kind == 2:  # a kick
            angles[:, side, 2:] += rng.uniform(50, 80) * bump[:, None]
        else:  # a strong lean
            turn = turn + rng.choice([-1, 1]) * rng.uniform(35, 60) * bump
    angles[..., :2] = np.clip(angles[..., :2], 5, 175)
    angles[..., 2] = np.clip(angles[..., 2], 0, 110)
    angles[..., 3] = np.clip(angles[..., 3], 0, 120)
    return {"angles": angles, "turn": np.radians(turn), "log_scale": log_scale}


def _occluders(rng: np.random.Generator, times: np.ndarray, motion: dict, size: int) -> list:
    """Moving occluders, each aimed to pass over a figure's torso at a random moment."""
    duration, out = float(times[-1]) + 1e-9, []
    for _ in range(max(1, round(duration / OCCLUDER_EVERY_S))):
        m = int(rng.integers(motion["points"].shape[1]))
        t_mid = int(rng.integers(len(times)))
        target = motion["points"][t_mid, m, 1:3].mean(axis=0)
        h = float(motion["heights"][t_mid, m])
        angle, spin = rng.uniform(0, math.pi), rng.uniform(-0.5, 0.5)
        ellipse = bool(rng.random() < 0.5)
        if ellipse:
            half = np.array([rng.uniform(0.12, 0.3), rng.uniform(0.25, 0.5)]) * h
            direction = rng.uniform(0, 2 * math.pi)
        else:  # a pole longer than the image, moving across its length, barely turning
            half = np.array([rng.uniform(0.025, 0.06) * size, 1.5 * size])
            direction, spin = angle + math.pi * int(rng.integers(2)), 0.3 * spin
        colour = rng.integers(0, 256, 3).astype(np.float32)
        tile = np.clip(colour + rng.normal(0, 15, (_TILE, _TILE, 3)), 0, 255).astype(np.uint8)
        reps = -(-size // _TILE) + 1  # the tile repeated over the image plus one tile
        speed = rng.uniform(0.4, 0.8) * size
        out.append(
            {
                "time": float(times[t_mid]),
                "centre": target,
                "velocity": speed * np.array([math.cos(direction), math.sin(direction)]),
                "angle": angle,
                "spin": spin,
                "half": half,
                "ellipse": ellipse,
                "texture": np.tile(tile, (reps, reps, 1)),
            }
        )
    return out


def _occluder_polygon(occ: dict, time: float, size: int) -> np.ndarray | None:
    """The occluder's outline (N, 2) in image pixels at ``time``, or None when off the image."""
    centre = occ["centre"] + occ["velocity"] * (time - occ["time"])
    angle = occ["angle"] + occ["spin"] * (time - occ["time"])
    if occ["ellipse"]:
        u = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        local = np.stack([occ["half"][0] * np.cos(u), occ["half"][1] * np.sin(u)], axis=1)
    else:
        hx, hy = occ["half"]
        local = np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]])
    c, s = math.cos(angle), math.sin(angle)
    polygon = local @ np.array([[c, s], [-s, c]]) + centre
    lo, hi = polygon.min(axis=0), polygon.max(axis=0)
    return None if np.any(hi < 0) or np.any(lo > size - 1) else polygon


def _draw_occluder(image: np.ndarray, occ: dict, polygon: np.ndarray) -> None:
    """Fill ``polygon`` with the occluder's texture (hard edges, like the image occluders)."""
    size = image.shape[0]
    lo = np.clip(np.floor(polygon.min(axis=0)).astype(int), 0, size - 1)
    hi = np.clip(np.ceil(polygon.max(axis=0)).astype(int) + 1, 0, size)
    (x0, y0), (x1, y1) = lo, hi
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    pts = np.round((polygon - lo) * _ONE).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1, cv2.LINE_8, 4)
    # The texture moves with the occluder: shift the tiled texture by its centre.
    dx, dy = (-np.round(polygon.mean(axis=0)).astype(int)) % _TILE
    texture = occ["texture"][y0 + dy : y1 + dy, x0 + dx : x1 + dx]
    np.copyto(image[y0:y1, x0:x1], texture, where=mask[..., None].astype(bool))


def _inside(points: np.ndarray, polygon: np.ndarray, margin: float) -> np.ndarray:
    """(M, K) bool: points (M, K, 2) inside the convex ``polygon`` grown by ``margin`` px."""
    contour = polygon.astype(np.float32).reshape(-1, 1, 2)
    flat = points.reshape(-1, 2)
    inside = [cv2.pointPolygonTest(contour, (float(x), float(y)), True) >= -margin for x, y in flat]
    return np.array(inside).reshape(points.shape[:2])


def _noise_bank(rng: np.random.Generator, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """A few light noise fields as (add, subtract) uint8 pairs; cycled over the frames (drawing
    fresh Gaussian noise per frame would cost more than rendering the frame)."""
    sigma, bank = rng.uniform(1.5, 3.0), []
    for _ in range(5):
        noise = np.round(rng.normal(0, sigma, (size, size, 3)))
        bank.append(
            (np.clip(noise, 0, 255).astype(np.uint8), np.clip(-noise, 0, 255).astype(np.uint8))
        )
    return bank
