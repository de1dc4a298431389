"""Per-window results of a match: one record per window, kept in SQLite locally
(`highlights.local.sqlite`) or DynamoDB on AWS (`highlights.aws.dynamodb`).

Both stores key a record by (match_id, start_ms), so writing the same match again updates its
windows in place instead of adding copies. Times are stored as whole milliseconds.

`replace_match` makes a set of records the match's whole set: windows of an earlier run that
the new one does not have (another window stride, say) are deleted. SQLite does that in one
transaction. DynamoDB has no atomicity across more items than one TransactWriteItems call takes
(100), and a match has thousands of windows: there the new items are written first (batched,
unprocessed items retried), then the stale ones deleted, so a reader may briefly see the union
of both sets, and a run that dies in between leaves stale windows until the next run removes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from highlights.segments import Segment
from highlights.timecode import from_milliseconds, milliseconds
from highlights.windows import WindowScores


@dataclass(frozen=True)
class WindowRecord:
    """One scored window of one match, and whether it lies in a detected highlight."""

    match_id: str
    start: float  # seconds
    end: float  # seconds
    scores: dict[str, float]  # class name -> probability
    picked: bool
    damaged: float = 0.0  # share of the window's frames that could not be decoded

    @property
    def start_ms(self) -> int:
        return milliseconds(self.start)

    @property
    def end_ms(self) -> int:
        return milliseconds(self.end)


def window_records(
    match_id: str, scores: WindowScores, segments: Sequence[Segment]
) -> list[WindowRecord]:
    """A record for every window; `picked` when the window overlaps any segment."""
    records = []
    for i in range(len(scores)):
        start, end = float(scores.starts[i]), float(scores.ends[i])
        records.append(
            WindowRecord(
                match_id=match_id,
                start=start,
                end=end,
                scores={
                    c: float(p)
                    for c, p in zip(scores.classes, scores.probabilities[i], strict=True)
                },
                picked=any(s.start < end and start < s.end for s in segments),
                damaged=float(scores.damaged[i]),
            )
        )
    return records


class ResultsStore(Protocol):
    def put(self, records: Sequence[WindowRecord]) -> None:
        """Insert or replace records, keyed by (match_id, start_ms)."""

    def replace_match(self, match_id: str, records: Sequence[WindowRecord]) -> None:
        """Make `records` the match's whole set: its other windows are deleted."""

    def get(self, match_id: str) -> list[WindowRecord]:
        """All records of a match, in start order."""


def check_one_match(match_id: str, records: Sequence[WindowRecord]) -> None:
    others = sorted({r.match_id for r in records} - {match_id})
    if others:
        raise ValueError(f"records of matches {others} given as the set of match {match_id!r}")


def record_from_row(
    match_id: str,
    start_ms: int,
    end_ms: int,
    scores: dict[str, Any],
    picked: bool,
    damaged: Any = 0.0,
) -> WindowRecord:
    return WindowRecord(
        match_id=match_id,
        start=from_milliseconds(start_ms),
        end=from_milliseconds(end_ms),
        scores={name: float(value) for name, value in scores.items()},
        picked=bool(picked),
        damaged=float(damaged),
    )
