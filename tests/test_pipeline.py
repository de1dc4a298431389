"""End to end through the detect pipeline: real ffmpeg, real Lite0, a really trained model."""

from __future__ import annotations

import json
import math
import sqlite3
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from highlights.config import Config, SegmentConfig
from highlights.errors import OutputExistsError
from highlights.outputs.folder import OutputFolder
from highlights.outputs.segments_json import write_segments_json
from highlights.outputs.timelines import TIMELINE_FILES, read_timeline
from highlights.pipeline import (
    RESULTS_DB,
    claim_output_dir,
    run_detect,
    stage_clips,
    stage_timelines,
)
from highlights.segments import Segment
from highlights.synthetic import EVENT_CLASS
from highlights.video import probe
from highlights.windows import WindowScores
from tests.media import make_video


@pytest.fixture(scope="module")
def detection(trained_model: Path, synthetic_match, feature_cache: Path, tmp_path_factory):
    video, events = synthetic_match
    out = tmp_path_factory.mktemp("detect") / "out"
    config = Config(cache_dir=feature_cache)
    result = run_detect(video, trained_model, out, config, [EVENT_CLASS])
    return result, events, out, config


def _overlap(a_start: float, a_end: float, b_start: float, b_end: float) -> float:
    return max(0.0, min(a_end, b_end) - max(a_start, b_start))


def test_every_true_event_is_found(detection) -> None:
    result, events, _, _ = detection
    for event in events:
        assert any(_overlap(event.start, event.end, s.start, s.end) > 0 for s in result.segments), (
            f"event {event} missed; found {result.segments}"
        )


def test_no_highlight_lies_far_from_an_event(detection) -> None:
    result, events, _, _ = detection
    for segment in result.segments:
        assert any(
            _overlap(e.start - 2, e.end + 2, segment.start, segment.end) > 0 for e in events
        ), f"false alarm {segment}"


def test_ranges_stay_inside_the_video(detection) -> None:
    result, *_ = detection
    for segment in result.segments:
        assert 0 <= segment.start < segment.end <= result.video.duration + 1e-6


def test_each_clip_lasts_its_range_within_one_frame(detection) -> None:
    result, *_ = detection
    assert len(result.clips) == len(result.segments) > 0
    for segment, clip in zip(result.segments, result.clips, strict=True):
        info = probe(clip)
        assert abs(info.duration - segment.duration) <= 1 / result.video.fps + 1e-3, clip


def test_reel_report_segments_and_email_are_written(detection) -> None:
    result, _, out, _ = detection
    assert result.reel is not None and result.reel.stat().st_size > 0
    assert result.report is not None and "<svg" in result.report.read_text()
    document = json.loads(result.segments_json.read_text())  # its format: test_segments
    assert [(p["start"], p["end"]) for p in document["predictions"]] == [
        (s.start, s.end) for s in result.segments
    ]
    assert document["video"] == result.video.path.name
    email = (out / "notification.eml").read_text()
    for clip in result.clips:
        assert clip.name in email


def _source_frames(path: Path, rate: Fraction) -> list[tuple[int, int]]:
    timeline = read_timeline(path, rate)  # held: its tracks live only as long as it does
    [track] = [t for t in timeline.tracks if t.kind == "Video"]
    return [
        (int(c.source_range.start_time.value), int(c.source_range.end_time_exclusive().value))
        for c in track.find_clips()
    ]


def _frames_of_clip(start: float, end: float, rate: Fraction) -> tuple[int, int]:
    """Frames floor(start x rate) to ceil(end x rate), excluded: the cut clip's."""
    return math.floor(Fraction(start) * rate), math.ceil(Fraction(end) * rate)


def test_detect_writes_editor_timelines_of_its_segments(detection) -> None:
    result, _, out, _ = detection
    assert sorted(p.name for p in result.timelines) == sorted(TIMELINE_FILES)
    assert set(TIMELINE_FILES) <= set(OutputFolder(out).files())
    rate = result.video.rate
    expected = [_frames_of_clip(s.start, s.end, rate) for s in result.segments]
    for path in result.timelines:
        assert _source_frames(path, rate) == expected, path.name


