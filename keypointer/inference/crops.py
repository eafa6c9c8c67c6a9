"""Crops of whole images (letterboxed) or of boxes, and keypoints mapped back to the image."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from keypointer.config import BOX_MARGIN
from keypointer.data import transforms as T


def crop_matrix(
    image_size: tuple[int, int],
    input_size: tuple[int, int],
    box: Sequence[float] | None = None,
    margin: float = BOX_MARGIN,
) -> np.ndarray:
    """The matrix of one crop.

    Args:
        image_size: (width, height) of the image.
        input_size: (width, height) of the model's input.
        box: a COCO box (x, y, w, h): the box grown to the input's aspect ratio and by
            ``margin``, as the training crops are; None: the whole image, letterboxed (aspect
            kept, centred, black bars).
        margin: how much a box grows.

    Returns:
        (2, 3) float64 matrix mapping input pixels to image pixels.
    """
    if box is None:
        center, size = T.image_crop(*image_size)
        return T.crop_affine(center, T.fit_aspect(size, input_size), input_size)
    center, size = T.bbox_crop(box)
    return T.crop_affine(center, T.fit_aspect(size, input_size, margin), input_size)


def make_crops(
    image: np.ndarray,
    input_size: tuple[int, int],
    boxes: Sequence[Sequence[float]] | None = None,
    margin: float = BOX_MARGIN,
) -> tuple[np.ndarray, np.ndarray]:
    """The crops of one image: the whole image, or one per box.

    Args:
        image: (H, W, 3) uint8 RGB.
        input_size: (W_in, H_in) of the model's input.
        boxes: COCO boxes (M, 4), or None for the whole image.
        margin: how much a box grows (see :func:`crop_matrix`).

    Returns:
        Crops (M, H_in, W_in, 3) uint8 and their input-to-image matrices (M, 2, 3).
    """
    size = (image.shape[1], image.shape[0])
    regions = [None] if boxes is None else list(boxes)
    mats = [crop_matrix(size, input_size, b, margin) for b in regions]
    crops = [T.warp_image(image, m, input_size) for m in mats]
    w, h = input_size
    if not crops:
        return np.zeros((0, h, w, 3), np.uint8), np.zeros((0, 2, 3))
    return np.stack(crops), np.stack(mats)
