"""Sliding windows over feature sequences: counts, times, padding, batching and scoring."""

from __future__ import annotations

import numpy as np
import pytest

from highlights.config import WindowConfig
from highlights.errors import InputError
from highlights.features import FeatureSequence
from highlights.model import ModelManifest, SequenceModel, build_model
from highlights.windows import Windows, iter_window_batches, score_sequence, window_frame_indices
from tests.recipes import a_recipe

RATE = 5.0
TWO_SECONDS = WindowConfig(length=2.0, stride=1.0)  # 10 frames, stride 5 at 5 fps


def sequence(frames: int, dim: int = 3, offset: float = 0.0) -> FeatureSequence:
    """Frame k has every feature equal to k, so a window's content shows which frames it holds."""
    values = np.repeat(np.arange(frames, dtype=np.float32)[:, None], dim, axis=1)
    return FeatureSequence(
        times=offset + np.arange(frames) / RATE, features=values, backbone="test", rate=RATE
    )


def make_windows(seq: FeatureSequence, window: WindowConfig) -> Windows:
    """Every window of `seq`, in one batch."""
    (batch,) = iter_window_batches(seq, window, batch_size=max(1, len(seq)))
    return batch


def frames_in(windows_features: np.ndarray) -> np.ndarray:
    return windows_features[:, :, 0].astype(int)


