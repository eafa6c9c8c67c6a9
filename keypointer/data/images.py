"""Image decoding: every image becomes an (H, W, 3) uint8 RGB array, whatever it is on disk."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from keypointer.errors import DataError


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 RGB.

    Grayscale is replicated to three channels, alpha is dropped, 16-bit images
    are scaled to 8 bits and float images are clipped to [0, 1] and scaled.
    EXIF orientation is applied, as photo viewers (and so labelling tools) show it.
    Raises :class:`DataError` naming the file when it is missing, empty or corrupt.
    """
    try:
        # np.fromfile + imdecode rather than cv2.imread: works for non-ASCII paths everywhere.
        data = np.fromfile(path, dtype=np.uint8)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read image: {err.__class__.__name__}: {err}", file=path) from None
    if data.size == 0:
        raise DataError("image file is empty (0 bytes)", file=path)
    try:
        # One decoder call handles gray, RGBA, 16-bit and EXIF rotation for the common formats.
        image = cv2.imdecode(data, cv2.IMREAD_COLOR_RGB)
        if image is None:  # e.g. float TIFFs, which the 8-bit path refuses
            image = _to_rgb8(cv2.imdecode(data, cv2.IMREAD_UNCHANGED))
    except cv2.error as err:
        raise DataError(f"corrupt image ({err.err or 'decoder error'})", file=path) from None
    if image is None or image.size == 0:
        raise DataError("not a readable image (corrupt or unsupported format)", file=path)
    return image


def _to_rgb8(image: np.ndarray | None) -> np.ndarray | None:
    """Convert whatever ``IMREAD_UNCHANGED`` gave (BGR/BGRA/gray, any depth) to uint8 RGB."""
    if image is None or image.size == 0:
        return None
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        image = (np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2RGB)