def test_the_timelines_stage_writes_a_29_97_source_and_removes_them_with_no_highlights(
    tmp_path: Path,
) -> None:
    video = make_video(tmp_path / "ntsc.mp4", 6.0, fps="30000/1001", size=(64, 48))
    out = tmp_path / "out"
    claim_output_dir(out, "match-ntsc")
    made = stage_timelines(video, _segments_file(tmp_path / "a.json", video, [(1, 3)]), [], out)
    assert {p.name for p in made} == set(TIMELINE_FILES)
    for path in made:
        assert _source_frames(path, Fraction(30000, 1001)) == [(29, 90)], path.name  # 29.97, 89.91
    assert "FCM: DROP FRAME" in (out / "highlights.edl").read_text()
    assert stage_timelines(video, _segments_file(tmp_path / "b.json", video, []), [], out) == []
    assert not any((out / name).exists() for name in TIMELINE_FILES)
    assert not set(TIMELINE_FILES) & set(OutputFolder(out).files())


def test_one_results_row_per_window(detection) -> None:
    _, _, out, _ = detection
    with sqlite3.connect(out / RESULTS_DB) as db:
        (rows,) = db.execute("select count(*) from windows").fetchone()
        (distinct,) = db.execute("select count(distinct start_ms) from windows").fetchone()
    assert rows == distinct > 0


def test_rerun_replaces_outputs_without_duplicates(
    detection, trained_model: Path, synthetic_match
) -> None:
    result, _, out, config = detection
    video, _ = synthetic_match
    with sqlite3.connect(out / RESULTS_DB) as db:
        (before,) = db.execute("select count(*) from windows").fetchone()
    again = run_detect(video, trained_model, out, config, [EVENT_CLASS])
    with sqlite3.connect(out / RESULTS_DB) as db:
        (after,) = db.execute("select count(*) from windows").fetchone()
    assert after == before
    assert again.clips == result.clips
    assert sorted((out / "clips").glob("*.mp4")) == sorted(result.clips)
    assert not list(out.rglob("*.partial*"))


def test_a_folder_of_someone_elses_files_is_never_overwritten(
    trained_model: Path, synthetic_match, feature_cache: Path, tmp_path: Path
) -> None:
    video, _ = synthetic_match
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="precious"):
        run_detect(video, trained_model, out, Config(cache_dir=feature_cache), [EVENT_CLASS])
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "mine"


def _segments_file(path: Path, video: Path, ranges: list[tuple[float, float]]) -> Path:
    scores = WindowScores(
        starts=np.array([0.0]),
        ends=np.array([2.0]),
        probabilities=np.array([[0.1, 0.9]]),
        classes=("OpenPlay", EVENT_CLASS),
    )
    segments = [Segment(start, end, 0.9, EVENT_CLASS) for start, end in ranges]
    return write_segments_json(path, video, 30.0, segments, scores, [EVENT_CLASS], SegmentConfig())


def test_stages_run_on_their_own_replace_only_their_own_clips(
    synthetic_match, tmp_path: Path
) -> None:
    # The Airflow local DAG runs each stage straight into a claimed folder, with no staging.
    video, _ = synthetic_match
    out = tmp_path / "out"
    claim_output_dir(out, "match-1")
    (out / "clips" / "clip-001").mkdir(parents=True)
    (out / "clips" / "clip-002_mine.mp4").write_text("mine")
    first = stage_clips(video, _segments_file(tmp_path / "a.json", video, [(1, 3), (5, 7)]),
                        out, Config())  # fmt: skip
    second = stage_clips(video, _segments_file(tmp_path / "b.json", video, [(10, 12)]),
                         out, Config())  # fmt: skip
    ours = {p.relative_to(out).as_posix() for c in second for p in (c, c.with_suffix(".jpg"))}
    left = {p.relative_to(out).as_posix() for p in (out / "clips").iterdir()}
    assert left == {"clips/clip-001", "clips/clip-002_mine.mp4", *ours}
    assert not any(clip.exists() for clip in first)
    assert set(OutputFolder(out).files()) == ours
