"""Sliding windows over a feature sequence, and the per-window class scores.

A window is a run of `steps` consecutive sampled frames. Windows start at frame 0 and step by
`stride` frames; one more window is added when needed so that the last frame is always covered.
A sequence shorter than one window gives a single window whose missing steps are padding: index
`PAD` in the index matrix, all-zero features in the window, which the model masks out (its first
layer is `keras.layers.Masking(0.0)`), so a short clip is read as what it is, not as a clip whose
last frame lasts.

Windows are described by a (W, T) matrix of frame indices, so a long video's windows can be
gathered batch by batch (`iter_window_batches`) instead of copying every frame T times.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from highlights.config import WindowConfig
from highlights.damage import DecodeDamage
from highlights.errors import InputError
from highlights.features import FeatureSequence
from highlights.timecode import frame_times, frames_at


@dataclass(frozen=True)
class WindowScores:
    """Class probabilities for each window, with the window's time span in seconds.

    A window over frames that could not be decoded is scored all the same, and says so: its
    `damaged` share. `damage` is the decoding record of the whole video.
    """

    starts: np.ndarray  # (W,) float64 seconds
    ends: np.ndarray  # (W,) float64 seconds
    probabilities: np.ndarray  # (W, C) float32, rows sum to 1
    classes: tuple[str, ...]
    damaged: np.ndarray = None  # type: ignore[assignment]  # (W,) float32 0-1; None: all whole
    damage: DecodeDamage = DecodeDamage()

    def __post_init__(self) -> None:
        if self.damaged is None:
            object.__setattr__(self, "damaged", np.zeros(len(self.starts), dtype=np.float32))

    def __len__(self) -> int:
        return len(self.starts)


@dataclass(frozen=True)
class Windows:
    """Fixed-length runs of frame features, with each run's time span in seconds."""

    starts: np.ndarray  # (W,) float64 seconds: time of the window's first frame
    ends: np.ndarray  # (W,) float64 seconds: the end of its last real frame
    features: np.ndarray  # (W, T, D) float32
    damaged: np.ndarray = None  # type: ignore[assignment]  # (W,) share of damaged frames

    def __post_init__(self) -> None:
        if self.damaged is None:
            object.__setattr__(self, "damaged", np.zeros(len(self.starts), dtype=np.float32))

    def __len__(self) -> int:
        return len(self.starts)


PAD = -1  # a padding step in a window-index matrix


class Predictor(Protocol):
    """What scoring needs from a model (`highlights.model.SequenceModel` is one)."""

    @property
    def classes(self) -> tuple[str, ...]: ...

    def predict(self, batch: np.ndarray) -> np.ndarray: ...


def window_frame_indices(n_frames: int, steps: int, stride: int) -> np.ndarray:
    """The (W, steps) int64 matrix of frame indices, one row per window.

    Steps past the end of a short sequence are `PAD`.
    """
    if n_frames < 1:
        raise InputError(
            "cannot make windows from an empty feature sequence (the video gave no frames)"
        )
    if steps < 1 or stride < 1:
        raise InputError(f"window steps and stride must be at least 1, got {steps}, {stride}")
    last_start = max(0, n_frames - steps)
    first_frames = np.arange(0, last_start + 1, stride, dtype=np.int64)
    if first_frames[-1] != last_start:
        first_frames = np.append(first_frames, last_start)
    indices = first_frames[:, None] + np.arange(steps, dtype=np.int64)[None, :]
    return np.where(indices < n_frames, indices, PAD)


def gather_frames(frames: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """(W, T, D) float32 windows of `frames` rows; `PAD` steps are all zeros (masked)."""
    windows = np.asarray(frames, dtype=np.float32)[np.maximum(indices, 0)]
    windows[indices == PAD] = 0.0
    return windows


def iter_window_batches(
    seq: FeatureSequence, window: WindowConfig, batch_size: int = 256
) -> Iterator[Windows]:
    """The windows of `seq` in order, `batch_size` at a time; memory stays at one batch."""
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    indices = _indices_for(seq, window)
    for begin in range(0, len(indices), batch_size):
        yield _gather(seq, indices[begin : begin + batch_size])


def score_sequence(
    seq: FeatureSequence, window: WindowConfig, model: Predictor, batch_size: int = 256
) -> WindowScores:
    """Class probabilities for every window of `seq`, built and scored one batch at a time."""
    starts, ends, damaged, parts = [], [], [], []
    for batch in iter_window_batches(seq, window, batch_size):
        starts.append(batch.starts)
        ends.append(batch.ends)
        damaged.append(batch.damaged)
        parts.append(model.predict(batch.features))
    return WindowScores(
        starts=np.concatenate(starts),
        ends=np.concatenate(ends),
        probabilities=np.concatenate(parts).astype(np.float32, copy=False),
        classes=tuple(model.classes),  # read last: an endpoint learns them from its first reply
        damaged=np.concatenate(damaged),
        damage=seq.damage,
    )


def _indices_for(seq: FeatureSequence, window: WindowConfig) -> np.ndarray:
    if seq.features.ndim != 2 or len(seq.features) != len(seq.times):
        raise InputError(
            f"feature sequence has features of shape {seq.features.shape} "
            f"for {len(seq.times)} frame times; expected (N, D) with N = {len(seq.times)}"
        )
    if seq.rate <= 0:
        raise InputError(f"feature sequence has a non-positive sampling rate {seq.rate}")
    return window_frame_indices(len(seq), window.steps(seq.rate), window.stride_steps(seq.rate))


def _gather(seq: FeatureSequence, indices: np.ndarray) -> Windows:
    times = np.asarray(seq.times, dtype=np.float64)
    real = indices != PAD
    last = indices.max(axis=1)  # the last real frame (PAD is below every index)
    damaged = (seq.damaged[np.maximum(indices, 0)] & real).sum(axis=1) / real.sum(axis=1)
    return Windows(
        starts=times[indices[:, 0]],
        ends=frame_times(frames_at(times[last], seq.rate) + 1, seq.rate),
        features=gather_frames(seq.features, indices),
        damaged=damaged.astype(np.float32),
    )
