"""Per-frame backbone features: extraction, files, merging and the content-keyed cache."""

from __future__ import annotations

import dataclasses
import logging
import os
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from highlights.backbones import load_backbone
from highlights.checkpoints import Checkpoints, Part
from highlights.damage import DecodeDamage, TimeRange
from highlights.errors import InputError, VideoError
from highlights.features import (
    FeatureCache,
    FeatureSequence,
    extract_features,
    features_from_frames,
    load_features,
    merge_features,
    save_features,
)
from highlights.files import file_sha256
from highlights.local.storage import LocalStorage
from highlights.recipe import recipe_of
from highlights.sampling import sample_frames
from highlights.video import FrameGeometry
from tests.media import damaged_copy, make_event_video, make_video

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class TinyKerasBackbone:
    """A real (small, randomly initialised) Keras CNN satisfying the Backbone protocol.

    It counts the batches it embeds so tests can see batching and cache hits.
    """

    name = "tiny_cnn"
    weights_sha256 = "7" * 64  # stands for the file its random weights would be saved in
    normalisation = "rgb / 255"
    backend = "keras"
    precision = "float32"
    feature_dim = 16
    geometry = FrameGeometry(resize_short=40, crop=32)

    def __init__(self) -> None:
        import keras

        keras.utils.set_random_seed(7)
        self.model = keras.Sequential(
            [
                keras.Input((32, 32, 3)),
                keras.layers.Rescaling(1 / 255),
                keras.layers.Conv2D(8, 3, activation="relu"),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(self.feature_dim),
            ]
        )
        self.batch_sizes: list[int] = []

    def embed(self, images: np.ndarray) -> np.ndarray:
        assert images.dtype == np.uint8 and images.shape[1:] == (32, 32, 3)
        self.batch_sizes.append(len(images))
        return np.asarray(self.model(images.astype(np.float32), training=False), np.float32)


@pytest.fixture(scope="module")
def tiny_backbone() -> TinyKerasBackbone:
    return TinyKerasBackbone()


@pytest.fixture
def backbone(tiny_backbone: TinyKerasBackbone) -> TinyKerasBackbone:
    tiny_backbone.batch_sizes.clear()
    return tiny_backbone


