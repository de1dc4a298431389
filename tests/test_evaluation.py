"""Specification of `highlights evaluate`: ground truth files, segment and spotting metrics.

Every expected number here was worked out by hand from the definitions in the module docstring
(the arithmetic is in the comments), not by running the code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from highlights.cli import main
from highlights.config import SegmentConfig
from highlights.errors import InputError
from highlights.evaluation import (
    Game,
    Prediction,
    evaluate_games,
    segment_scores,
    spotting_score,
    temporal_iou,
)
from highlights.outputs.segments_json import write_segments_json
from highlights.segments import find_segments
from highlights.truth import TruthEvent, parse_game_time, read_truth
from highlights.windows import WindowScores


def truth(label: str, start: float, end: float, half: int = 1) -> TruthEvent:
    return TruthEvent(label, start, end, (start + end) / 2, half)


def spot(label: str, at: float, half: int = 1) -> TruthEvent:
    return TruthEvent(label, at, at, at, half)


def pred(
    label: str, start: float, end: float, confidence: float, at: float | None = None
) -> Prediction:
    return Prediction(label, start, end, (start + end) / 2 if at is None else at, confidence)


# --- temporal IoU and segment matching -------------------------------------------------------


def test_temporal_iou_of_hand_made_ranges() -> None:
    assert temporal_iou(0, 10, 2, 10) == pytest.approx(0.8)  # 8 / 10
    assert temporal_iou(0, 10, 5, 15) == pytest.approx(5 / 15)
    assert temporal_iou(0, 10, 10, 20) == 0.0  # touching ranges share nothing
    assert temporal_iou(0, 10, 30, 40) == 0.0


GAME = Game(
    "match.mp4",
    truth=(truth("Tennis", 0, 10), truth("Tennis", 20, 30)),
    predictions=(
        pred("Tennis", 2, 10, 0.9),  # IoU 8/10 = 0.8 with the first
        pred("Tennis", 20, 24, 0.8),  # IoU 4/10 = 0.4 with the second
        pred("Tennis", 40, 45, 0.7),  # overlaps nothing
    ),
)


def test_segment_counts_at_a_loose_threshold() -> None:
    score = segment_scores([GAME], "Tennis", 0.3)
    # both truth ranges found (0.8 and 0.4 >= 0.3), one false alarm
    assert (score.true_positives, score.false_positives, score.false_negatives) == (2, 1, 0)
    assert score.precision == pytest.approx(2 / 3)
    assert score.recall == 1.0
    assert score.f1 == pytest.approx(0.8)  # 2 * (2/3) * 1 / (2/3 + 1)
    assert score.mean_iou == pytest.approx(0.6)  # (0.8 + 0.4) / 2


def test_segment_counts_at_a_strict_threshold() -> None:
    score = segment_scores([GAME], "Tennis", 0.5)
    # only the 0.8 pair passes: 1 hit, 2 false alarms, 1 miss
    assert (score.true_positives, score.false_positives, score.false_negatives) == (1, 2, 1)
    assert score.precision == pytest.approx(1 / 3)
    assert score.recall == pytest.approx(1 / 2)
    assert score.f1 == pytest.approx(0.4)  # 2 * (1/3)(1/2) / (5/6)
    assert score.mean_iou == pytest.approx(0.8)


def test_the_more_confident_prediction_takes_a_truth_range_first() -> None:
    game = Game(
        "m",
        truth=(truth("A", 0, 10),),
        predictions=(pred("A", 0, 6, 0.6), pred("A", 0, 9, 0.95)),
    )
    score = segment_scores([game], "A", 0.5)
    # the 0.95 prediction (IoU 0.9) takes the range; the 0.6 one (IoU 0.6) is then a false alarm
    assert (score.true_positives, score.false_positives) == (1, 1)
    assert score.mean_iou == pytest.approx(0.9)


def test_a_prediction_of_another_class_never_matches() -> None:
    game = Game("m", truth=(truth("A", 0, 10),), predictions=(pred("B", 0, 10, 0.9),))
    assert segment_scores([game], "A", 0.1).false_negatives == 1
    assert segment_scores([game], "B", 0.1).false_positives == 1
    both = segment_scores([game], None, 0.1)
    assert (both.true_positives, both.false_positives, both.false_negatives) == (0, 1, 1)


def test_no_predictions_and_no_truth_scores_zero_not_an_error() -> None:
    score = segment_scores([Game("m", (), ())], "A", 0.5)
    assert (score.precision, score.recall, score.f1, score.mean_iou) == (0.0, 0.0, 0.0, None)


# --- SoccerNet spotting --------------------------------------------------------------------


def test_average_precision_of_a_false_alarm_above_a_hit() -> None:
    game = Game(
        "m",
        truth=(spot("Goal", 10.0),),
        predictions=(pred("Goal", 29, 31, 0.9, at=30.0), pred("Goal", 9, 11, 0.6, at=10.0)),
    )
    score = spotting_score([game], ["Goal"], [1.0])
    # confidence thresholds <= 0.6: 2 predictions, 1 hit: P 0.5, R 1; above 0.6: R 0.
    # 11-point interpolation: every recall point's best precision is 0.5.
    assert score.average_map == pytest.approx(0.5)


def test_tight_average_map_integrates_over_the_tolerances() -> None:
    game = Game("m", truth=(spot("Goal", 10.0),), predictions=(pred("Goal", 11, 12, 0.9, at=11.5),))
    score = spotting_score([game], ["Goal"], [1.0, 2.0, 3.0, 4.0, 5.0])
    # On SoccerNet's 2 frames/s grid the truth is frame 20, the prediction frame 23: a hit when
    # 3 <= delta/2 with delta = 2 x tolerance frames, i.e. tolerances 3, 4 and 5 s.
    assert score.map_per_tolerance == (0.0, 0.0, 1.0, 1.0, 1.0)
    # trapezoids: (0+0)/2 + (0+1)/2 + (1+1)/2 + (1+1)/2 = 2.5, over 4 steps
    assert score.average_map == pytest.approx(0.625)


def test_a_truth_spot_takes_only_one_prediction() -> None:
    game = Game(
        "m",
        truth=(spot("Goal", 10.0),),
        predictions=(pred("Goal", 9, 11, 0.8, at=10.0), pred("Goal", 9, 11, 0.7, at=10.5)),
    )
    score = spotting_score([game], ["Goal"], [5.0])
    # thresholds <= 0.7: 2 predictions, 1 hit (the 0.8 one): P 0.5, R 1; (0.7, 0.8]: P 1, R 1
    assert score.average_map == pytest.approx(1.0)
    game_low_first = Game("m", game.truth, tuple(reversed(game.predictions)))
    assert spotting_score([game_low_first], ["Goal"], [5.0]).average_map == pytest.approx(1.0)


def test_spots_in_the_other_half_never_match() -> None:
    game = Game(
        "m",
        truth=(spot("Goal", 10.0, half=2),),
        predictions=(pred("Goal", 9, 11, 0.9, at=10.0),),  # half 1
    )
    assert spotting_score([game], ["Goal"], [5.0]).average_map == 0.0


def test_map_is_the_mean_over_the_truths_classes() -> None:
    game = Game(
        "m",
        truth=(spot("Goal", 10.0), spot("Corner", 50.0)),
        predictions=(pred("Goal", 9, 11, 0.9, at=10.0),),
    )
    score = spotting_score([game], ["Corner", "Goal"], [5.0])
    assert score.average_ap_per_class == {"Corner": 0.0, "Goal": 1.0}
    assert score.average_map == pytest.approx(0.5)


def test_evaluate_games_reports_every_class_and_all() -> None:
    report = evaluate_games([GAME])
    assert report.classes == ("Tennis",)
    assert set(report.segments) == {"Tennis", "all"}
    assert [s.iou_threshold for s in report.segments["all"]] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    assert report.spotting["tight"].tolerances == (1.0, 2.0, 3.0, 4.0, 5.0)
    assert report.spotting["loose"].tolerances == tuple(float(s) for s in range(5, 65, 5))


# --- ground truth files --------------------------------------------------------------------


def test_soccernet_game_time_is_half_and_clock() -> None:
    assert parse_game_time("1 - 05:23") == (1, 323.0)
    assert parse_game_time("2 - 45:12") == (2, 2712.0)
    assert parse_game_time("2 - 101:07") == (2, 6067.0)
    with pytest.raises(ValueError, match="not 'H - MM:SS'"):
        parse_game_time("05:23")


def test_soccernet_labels_are_read_as_spots_of_their_half(tmp_path: Path) -> None:
    labels = {
        "UrlLocal": "england_epl/2014-2015/2015-02-21 - 18-00 Chelsea 1 - 1 Burnley/",
        "annotations": [
            {
                "gameTime": "1 - 00:55",
                "label": "Goal",
                "position": "55500",
                "team": "home",
                "visibility": "visible",
            },
            {
                "gameTime": "2 - 45:12",
                "label": "Corner",
                "position": "2712345",
                "team": "away",
                "visibility": "not shown",
            },
        ],
    }
    (tmp_path / "Labels-v2.json").write_text(json.dumps(labels))
    events = read_truth(tmp_path / "Labels-v2.json").events
    assert events == (
        TruthEvent("Goal", 55.5, 55.5, 55.5, 1),
        TruthEvent("Corner", 2712.345, 2712.345, 2712.345, 2),
    )
    assert all(e.is_point for e in events)


def test_our_truth_file_gives_ranges_spotted_at_their_centre(tmp_path: Path) -> None:
    path = write_truth(tmp_path / "truth.json", "match.mp4", [("Tennis", 3.0, 8.0)])
    (event,) = read_truth(path).events
    assert event == TruthEvent("Tennis", 3.0, 8.0, 5.5, 1)


@pytest.mark.parametrize(
    ("highlights", "message"),
    [
        ([{"label": "A", "start": 5, "end": 2}], "ends at 2.0 before it starts"),
        ([{"label": "A", "start": -1, "end": 2}], "finite and not negative"),
        ([{"label": "A", "start": "0:05", "end": 9}], "numbers of seconds"),
        ([{"label": "A", "end": 9}], "KeyError"),
    ],
)
def test_a_bad_truth_file_is_named_with_its_problem(
    tmp_path: Path, highlights: list, message: str
) -> None:
    path = tmp_path / "truth.json"
    path.write_text(
        json.dumps(
            {
                "format": "sports-highlights/truth",
                "version": 1,
                "video": "m.mp4",
                "highlights": highlights,
            }
        )
    )
    with pytest.raises(InputError, match=f"truth.json: .*{message}"):
        read_truth(path)


def test_a_json_file_that_is_no_truth_is_refused(tmp_path: Path) -> None:
    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(InputError, match="other.json: not a ground truth file"):
        read_truth(tmp_path / "other.json")


# --- the command ---------------------------------------------------------------------------


def write_truth(path: Path, video: str, ranges: list[tuple[str, float, float]]) -> Path:
    path.write_text(
        json.dumps(
            {
                "format": "sports-highlights/truth",
                "version": 1,
                "video": video,
                "highlights": [{"label": c, "start": s, "end": e} for c, s, e in ranges],
            }
        )
    )
    return path


def write_detections(path: Path, video: str, tennis: list[float], duration: float) -> Path:
    """A segments.json as detect writes it, from 2 s windows every 1 s with these Tennis scores."""
    starts = np.arange(len(tennis), dtype=np.float64)
    scores = WindowScores(
        starts=starts,
        ends=starts + 2.0,
        probabilities=np.array([[1 - v, v] for v in tennis], dtype=np.float32),
        classes=("Background", "Tennis"),
    )
    policy = SegmentConfig(threshold=0.5, buffer=0.0)
    segments = find_segments(scores, ["Tennis"], policy, duration)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_segments_json(path, video, duration, segments, scores, ["Tennis"], policy)
    return path


def test_evaluate_command_prints_a_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth_path = write_truth(tmp_path / "truth.json", "match.mp4", [("Tennis", 2.0, 6.0)])
    # windows 2-5 pass: 2-4 .. 5-7, one range 2-7 (IoU 4/5 = 0.8 with 2-6)
    detections = write_detections(
        tmp_path / "out" / "segments.json", "match.mp4", [0, 0, 0.9, 0.9, 0.8, 0.7, 0.1, 0.1], 9.0
    )
    out = tmp_path / "evaluation.json"
    assert main(["evaluate", str(truth_path), str(detections), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Tennis" in printed and "average-mAP" in printed
    document = json.loads(out.read_text())
    at_07 = document["segments"]["Tennis"][-1]
    assert at_07["iou_threshold"] == 0.7
    assert (at_07["true_positives"], at_07["false_positives"], at_07["false_negatives"]) == (
        1,
        0,
        0,
    )
    assert at_07["mean_iou"] == pytest.approx(0.8)


def test_evaluate_pairs_a_folder_of_detections_by_video_name(tmp_path: Path) -> None:
    (tmp_path / "truth").mkdir()
    write_truth(tmp_path / "truth" / "a.json", "a.mp4", [("Tennis", 0.0, 3.0)])
    write_truth(tmp_path / "truth" / "b.json", "b.mp4", [("Tennis", 4.0, 7.0)])
    write_detections(
        tmp_path / "det" / "b" / "segments.json", "b.mp4", [0, 0, 0, 0, 0.9, 0.9, 0, 0], 9
    )
    write_detections(
        tmp_path / "det" / "a" / "segments.json", "a.mp4", [0.9, 0.9, 0, 0, 0, 0, 0, 0], 9
    )
    out = tmp_path / "evaluation.json"
    assert (
        main(["evaluate", str(tmp_path / "truth"), str(tmp_path / "det"), "--out", str(out), "-q"])
        == 0
    )
    document = json.loads(out.read_text())
    assert sorted(document["games"]) == ["a.mp4", "b.mp4"]
    # a: 0-3 found exactly; b: detected 4-7, truth 4-7
    assert document["segments"]["all"][-1]["true_positives"] == 2


def test_detections_with_no_truth_exit_2_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "truth").mkdir()
    write_truth(tmp_path / "truth" / "a.json", "a.mp4", [("Tennis", 0.0, 3.0)])
    write_detections(tmp_path / "det" / "a" / "segments.json", "a.mp4", [0.9, 0, 0], 4)
    write_detections(tmp_path / "det" / "c" / "segments.json", "c.mp4", [0.9, 0, 0], 4)
    assert (
        main(
            [
                "evaluate",
                str(tmp_path / "truth"),
                str(tmp_path / "det"),
                "--out",
                str(tmp_path / "e.json"),
            ]
        )
        == 2
    )
    assert "no ground truth for:" in capsys.readouterr().err
    assert not (tmp_path / "e.json").exists()


def test_evaluate_never_overwrites_a_file_that_is_not_an_evaluation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth_path = write_truth(tmp_path / "truth.json", "m.mp4", [("Tennis", 0.0, 3.0)])
    detections = write_detections(tmp_path / "segments.json", "m.mp4", [0.9, 0, 0], 4)
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": true}')
    assert main(["evaluate", str(truth_path), str(detections), "--out", str(notes)]) == 2
    assert notes.read_text() == '{"mine": true}'
    assert "notes.json: exists and is not an evaluation file" in capsys.readouterr().err


def test_truth_of_another_video_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth_path = write_truth(tmp_path / "truth.json", "other.mp4", [("Tennis", 0.0, 3.0)])
    detections = write_detections(tmp_path / "segments.json", "m.mp4", [0.9, 0, 0], 4)
    assert (
        main(["evaluate", str(truth_path), str(detections), "--out", str(tmp_path / "e.json")]) == 2
    )
    assert "truth of 'other.mp4'" in capsys.readouterr().err


def test_the_detections_helper_makes_the_ranges_the_tests_assume(tmp_path: Path) -> None:
    path = write_detections(tmp_path / "s.json", "m.mp4", [0, 0.9, 0.9, 0], 5)
    predictions = json.loads(path.read_text())["predictions"]
    assert [(p["start"], p["end"]) for p in predictions] == [(1.0, 4.0)]
