"""Backends agree: OpenVINO (the default) gives Keras's features, window scores and ranges.

Tolerances: features within 1e-3 absolute (they reach about 6; float32 OpenVINO differs from
Keras by about 1e-5, bfloat16 by up to 0.15, which is why bfloat16 is not the default); window
scores within 1e-4; the detected ranges the same to the millisecond.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from highlights.backbones import load_backbone
from highlights.backbones.efficientnet_lite import EfficientNetLite0
from highlights.backbones.inception import build_model as build_inception
from highlights.backbones.openvino_backend import OpenVinoBackbone
from highlights.config import Config, SegmentConfig
from highlights.errors import ModelError
from highlights.features import FeatureCache, extract_features
from highlights.model import SequenceModel
from highlights.recipe import recipe_of
from highlights.segments import find_segments
from highlights.synthetic import EVENT_CLASS
from highlights.windows import score_sequence
from tests.media import REAL_SOCCER_CLIP, make_video, real_clip

FEATURE_TOLERANCE = 1e-3
SCORE_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def keras_lite0() -> EfficientNetLite0:
    backbone = load_backbone("efficientnet_lite0", backend="keras")
    assert isinstance(backbone, EfficientNetLite0)
    return backbone


@pytest.fixture(scope="module")
def openvino_lite0() -> OpenVinoBackbone:
    backbone = load_backbone("efficientnet_lite0")
    assert isinstance(backbone, OpenVinoBackbone)
    return backbone


def test_openvino_float32_is_the_default(openvino_lite0: OpenVinoBackbone) -> None:
    assert (openvino_lite0.backend, openvino_lite0.precision) == ("openvino", "float32")
    assert (Config().backbone_backend, Config().backbone_precision) == ("openvino", "float32")
    assert (openvino_lite0.name, openvino_lite0.feature_dim) == ("efficientnet_lite0", 1280)


def test_features_of_random_pictures_agree(keras_lite0, openvino_lite0) -> None:
    images = np.random.default_rng(3).integers(0, 256, (5, 224, 224, 3), dtype=np.uint8)
    want, got = keras_lite0.embed(images), openvino_lite0.embed(images)
    assert got.shape == want.shape == (5, 1280) and got.dtype == np.float32
    assert np.abs(got - want).max() <= FEATURE_TOLERANCE
    assert want.max() > 1  # features of this size, so the tolerance is a real bound


def test_any_batch_size_and_an_empty_batch(keras_lite0, openvino_lite0) -> None:
    images = np.random.default_rng(4).integers(0, 256, (33, 224, 224, 3), dtype=np.uint8)
    assert np.abs(openvino_lite0.embed(images) - keras_lite0.embed(images)).max() <= 1e-3
    assert openvino_lite0.embed(images[:0]).shape == (0, 1280)
    with pytest.raises(ValueError, match="224, 224, 3"):
        openvino_lite0.embed(images[:, :100])


def test_bfloat16_moves_features_more_than_the_tolerance(keras_lite0) -> None:
    """Why float32 is the default: measured here, not assumed."""
    images = np.random.default_rng(5).integers(0, 256, (8, 224, 224, 3), dtype=np.uint8)
    half = load_backbone("efficientnet_lite0", precision="bfloat16")
    assert half.precision == "bfloat16"
    difference = np.abs(half.embed(images) - keras_lite0.embed(images)).max()
    assert 0 < difference < 1.0  # the same features, roughly


def test_unknown_backend_or_precision_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="onnx"):
        load_backbone("efficientnet_lite0", backend="onnx")
    with pytest.raises(ModelError, match="bfloat16.*keras"):
        load_backbone("efficientnet_lite0", backend="keras", precision="bfloat16")


def test_backends_never_share_a_cache_entry(tmp_path: Path, keras_lite0, openvino_lite0) -> None:
    keras_recipe, openvino_recipe = recipe_of(keras_lite0, 5), recipe_of(openvino_lite0, 5)
    assert (keras_recipe.backend, openvino_recipe.backend) == ("keras", "openvino")
    assert keras_recipe.digest != openvino_recipe.digest
    video = make_video(tmp_path / "clip.mp4", seconds=1)
    cache = FeatureCache(tmp_path / "cache")
    cache.get_or_extract(video, keras_lite0, 5)
    cache.get_or_extract(video, openvino_lite0, 5)
    names = sorted(p.name for p in (tmp_path / "cache").rglob("*.npz"))
    assert len(names) == 2
    assert any(keras_recipe.digest in n for n in names)
    assert any(openvino_recipe.digest in n for n in names)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_inception_agrees_too(tmp_path: Path) -> None:
    keras.utils.set_random_seed(3)
    weights = tmp_path / "inception.weights.h5"
    build_inception().save_weights(weights)
    images = np.random.default_rng(6).integers(0, 256, (3, 299, 299, 3), dtype=np.uint8)
    want = load_backbone("inception_v3", weights, backend="keras").embed(images)
    got = load_backbone("inception_v3", weights).embed(images)
    assert got.shape == (3, 2048)
    assert np.abs(got - want).max() <= FEATURE_TOLERANCE * max(1.0, float(np.abs(want).max()))


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", [REAL_SOCCER_CLIP, "penalty-kick-prediction/test_video.mp4"], ids=["penalty", "kick"]
)
def test_window_scores_and_ranges_of_a_real_clip_do_not_change(
    name: str, keras_lite0, openvino_lite0, trained_model: Path
) -> None:
    video = real_clip(name)
    config = Config()
    reference = extract_features(video, keras_lite0, config.sampling.rate)
    fast = extract_features(video, openvino_lite0, config.sampling.rate)
    np.testing.assert_array_equal(fast.times, reference.times)
    assert np.abs(fast.features - reference.features).max() <= FEATURE_TOLERANCE

    model = SequenceModel.load(trained_model)
    want = score_sequence(reference, config.window, model)
    got = score_sequence(fast, config.window, model)
    assert len(want.starts) >= 3
    assert np.abs(got.probabilities - want.probabilities).max() <= SCORE_TOLERANCE
    event = want.classes.index(EVENT_CLASS)
    # At the default threshold and at the middle of this clip's scores, so that there are ranges.
    for threshold in (0.5, float(np.median(want.probabilities[:, event]))):
        policy = SegmentConfig(threshold=threshold)
        ranges = find_segments(want, [EVENT_CLASS], policy, fast.times[-1] + 0.2)
        assert [(s.start, s.end) for s in find_segments(
            got, [EVENT_CLASS], policy, fast.times[-1] + 0.2
        )] == [(s.start, s.end) for s in ranges]  # fmt: skip


@pytest.mark.slow
def test_a_model_trained_on_keras_features_detects_with_keras(tmp_path: Path) -> None:
    """The backend is part of the model's recipe: detect follows the model, not the default."""
    from highlights import synthetic
    from highlights.pipeline import run_detect
    from highlights.training import train

    data = synthetic.make_dataset(tmp_path / "data", clips_per_class=4, seconds=2.0)
    config = Config(cache_dir=tmp_path / "cache", backbone_backend="keras")
    train(data, tmp_path / "model", config.replace(**{"train.epochs": 1}))
    match = synthetic.make_match(tmp_path / "match.mp4", 6, [synthetic.Event(2, 4)])
    result = run_detect(
        match, tmp_path / "model", tmp_path / "out", Config(cache_dir=tmp_path / "cache"),
        [EVENT_CLASS],
    )  # fmt: skip
    assert result.segments_json.is_file()
    assert SequenceModel.load(tmp_path / "model").manifest.recipe.backend == "keras"
