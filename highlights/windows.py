"""Sliding windows over a feature sequence, and the per-window class scores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowScores:
    """Class probabilities for each window, with the window's time span in seconds."""

    starts: np.ndarray  # (W,) float64 seconds
    ends: np.ndarray  # (W,) float64 seconds
    probabilities: np.ndarray  # (W, C) float32, rows sum to 1
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.starts)

    def scores_for(self, target: str) -> np.ndarray:
        """The probability of one class for every window."""
        return self.probabilities[:, self.classes.index(target)]