def test_windows_start_at_frame_zero_and_step_by_the_stride():
    windows = make_windows(sequence(25), TWO_SECONDS)
    np.testing.assert_allclose(windows.starts, [0.0, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(windows.ends, [2.0, 3.0, 4.0, 5.0])
    assert windows.features.shape == (4, 10, 3)
    assert frames_in(windows.features)[1].tolist() == list(range(5, 15))


def test_an_extra_window_aligned_to_the_last_frame_covers_the_tail():
    windows = make_windows(sequence(27), TWO_SECONDS)
    np.testing.assert_allclose(windows.starts, [0.0, 1.0, 2.0, 3.0, 3.4])
    np.testing.assert_allclose(windows.ends[-1], 27 / RATE)
    assert frames_in(windows.features)[-1].tolist() == list(range(17, 27))


def test_a_sequence_exactly_one_window_long_gives_one_window():
    windows = make_windows(sequence(10), TWO_SECONDS)
    assert len(windows) == 1
    assert frames_in(windows.features)[0].tolist() == list(range(10))


def test_a_short_sequence_gives_one_window_padded_with_masked_zeros():
    seq = sequence(4)
    seq = FeatureSequence(seq.times, seq.features + 1, seq.backbone, seq.rate)  # frame k is k+1
    windows = make_windows(seq, TWO_SECONDS)
    assert len(windows) == 1
    assert frames_in(windows.features)[0].tolist() == [1, 2, 3, 4, 0, 0, 0, 0, 0, 0]
    assert window_frame_indices(4, 10, 5).tolist() == [[0, 1, 2, 3, -1, -1, -1, -1, -1, -1]]
    assert windows.starts[0] == 0.0
    assert windows.ends[0] == pytest.approx(4 / RATE)  # the last real frame, not the padding


def test_a_short_windows_damaged_share_counts_its_real_frames_only():
    seq = sequence(4)
    damaged = FeatureSequence(
        seq.times, seq.features, seq.backbone, seq.rate,
        damaged=np.array([False, False, False, True]),
    )  # fmt: skip
    assert make_windows(damaged, TWO_SECONDS).damaged[0] == pytest.approx(0.25)


def test_the_model_reads_a_padded_short_window_as_its_real_frames_alone():
    short = build_model("compact", steps=4, feature_dim=3, num_classes=2)
    padded = build_model("compact", steps=10, feature_dim=3, num_classes=2)
    padded.set_weights(short.get_weights())  # the LSTM's weights do not depend on the length
    real = np.random.default_rng(0).normal(size=(1, 4, 3)).astype(np.float32)
    window = np.concatenate([real, np.zeros((1, 6, 3), np.float32)], axis=1)
    np.testing.assert_allclose(
        padded(window, training=False), short(real, training=False), rtol=1e-5, atol=1e-6
    )
    repeated = np.concatenate([real, np.repeat(real[:, -1:], 6, axis=1)], axis=1)
    assert not np.allclose(padded(repeated, training=False), short(real, training=False))


def test_window_times_follow_the_sequence_times():
    windows = make_windows(sequence(12, offset=30.0), TWO_SECONDS)
    np.testing.assert_allclose(windows.starts, [30.0, 30.4])
    np.testing.assert_allclose(windows.ends, [32.0, 32.4])


def test_window_features_are_float32():
    seq = sequence(12)
    seq = FeatureSequence(seq.times, seq.features.astype(np.float64), seq.backbone, seq.rate)
    assert make_windows(seq, TWO_SECONDS).features.dtype == np.float32


def test_an_empty_sequence_is_an_error():
    empty = FeatureSequence(np.zeros(0), np.zeros((0, 3), np.float32), "test", RATE)
    with pytest.raises(InputError, match="empty feature sequence"):
        make_windows(empty, TWO_SECONDS)


def test_features_that_do_not_match_the_times_are_an_error():
    broken = FeatureSequence(np.arange(5) / RATE, np.zeros((4, 3), np.float32), "test", RATE)
    with pytest.raises(InputError, match=r"shape \(4, 3\) for 5 frame times"):
        make_windows(broken, TWO_SECONDS)


def test_frame_index_matrix_for_one_frame_stride():
    indices = window_frame_indices(n_frames=4, steps=3, stride=1)
    assert indices.tolist() == [[0, 1, 2], [1, 2, 3]]


def test_batches_together_equal_all_windows_and_never_exceed_the_batch_size():
    seq = sequence(503)
    whole = make_windows(seq, TWO_SECONDS)
    batches = list(iter_window_batches(seq, TWO_SECONDS, batch_size=16))
    assert all(len(b) <= 16 for b in batches)
    np.testing.assert_array_equal(np.concatenate([b.features for b in batches]), whole.features)
    np.testing.assert_array_equal(np.concatenate([b.starts for b in batches]), whole.starts)
    np.testing.assert_array_equal(np.concatenate([b.ends for b in batches]), whole.ends)


def test_a_long_match_is_windowed_in_bounded_memory():
    frames, dim = 27_000, 64  # 90 minutes at 5 fps
    seq = FeatureSequence(
        np.arange(frames) / RATE, np.ones((frames, dim), np.float32), "test", RATE
    )
    batches = iter_window_batches(seq, TWO_SECONDS, batch_size=256)
    largest = max(b.features.nbytes for b in batches)
    assert largest == 256 * 10 * dim * 4


@pytest.fixture(scope="module")
def tiny_model() -> SequenceModel:
    manifest = ModelManifest(
        classes=("goal", "other"),
        backbone="test",
        feature_dim=3,
        rate=RATE,
        window_length=2.0,
        window_stride=1.0,
        steps=10,
        preset="compact",
        recipe=a_recipe("test", RATE),
    )
    return SequenceModel(build_model("compact", 10, 3, 2), manifest)


def test_scores_hold_one_probability_row_per_window(tiny_model):
    windows = make_windows(sequence(27), TWO_SECONDS)
    scores = score_sequence(sequence(27), TWO_SECONDS, tiny_model, batch_size=2)
    assert scores.probabilities.shape == (5, 2)
    assert scores.probabilities.dtype == np.float32
    np.testing.assert_allclose(scores.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    expected = tiny_model.predict(windows.features)
    np.testing.assert_allclose(scores.probabilities, expected, rtol=1e-6)
    assert scores.classes == ("goal", "other")
    np.testing.assert_array_equal(scores.starts, windows.starts)


def test_scoring_batch_by_batch_equals_scoring_all_windows(tiny_model):
    seq = sequence(60)
    whole = make_windows(seq, TWO_SECONDS)
    batched = score_sequence(seq, TWO_SECONDS, tiny_model, batch_size=3)
    np.testing.assert_allclose(batched.probabilities, tiny_model.predict(whole.features), rtol=1e-6)
    np.testing.assert_array_equal(batched.ends, whole.ends)
