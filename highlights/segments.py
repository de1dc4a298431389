"""Turning per-window scores into padded, clamped, merged time ranges, and the segments.json file.

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

The format of segments.json is documented in docs/formats.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from highlights.config import SegmentConfig
from highlights.damage import DecodeDamage, TimeRange
from highlights.errors import ConfigError, InputError
from highlights.files import write_text_atomic
from highlights.timecode import clock, milliseconds
from highlights.timecode import game_time as game_time  # re-exported for report and notify
from highlights.windows import WindowScores

FORMAT_NAME = "sports-highlights/segments"
FORMAT_VERSION = 1
SINGLE_HALF = 1
SCORE_DECIMALS = 6  # per-window scores are stored rounded; float32 carries about 7 digits anyway


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


@dataclass(frozen=True)
class SegmentsFile:
    """The contents of a segments.json file."""

    video: str
    duration: float
    targets: tuple[str, ...]
    policy: SegmentConfig  # the first target's settings
    segments: list[Segment]
    scores: WindowScores
    model: dict[str, Any] = field(default_factory=dict)
    decisions: dict[str, SegmentConfig] = field(default_factory=dict)  # every target's settings


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


def soccernet_game_time(seconds: float, half: int = 1) -> str:
    """SoccerNet's `"H - MM:SS"`: the half, then minutes (two digits at least, not wrapped into
    hours) and seconds into it, as in Labels-v2.json."""
    minutes, rest = clock(seconds)
    return f"{half} - {minutes:02d}:{rest:02d}"


def _peak_position(segment: Segment, scores: WindowScores, values: np.ndarray) -> float:
    """The centre of the best-scoring window inside the segment (its spotting position)."""
    inside = np.flatnonzero((scores.starts < segment.end) & (scores.ends > segment.start))
    if len(inside) == 0:
        return (segment.start + segment.end) / 2
    peak = inside[np.nan_to_num(values[inside], nan=-np.inf).argmax()]
    centre = (float(scores.starts[peak]) + float(scores.ends[peak])) / 2
    return min(max(centre, segment.start), segment.end)


def _prediction(segment: Segment, position: float) -> dict[str, Any]:
    # A video is one timeline: SoccerNet's first half, so its evaluator reads the file as it is.
    return {
        "half": SINGLE_HALF,
        "gameTime": soccernet_game_time(position, SINGLE_HALF),
        "label": segment.label,
        "position": milliseconds(position),
        "confidence": segment.score,
        "start_ms": milliseconds(segment.start),
        "end_ms": milliseconds(segment.end),
        "start": segment.start,
        "end": segment.end,
    }


def _window(scores: WindowScores, i: int) -> dict[str, Any]:
    start, end = float(scores.starts[i]), float(scores.ends[i])
    return {
        "start_ms": milliseconds(start),
        "end_ms": milliseconds(end),
        "start": start,
        "end": end,
        "scores": {
            name: round(float(p), SCORE_DECIMALS)
            for name, p in zip(scores.classes, scores.probabilities[i], strict=True)
        },
        "damaged": round(float(scores.damaged[i]), SCORE_DECIMALS),
    }


def _damage(damage: DecodeDamage) -> dict[str, Any]:
    return {
        "sampled_frames": damage.sampled_frames,
        "damaged_frames": damage.damaged_frames,
        "share": round(damage.share, SCORE_DECIMALS),
        "ranges": [
            {
                "start_ms": milliseconds(r.start),
                "end_ms": milliseconds(r.end),
                "start": r.start,
                "end": r.end,
            }
            for r in damage.ranges
        ],
    }


def _read_damage(document: dict[str, Any]) -> DecodeDamage:
    """The `damage` object; files written before it existed had none to report."""
    damage = document.get("damage")
    if damage is None:
        return DecodeDamage()
    return DecodeDamage(
        sampled_frames=int(damage["sampled_frames"]),
        damaged_frames=int(damage["damaged_frames"]),
        ranges=tuple(TimeRange(float(r["start"]), float(r["end"])) for r in damage["ranges"]),
    )


def segments_document(
    video: str | Path,
    duration: float,
    segments: Sequence[Segment],
    scores: WindowScores,
    targets: Sequence[str],
    policy: Policy,
    model: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON-ready dictionary written to segments.json."""
    values, _ = target_scores(scores, targets)
    per_target = policy_per_target(policy, targets)
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "video": Path(video).name if isinstance(video, Path) else video,
        "duration": float(duration),
        "targets": list(targets),
        "classes": list(scores.classes),
        "settings": asdict(per_target[targets[0]]),
        "decisions": {t: asdict(p) for t, p in per_target.items()},
        "model": dict(model or {}),
        "predictions": [_prediction(s, _peak_position(s, scores, values)) for s in segments],
        "damage": _damage(scores.damage),
        "windows": [_window(scores, i) for i in range(len(scores))],
    }


def write_segments_json(
    path: Path,
    video: str | Path,
    duration: float,
    segments: Sequence[Segment],
    scores: WindowScores,
    targets: Sequence[str],
    policy: Policy,
    model: Mapping[str, Any] | None = None,
) -> Path:
    """Write segments.json atomically. `model` is any JSON-ready description of the model used."""
    document = segments_document(video, duration, segments, scores, targets, policy, model)
    return write_text_atomic(Path(path), json.dumps(document, indent=2, allow_nan=False) + "\n")


def read_segments_json(path: Path) -> SegmentsFile:
    """Read a segments.json written by `write_segments_json`; InputError names a bad file."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: segments file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable segments JSON file: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise InputError(f"{path}: not a {FORMAT_NAME} file (no matching 'format' field)")
    if document.get("version") != FORMAT_VERSION:
        raise InputError(
            f"{path}: segments format version {document.get('version')!r} is not supported "
            f"(this program reads version {FORMAT_VERSION})"
        )
    try:
        return _parse_document(document)
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise InputError(f"{path}: malformed segments file ({type(exc).__name__}: {exc})") from None


def _parse_document(document: dict[str, Any]) -> SegmentsFile:
    classes = tuple(str(c) for c in document["classes"])
    windows = document["windows"]
    probabilities = np.array(
        [[float(w["scores"][c]) for c in classes] for w in windows], dtype=np.float32
    ).reshape(len(windows), len(classes))
    scores = WindowScores(
        starts=np.array([float(w["start"]) for w in windows], dtype=np.float64),
        ends=np.array([float(w["end"]) for w in windows], dtype=np.float64),
        probabilities=probabilities,
        classes=classes,
        damaged=np.array([float(w.get("damaged", 0.0)) for w in windows], dtype=np.float32),
        damage=_read_damage(document),
    )
    segments = [
        Segment(float(p["start"]), float(p["end"]), float(p["confidence"]), str(p["label"]))
        for p in document["predictions"]
    ]
    return SegmentsFile(
        video=str(document["video"]),
        duration=float(document["duration"]),
        targets=tuple(str(t) for t in document["targets"]),
        policy=SegmentConfig(**document["settings"]),
        decisions={  # absent in files written before settings were per class
            str(t): SegmentConfig(**p) for t, p in (document.get("decisions") or {}).items()
        },
        segments=segments,
        scores=scores,
        model=dict(document.get("model") or {}),
    )
