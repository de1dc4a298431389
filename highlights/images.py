"""Shaping one picture for a backbone: short side resized (bilinear), then a centre crop.

Every picture a backbone sees goes through `fit_picture`: sampled video frames
(highlights.sampling), frame-capture JPEGs and stills.
"""

from __future__ import annotations

import av
import numpy as np

from highlights.video import FrameGeometry, fitted_size


def fit_picture(
    picture: av.VideoFrame,
    geometry: FrameGeometry,
    display_size: tuple[int, int] | None = None,
    rotation: int = 0,
) -> np.ndarray:
    """A decoded picture as RGB uint8 (crop, crop, 3), shaped for the backbone.

    `display_size` is the picture's size as a player shows it (non-square pixels stretched,
    after rotation; default: its stored size) and `rotation` the degrees (0, 90, 180, 270) the
    player turns it clockwise. The picture is scaled in its stored orientation, then turned.
    """
    width, height = fitted_size(
        *(display_size or (picture.width, picture.height)), geometry.resize_short
    )
    turned = rotation in (90, 270)
    image = picture.reformat(
        height if turned else width,
        width if turned else height,
        format="rgb24",
        interpolation="BILINEAR",
        threads=1,  # pictures this small scale faster on one thread than on a pool
    ).to_ndarray()
    if rotation:
        image = np.rot90(image, k=-(rotation // 90))  # np.rot90 turns counter-clockwise
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
