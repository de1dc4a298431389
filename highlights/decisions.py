"""From window scores to decisions: the ranges, one stored record per window, and segments.json.

Every runner (the CLI's pipeline, the SageMaker scoring job, the Airflow DAG) decides through
`decide`, so the three can never disagree about what counts as a highlight.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from highlights.config import SegmentConfig
from highlights.results import ResultsStore, window_records
from highlights.segments import Segment, find_segments, write_segments_json
from highlights.windows import WindowScores


def decide(
    scores: WindowScores,
    targets: Sequence[str],
    policy: SegmentConfig,
    duration: float,
    segments_path: Path,
    *,
    video_name: str,
    match_id: str | None = None,
    store: ResultsStore | None = None,
    model: Mapping[str, Any] | None = None,
) -> list[Segment]:
    """Find the ranges, record every window in `store` (if given), write `segments_path`."""
    segments = find_segments(scores, targets, policy, duration)
    if store is not None:
        if match_id is None:
            raise ValueError("a match id is needed to record windows")
        store.put(window_records(match_id, scores, segments))
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
