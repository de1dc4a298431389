"""Ground truth for `highlights evaluate`: what really happens in a video, and when.

Two kinds of file are read:

- our own (`"format": "sports-highlights/truth"`): the video's name and its labelled ranges,
  each `{"label", "start", "end"}` in seconds, optionally a `"position"` (the moment that
  matters, for spotting; the range's centre when absent);
- SoccerNet's `Labels-v2.json` (`"annotations"`: `{"gameTime": "H - MM:SS", "label",
  "position"}`): point events, `position` in ms from the start of half `H`. An event is a range
  of no length; it takes part in spotting, not in range overlap.

The format is documented in docs/formats.md.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from highlights.errors import InputError
from highlights.timecode import clock_seconds, from_milliseconds

FORMAT_NAME = "sports-highlights/truth"
FORMAT_VERSION = 1
SOCCERNET_LABELS = "Labels-v2.json"
_GAME_TIME = re.compile(r"^\s*(\d+)\s*-\s*(\d+):(\d{2})\s*$")


@dataclass(frozen=True)
class TruthEvent:
    """One labelled range (or point, when start == end) of one half of a video, in seconds."""

    label: str
    start: float
    end: float
    position: float  # the spot: where a spotting prediction should land
    half: int = 1

    @property
    def is_point(self) -> bool:
        return self.end <= self.start


@dataclass(frozen=True)
class Truth:
    """The ground truth of one video (or one SoccerNet game, both halves)."""

    source: Path
    video: str | None  # the video's file name; None for SoccerNet labels (paired by folder)
    events: tuple[TruthEvent, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(sorted({e.label for e in self.events}))


def read_truth(path: Path) -> Truth:
    """Read our truth file or a SoccerNet Labels-v2.json; InputError names a bad file."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: ground truth file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable JSON file: {exc}") from None
    if not isinstance(document, dict):
        raise InputError(f"{path}: ground truth must be a JSON object")
    try:
        if document.get("format") == FORMAT_NAME:
            return _read_ours(path, document)
        if "annotations" in document:
            return _read_soccernet(path, document)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: malformed ground truth ({type(exc).__name__}: {exc})") from None
    raise InputError(
        f'{path}: not a ground truth file: expected "format": "{FORMAT_NAME}" '
        'or SoccerNet\'s "annotations" list'
    )


def parse_game_time(text: str) -> tuple[int, float]:
    """SoccerNet's `"H - MM:SS"` as (half, seconds into that half). Minutes may exceed 59."""
    match = _GAME_TIME.match(str(text))
    if match is None:
        raise ValueError(f"gameTime {text!r} is not 'H - MM:SS'")
    half, minutes, seconds = (int(g) for g in match.groups())
    if seconds > 59:
        raise ValueError(f"gameTime {text!r} has {seconds} seconds")
    return half, float(clock_seconds(minutes, seconds))


def _read_ours(path: Path, document: dict[str, Any]) -> Truth:
    if document.get("version") != FORMAT_VERSION:
        raise InputError(
            f"{path}: truth format version {document.get('version')!r} is not supported "
            f"(this program reads version {FORMAT_VERSION})"
        )
    video = document["video"]
    if not isinstance(video, str) or not video:
        raise ValueError("'video' must be the video's file name")
    events = []
    for number, item in enumerate(document["highlights"], start=1):
        label, start, end = str(item["label"]), _seconds(item["start"]), _seconds(item["end"])
        if end < start:
            raise ValueError(
                f"highlight {number} ({label}) ends at {end} before it starts at {start}"
            )
        position = _seconds(item["position"]) if "position" in item else (start + end) / 2
        if not start <= position <= end:
            raise ValueError(f"highlight {number} ({label}) has its position outside its range")
        events.append(TruthEvent(label, start, end, position, int(item.get("half", 1))))
    return Truth(path, video, tuple(events))


def _read_soccernet(path: Path, document: dict[str, Any]) -> Truth:
    events = []
    for number, item in enumerate(document["annotations"], start=1):
        try:
            half, clock = parse_game_time(item["gameTime"])
            # position (ms into the half) is the exact time; gameTime is whole seconds
            seconds = from_milliseconds(int(item["position"])) if "position" in item else clock
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"annotation {number}: {exc}") from None
        events.append(TruthEvent(str(item["label"]), seconds, seconds, seconds, half))
    return Truth(path, None, tuple(events))


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"times are numbers of seconds, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"times must be finite and not negative, got {value!r}")
    return seconds
