"""Backbone features for a video: one vector per sampled frame, cached per video."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FeatureSequence:
    """Per-frame features of one video, in time order."""

    times: np.ndarray  # (N,) float64 seconds, ascending
    features: np.ndarray  # (N, D) float32
    backbone: str
    rate: float  # frames per second that were sampled

    def __len__(self) -> int:
        return len(self.times)
