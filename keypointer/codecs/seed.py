"""The seed notes' heatmap functions (``../shared/seed/``), kept for people who think in them.

The notes build a Gaussian kernel ``exp(-((x - xk)^2 + (y - yk)^2) / (2 sigma^2))`` of size
``6 sigma + 1``, normalised to peak 1, and paste it into a zero map: one map per keypoint, or
all keypoints in one map. These functions give the same shapes and values where the notes'
code works (integer centres, odd sizes) and fix its flaws:

- centres may be fractional (the notes round them to whole pixels);
- overlapping keypoints merge by maximum (the notes overwrite);
- any kernel size, odd or even, is centred on the keypoint (an even size shifted the notes'
  peak by half a pixel);
- vectorised numpy, no Python double loop.

"Peak 1" is the value at the centre itself, as in the notes whenever the centre is a pixel.
For training targets use :class:`keypointer.codecs.HeatmapCodec`, which batches this.
"""

from __future__ import annotations

import math

import numpy as np


def _default_size(sigma: float) -> int:
    # The notes: 2 * (3 sigma) + 1, written for integer sigma; ceil keeps 3 sigma covered.
    return 2 * math.ceil(round(3 * sigma, 9)) + 1


def _profile(n: int, centre: np.ndarray, sigma: float, size: int) -> np.ndarray:
    """(M,) centres -> (M, n) 1-D Gaussians, zero outside the ``size``-pixel window."""
    d = np.arange(n, dtype=np.float64)[None, :] - np.asarray(centre, dtype=np.float64)[:, None]
    g = np.exp(-(d**2) / (2.0 * sigma**2))
    # A window of `size` pixels centred on the keypoint holds the pixels within size/2 of it.
    return np.where(np.abs(d) < size / 2.0, g, 0.0)


def gaussian_kernel(sigma: float, size: int | None = None) -> np.ndarray:
    """(size, size) Gaussian centred at ((size - 1) / 2, (size - 1) / 2), value 1 there.

    ``size`` None: ``2 ceil(3 sigma) + 1`` (the notes' ``6 sigma + 1``).
    """
    size = _default_size(sigma) if size is None else int(size)
    if size < 1 or not sigma > 0:
        raise ValueError(f"need size >= 1 and sigma > 0, got size={size}, sigma={sigma}")
    g = _profile(size, np.array([(size - 1) / 2.0]), sigma, size + 1)[0]
    return np.outer(g, g)


def gaussian_heatmap(
    width: int, height: int, cx: float, cy: float, sigma: float, size: int | None = None
) -> np.ndarray:
    """(height, width) map of one Gaussian centred at (cx, cy), cut to a ``size`` window."""
    return all_keypoints_heatmap(width, height, np.array([[cx, cy]], dtype=np.float64), sigma, size)


def all_keypoints_heatmap(
    width: int, height: int, keypoints: np.ndarray, sigma: float, size: int | None = None
) -> np.ndarray:
    """(height, width) map of all keypoints (K, 2) = (x, y), merged by maximum.

    Rows with a non-finite coordinate are left out; K = 0 gives an all-zero map.
    """
    size = _default_size(sigma) if size is None else int(size)
    if size < 1 or not sigma > 0:
        raise ValueError(f"need size >= 1 and sigma > 0, got size={size}, sigma={sigma}")
    kps = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    kps = kps[np.isfinite(kps).all(axis=1)]
    if len(kps) == 0:
        return np.zeros((height, width))
    gx = _profile(width, kps[:, 0], sigma, size)
    gy = _profile(height, kps[:, 1], sigma, size)
    return np.einsum("ky,kx->kyx", gy, gx).max(axis=0)