@pytest.fixture(scope="module")
def match_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s: pitch, test card from 1 s to 2 s, pitch again."""
    folder = tmp_path_factory.mktemp("match")
    return make_event_video(folder / "match.mp4", events=[(1.0, 2.0)], total=4)


def sequence(
    times: list[float], dim: int = 3, backbone: str = "b", rate: float = 5.0
) -> FeatureSequence:
    features = np.arange(len(times) * dim, dtype=np.float32).reshape(len(times), dim)
    return FeatureSequence(np.asarray(times, dtype=np.float64), features, backbone, rate)


# --- extraction ------------------------------------------------------------------------


def test_features_from_frames_embeds_in_batches_and_keeps_frame_times(
    match_video: Path, backbone: TinyKerasBackbone
) -> None:
    frames = list(sample_frames(match_video, 10, backbone.geometry))
    seq = features_from_frames(frames, backbone, 10, batch_size=16)
    assert backbone.batch_sizes == [16, 16, 8]
    assert seq.features.shape == (40, 16) and seq.features.dtype == np.float32
    assert np.array_equal(seq.times, [f.time for f in frames])
    assert (seq.backbone, seq.rate) == ("tiny_cnn", 10.0)


def test_features_from_no_frames_is_an_empty_sequence(backbone: TinyKerasBackbone) -> None:
    seq = features_from_frames([], backbone, 5)
    assert seq.features.shape == (0, 16) and len(seq) == 0


def test_extract_features_gives_one_vector_per_sampled_frame(
    match_video: Path, backbone: TinyKerasBackbone
) -> None:
    seq = extract_features(match_video, backbone, rate=5)
    assert len(seq) == 20
    assert seq.times == pytest.approx([k / 5 for k in range(20)])


def test_features_tell_events_from_background(
    match_video: Path, backbone: TinyKerasBackbone
) -> None:
    seq = extract_features(match_video, backbone, rate=5)
    event = (seq.times >= 1.0) & (seq.times <= 2.0)
    pitch = seq.features[~event]
    spread_within = np.linalg.norm(pitch - pitch.mean(axis=0), axis=1).max()
    distance_between = np.linalg.norm(seq.features[event].mean(axis=0) - pitch.mean(axis=0))
    assert distance_between > 3 * spread_within


def test_progress_bar_counts_the_expected_frames(
    match_video: Path, backbone: TinyKerasBackbone, capsys: pytest.CaptureFixture[str]
) -> None:
    extract_features(match_video, backbone, rate=5, progress=True)
    assert "20/20" in capsys.readouterr().err


def test_extracting_from_a_broken_video_is_a_video_error(
    tmp_path: Path, backbone: TinyKerasBackbone
) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    with pytest.raises(VideoError, match="broken.mp4"):
        extract_features(broken, backbone, rate=5)


def test_real_efficientnet_lite0_features(match_video: Path) -> None:
    lite0 = load_backbone("efficientnet_lite0")
    seq = extract_features(match_video, lite0, rate=2, batch_size=4)
    assert seq.features.shape == (8, 1280) and np.all(np.isfinite(seq.features))
    event = (seq.times >= 1.0) & (seq.times <= 2.0)
    assert not np.allclose(seq.features[event].mean(0), seq.features[~event].mean(0), atol=1e-2)


# --- damaged videos and checkpoints ----------------------------------------------------


class Interrupted(Exception):
    """Stands for the process dying part way (the CLI test kills a real one)."""


class InterruptedBackbone:
    """The tiny backbone, interrupted after embedding `batches` batches."""

    def __init__(self, inner: TinyKerasBackbone, batches: int) -> None:
        self.inner, self.batches = inner, batches
        self.name, self.weights_sha256 = inner.name, inner.weights_sha256
        self.normalisation, self.backend = inner.normalisation, inner.backend
        self.precision = inner.precision
        self.feature_dim, self.geometry = inner.feature_dim, inner.geometry

    def embed(self, images: np.ndarray) -> np.ndarray:
        if self.batches == 0:
            raise Interrupted
        self.batches -= 1
        return self.inner.embed(images)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 s with a key frame every second; 60 frames at 5 frames/s."""
    folder = tmp_path_factory.mktemp("long")
    return make_video(
        folder / "long.mp4",
        seconds=12,
        extra=["-g", "25", "-keyint_min", "25", "-sc_threshold", "0"],
    )


def checkpoints_in(folder: Path, backbone: TinyKerasBackbone, rate: float = 5) -> Checkpoints:
    return Checkpoints(LocalStorage(folder), "", recipe_of(backbone, rate), backbone.feature_dim)


def assert_same_sequence(got: FeatureSequence, want: FeatureSequence) -> None:
    assert np.array_equal(got.times, want.times)
    assert np.array_equal(got.features, want.features)  # bit for bit, not approximately
    assert np.array_equal(got.damaged, want.damaged)
    assert got.damaged_ranges == want.damaged_ranges


def test_an_interrupted_extraction_resumes_from_its_last_checkpoint(
    tmp_path: Path, long_video: Path, backbone: TinyKerasBackbone, caplog: pytest.LogCaptureFixture
) -> None:
    clean = extract_features(long_video, backbone, 5, batch_size=8)
    checkpoints = checkpoints_in(tmp_path / "checkpoints", backbone)
    with pytest.raises(Interrupted):  # dies in its sixth batch: frames 40-47
        extract_features(
            long_video,
            InterruptedBackbone(backbone, batches=5),
            5,
            batch_size=8,
            checkpoints=checkpoints,
            checkpoint_every=16,
        )
    assert [(k.first, k.last) for k in checkpoints.stored()] == [(0, 15), (16, 31)]
    backbone.batch_sizes.clear()
    with caplog.at_level(logging.INFO):
        resumed = extract_features(
            long_video, backbone, 5, batch_size=8, checkpoints=checkpoints, checkpoint_every=16
        )
    assert "resuming from checkpoint at frame 32" in caplog.text
    assert backbone.batch_sizes == [8, 8, 8, 4]  # frames 32-59 only
    assert_same_sequence(resumed, clean)


