"""What a decoder could not read in a video: damaged time ranges and damaged sampled frames.

Real recordings have glitches (a few bad bytes in a long capture, a DVR file that starts in the
middle of a group of pictures). Decoding carries on past them; this module holds the record of
what was affected, so it can be reported and so that a video damaged past a set share is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from highlights.errors import VideoError

# How many damaged ranges a one-line message lists before it says "and N more".
LISTED_RANGES = 3


@dataclass(frozen=True)
class TimeRange:
    """A stretch of the video in seconds from its start, `start` <= `end`."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def merge_ranges(ranges: Iterable[TimeRange]) -> tuple[TimeRange, ...]:
    """The union of `ranges`, sorted; ranges that overlap or touch become one. Empty ones go."""
    merged: list[TimeRange] = []
    for current in sorted((r for r in ranges if r.end > r.start), key=lambda r: r.start):
        if merged and current.start <= merged[-1].end:
            merged[-1] = TimeRange(merged[-1].start, max(merged[-1].end, current.end))
        else:
            merged.append(current)
    return tuple(merged)


def clip_ranges(ranges: Iterable[TimeRange], start: float, end: float) -> tuple[TimeRange, ...]:
    """`ranges` cut to [start, end]; what falls outside is dropped."""
    return merge_ranges(TimeRange(max(r.start, start), min(r.end, end)) for r in ranges)


def ranges_to_array(ranges: Sequence[TimeRange]) -> np.ndarray:
    """(R, 2) float64 [start, end] rows, the form the features and scores files store."""
    return np.array([[r.start, r.end] for r in ranges], dtype=np.float64).reshape(len(ranges), 2)


def ranges_from_array(array: np.ndarray) -> tuple[TimeRange, ...]:
    rows = np.asarray(array, dtype=np.float64).reshape(-1, 2)
    return tuple(TimeRange(float(start), float(end)) for start, end in rows)


@dataclass(frozen=True)
class DecodeDamage:
    """What could not be decoded: how many sampled frames, and which stretches of the video."""

    sampled_frames: int = 0
    damaged_frames: int = 0
    ranges: tuple[TimeRange, ...] = ()

    @property
    def share(self) -> float:
        """Damaged sampled frames over all sampled frames (0 when nothing was sampled)."""
        return self.damaged_frames / self.sampled_frames if self.sampled_frames else 0.0

    def __bool__(self) -> bool:
        return bool(self.damaged_frames or self.ranges)

    def describe(self) -> str:
        """One line: "7 of 150 sampled frames (4.7 %) in 2 damaged ranges: 16.9-17.1 s, ..."."""
        listed = ", ".join(f"{r.start:.1f}-{r.end:.1f} s" for r in self.ranges[:LISTED_RANGES])
        more = len(self.ranges) - LISTED_RANGES
        if more > 0:
            listed += f" and {more} more"
        plural = "" if len(self.ranges) == 1 else "s"
        return (
            f"{self.damaged_frames} of {self.sampled_frames} sampled frames "
            f"({100 * self.share:.1f} %) in {len(self.ranges)} damaged range{plural}"
            + (f": {listed}" if listed else "")
        )


def damage_of(damaged: np.ndarray, ranges: Sequence[TimeRange]) -> DecodeDamage:
    """The summary of per-frame damage flags and the damaged ranges."""
    flags = np.asarray(damaged, dtype=bool)
    return DecodeDamage(len(flags), int(flags.sum()), tuple(ranges))


def check_damage(damage: DecodeDamage, max_share: float, video: Path | str) -> None:
    """Refuse a video whose damaged share of sampled frames passes `max_share` (VideoError)."""
    if damage.share > max_share:
        raise VideoError(
            f"{video}: too damaged to use: {damage.describe()}; more than the "
            f"{100 * max_share:g} % allowed by decode.max_damaged_share"
        )
