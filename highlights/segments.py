"""Turning per-window scores into padded, clamped, merged time ranges.

They are written to segments.json by `highlights.outputs.segments_json`.

Everything here works in seconds. The steps of `find_segments`, in order:

1. score each window by its best target class (max over the targets);
2. mark windows positive: score >= threshold, or with hysteresis a run that starts at
   `threshold` and continues while the score stays >= `low_threshold`;
3. join positive windows whose spans overlap or touch into one range;
4. pad each range by `buffer` on both sides and clamp it to [0, duration];
5. join ranges that now overlap, touch, or are closer than `merge_gap`;
6. drop ranges shorter than `min_length`.

Each target may have settings of its own (calibrated by `train`, see `highlights.calibration`);
then its ranges are found with them and ranges of different targets that overlap are joined.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from highlights.config import SegmentConfig
from highlights.errors import ConfigError
from highlights.timecode import game_time as game_time  # re-exported for the report and the mail
from highlights.windows import WindowScores


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


def target_scores(scores: WindowScores, targets: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per window: the best score over the targets, and the index into `targets` of that class."""
    if not targets:
        raise ConfigError(
            f"no target class given; the model's classes are: {', '.join(scores.classes)}"
        )
    unknown = [t for t in targets if t not in scores.classes]
    if unknown:
        raise ConfigError(
            f"unknown target class {', '.join(map(repr, unknown))}; "
            f"the model's classes are: {', '.join(scores.classes)}"
        )
    columns = [scores.classes.index(t) for t in targets]
    per_target = np.asarray(scores.probabilities, dtype=np.float64)[:, columns]
    if per_target.shape[0] == 0:
        return np.zeros(0), np.zeros(0, dtype=int)
    best = np.nan_to_num(per_target, nan=-np.inf).argmax(axis=1)
    return per_target[np.arange(len(best)), best], best


def positive_windows(
    values: np.ndarray, threshold: float, low_threshold: float | None
) -> np.ndarray:
    """Which windows pass: plain threshold, or hysteresis (start >= threshold, continue >= low)."""
    high = values >= threshold
    if low_threshold is None:
        return high
    low = values >= low_threshold
    positive = np.zeros(len(values), dtype=bool)
    running = False
    for i in range(len(values)):
        running = bool(high[i] or (running and low[i]))
        positive[i] = running
    return positive


def _merge_ranges(ranges: Sequence[Segment], gap: float = 0.0) -> list[Segment]:
    """Join ranges that overlap, touch or lie closer than `gap`; keep the best score and label."""
    merged: list[Segment] = []
    for current in sorted(ranges, key=lambda r: (r.start, r.end)):
        if merged and (current.start <= merged[-1].end or current.start - merged[-1].end < gap):
            last = merged[-1]
            best = last if last.score >= current.score else current
            merged[-1] = Segment(last.start, max(last.end, current.end), best.score, best.label)
        else:
            merged.append(current)
    return merged


Policy = SegmentConfig | Mapping[str, SegmentConfig]


def policy_per_target(policy: Policy, targets: Sequence[str]) -> dict[str, SegmentConfig]:
    """One SegmentConfig per target (the same one for all when a single one is given)."""
    if isinstance(policy, SegmentConfig):
        return {t: policy for t in targets}
    missing = [t for t in targets if t not in policy]
    if missing:
        raise ConfigError(f"no decision settings for target class {', '.join(missing)}")
    return {t: policy[t] for t in targets}


def find_segments(
    scores: WindowScores, targets: Sequence[str], policy: Policy, duration: float
) -> list[Segment]:
    """Time ranges where any target class scores high enough, padded, clamped and merged.

    With one policy for all targets a window's score is its best target's. With settings per
    target (calibrated decisions) each target's ranges are found with its own, and ranges of
    different targets that overlap or touch are then joined (the label of the better score).
    """
    per_target = policy_per_target(policy, targets) if targets else {}
    distinct = set(per_target.values())
    if len(distinct) <= 1:
        single = next(iter(distinct)) if distinct else SegmentConfig()
        return _find_segments(scores, targets, single, duration)
    found = [
        segment
        for target, own in per_target.items()
        for segment in _find_segments(scores, [target], own, duration)
    ]
    return _merge_ranges(found)


def tidy_ranges(ranges: Sequence[Segment], merge_gap: float, min_length: float) -> list[Segment]:
    """Steps 5 and 6 of `find_segments` on its padded ranges: join those closer than
    `merge_gap`, then drop those shorter than `min_length`."""
    return [r for r in _merge_ranges(ranges, merge_gap) if r.duration >= min_length]


def _find_segments(
    scores: WindowScores, targets: Sequence[str], policy: SegmentConfig, duration: float
) -> list[Segment]:
    if not math.isfinite(duration) or duration < 0:
        raise ConfigError(
            f"video duration must be a non-negative number of seconds, got {duration}"
        )
    values, best = target_scores(scores, targets)
    order = np.argsort(scores.starts, kind="stable")
    values, best = values[order], best[order]
    starts, ends = np.asarray(scores.starts)[order], np.asarray(scores.ends)[order]
    positive = positive_windows(values, policy.threshold, policy.low_threshold)
    windows = [
        Segment(float(starts[i]), float(ends[i]), float(values[i]), targets[int(best[i])])
        for i in np.flatnonzero(positive)
    ]
    padded = [
        Segment(
            max(0.0, r.start - policy.buffer),
            min(duration, r.end + policy.buffer),
            r.score,
            r.label,
        )
        for r in _merge_ranges(windows)
    ]
    return tidy_ranges([r for r in padded if r.end > r.start], policy.merge_gap, policy.min_length)