def test_checkpoint_intervals_are_whole_batches(
    tmp_path: Path, long_video: Path, backbone: TinyKerasBackbone
) -> None:
    checkpoints = checkpoints_in(tmp_path / "checkpoints", backbone)
    extract_features(
        long_video, backbone, 5, batch_size=8, checkpoints=checkpoints, checkpoint_every=10
    )
    stored = [(k.first, k.last) for k in checkpoints.stored()]
    assert stored == [(0, 15), (16, 31), (32, 47), (48, 59)]  # the last frames once done


def test_resuming_across_a_damaged_stretch_gives_the_same_record(
    tmp_path: Path, long_video: Path, backbone: TinyKerasBackbone
) -> None:
    damaged = damaged_copy(long_video, tmp_path / "damaged.mp4")
    clean = extract_features(damaged, backbone, 5, batch_size=4)
    assert clean.damaged.any() and clean.damaged_ranges
    checkpoints = checkpoints_in(tmp_path / "checkpoints", backbone)
    for _ in range(14):  # interrupted after every batch: resumed at every 0.8 s
        with pytest.raises(Interrupted):
            extract_features(
                damaged,
                InterruptedBackbone(backbone, 1),
                5,
                batch_size=4,
                checkpoints=checkpoints,
                checkpoint_every=4,
            )
    resumed = extract_features(
        damaged, backbone, 5, batch_size=4, checkpoints=checkpoints, checkpoint_every=4
    )
    assert_same_sequence(resumed, clean)


def test_parts_of_another_recipe_or_unreadable_are_passed_over(
    tmp_path: Path, long_video: Path, backbone: TinyKerasBackbone
) -> None:
    folder = tmp_path / "checkpoints"
    other = dataclasses.replace(recipe_of(backbone, 5), weights_sha256="0" * 64)
    foreign = Checkpoints(LocalStorage(folder), "", other, backbone.feature_dim)
    foreign.save(Part(np.arange(16), np.zeros((16, 16), np.float32), np.zeros(16, bool)))
    (folder / "frames-000000016-000000031-16.npz").write_bytes(b"half a zip")
    backbone.batch_sizes.clear()
    sequence = extract_features(
        long_video, backbone, 5, batch_size=8, checkpoints=checkpoints_in(folder, backbone)
    )
    assert sum(backbone.batch_sizes) == 60  # nothing was taken from them
    assert np.array_equal(sequence.features, extract_features(long_video, backbone, 5, 8).features)


def test_the_cache_keeps_checkpoints_beside_the_entry_until_it_is_written(
    tmp_path: Path, long_video: Path, backbone: TinyKerasBackbone
) -> None:
    cache = FeatureCache(tmp_path / "cache")
    with pytest.raises(Interrupted):
        cache.get_or_extract(
            long_video, InterruptedBackbone(backbone, 3), 5, batch_size=8, checkpoint_every=8
        )
    entry = cache.path_for(file_sha256(long_video), recipe_of(backbone, 5))
    folder = cache.checkpoint_dir(entry)
    assert folder.parent == entry.parent and not entry.exists()
    assert len(list(folder.glob("frames-*.npz"))) == 3
    cache.get_or_extract(long_video, backbone, 5, batch_size=8, checkpoint_every=8)
    assert entry.is_file() and not folder.exists()


