"""From window scores to decisions: the ranges, one stored record per window, and segments.json.

Every runner (the CLI's pipeline, the SageMaker scoring job, the Airflow DAG) decides through
`decide`, so the three can never disagree about what counts as a highlight.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from highlights.outputs.segments_json import write_segments_json
from highlights.results import ResultsStore, window_records
from highlights.segments import Policy, Segment, find_segments
from highlights.windows import WindowScores


def decide(
    scores: WindowScores,
    targets: Sequence[str],
    policy: Policy,
    duration: float,
    segments_path: Path,
    *,
    video_name: str,
    match_id: str | None = None,
    store: ResultsStore | None = None,
    model: Mapping[str, Any] | None = None,
) -> list[Segment]:
    """Find the ranges, make every window the match's record set in `store` (if given; windows
    of an earlier run are replaced, not added to), write `segments_path`."""
    segments = find_segments(scores, targets, policy, duration)
    if store is not None:
        if match_id is None:
            raise ValueError("a match id is needed to record windows")
        record_windows(store, match_id, scores, segments)
    write_segments_json(
        segments_path,
        video=video_name,
        duration=duration,
        segments=segments,
        scores=scores,
        targets=targets,
        policy=policy,
        model=model,
    )
    return segments


def record_windows(
    store: ResultsStore, match_id: str, scores: WindowScores, segments: Sequence[Segment]
) -> None:
    """Make every window of `scores` the match's record set in `store` (earlier windows of the
    match that are not among them are deleted)."""
    store.replace_match(match_id, window_records(match_id, scores, segments))
