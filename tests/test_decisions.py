from pathlib import Path

import numpy as np
import pytest

from highlights.config import SegmentConfig
from highlights.decisions import decide
from highlights.local.sqlite import SQLiteResults
from highlights.outputs.segments_json import read_segments_json
from highlights.windows import WindowScores


def _scores() -> WindowScores:
    goal = np.array([0.1, 0.2, 0.9, 0.95, 0.3, 0.1, 0.1, 0.2, 0.1], dtype=np.float32)
    return WindowScores(
        starts=np.arange(9, dtype=np.float64),
        ends=np.arange(9, dtype=np.float64) + 2,
        probabilities=np.stack([1 - goal, goal], axis=1),
        classes=("Other", "Goal"),
    )


def test_decide_returns_records_and_writes_the_same_ranges(tmp_path: Path) -> None:
    store = SQLiteResults(tmp_path / "results.sqlite")
    segments = decide(
        _scores(), ["Goal"], SegmentConfig(buffer=1.0), 10.0, tmp_path / "segments.json",
        video_name="match.mp4", match_id="m1", store=store,
    )  # fmt: skip
    assert [(s.start, s.end) for s in segments] == [(1.0, 6.0)]
    assert read_segments_json(tmp_path / "segments.json").segments == segments
    records = store.get("m1")
    assert len(records) == 9
    # windows overlapping 1-6 s are picked; the one starting at 6 s only touches it
    assert [r.picked for r in records] == [True] * 6 + [False] * 3


def test_recording_needs_a_match_id(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="match id"):
        decide(
            _scores(), ["Goal"], SegmentConfig(), 7.0, tmp_path / "s.json",
            video_name="m.mp4", store=SQLiteResults(tmp_path / "r.sqlite"),
        )  # fmt: skip
