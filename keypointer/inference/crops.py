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
    """(2, 3) float64 matrix mapping input pixels to image pixels.

    ``image_size`` and ``input_size`` are (width, height). No ``box``: the whole image,
    letterboxed (aspect kept, centred, black bars). A COCO ``box`` (x, y, w, h): the box grown
    to the input's aspect ratio and by ``margin``, as the training crops are.
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
    """RGB (H, W, 3) uint8 -> crops (M, H_in, W_in, 3) uint8 and matrices (M, 2, 3).

    One crop for the whole image when ``boxes`` is None, else one per box.
    """
    size = (image.shape[1], image.shape[0])
    regions = [None] if boxes is None else list(boxes)
    mats = [crop_matrix(size, input_size, b, margin) for b in regions]
    crops = [T.warp_image(image, m, input_size) for m in mats]
    w, h = input_size
    if not crops:
        return np.zeros((0, h, w, 3), np.uint8), np.zeros((0, 2, 3))
    return np.stack(crops), np.stack(mats)
