"""segments.json: the detected ranges as SoccerNet-style predictions, every window's scores,
the decision settings and the decoding damage. The format is documented in docs/formats.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from highlights.config import SegmentConfig
from highlights.damage import DecodeDamage, TimeRange
from highlights.errors import ConfigError, InputError
from highlights.files import write_text_atomic
from highlights.segments import Policy, Segment, policy_per_target, target_scores
from highlights.timecode import clock, milliseconds
from highlights.windows import WindowScores

FORMAT_NAME = "sports-highlights/segments"


FORMAT_VERSION = 1


SINGLE_HALF = 1


SCORE_DECIMALS = 6  # per-window scores are stored rounded; float32 carries about 7 digits anyway


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
