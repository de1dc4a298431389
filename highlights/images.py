"""Shaping one picture for a backbone: short side resized (bilinear), then a centre crop.

Sampled video frames get the same shaping from ffmpeg's `scale=...:flags=bilinear,crop=c:c`
(highlights.video); this module does it for single pictures (frame-capture JPEGs, stills).
"""

from __future__ import annotations

import av
import numpy as np

from highlights.video import FrameGeometry, fitted_size


def fit_picture(picture: av.VideoFrame, geometry: FrameGeometry) -> np.ndarray:
    """A decoded picture as RGB uint8 (crop, crop, 3), shaped for the backbone."""
    width, height = fitted_size(picture.width, picture.height, geometry.resize_short)
    image = picture.reformat(width, height, format="rgb24", interpolation="BILINEAR").to_ndarray()
    top, left = (height - geometry.crop) // 2, (width - geometry.crop) // 2
    return np.ascontiguousarray(image[top : top + geometry.crop, left : left + geometry.crop])


def prepare_image(image: np.ndarray, geometry: FrameGeometry) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (crop, crop, 3) uint8, shaped like a sampled frame."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    return fit_picture(
        av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24"), geometry
    )


def check_batch(images: np.ndarray, geometry: FrameGeometry) -> np.ndarray:
    """A backbone's input batch, (B, crop, crop, 3), as float32; a wrong shape is a caller bug."""
    images = np.asarray(images)
    crop = geometry.crop
    if images.ndim != 4 or images.shape[1:] != (crop, crop, 3):
        raise ValueError(f"expected a batch of shape (B, {crop}, {crop}, 3), got {images.shape}")
    return images.astype(np.float32)
