"""Choosing the decision settings on the validation clips, per class, for the best segment F1.

The validation clips (never trained on; they also chose the epoch, never the test clips) are
joined end to end in a seeded order into one timeline of features, as `ffmpeg concat` would join
their videos into a match. The model scores its windows as `detect` does, windows across a join
included, and each class's truth is the runs of its clips. For every class, a grid of threshold,
hysteresis low threshold, minimum length and merge gap is tried, and the settings whose
segments score the best mean F1 over temporal IoU 0.1-0.7 (`highlights.evaluation`) are kept.
Ties go to the settings listed first: thresholds nearest 0.5, mild hysteresis, no minimum
length, no merge gap.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from highlights.config import SegmentConfig, WindowConfig
from highlights.dataset import Clip
from highlights.evaluation import IOU_THRESHOLDS, Game, Prediction, segment_scores
from highlights.features import FeatureSequence
from highlights.segments import Segment, find_segments, tidy_ranges
from highlights.timecode import frame_time, frame_times
from highlights.truth import TruthEvent
from highlights.windows import Predictor, WindowScores, score_sequence

THRESHOLDS = tuple(
    sorted((round(0.05 * i, 2) for i in range(2, 20)), key=lambda t: (abs(t - 0.5), t))
)
HYSTERESIS_DROPS = (0.15, 0.1, 0.25, 0.35, 0.0)  # low threshold = threshold - drop
MIN_LENGTHS = (0.0, 1.0, 2.0, 3.0, 4.0)  # seconds
MERGE_GAPS = (0.0, 1.0, 2.0, 3.0, 4.0)  # seconds
OBJECTIVE = "mean segment F1 over temporal IoU 0.1-0.7 on the validation clips joined end to end"


@dataclass(frozen=True)
class ClassDecision:
    """The settings chosen for one class, and how they scored on the validation timeline."""

    label: str
    policy: SegmentConfig
    f1: float  # the objective with these settings
    fixed_f1: float  # the objective with a fixed 0.5 threshold and no hysteresis
    events: int  # the class's truth ranges on the timeline

    def to_dict(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self.policy),
            "f1": self.f1,
            "fixed_f1": self.fixed_f1,
            "events": self.events,
        }


@dataclass(frozen=True)
class Timeline:
    """Clips joined end to end: their features as one sequence, and each class's truth."""

    sequence: FeatureSequence
    truth: tuple[TruthEvent, ...]

    @property
    def duration(self) -> float:
        return float(frame_time(len(self.sequence), self.sequence.rate))


def join_clips(
    clips: Sequence[Clip], features: Mapping[Path, FeatureSequence], seed: int
) -> Timeline:
    """The clips in a seeded order, one after another; a run of one class's clips is one event."""
    order = list(clips)
    random.Random(f"calibration:{seed}").shuffle(order)
    parts = [features[clip.path] for clip in order]
    rate = parts[0].rate
    frames = np.concatenate([p.features for p in parts]).astype(np.float32, copy=False)
    truth: list[TruthEvent] = []
    offset = 0
    for clip, part in zip(order, parts, strict=True):
        start = float(frame_time(offset, rate))
        end = float(frame_time(offset + len(part), rate))
        if truth and truth[-1].label == clip.label and truth[-1].end == start:
            last = truth.pop()
            start = last.start
        truth.append(TruthEvent(clip.label, start, end, (start + end) / 2))
        offset += len(part)
    times = frame_times(np.arange(len(frames)), rate)
    sequence = FeatureSequence(times, frames, parts[0].backbone, rate)
    return Timeline(sequence, tuple(truth))


def objective(segments: Sequence[Segment], truth: Sequence[TruthEvent], label: str) -> float:
    """Mean segment F1 of one class's ranges over the IoU thresholds."""
    predictions = tuple(
        Prediction(label, s.start, s.end, (s.start + s.end) / 2, s.score) for s in segments
    )
    game = Game("validation", tuple(e for e in truth if e.label == label), predictions)
    return float(np.mean([segment_scores([game], label, t).f1 for t in IOU_THRESHOLDS]))


def calibrate_class(
    scores: WindowScores,
    truth: Sequence[TruthEvent],
    label: str,
    duration: float,
    buffer: float,
) -> ClassDecision:
    """The grid's best settings for `label` on one scored timeline."""
    fixed = SegmentConfig(threshold=0.5, low_threshold=None, buffer=buffer)
    fixed_f1 = objective(find_segments(scores, [label], fixed, duration), truth, label)
    best, best_f1 = fixed, -1.0
    for threshold in THRESHOLDS:
        for drop in HYSTERESIS_DROPS:
            low = round(threshold - drop, 2)
            if low < 0.05 and drop:
                continue
            policy = SegmentConfig(threshold, low if drop else None, buffer)
            ranges = find_segments(scores, [label], policy, duration)
            for min_length in MIN_LENGTHS:
                for merge_gap in MERGE_GAPS:
                    segments = tidy_ranges(ranges, merge_gap, min_length)
                    f1 = objective(segments, truth, label)
                    if f1 > best_f1:
                        best_f1 = f1
                        best = dataclasses.replace(
                            policy, min_length=min_length, merge_gap=merge_gap
                        )
    events = sum(e.label == label for e in truth)
    return ClassDecision(label, best, best_f1, fixed_f1, events)


def calibrate_decisions(
    model: Predictor,
    clips: Sequence[Clip],
    features: Mapping[Path, FeatureSequence],
    window: WindowConfig,
    buffer: float,
    seed: int,
) -> tuple[tuple[ClassDecision, ...], float]:
    """Each class's best settings on the clips joined end to end (classes without a clip get
    none), and the joined timeline's length in seconds."""
    timeline = join_clips(clips, features, seed)
    scores = score_sequence(timeline.sequence, window, model)
    labels = sorted({e.label for e in timeline.truth})
    decisions = tuple(
        calibrate_class(scores, timeline.truth, label, timeline.duration, buffer)
        for label in labels
    )
    return decisions, timeline.duration


def manifest_decisions(decisions: Sequence[ClassDecision], seconds: float) -> dict[str, Any]:
    """The `decisions` object of the model manifest."""
    return {
        "chosen_on": "validation",
        "objective": OBJECTIVE,
        "timeline_seconds": seconds,
        "classes": {d.label: d.to_dict() for d in decisions},
    }