def test_damage_is_kept_in_the_features_file(tmp_path: Path) -> None:
    seq = FeatureSequence(
        np.array([0.0, 0.2, 0.4]),
        np.ones((3, 2), np.float32),
        "b",
        5.0,
        damaged=np.array([False, True, False]),
        damaged_ranges=(TimeRange(0.1, 0.3),),
    )
    loaded = load_features(save_features(seq, tmp_path / "features.npz"))
    assert loaded.damaged.tolist() == [False, True, False]
    assert loaded.damaged_ranges == (TimeRange(0.1, 0.3),)
    assert loaded.damage == DecodeDamage(3, 1, (TimeRange(0.1, 0.3),))


def test_a_features_file_from_before_damage_was_recorded_reads_as_whole(tmp_path: Path) -> None:
    path = tmp_path / "v1.npz"
    np.savez(
        path,
        version=np.int64(1),
        times=np.array([0.0, 0.2]),
        features=np.ones((2, 3), np.float32),
        backbone=np.str_("b"),
        rate=np.float64(5.0),
    )
    loaded = load_features(path)
    assert not loaded.damaged.any() and loaded.damaged_ranges == ()


# --- files -----------------------------------------------------------------------------


def test_saved_features_load_back_unchanged(tmp_path: Path) -> None:
    seq = sequence([0.0, 0.2, 0.4], backbone="efficientnet_lite0", rate=5.0)
    path = save_features(seq, tmp_path / "out" / "features.npz")
    loaded = load_features(path)
    assert np.array_equal(loaded.times, seq.times)
    assert np.array_equal(loaded.features, seq.features)
    assert (loaded.backbone, loaded.rate) == ("efficientnet_lite0", 5.0)
    assert sorted(p.name for p in path.parent.iterdir()) == ["features.npz"]  # no temp left


def test_loading_a_missing_features_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nope.npz.*not found"):
        load_features(tmp_path / "nope.npz")


@pytest.mark.parametrize("content", [b"", b"garbage", b"PK\x03\x04 truncated zip"])
def test_loading_a_corrupt_features_file_names_it(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "features.npz"
    path.write_bytes(content)
    with pytest.raises(InputError, match="features.npz"):
        load_features(path)


def test_loading_an_npz_that_is_not_ours_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.ones(3))
    with pytest.raises(InputError, match="other.npz"):
        load_features(path)


# --- merging ---------------------------------------------------------------------------


def test_merge_sorts_by_time_and_drops_duplicates() -> None:
    late = sequence([0.6, 0.8])
    early = sequence([0.0, 0.2, 0.4, 0.6])
    merged = merge_features([late, early])
    assert merged.times.tolist() == [0.0, 0.2, 0.4, 0.6, 0.8]
    assert np.array_equal(merged.features[3], late.features[0])  # the first part's frame wins


def test_merge_treats_float_noise_as_the_same_time() -> None:
    merged = merge_features([sequence([0.2]), sequence([0.1 + 0.1])])
    assert len(merged) == 1


@pytest.mark.parametrize(
    "other",
    [sequence([1.0], backbone="inception_v3"), sequence([1.0], rate=2.0), sequence([1.0], dim=4)],
    ids=["backbone", "rate", "feature size"],
)
def test_merge_refuses_parts_that_do_not_match(other: FeatureSequence) -> None:
    with pytest.raises(InputError, match="cannot merge"):
        merge_features([sequence([0.0]), other])


def test_merge_of_nothing_is_an_error() -> None:
    with pytest.raises(InputError):
        merge_features([])


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 40), st.lists(st.integers(0, 40), max_size=5), st.randoms())
def test_merging_shards_rebuilds_the_whole(n: int, cuts: list[int], rnd: random.Random) -> None:
    whole = sequence([k / 5 for k in range(n)])
    bounds = sorted({0, n, *(c % (n + 1) for c in cuts)})
    shards = [
        FeatureSequence(whole.times[a:b], whole.features[a:b], "b", 5.0)
        for a, b in zip(bounds, bounds[1:], strict=False)
    ]
    rnd.shuffle(shards)
    shards.append(whole)  # every frame once more: all duplicates
    merged = merge_features(shards)
    assert np.array_equal(merged.times, whole.times)
    assert np.array_equal(merged.features, whole.features)


