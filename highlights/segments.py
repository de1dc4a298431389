"""Turning per-window scores into padded, clamped, merged time ranges."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Segment:
    """A detected highlight: a time range in seconds, its best window score and class."""

    start: float
    end: float
    score: float
    label: str

    @property
    def duration(self) -> float:
        return self.end - self.start
