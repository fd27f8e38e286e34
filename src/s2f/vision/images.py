"""Reading an image argument (path, PIL image or array) as an RGB uint8 array."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["load_rgb"]


def load_rgb(image: Any) -> np.ndarray:
    """An RGB uint8 array [H, W, 3] from a path, a PIL image, or an array (grey, RGB or RGBA)."""
    if isinstance(image, (str, os.PathLike)):
        from PIL import Image, ImageOps

        with Image.open(image) as opened:
            # Phone photos store their rotation in EXIF; apply it so the face is upright.
            return np.asarray(ImageOps.exif_transpose(opened).convert("RGB"), dtype=np.uint8).copy()
    if not isinstance(image, np.ndarray):
        image = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {image.shape}")
    return np.ascontiguousarray(image[:, :, :3])