# --- cache -----------------------------------------------------------------------------


def test_cache_extracts_once_then_reads_from_disk(
    tmp_path: Path, match_video: Path, backbone: TinyKerasBackbone
) -> None:
    cache = FeatureCache(tmp_path / "cache")
    first = cache.get_or_extract(match_video, backbone, 5)
    calls = len(backbone.batch_sizes)
    second = cache.get_or_extract(match_video, backbone, 5)
    assert len(backbone.batch_sizes) == calls  # no new backbone call
    assert np.array_equal(first.features, second.features)


def test_cache_is_keyed_by_content_not_name(
    tmp_path: Path, match_video: Path, backbone: TinyKerasBackbone
) -> None:
    cache = FeatureCache(tmp_path / "cache")
    cache.get_or_extract(match_video, backbone, 5)
    renamed = tmp_path / "renamed.mp4"
    renamed.write_bytes(match_video.read_bytes())
    calls = len(backbone.batch_sizes)
    cache.get_or_extract(renamed, backbone, 5)
    assert len(backbone.batch_sizes) == calls


def test_cache_separates_rates_and_videos(
    tmp_path: Path, match_video: Path, backbone: TinyKerasBackbone
) -> None:
    cache = FeatureCache(tmp_path / "cache")
    other = make_video(tmp_path / "other.mp4", seconds=2)
    assert len(cache.get_or_extract(match_video, backbone, 5)) == 20
    assert len(cache.get_or_extract(match_video, backbone, 2)) == 8
    assert len(cache.get_or_extract(other, backbone, 5)) == 10
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 3


def test_corrupt_cache_entry_is_recomputed_and_replaced(
    tmp_path: Path, match_video: Path, backbone: TinyKerasBackbone
) -> None:
    cache = FeatureCache(tmp_path / "cache")
    good = cache.get_or_extract(match_video, backbone, 5)
    (entry,) = (tmp_path / "cache").rglob("*.npz")
    entry.write_bytes(entry.read_bytes()[:100])
    again = cache.get_or_extract(match_video, backbone, 5)
    assert np.allclose(again.features, good.features, atol=1e-5)
    assert np.array_equal(load_features(entry).times, good.times)  # the entry was rewritten


def test_cache_reports_a_missing_video(tmp_path: Path, backbone: TinyKerasBackbone) -> None:
    with pytest.raises(VideoError, match="nope.mp4.*not found"):
        FeatureCache(tmp_path).get_or_extract(tmp_path / "nope.mp4", backbone, 5)


def test_features_from_other_weights_get_their_own_cache_entry(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "cache")
    video = make_video(tmp_path / "clip.mp4", seconds=2)
    backbone = TinyKerasBackbone()
    first = cache.get_or_extract(video, backbone, 5)
    backbone.weights_sha256 = "e" * 64  # the same network, retrained
    second = cache.get_or_extract(video, backbone, 5)
    names = sorted(p.name for p in (tmp_path / "cache").rglob("*.npz"))
    assert len(names) == 2
    assert first.recipe is not None and second.recipe is not None
    assert {f"tiny_cnn-{first.recipe.digest}", f"tiny_cnn-{second.recipe.digest}"} == {
        n.split(".")[1] for n in names
    }
    assert first.recipe.digest != second.recipe.digest


def test_a_digest_the_caller_already_has_is_the_cache_key(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "cache")
    video = make_video(tmp_path / "clip.mp4", seconds=2)
    backbone = TinyKerasBackbone()
    given = "ab" * 32
    cache.get_or_extract(video, backbone, 5, digest=given)
    assert cache.path_for(given, recipe_of(backbone, 5)).is_file()
    assert not cache.path_for(file_sha256(video), recipe_of(backbone, 5)).exists()
