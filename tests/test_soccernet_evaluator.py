"""Our segments.json read by SoccerNet's own evaluator (PyPI `SoccerNet`), and its average-mAP
against ours on the same games: the published definition, run by its authors' code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

# `make .venv/.dev` installs it (pip install --no-deps SoccerNet); a missing install must fail.
from SoccerNet.Evaluation import ActionSpotting  # noqa: E402

from highlights.config import SegmentConfig
from highlights.evaluation import evaluate_paths
from highlights.outputs.segments_json import write_segments_json
from highlights.segments import find_segments
from highlights.windows import WindowScores

CLASSES = ("Background", "Penalty", "Corner")
EVENTS = {"Penalty": 0, "Corner": 1}


def write_game(
    root: Path, game: str, scores_per_second: list[tuple[float, float]], truth: list
) -> None:
    """One game: its SoccerNet labels under root/labels/<game>, our detections (1 s-stride,
    2 s windows) under root/detections/<game>."""
    folder, labels = root / "detections" / game, root / "labels" / game
    folder.mkdir(parents=True)
    labels.mkdir(parents=True)
    starts = np.arange(len(scores_per_second), dtype=np.float64)
    probabilities = np.array([[1 - a - b, a, b] for a, b in scores_per_second], dtype=np.float32)
    scores = WindowScores(starts, starts + 2.0, probabilities, CLASSES)
    policy = SegmentConfig(threshold=0.3, buffer=0.5)
    duration = float(len(starts) + 1)
    segments = find_segments(scores, ["Penalty", "Corner"], policy, duration)
    write_segments_json(
        folder / "segments.json",
        "1_224p.mkv",
        duration,
        segments,
        scores,
        ["Penalty", "Corner"],
        policy,
    )
    (labels / "Labels-v2.json").write_text(
        json.dumps(
            {
                "annotations": [
                    {
                        "gameTime": f"1 - {int(t) // 60:02d}:{int(t) % 60:02d}",
                        "label": label,
                        "position": str(round(t * 1000)),
                        "visibility": "visible",
                    }
                    for label, t in truth
                ]
            }
        )
    )


@pytest.fixture(scope="module")
def games(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("soccernet")
    rng = np.random.default_rng(7)
    for g in range(3):
        seconds = 150
        penalty = rng.uniform(0, 0.25, seconds)
        corner = rng.uniform(0, 0.25, seconds)
        truth = []
        for t in rng.choice(np.arange(5, seconds - 5), size=6, replace=False):
            label = "Penalty" if rng.random() < 0.5 else "Corner"
            target = penalty if label == "Penalty" else corner
            shift = int(rng.integers(-4, 5))  # detections land near, not on, the truth
            if rng.random() < 0.8:
                target[max(0, t + shift - 1) : t + shift + 1] = rng.uniform(0.4, 0.7)
            truth.append((label, float(t) + 0.5))
        for t in rng.choice(np.arange(seconds), size=3, replace=False):  # false alarms
            corner[t] = rng.uniform(0.35, 0.7)
        write_game(root, f"league/season/game-{g}", list(zip(penalty, corner, strict=True)), truth)
    return root


def test_soccernet_reads_our_predictions(games: Path) -> None:
    document = json.loads(next(games.rglob("segments.json")).read_text())
    assert document["predictions"], "the fixture must make some detections"
    half1, half2 = ActionSpotting.predictions2vector(
        document, num_classes=2, version=2, framerate=2, EVENT_DICTIONARY=EVENTS
    )
    for p in document["predictions"]:
        frame = int(2 * p["position"] / 1000)
        assert half1[frame, EVENTS[p["label"]]] == pytest.approx(p["confidence"])
    assert (half2 == -1).all()


@pytest.mark.parametrize("metric", ["tight", "loose"])
def test_our_average_map_is_soccernets(games: Path, metric: str) -> None:
    theirs = ActionSpotting.evaluate(
        SoccerNet_path=str(games / "labels"),
        Predictions_path=str(games / "detections"),
        prediction_file="segments.json",
        label_files="Labels-v2.json",
        dataset=None,
        version=2,
        framerate=2,
        metric=metric,
        EVENT_DICTIONARY=EVENTS,
    )
    ours = evaluate_paths(games / "labels", games / "detections").spotting[metric]
    assert 0.05 < theirs["a_mAP"] < 0.95, "the fixture must be neither trivial nor hopeless"
    assert ours.average_map == pytest.approx(theirs["a_mAP"], abs=1e-12)
    assert [ours.average_ap_per_class[name] for name in EVENTS] == pytest.approx(
        theirs["a_mAP_per_class"], abs=1e-12
    )
