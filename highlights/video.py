"""Reading video: probing a file and streaming frames sampled at a set rate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class VideoInfo:
    """What we need to know about a video before processing it."""

    path: Path
    duration: float  # seconds
    fps: float  # average frame rate of the video stream
    width: int  # display width, after rotation metadata is applied
    height: int  # display height, after rotation metadata is applied
    rotation: int  # degrees clockwise the player must turn the picture (0, 90, 180, 270)
    codec: str
    has_audio: bool


@dataclass(frozen=True)
class FrameGeometry:
    """How a frame is shaped for a backbone: short side resized, then centre-cropped square."""

    resize_short: int
    crop: int


@dataclass(frozen=True)
class SampledFrame:
    index: int  # 0-based index among the sampled frames
    time: float  # seconds from the start of the video
    image: np.ndarray  # (crop, crop, 3) uint8 RGB
