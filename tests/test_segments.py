"""Specification of how window scores become highlight ranges, and of segments.json."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from highlights.config import SegmentConfig
from highlights.damage import DecodeDamage, TimeRange
from highlights.errors import ConfigError, InputError
from highlights.outputs.segments_json import read_segments_json, write_segments_json
from highlights.segments import Segment, find_segments, game_time
from highlights.windows import WindowScores

CLASSES = ("Background", "SoccerPenalty", "Basketball")


def sliding(
    scores_per_window: list[list[float]], length: float = 2.0, stride: float = 1.0
) -> WindowScores:
    """Windows as the pipeline makes them: `length` s long, every `stride` s."""
    starts = np.arange(len(scores_per_window)) * stride
    return WindowScores(
        starts=starts.astype(np.float64),
        ends=(starts + length).astype(np.float64),
        probabilities=np.array(scores_per_window, dtype=np.float32).reshape(-1, len(CLASSES)),
        classes=CLASSES,
    )


def penalty(values: list[float]) -> WindowScores:
    """Windows whose SoccerPenalty score is given; the rest of the probability is background."""
    return sliding([[1 - v, v, 0.0] for v in values])


NO_PAD = SegmentConfig(threshold=0.5, buffer=0.0)


# --- examples: the seed's intent -------------------------------------------------------------


def test_adjacent_passing_windows_merge_into_one_range() -> None:
    scores = penalty([0.1, 0.1, 0.1, 0.9, 0.8, 0.7, 0.1, 0.1, 0.1, 0.1])
    assert find_segments(scores, ["SoccerPenalty"], NO_PAD, 11.0) == [
        Segment(3.0, 7.0, pytest.approx(0.9), "SoccerPenalty")
    ]


def test_ranges_are_padded_by_one_second_by_default() -> None:
    scores = penalty([0.1, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1, 0.1])
    [segment] = find_segments(scores, ["SoccerPenalty"], SegmentConfig(), 9.0)
    assert (segment.start, segment.end) == (2.0, 6.0)


def test_padding_is_clamped_to_the_video() -> None:
    scores = penalty([0.9, 0.1, 0.1, 0.9])
    segments = find_segments(scores, ["SoccerPenalty"], SegmentConfig(buffer=3.0), 5.0)
    assert [(s.start, s.end) for s in segments] == [(0.0, 5.0)]


def test_separate_events_stay_separate() -> None:
    scores = penalty([0.9, 0.1, 0.1, 0.1, 0.1, 0.9, 0.1])
    segments = find_segments(scores, ["SoccerPenalty"], NO_PAD, 8.0)
    assert [(s.start, s.end) for s in segments] == [(0.0, 2.0), (5.0, 7.0)]


def test_ranges_closer_than_merge_gap_are_joined() -> None:
    scores = penalty([0.9, 0.1, 0.1, 0.1, 0.1, 0.9, 0.1])
    policy = SegmentConfig(threshold=0.5, buffer=0.0, merge_gap=3.5)
    segments = find_segments(scores, ["SoccerPenalty"], policy, 8.0)
    assert [(s.start, s.end) for s in segments] == [(0.0, 7.0)]


def test_ranges_shorter_than_min_length_are_dropped() -> None:
    scores = penalty([0.9, 0.1, 0.1, 0.1, 0.9, 0.9, 0.9, 0.1])
    policy = SegmentConfig(threshold=0.5, buffer=0.0, min_length=3.0)
    segments = find_segments(scores, ["SoccerPenalty"], policy, 9.0)
    assert [(s.start, s.end) for s in segments] == [(4.0, 8.0)]


def test_hysteresis_continues_a_run_above_the_low_threshold() -> None:
    scores = penalty([0.1, 0.1, 0.1, 0.9, 0.4, 0.4, 0.1, 0.1, 0.1, 0.1])
    policy = SegmentConfig(threshold=0.8, low_threshold=0.3, buffer=0.0)
    segments = find_segments(scores, ["SoccerPenalty"], policy, 11.0)
    assert [(s.start, s.end) for s in segments] == [(3.0, 7.0)]


def test_hysteresis_never_starts_a_run_below_the_threshold() -> None:
    scores = penalty([0.4, 0.4, 0.4, 0.4])
    policy = SegmentConfig(threshold=0.8, low_threshold=0.3, buffer=0.0)
    assert find_segments(scores, ["SoccerPenalty"], policy, 5.0) == []


def test_score_of_a_window_is_its_best_target_class_and_labels_the_range() -> None:
    scores = sliding([[0.9, 0.05, 0.05], [0.2, 0.6, 0.2], [0.1, 0.2, 0.7], [0.9, 0.05, 0.05]])
    [segment] = find_segments(scores, ["SoccerPenalty", "Basketball"], NO_PAD, 5.0)
    assert (segment.start, segment.end) == (1.0, 4.0)
    assert segment.score == pytest.approx(0.7)
    assert segment.label == "Basketball"


def test_an_unknown_target_class_names_the_models_classes() -> None:
    with pytest.raises(ConfigError, match="'Goal'.*Background, SoccerPenalty, Basketball"):
        find_segments(penalty([0.9]), ["Goal"], NO_PAD, 2.0)


def test_no_windows_give_no_segments() -> None:
    assert find_segments(penalty([]), ["SoccerPenalty"], SegmentConfig(), 0.0) == []


# --- properties -------------------------------------------------------------------------------


@st.composite
def scored_windows(draw: st.DrawFn) -> tuple[WindowScores, float]:
    """Arbitrary windows inside [0, duration], in any order, with arbitrary class scores."""
    duration = draw(st.floats(1.0, 600.0))
    count = draw(st.integers(0, 40))
    unit = st.floats(0.0, 1.0, width=32)
    starts = draw(arrays(np.float64, count, elements=unit)) * duration * 0.99
    lengths = 0.01 + draw(arrays(np.float64, count, elements=unit)) * (duration - starts - 0.01)
    ends = np.minimum(starts + lengths, duration)  # float rounding may overshoot by one ulp
    probs = draw(arrays(np.float32, (count, 3), elements=unit))
    return WindowScores(starts=starts, ends=ends, probabilities=probs, classes=CLASSES), duration


policies = st.builds(
    SegmentConfig,
    threshold=st.floats(0.0, 1.0),
    buffer=st.floats(0.0, 5.0),
    min_length=st.floats(0.0, 10.0),
    merge_gap=st.floats(0.0, 10.0),
)
TARGETS = ["SoccerPenalty", "Basketball"]


@given(scored_windows(), policies)
def test_ranges_are_sorted_and_never_overlap(
    windows: tuple[WindowScores, float], policy: SegmentConfig
) -> None:
    scores, duration = windows
    segments = find_segments(scores, TARGETS, policy, duration)
    for earlier, later in zip(segments, segments[1:], strict=False):
        assert earlier.end < later.start
        assert later.start - earlier.end >= policy.merge_gap


@given(scored_windows(), policies)
def test_ranges_never_leave_the_video(
    windows: tuple[WindowScores, float], policy: SegmentConfig
) -> None:
    scores, duration = windows
    for segment in find_segments(scores, TARGETS, policy, duration):
        assert 0.0 <= segment.start < segment.end <= duration
        assert segment.duration >= policy.min_length


@given(scored_windows(), st.floats(0.0, 1.0), st.floats(0.0, 5.0), st.floats(0.0, 10.0))
def test_every_passing_window_is_covered(
    windows: tuple[WindowScores, float], threshold: float, buffer: float, merge_gap: float
) -> None:
    scores, duration = windows
    policy = SegmentConfig(threshold=threshold, buffer=buffer, merge_gap=merge_gap)
    segments = find_segments(scores, TARGETS, policy, duration)
    best = scores.probabilities[:, 1:].astype(np.float64).max(axis=1)  # compared exactly
    for start, end in zip(
        scores.starts[best >= threshold], scores.ends[best >= threshold], strict=True
    ):
        assert any(s.start <= start and end <= s.end for s in segments)


@given(scored_windows(), st.floats(0.0, 1.0), st.floats(0.1, 1.0))
def test_hysteresis_covers_every_window_above_the_high_threshold(
    windows: tuple[WindowScores, float], threshold: float, low_fraction: float
) -> None:
    scores, duration = windows
    policy = SegmentConfig(threshold=threshold, low_threshold=threshold * low_fraction, buffer=0.0)
    segments = find_segments(scores, TARGETS, policy, duration)
    best = scores.probabilities[:, 1:].astype(np.float64).max(axis=1)  # compared exactly
    for start, end in zip(
        scores.starts[best >= threshold], scores.ends[best >= threshold], strict=True
    ):
        assert any(s.start <= start and end <= s.end for s in segments)


@given(scored_windows(), policies)
def test_segment_score_and_label_come_from_a_window_inside_it(
    windows: tuple[WindowScores, float], policy: SegmentConfig
) -> None:
    scores, duration = windows
    for segment in find_segments(scores, TARGETS, policy, duration):
        column = scores.probabilities[:, CLASSES.index(segment.label)]
        inside = (scores.starts < segment.end) & (scores.ends > segment.start)
        assert segment.score >= policy.threshold
        assert np.any(np.isclose(column[inside], segment.score))


@given(scored_windows(), policies)
def test_finding_segments_again_in_the_found_segments_changes_nothing(
    windows: tuple[WindowScores, float], policy: SegmentConfig
) -> None:
    scores, duration = windows
    first = find_segments(scores, TARGETS, policy, duration)
    assert find_segments(scores, TARGETS, policy, duration) == first
    as_windows = WindowScores(
        starts=np.array([s.start for s in first], dtype=np.float64),
        ends=np.array([s.end for s in first], dtype=np.float64),
        probabilities=np.array(
            [
                [0.0, s.score, 0.0] if s.label == "SoccerPenalty" else [0.0, 0.0, s.score]
                for s in first
            ],
            dtype=np.float64,
        ).reshape(len(first), 3),
        classes=CLASSES,
    )
    again = find_segments(as_windows, TARGETS, SegmentConfig(threshold=0.0, buffer=0.0), duration)
    assert again == first


# --- segments.json ----------------------------------------------------------------------------


def write_example(path: Path) -> tuple[list[Segment], WindowScores]:
    scores = penalty([0.1, 0.1, 0.1, 0.9, 0.8, 0.7, 0.1, 0.1, 0.1, 0.1] * 8)
    segments = find_segments(scores, ["SoccerPenalty"], SegmentConfig(), 81.0)
    write_segments_json(
        path,
        video="match.mp4",
        duration=81.0,
        segments=segments,
        scores=scores,
        targets=["SoccerPenalty"],
        policy=SegmentConfig(),
        model={"backbone": "efficientnet_lite0", "classes": list(CLASSES)},
    )
    return segments, scores


def test_segments_json_round_trips(tmp_path: Path) -> None:
    segments, scores = write_example(tmp_path / "segments.json")
    document = read_segments_json(tmp_path / "segments.json")
    assert document.segments == segments
    assert document.video == "match.mp4"
    assert document.duration == 81.0
    assert document.targets == ("SoccerPenalty",)
    assert document.policy == SegmentConfig()
    assert document.model["backbone"] == "efficientnet_lite0"
    np.testing.assert_allclose(document.scores.probabilities, scores.probabilities, atol=1e-6)
    np.testing.assert_array_equal(document.scores.starts, scores.starts)


def test_segments_json_predictions_follow_soccernet(tmp_path: Path) -> None:
    write_example(tmp_path / "segments.json")
    prediction = json.loads((tmp_path / "segments.json").read_text())["predictions"][7]
    # the 8th event peaks in the window 73-75 s; its range is 72-78 s after 1 s padding
    assert prediction == {
        "half": 1,
        "gameTime": "1 - 01:14",
        "label": "SoccerPenalty",
        "position": 74000,
        "confidence": pytest.approx(0.9),
        "start_ms": 72000,
        "end_ms": 78000,
        "start": 72.0,
        "end": 78.0,
    }


def test_segments_json_keeps_every_window_score(tmp_path: Path) -> None:
    write_example(tmp_path / "segments.json")
    windows = json.loads((tmp_path / "segments.json").read_text())["windows"]
    assert len(windows) == 80
    assert windows[3] == {
        "start_ms": 3000,
        "end_ms": 5000,
        "start": 3.0,
        "end": 5.0,
        "scores": {"Background": pytest.approx(0.1), "SoccerPenalty": 0.9, "Basketball": 0.0},
        "damaged": 0.0,
    }


def damaged_example(path: Path) -> WindowScores:
    """Ten windows; frames 16.9-17.1 s could not be decoded, so windows 15 and 16 are damaged."""
    whole = penalty([0.1] * 20)
    damaged = np.zeros(20, dtype=np.float32)
    damaged[[15, 16]] = [0.1, 0.2]
    scores = dataclasses.replace(
        whole,
        damaged=damaged,
        damage=DecodeDamage(100, 3, (TimeRange(16.9169, 17.1171),)),
    )
    write_segments_json(
        path, "match.mp4", 21.0, [], scores, ["SoccerPenalty"], SegmentConfig()
    )
    return scores


def test_segments_json_records_what_could_not_be_decoded(tmp_path: Path) -> None:
    damaged_example(tmp_path / "segments.json")
    document = json.loads((tmp_path / "segments.json").read_text())
    assert document["damage"] == {
        "sampled_frames": 100,
        "damaged_frames": 3,
        "share": 0.03,
        "ranges": [{"start_ms": 16917, "end_ms": 17117, "start": 16.9169, "end": 17.1171}],
    }
    assert [w["damaged"] for w in document["windows"]][14:18] == [0.0, 0.1, 0.2, 0.0]


def test_damage_round_trips_through_segments_json(tmp_path: Path) -> None:
    scores = damaged_example(tmp_path / "segments.json")
    read = read_segments_json(tmp_path / "segments.json").scores
    assert read.damage == scores.damage
    np.testing.assert_allclose(read.damaged, scores.damaged)


def test_segments_json_without_damage_reads_as_undamaged(tmp_path: Path) -> None:
    """Files written before damage was recorded came from videos that decoded cleanly."""
    write_example(tmp_path / "segments.json")
    document = json.loads((tmp_path / "segments.json").read_text())
    del document["damage"]
    for window in document["windows"]:
        del window["damaged"]
    (tmp_path / "segments.json").write_text(json.dumps(document))
    read = read_segments_json(tmp_path / "segments.json").scores
    assert not read.damage and not read.damaged.any()


def test_game_time_counts_minutes_past_the_hour() -> None:
    assert game_time(5712.4) == "95:12"


def test_rewriting_segments_json_leaves_no_temporary_files(tmp_path: Path) -> None:
    write_example(tmp_path / "segments.json")
    write_example(tmp_path / "segments.json")
    assert [p.name for p in tmp_path.iterdir()] == ["segments.json"]


def test_a_missing_segments_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nothere.json: segments file not found"):
        read_segments_json(tmp_path / "nothere.json")


def test_a_file_that_is_not_json_is_named(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{ not json")
    with pytest.raises(InputError, match="bad.json: not a readable segments JSON"):
        read_segments_json(tmp_path / "bad.json")


def test_json_of_another_kind_is_refused(tmp_path: Path) -> None:
    (tmp_path / "other.json").write_text('{"predictions": []}')
    with pytest.raises(InputError, match="other.json: not a sports-highlights/segments file"):
        read_segments_json(tmp_path / "other.json")


def test_a_truncated_document_is_named(tmp_path: Path) -> None:
    write_example(tmp_path / "segments.json")
    document = json.loads((tmp_path / "segments.json").read_text())
    del document["windows"]
    (tmp_path / "segments.json").write_text(json.dumps(document))
    with pytest.raises(InputError, match="segments.json: malformed segments file.*windows"):
        read_segments_json(tmp_path / "segments.json")


@settings(max_examples=25)
@given(scored_windows(), policies)
def test_any_result_survives_the_json_round_trip(
    tmp_path_factory: pytest.TempPathFactory,
    windows: tuple[WindowScores, float],
    policy: SegmentConfig,
) -> None:
    scores, duration = windows
    segments = find_segments(scores, TARGETS, policy, duration)
    path = tmp_path_factory.mktemp("json") / "segments.json"
    write_segments_json(path, "v.mp4", duration, segments, scores, TARGETS, policy)
    assert read_segments_json(path).segments == segments
