"""Built-in data: procedurally drawn stick figures with exactly known keypoints.

Each image holds one front-facing articulated figure (head, neck, pelvis and
left/right elbows, hands, knees and feet), or with ``instances`` > 1 a small crowd,
on a random textured, cluttered background, at a random scale, rotation and pose.
Joints carry small markers, one colour and shape per joint type, drawn with sub-pixel
centres, so a label is exactly where its marker is.

Left and right are told apart the way they are in real photos: the figure
always faces the viewer, so its left limbs hang from its left side (the
image's right when upright). Left and right markers look alike and limb
colours are random, which keeps the labels consistent under horizontal flips.

Some keypoints are hidden under an occluder or, in a crowd, under a figure in front
(v=1), some fall outside the image or are left unlabelled on purpose (v=0). Crowd
figures are drawn back to front (the one whose feet are lowest is nearest the camera)
and shrink by 1/sqrt(count), so four fit. Image i depends only on (seed, i), so a
dataset is identical, byte for byte, for a given seed. The drawing pieces
(:func:`body_points`, :func:`draw_figure`, :func:`covered_by_figure`, ...) are shared
with the synthetic video (``synthetic_video.py``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

from keypointer.files import write_text_atomic
from keypointer.skeleton import guess_flip_pairs

NAMES = (
    "head",
    "neck",
    "pelvis",
    "left_elbow",
    "right_elbow",
    "left_hand",
    "right_hand",
    "left_knee",
    "right_knee",
    "left_foot",
    "right_foot",
)
EDGES = ((0, 1), (1, 2), (1, 3), (3, 5), (1, 4), (4, 6), (2, 7), (7, 9), (2, 8), (8, 10))
# Marker per keypoint: (polygon corners or 0 for a disc, turn in degrees) and a colour per
# joint type. Left and right share shape and colour, so a flip never contradicts a label.
_MARKERS = (
    (0, 0),
    (4, 0),
    (4, 45),
    (0, 0),
    (0, 0),
    (4, 0),
    (4, 0),
    (3, 0),
    (3, 0),
    (4, 45),
    (4, 45),
)
# How far each marker reaches, in radii: polygons by their corners (a little too far between).
_MARKER_REACH = np.array([1.25 if c == 3 else 1.1 if c == 4 else 1.0 for c, _ in _MARKERS])
_RED, _YELLOW, _CYAN, _GREEN = (255, 50, 50), (255, 220, 0), (0, 220, 255), (60, 255, 60)
_MAGENTA, _ORANGE, _BLUE = (255, 0, 255), (255, 140, 0), (40, 90, 255)
MARKER_COLOURS = (
    _RED,
    _YELLOW,
    _CYAN,
    _GREEN,
    _GREEN,
    _MAGENTA,
    _MAGENTA,
    _ORANGE,
    _ORANGE,
    _BLUE,
    _BLUE,
)
_SHIFT = 4  # cv2 drawing with 4 fractional bits: centres are exact to 1/16 pixel
_ONE = 1 << _SHIFT
UNLABELLED_P = 0.03
OCCLUDER_P = 0.35
SYNTH_DESCRIPTION = "keypointer synthetic figures"  # COCO info.description: marks our renders


def generate(
    out: str | Path,
    num_images: int = 500,
    seed: int = 0,
    size: int | None = None,
    instances: int | tuple[int, int] = 1,
) -> Path:
    """Write ``out/images/NNNNNN.png`` and ``out/annotations.json`` (COCO); return the JSON path.

    ``instances``: figures per image, a number or an inclusive range ``(low, high)`` drawn per
    image; one annotation per figure, each with its own box. ``size`` (image side) defaults to
    128 for one figure and 256 for crowds: crowd figures shrink by 1/sqrt(count), so at 256 px
    four of them are as many pixels tall as one is at 128 (markers and limbs stay as wide as in
    the single-figure data). One figure per image renders exactly what earlier versions did.
    """
    low, high = (instances, instances) if isinstance(instances, int) else instances
    if not 1 <= low <= high:
        raise ValueError(f"instances must be 1 <= low <= high, got {instances!r}")
    size = size if size is not None else (128 if high == 1 else 256)
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(num_images):
        rng = np.random.default_rng([seed, i])
        count = low if low == high else int(rng.integers(low, high + 1))
        image, keypoints, boxes = render_crowd(rng, size, count)
        name = f"images/{i:06d}.png"
        cv2.imwrite(str(out / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        images.append({"id": i + 1, "file_name": name, "width": size, "height": size})
        for kps, box in zip(keypoints, boxes, strict=True):
            annotations.append(_annotation(len(annotations) + 1, i + 1, kps, box))
    info = {"description": SYNTH_DESCRIPTION, "seed": seed, "version": 1}
    if high > 1:
        info["instances"] = [low, high]
    coco = {
        "info": info,
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {
                "id": 1,
                "name": "figure",
                "supercategory": "figure",
                "keypoints": list(NAMES),
                "skeleton": [[a + 1, b + 1] for a, b in EDGES],  # COCO's are 1-based
                "flip_pairs": [list(p) for p in guess_flip_pairs(NAMES)],  # 0-based, as MMPose
            }
        ],
    }
    path = out / "annotations.json"
    write_text_atomic(path, json.dumps(coco))
    return path


def _annotation(ann_id: int, image_id: int, keypoints: np.ndarray, bbox: tuple) -> dict:
    flat = []
    for x, y, v in keypoints:
        flat += [float(x), float(y), int(v)] if v > 0 else [0, 0, 0]
    bbox = [round(float(b), 2) for b in bbox]
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "keypoints": flat,
        "num_keypoints": int((keypoints[:, 2] > 0).sum()),
        "bbox": bbox,
        "area": round(bbox[2] * bbox[3], 2),
        "iscrowd": 0,
    }


def render(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    """One image: (size, size, 3) uint8 RGB, keypoints (K, 3) [x, y, v], COCO bbox (x, y, w, h)."""
    image, keypoints, boxes = render_crowd(rng, size, 1)
    return image, keypoints[0], boxes[0]


def render_crowd(
    rng: np.random.Generator, size: int, count: int
) -> tuple[np.ndarray, np.ndarray, list[tuple]]:
    """``count`` figures, back to front: RGB image, keypoints (count, K, 3), COCO boxes.

    With count 1 this draws from ``rng`` in the order a single figure always did, so the
    single-figure data keeps its bytes.
    """
    image = np.clip(background(rng, size), 0, 255).astype(np.uint8)
    clutter(image, rng, size)
    shrink = 1.0 / math.sqrt(count)
    figures = [_pose(rng, size, shrink) for _ in range(count)]
    figures.sort(key=lambda f: float(f[0][:, 1].max()))  # lowest feet nearest: drawn last
    for points, scale in figures:
        draw_figure(image, points, scale, figure_colours(rng))
    every = np.concatenate([p for p, _ in figures])
    scales = np.repeat([s for _, s in figures], len(NAMES))
    occluder = _occluder(image, rng, every, scales) if rng.random() < OCCLUDER_P else None
    noise = rng.normal(0.0, rng.uniform(1.0, 6.0), image.shape)
    image = np.clip(image + noise, 0, 255).astype(np.uint8)
    keypoints, boxes = [], []
    for j, (points, scale) in enumerate(figures):
        hidden = np.zeros(len(points), bool)
        for front, front_scale in figures[j + 1 :]:
            hidden |= covered_by_figure(points, front, front_scale)
        keypoints.append(_visibility(rng, points, occluder, size, hidden))
        boxes.append(figure_box(points, scale, size))
    return image, np.stack(keypoints), boxes


def _pose(rng: np.random.Generator, size: int, shrink: float = 1.0) -> tuple[np.ndarray, float]:
    """Keypoints (K, 2) of a random pose, placed in the image; also the figure height in pixels."""
    height = size * rng.uniform(0.4, 0.8) * shrink
    prop = rng.uniform(0.85, 1.15, 8) * height  # per-figure proportions
    angles = np.zeros((2, 4))
    for side in range(2):
        a1 = rng.uniform(15, 160)
        angles[side, :2] = a1, rng.uniform(max(5, a1 - 100), min(175, a1 + 100))
        a1 = rng.uniform(5, 60)
        angles[side, 2:] = a1, rng.uniform(max(0, a1 - 40), min(100, a1 + 60))
    p = body_points(prop, angles, math.radians(rng.uniform(-45, 45)))
    lo, hi = p.min(axis=0), p.max(axis=0)
    slack = np.maximum(size - 1 - (hi - lo), 0.0)
    # Mostly fully inside; sometimes cut by the border.
    reach = 0.25 * (hi - lo) if rng.random() < 0.2 else np.zeros(2)
    offset = -lo + rng.uniform(-reach, slack + reach)
    return np.round((p + offset) * _ONE) / _ONE, height


def body_points(prop: np.ndarray, angles: np.ndarray, turn: float) -> np.ndarray:
    """Keypoints (K, 2) of a figure with its neck at (0, 0), in pixels, y down.

    ``prop``: 8 lengths in pixels (head, torso, shoulder, hip, upper arm, forearm, thigh,
    shin; each about the figure's height). ``angles``: (2, 4) degrees, the figure's left side
    then its right: upper arm, forearm, thigh, shin, each measured from hanging straight down
    (0) to pointing straight out to its own side (90). ``turn``: rotation in radians.
    """
    up, left = np.array([0.0, -1.0]), np.array([1.0, 0.0])  # facing us: its left is our right

    def limb(start: np.ndarray, side: float, angle: float, length: float) -> np.ndarray:
        a = math.radians(angle)
        return start + length * (-math.cos(a) * up + math.sin(a) * side * left)

    p = np.zeros((len(NAMES), 2))
    p[1] = (0.0, 0.0)
    p[0] = p[1] + 0.13 * prop[0] * up
    p[2] = p[1] - 0.32 * prop[1] * up
    for side, (elbow, hand, knee, foot), (arm, fore, thigh, shin) in zip(
        (1.0, -1.0), ((3, 5, 7, 9), (4, 6, 8, 10)), angles, strict=True
    ):
        shoulder = p[1] + side * 0.11 * prop[2] * left
        hip = p[2] + side * 0.07 * prop[3] * left
        p[elbow] = limb(shoulder, side, arm, 0.17 * prop[4])
        p[hand] = limb(p[elbow], side, fore, 0.16 * prop[5])
        p[knee] = limb(hip, side, thigh, 0.24 * prop[6])
        p[foot] = limb(p[knee], side, shin, 0.23 * prop[7])
    rot = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
    return p @ rot.T


def covered_by_figure(
    points: np.ndarray, front: np.ndarray, scale: float, margin: float = 2.0
) -> np.ndarray:
    """(K,) bool: which of ``points`` (K, 2) lie under the figure drawn at ``front`` (K, 2).

    The figure's outline as :func:`draw_figure` draws it (limbs, head disc, markers), grown
    by ``margin`` pixels: anti-aliased edges tint about a pixel beyond them, and a point's
    pixel (its rounded position) is up to 0.7 px from it. Measured: with 2 px no point called
    free has its pixel changed by more than 40 levels.
    """
    limb, head_r, marker_r = _widths(scale)
    a, b = front[[e[0] for e in EDGES]], front[[e[1] for e in EDGES]]
    ab = b - a
    rel = points[:, None, :] - a[None]
    t = np.clip((rel * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-9), 0.0, 1.0)
    limbs = np.linalg.norm(rel - t[..., None] * ab, axis=-1).min(axis=1)
    reach = (marker_r + 1) * _MARKER_REACH - np.linalg.norm(points[:, None] - front[None], axis=-1)
    head = np.linalg.norm(points - front[0], axis=1)
    return (
        (limbs <= limb / 2 + 1 + margin)  # the outline line is 2 px wider than the limb
        | (reach.max(axis=1) >= -margin)
        | (head <= head_r + 1 + margin)
    )


def _widths(scale: float) -> tuple[int, float, float]:
    """A figure's limb thickness, head radius and marker radius, in pixels."""
    return max(2, int(round(0.055 * scale))), 0.08 * scale, max(2.0, 0.04 * scale)


def figure_colours(rng: np.random.Generator) -> dict:
    """Random colours for limbs and head; dark outlines. Markers keep their type's colour."""
    limb = [tuple(int(c) for c in rng.integers(40, 256, 3)) for _ in EDGES]
    head = tuple(int(c) for c in rng.integers(60, 256, 3))
    return {"limbs": limb, "head": head, "outline": (20, 20, 20)}


def _fixed(point: np.ndarray) -> tuple[int, int]:
    x, y = point.tolist()
    return round(x * _ONE), round(y * _ONE)


def draw_figure(image: np.ndarray, p: np.ndarray, scale: float, colours: dict) -> None:
    """Draw a figure with keypoints ``p`` (K, 2) and height ``scale`` px into RGB ``image``."""
    thick, _, radius = _widths(scale)
    aa = cv2.LINE_AA
    for (a, b), colour in zip(EDGES, colours["limbs"], strict=True):
        cv2.line(image, _fixed(p[a]), _fixed(p[b]), colours["outline"], thick + 2, aa, _SHIFT)
        cv2.line(image, _fixed(p[a]), _fixed(p[b]), colour, thick, aa, _SHIFT)
    head_r = int(round(0.08 * scale * _ONE))
    cv2.circle(image, _fixed(p[0]), head_r + _ONE, colours["outline"], -1, aa, _SHIFT)
    cv2.circle(image, _fixed(p[0]), head_r, colours["head"], -1, aa, _SHIFT)
    axis = p[0] - p[1]
    turn = math.degrees(math.atan2(axis[0], -axis[1]))  # markers turn with the figure
    for k, (corners, angle) in enumerate(_MARKERS):
        _marker(image, p[k], radius + 1.0, corners, angle + turn, colours["outline"])
        _marker(image, p[k], radius, corners, angle + turn, MARKER_COLOURS[k])


def _marker(image: np.ndarray, c: np.ndarray, r: float, corners: int, angle: float, colour) -> None:
    if corners == 0:
        cv2.circle(image, _fixed(c), int(round(r * _ONE)), colour, -1, cv2.LINE_AA, _SHIFT)
        return
    r = r * (1.25 if corners == 3 else 1.1)  # polygons of equal area-ish to the disc
    turns = np.radians(angle - 90 + 360 * np.arange(corners) / corners)
    _fill_polygon(image, c + r * np.stack([np.cos(turns), np.sin(turns)], axis=1), colour)


def _fill_polygon(image: np.ndarray, pts: np.ndarray, colour, ss: int = 8) -> None:
    """Anti-aliased polygon by 8x supersampling.

    cv2.fillPoly's own LINE_AA puts sub-pixel polygons up to 0.3 px off in y;
    this keeps a marker's centroid within ~0.07 px of its keypoint.
    """
    lo = np.floor(pts.min(axis=0)).astype(int) - 1
    (lx, ly), (hx, hy) = lo.tolist(), (np.ceil(pts.max(axis=0)).astype(int) + 2).tolist()
    w, h = hx - lx, hy - ly
    big = np.zeros((h * ss, w * ss), np.uint8)
    q = (pts - lo + 0.5) * ss - 0.5  # pixel centres stay at integers at both resolutions
    cv2.fillPoly(big, [np.round(q * _ONE).astype(np.int32)], 255, cv2.LINE_8, _SHIFT)
    alpha = cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    x0, y0 = max(lx, 0), max(ly, 0)
    x1, y1 = min(hx, image.shape[1]), min(hy, image.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    a = alpha[y0 - ly : y1 - ly, x0 - lx : x1 - lx, None]
    region = image[y0:y1, x0:x1].astype(np.float32)
    image[y0:y1, x0:x1] = (region * (1 - a) + np.float32(colour) * a + 0.5).astype(np.uint8)


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth noise, a gradient or stripes between random colours."""
    kind = int(rng.integers(3))
    c0, c1 = rng.integers(0, 256, (2, 3)).astype(np.float32)
    if kind == 0:
        n = int(rng.integers(3, 12))
        small = rng.uniform(0, 255, (n, n, 3)).astype(np.float32)
        return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    t = rng.uniform(0, 2 * math.pi)
    u = xx * math.cos(t) + yy * math.sin(t)
    if kind == 1:
        w = (u - u.min()) / max(float(u.max() - u.min()), 1e-6)
    else:
        w = 0.5 + 0.5 * np.sin(2 * math.pi * rng.uniform(2, 10) * u + rng.uniform(0, 6.3))
    return c0 * (1 - w[..., None]) + c1 * w[..., None]


def clutter(image: np.ndarray, rng: np.random.Generator, size: int) -> None:
    """Random discs, boxes and thick lines (limb-like distractors) behind the figure."""
    for _ in range(int(rng.integers(2, 9))):
        colour = tuple(float(c) for c in rng.integers(0, 256, 3))
        a, b = rng.uniform(0, size, (2, 2))
        kind = int(rng.integers(3))
        if kind == 0:
            r = int(rng.uniform(0.03, 0.12) * size)
            cv2.circle(image, tuple(int(v) for v in a), r, colour, -1, cv2.LINE_AA)
        elif kind == 1:
            cv2.rectangle(image, tuple(int(v) for v in a), tuple(int(v) for v in b), colour, -1)
        else:
            t = max(1, int(rng.uniform(0.01, 0.05) * size))
            cv2.line(
                image, tuple(int(v) for v in a), tuple(int(v) for v in b), colour, t, cv2.LINE_AA
            )


def _occluder(
    image: np.ndarray, rng: np.random.Generator, p: np.ndarray, scales: np.ndarray
) -> np.ndarray:
    """Draw a textured ellipse over a random keypoint of ``p`` (N, 2), sized by that point's
    figure height in ``scales`` (N,); return its (H, W) bool mask."""
    mask = np.zeros(image.shape[:2], np.uint8)
    pick = int(rng.integers(len(p)))
    scale = float(scales[pick])
    centre = p[pick] + rng.normal(0, 0.04 * scale, 2)
    axes = (
        max(2, int(rng.uniform(0.06, 0.15) * scale)),
        max(2, int(rng.uniform(0.06, 0.15) * scale)),
    )
    angle = float(rng.uniform(0, 180))
    cv2.ellipse(mask, tuple(int(round(c)) for c in centre), axes, angle, 0, 360, 1, -1)
    texture = rng.integers(0, 256, 3).astype(np.float32) + rng.normal(0, 20, image.shape)
    image[mask > 0] = np.clip(texture[mask > 0], 0, 255)
    return mask > 0


def _visibility(
    rng: np.random.Generator,
    p: np.ndarray,
    occluder: np.ndarray | None,
    size: int,
    hidden: np.ndarray,
) -> np.ndarray:
    """(K, 3) [x, y, v]: 0 outside the image or left unlabelled, 1 occluded (under the
    occluder or ``hidden`` (K,) by a figure in front), 2 visible."""
    v = np.full(len(p), 2.0)
    v[hidden] = 1.0
    inside = np.all((p >= 0) & (p <= size - 1), axis=1)
    if occluder is not None:
        ij = np.clip(np.round(p).astype(int), 0, size - 1)
        v[occluder[ij[:, 1], ij[:, 0]]] = 1.0
    v[~inside] = 0.0
    v[rng.random(len(p)) < UNLABELLED_P] = 0.0
    return np.column_stack([p, v])


def figure_box(p: np.ndarray, scale: float, size: int) -> tuple[float, float, float, float]:
    """COCO box (edges on pixel edges) around the drawn figure, clipped to the image."""
    pad = np.full(len(p), 0.05 * scale + 1.0)
    pad[0] = 0.08 * scale + 1.0  # the head disc
    lo = np.clip((p - pad[:, None]).min(axis=0) - 0.5, 0, size)
    hi = np.clip((p + pad[:, None]).max(axis=0) + 0.5, 0, size)
    return float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])
