"""Converted OpenVINO models are cached: a second run neither builds Keras nor imports TensorFlow.

Tolerances: cached and freshly converted backbones give identical features (the same network);
the OpenVINO classifier's probabilities are within 1e-5 of Keras's (float32; about 2e-7 seen).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

import highlights.backbones as backbones
from highlights.backbones import load_backbone
from highlights.model import ModelManifest, SequenceModel, build_model
from highlights.openvino_cache import FOLDER, HASHES_FILE, NETWORK_FILE, WEIGHTS_FILE, _problem
from highlights.openvino_classifier import OpenVinoSequenceModel, load_scoring_model
from highlights.recipe import recipe_of
from highlights.synthetic import EVENT_CLASS
from tests.media import make_video
from tests.recipes import a_recipe

PROBABILITY_TOLERANCE = 1e-5
IMAGES = np.random.default_rng(5).integers(0, 256, (4, 224, 224, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def uncached_features() -> np.ndarray:
    return load_backbone("efficientnet_lite0").embed(IMAGES)


@pytest.fixture(scope="module")
def lite0_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A compact classifier (random weights) over the default recipe's features."""
    keras.utils.set_random_seed(11)
    manifest = ModelManifest(
        classes=(EVENT_CLASS, "other"),
        backbone="efficientnet_lite0",
        feature_dim=1280,
        rate=5.0,
        window_length=2.0,
        window_stride=1.0,
        steps=10,
        preset="compact",
        recipe=a_recipe(),
    )
    folder = tmp_path_factory.mktemp("ov-model") / "model"
    return SequenceModel(build_model("compact", 10, 1280, 2), manifest).save(folder)


def _entries(cache: Path) -> list[Path]:
    return sorted((cache / FOLDER).iterdir())


def test_second_load_reads_the_cache_not_keras(tmp_path, monkeypatch, uncached_features) -> None:
    first = load_backbone("efficientnet_lite0", cache_dir=tmp_path)
    [entry] = _entries(tmp_path)
    assert entry.name.startswith("efficientnet_lite0-") and _problem(entry) is None

    def no_keras(*args: object) -> None:
        raise AssertionError("the Keras backbone was built although the cache holds it")

    monkeypatch.setattr(backbones, "_keras_backbone", no_keras)
    second = load_backbone("efficientnet_lite0", cache_dir=tmp_path)
    assert _entries(tmp_path) == [entry]
    assert np.array_equal(first.embed(IMAGES), uncached_features)
    assert np.array_equal(second.embed(IMAGES), uncached_features)
    assert recipe_of(second, 5) == recipe_of(first, 5) == a_recipe()  # as without a cache


def test_precision_has_its_own_entry(tmp_path) -> None:
    load_backbone("efficientnet_lite0", cache_dir=tmp_path)
    load_backbone("efficientnet_lite0", precision="bfloat16", cache_dir=tmp_path)
    assert len(_entries(tmp_path)) == 2


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


DAMAGE = {
    "weights cut short": lambda entry: _truncate(entry / WEIGHTS_FILE),
    "one bit of the weights": lambda entry: _flip(entry / WEIGHTS_FILE),
    "network text changed": lambda entry: _flip(entry / NETWORK_FILE),
    "no hashes (a partial entry)": lambda entry: (entry / HASHES_FILE).unlink(),
    "hashes not JSON": lambda entry: (entry / HASHES_FILE).write_text("{"),
    "weights missing": lambda entry: (entry / WEIGHTS_FILE).unlink(),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_entry_is_converted_again(tmp_path, caplog, uncached_features, damage) -> None:
    load_backbone("efficientnet_lite0", cache_dir=tmp_path)
    [entry] = _entries(tmp_path)
    DAMAGE[damage](entry)
    with caplog.at_level("WARNING", logger="highlights.openvino_cache"):
        again = load_backbone("efficientnet_lite0", cache_dir=tmp_path)
    assert any(str(entry) in m and "damaged" in m for m in caplog.messages), caplog.messages
    assert np.array_equal(again.embed(IMAGES), uncached_features)
    assert _entries(tmp_path) == [entry] and _problem(entry) is None


def test_openvino_classifier_agrees_with_keras(lite0_model: Path, tmp_path: Path) -> None:
    reference = SequenceModel.load(lite0_model)
    converted = load_scoring_model(lite0_model, "openvino", tmp_path)
    assert isinstance(converted, OpenVinoSequenceModel)
    assert isinstance(load_scoring_model(lite0_model, "keras", tmp_path), SequenceModel)
    windows = np.random.default_rng(2).normal(0, 1.5, (300, 10, 1280)).astype(np.float32)
    windows[7, 4:] = 0  # a short clip's window: the padding steps are masked
    windows[8, 1:] = 0
    want = reference.predict(windows)
    got = converted.predict(windows, batch_size=128)
    assert got.shape == want.shape == (300, 2)
    assert np.abs(got - want).max() <= PROBABILITY_TOLERANCE
    assert want.std() > 1e-3  # the windows give different scores, so agreement means something
    cached = load_scoring_model(lite0_model, "openvino", tmp_path)
    assert np.array_equal(cached.predict(windows), got)


DETECT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from highlights.config import Config
    from highlights.pipeline import run_detect

    video, model, out, cache = (Path(a) for a in sys.argv[1:5])
    result = run_detect(video, model, out, Config(cache_dir=cache), [{event!r}], force=True)
    print(json.dumps({{
        "tensorflow": "tensorflow" in sys.modules,
        "keras": "keras" in sys.modules,
        "segments": json.loads(result.segments_json.read_text()),
    }}))
    """
)


def _detect(video: Path, model: Path, out: Path, cache: Path) -> dict:
    script = DETECT.format(event=EVENT_CLASS)
    done = subprocess.run(
        [sys.executable, "-c", script, str(video), str(model), str(out), str(cache)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_detect_with_a_warm_cache_never_imports_tensorflow(lite0_model, tmp_path) -> None:
    video = make_video(tmp_path / "match.mp4", 12.0)
    cache = tmp_path / "cache"
    cold = _detect(video, lite0_model, tmp_path / "out-1", cache)
    names = sorted(p.name.split("-")[0] for p in _entries(cache))
    assert names == ["classifier", "efficientnet_lite0"]
    assert cold["tensorflow"]  # it converted
    warm = _detect(video, lite0_model, tmp_path / "out-2", cache)
    assert (warm["tensorflow"], warm["keras"]) == (False, False)
    assert warm["segments"]["windows"] == cold["segments"]["windows"]
    assert warm["segments"]["predictions"] == cold["segments"]["predictions"]
