"""Shaping a single still image the way the video stage shapes frames (short side, centre crop)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from highlights.video import FrameGeometry


def prepare_image(image: np.ndarray, geometry: FrameGeometry) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (crop, crop, 3) uint8: short side resized, then centre-cropped."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    scale = geometry.resize_short / min(height, width)
    size = (max(geometry.crop, round(width * scale)), max(geometry.crop, round(height * scale)))
    resized = Image.fromarray(image).resize(size, Image.Resampling.BILINEAR)
    left = (size[0] - geometry.crop) // 2
    top = (size[1] - geometry.crop) // 2
    return np.asarray(resized.crop((left, top, left + geometry.crop, top + geometry.crop)))
