"""Calibrated decisions: chosen per class on the validation clips, saved with the model, used by
detect unless the user says otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from highlights.calibration import calibrate_class, join_clips
from highlights.config import Config, Decisions, SegmentConfig
from highlights.dataset import Clip
from highlights.errors import ConfigError, ModelError
from highlights.features import FeatureSequence
from highlights.model import ModelManifest
from highlights.pipeline import config_for_model
from highlights.segments import Segment, find_segments
from highlights.truth import TruthEvent
from highlights.windows import WindowScores
from tests.recipes import a_recipe


def juggling_scores(values: list[float]) -> WindowScores:
    """2 s windows every 1 s with these Juggling scores."""
    starts = np.arange(len(values), dtype=np.float64)
    probabilities = np.array([[1 - v, v] for v in values], dtype=np.float32)
    return WindowScores(starts, starts + 2.0, probabilities, ("Other", "Juggling"))


# Juggling from 10 to 19 s (windows 10-17), its score dipping to 0.4 for two windows (13, 14),
# and one stray window at 30 s scoring 0.6.
VALUES = [0.1] * 39
for i in range(10, 18):
    VALUES[i] = 0.9
VALUES[13] = VALUES[14] = 0.4
VALUES[30] = 0.6
TRUTH = (TruthEvent("Juggling", 10.0, 19.0, 14.5),)


def test_the_fixed_threshold_splits_the_dip_and_keeps_the_stray_window() -> None:
    fixed = find_segments(juggling_scores(VALUES), ["Juggling"], SegmentConfig(buffer=0.0), 40.0)
    assert [(s.start, s.end) for s in fixed] == [(10.0, 14.0), (15.0, 19.0), (30.0, 32.0)]


def test_calibration_finds_settings_that_bridge_the_dip_and_drop_the_stray_window() -> None:
    decision = calibrate_class(juggling_scores(VALUES), TRUTH, "Juggling", 40.0, buffer=0.0)
    # Fixed 0.5: [10,14] matches [10,19] with IoU 4/9 at thresholds 0.1-0.4 (P 1/3, R 1, F1 0.5)
    # and nothing at 0.5-0.7 (F1 0): mean 4 x 0.5 / 7.
    assert decision.fixed_f1 == pytest.approx(2 / 7)
    # The first settings in grid order scoring F1 1: threshold 0.5, low 0.35 (the dip, 0.4, keeps
    # the run going: one range 10-19), minimum length 3 s (drops the 2 s stray range).
    assert decision.policy == SegmentConfig(
        threshold=0.5, low_threshold=0.35, buffer=0.0, min_length=3.0, merge_gap=0.0
    )
    assert decision.f1 == 1.0
    assert decision.events == 1


def test_a_class_whose_windows_never_pass_gets_a_score_of_zero_not_an_error() -> None:
    decision = calibrate_class(juggling_scores([0.0] * 20), TRUTH, "Juggling", 21.0, buffer=0.0)
    assert decision.f1 == decision.fixed_f1 == 0.0


def sequence(frames: int, value: float) -> FeatureSequence:
    return FeatureSequence(
        np.arange(frames) / 5.0, np.full((frames, 3), value, dtype=np.float32), "synthetic", 5.0
    )


def test_validation_clips_join_into_one_timeline_with_their_truth() -> None:
    clips = [Clip(Path(f"/c/{name}.mp4"), label) for name, label in
             (("a", "Juggling"), ("b", "Other"), ("c", "Juggling"), ("d", "Juggling"))]  # fmt: skip
    features = {
        clip.path: sequence(frames, float(i))
        for i, (clip, frames) in enumerate(zip(clips, (10, 15, 20, 5), strict=True))
    }
    timeline = join_clips(clips, features, seed=1)
    assert len(timeline.sequence) == 50 and timeline.duration == 10.0
    np.testing.assert_array_equal(timeline.sequence.times, np.arange(50) / 5.0)
    # every truth range covers exactly the frames of its clips, in the order they were joined
    for event in timeline.truth:
        rows = timeline.sequence.features[round(event.start * 5) : round(event.end * 5), 0]
        labels = {clips[int(v)].label for v in rows}
        assert labels == {event.label}
    assert sum(e.end - e.start for e in timeline.truth) == 10.0
    # touching ranges of one class are one event
    ends = {(e.label, e.end) for e in timeline.truth}
    assert not any((e.label, e.start) in ends for e in timeline.truth)
    again = join_clips(clips, features, seed=1)
    assert again.truth == timeline.truth
    np.testing.assert_array_equal(again.sequence.features, timeline.sequence.features)


# --- detect's settings ---------------------------------------------------------------------

CALIBRATED = SegmentConfig(threshold=0.7, low_threshold=0.4, buffer=1.0, min_length=2.0,
                           merge_gap=3.0)  # fmt: skip


def detect_config(**given: object) -> Config:
    return Config(decisions=Decisions((("Juggling", CALIBRATED),))).replace(**given)


def test_detect_uses_the_calibrated_settings_of_the_class() -> None:
    assert detect_config().policy_for("Juggling") == CALIBRATED


def test_a_threshold_the_user_gives_overrides_the_calibrated_one_and_caps_the_low_one() -> None:
    policy = detect_config(**{"segments.threshold": 0.3}).policy_for("Juggling")
    assert (policy.threshold, policy.low_threshold) == (0.3, 0.3)
    assert (policy.min_length, policy.merge_gap) == (2.0, 3.0)


def test_settings_from_a_config_file_override_the_calibrated_ones(tmp_path: Path) -> None:
    from highlights.config import load_config

    path = tmp_path / "settings.toml"
    path.write_text("[segments]\nmin_length = 0.5\n")
    config = load_config(path)
    config = config.replace(decisions=Decisions((("Juggling", CALIBRATED),)))
    assert config.policy_for("Juggling").min_length == 0.5
    assert config.policy_for("Juggling").threshold == 0.7


def test_without_calibration_hysteresis_is_on_by_default() -> None:
    assert Config().policy_for("Juggling") == SegmentConfig(threshold=0.5, low_threshold=0.35)
    assert Config().replace(**{"segments.threshold": 0.8}).policy_for("X").low_threshold == 0.65


def test_no_hysteresis_turns_it_off_for_calibrated_and_default_classes() -> None:
    config = detect_config().without_hysteresis()
    assert config.policy_for("Juggling").low_threshold is None
    assert config.policy_for("Juggling").threshold == 0.7
    assert config.policy_for("Other") == SegmentConfig()


def test_the_fixed_baseline_is_threshold_half_and_no_hysteresis() -> None:
    baseline = detect_config(**{"segments.threshold": 0.5, "segments.min_length": 0.0,
                                "segments.merge_gap": 0.0}).without_hysteresis()  # fmt: skip
    assert baseline.policy_for("Juggling") == SegmentConfig()


def test_each_target_is_decided_with_its_own_settings() -> None:
    starts = np.arange(6, dtype=np.float64)
    probabilities = np.array(
        [[0.4, 0.6, 0.0], [0.4, 0.6, 0.0], [1, 0, 0], [0.4, 0.0, 0.6], [0.4, 0, 0.6], [1, 0, 0]],
        dtype=np.float32,
    )
    scores = WindowScores(starts, starts + 1.0, probabilities, ("Other", "A", "B"))
    policies = {
        "A": SegmentConfig(threshold=0.5, buffer=0.0),
        "B": SegmentConfig(threshold=0.7, buffer=0.0),
    }
    assert find_segments(scores, ["A", "B"], policies, 6.0) == [
        Segment(0.0, 2.0, pytest.approx(0.6), "A")
    ]


def manifest(decisions: dict) -> ModelManifest:
    return ModelManifest(
        classes=("Other", "Juggling"), backbone="efficientnet_lite0", feature_dim=8, rate=5.0,
        window_length=2.0, window_stride=1.0, steps=10, preset="compact", recipe=a_recipe(),
        decisions=decisions,
    )  # fmt: skip


def test_the_manifest_keeps_the_decisions_and_detect_reads_them() -> None:
    saved = manifest({"chosen_on": "validation", "classes": {
        "Juggling": {**Decisions((("Juggling", CALIBRATED),)).to_dict()["Juggling"], "f1": 0.8}
    }})  # fmt: skip
    read = ModelManifest.from_json(saved.to_json())
    assert read.decisions == saved.decisions
    assert config_for_model(Config(), read).policy_for("Juggling") == CALIBRATED


def test_a_manifest_with_bad_decisions_is_refused_naming_the_field() -> None:
    bad = manifest({"classes": {"Juggling": {"threshold": 0.3, "low_threshold": 0.6}}})
    with pytest.raises(ModelError, match="field 'decisions' has bad settings"):
        ModelManifest.from_json(bad.to_json(), source="m/manifest.json")


def test_bad_decisions_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="low_threshold must be in"):
        Decisions.from_dict({"A": {"threshold": 0.2, "low_threshold": 0.5}})
