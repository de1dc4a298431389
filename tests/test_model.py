"""The sequence model: architectures, the manifest, saving and loading, prediction, fitting."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from highlights.errors import ModelError, OutputExistsError
from highlights.model import ModelManifest, SequenceModel, build_model
from highlights.recipe import RecipeMismatch
from tests.recipes import a_recipe

STEPS, DIM = 10, 16


def manifest(**changes) -> ModelManifest:
    base = ModelManifest(
        classes=("Diving", "PenaltyKick", "Other"),
        backbone="efficientnet_lite0",
        feature_dim=DIM,
        rate=5.0,
        window_length=2.0,
        window_stride=1.0,
        steps=STEPS,
        preset="compact",
        recipe=a_recipe(),
        training={"epochs": 3},
    )
    return dataclasses.replace(base, **changes)


def windows(count: int = 7, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, STEPS, DIM)).astype(np.float32)


@pytest.fixture(scope="module")
def model() -> SequenceModel:
    keras.utils.set_random_seed(0)
    return SequenceModel(build_model("compact", STEPS, DIM, 3), manifest())


@pytest.fixture
def saved(tmp_path: Path, model: SequenceModel) -> Path:
    return model.save(tmp_path / "model")


# Architectures


def test_compact_model_maps_windows_to_class_probabilities():
    net = build_model("compact", steps=10, feature_dim=1280, num_classes=5)
    assert net.input_shape == (None, 10, 1280)
    assert net.output_shape == (None, 5)
    assert net.get_layer("lstm").units == 128
    assert net.count_params() < 1_000_000


@pytest.mark.slow  # about 10 s: orthogonal initialisation of the 2048-unit recurrent kernel
def test_seed_model_has_exactly_the_seed_layers():
    net = build_model("seed", steps=10, feature_dim=1280, num_classes=101)
    assert net.input_shape == (None, 10, 1280)
    kinds = [type(layer).__name__ for layer in net.layers[1:]]
    # the seed's layers behind a Masking layer (no weights) that skips a short clip's padding
    assert kinds == ["Masking", "LSTM", "Dense", "Dropout", "Dense"]
    padding, lstm, dense, dropout, out = net.layers[1:]
    assert padding.mask_value == 0.0
    assert lstm.units == 2048
    assert (dense.units, dense.activation.__name__) == (512, "relu")
    assert dropout.rate == 0.5
    assert (out.units, out.activation.__name__) == (101, "softmax")


def test_an_unknown_preset_is_an_error():
    with pytest.raises(ModelError, match="unknown model preset 'huge'"):
        build_model("huge", STEPS, DIM, 3)


# Manifest


def test_manifest_survives_a_json_round_trip():
    original = manifest()
    assert ModelManifest.from_json(original.to_json()) == original


def test_manifest_gives_the_window_it_was_trained_with():
    window = manifest(window_length=3.0, window_stride=0.5, steps=15).window_config()
    assert (window.length, window.stride) == (3.0, 0.5)


def broken(field: str, value) -> str:
    data = json.loads(manifest().to_json())
    if value is _DELETE:
        del data[field]
    else:
        data[field] = value
    return json.dumps(data)


_DELETE = object()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("classes", _DELETE),
        ("classes", "Diving"),
        ("classes", ["Diving"]),
        ("classes", ["Diving", "Diving"]),
        ("classes", ["Diving", ""]),
        ("backbone", _DELETE),
        ("backbone", ""),
        ("feature_dim", 0),
        ("feature_dim", 16.5),
        ("feature_dim", True),
        ("rate", -5),
        ("rate", "5"),
        ("window_length", 0),
        ("window_stride", None),
        ("steps", 11),
        ("preset", "huge"),
        ("recipe", _DELETE),
        ("recipe", {"backbone": "efficientnet_lite0"}),
        ("preprocessing", {"crop": 224}),
        ("training", "fast"),
        ("format_version", 3),
        ("colour", "blue"),
    ],
)
def test_a_broken_manifest_field_is_an_error_naming_file_and_field(field, value):
    with pytest.raises(ModelError, match=rf"^models/x/manifest\.json: field '{field}'"):
        ModelManifest.from_json(broken(field, value), source="models/x/manifest.json")


def test_a_manifest_that_is_not_json_is_an_error():
    with pytest.raises(ModelError, match=r"m\.json: not valid JSON"):
        ModelManifest.from_json("{classes: [", source="m.json")


def test_a_manifest_that_is_not_an_object_is_an_error():
    with pytest.raises(ModelError, match=r"m\.json: expected a JSON object, got list"):
        ModelManifest.from_json("[1, 2]", source="m.json")


# Saving and loading


def test_a_loaded_model_predicts_exactly_what_the_saved_one_did(saved, model):
    loaded = SequenceModel.load(saved)
    assert loaded.manifest == model.manifest
    np.testing.assert_array_equal(loaded.predict(windows()), model.predict(windows()))


def test_a_model_directory_holds_the_keras_file_and_the_manifest(saved):
    assert sorted(p.name for p in saved.iterdir()) == ["manifest.json", "model.keras"]
    assert not [p for p in saved.parent.iterdir() if p.name.startswith(".")]


def test_saving_again_replaces_an_earlier_model(saved):
    keras.utils.set_random_seed(1)
    other = SequenceModel(build_model("compact", STEPS, DIM, 2), manifest(classes=("a", "b")))
    other.save(saved, extra_files={"training_report.json": "{}"})
    assert SequenceModel.load(saved).classes == ("a", "b")
    assert (saved / "training_report.json").read_text() == "{}"


def test_saving_into_an_existing_empty_folder_fills_it(tmp_path, model):
    folder = tmp_path / "opt-ml-model"
    folder.mkdir()
    model.save(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "model.keras"]
    assert SequenceModel.load(folder).classes == model.classes


def test_saving_a_new_model_drops_the_old_models_report(saved, model):
    model.save(saved, extra_files={"training_report.json": "{}"})
    model.save(saved)
    assert not (saved / "training_report.json").exists()


def test_saving_into_a_folder_of_other_files_is_refused(tmp_path, model):
    (tmp_path / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="holiday.jpg, which are not model files"):
        model.save(tmp_path)
    assert (tmp_path / "holiday.jpg").read_bytes() == b"precious"


def test_loading_a_missing_directory_is_an_error(tmp_path):
    with pytest.raises(ModelError, match="nowhere: model directory not found"):
        SequenceModel.load(tmp_path / "nowhere")


def test_loading_without_a_manifest_is_an_error(saved):
    (saved / "manifest.json").unlink()
    with pytest.raises(ModelError, match=r"manifest\.json: manifest not found"):
        SequenceModel.load(saved)


def test_loading_without_the_keras_file_is_an_error(saved):
    (saved / "model.keras").unlink()
    with pytest.raises(ModelError, match=r"model\.keras: model file not found"):
        SequenceModel.load(saved)


def test_loading_a_corrupt_keras_file_is_an_error(saved):
    (saved / "model.keras").write_bytes(b"PK\x03\x04 this is not a model")
    with pytest.raises(ModelError, match=r"model\.keras: cannot load the Keras model"):
        SequenceModel.load(saved)


def test_loading_a_broken_manifest_is_an_error_naming_it(saved):
    (saved / "manifest.json").write_text('{"classes": ')
    with pytest.raises(ModelError, match=r"manifest\.json: not valid JSON"):
        SequenceModel.load(saved)


def test_a_manifest_whose_feature_dim_disagrees_with_the_model_is_an_error(saved):
    (saved / "manifest.json").write_text(manifest(feature_dim=1280).to_json())
    with pytest.raises(
        ModelError, match=r"manifest\.json: feature_dim is 1280 but the Keras model"
    ):
        SequenceModel.load(saved)


def test_a_manifest_whose_classes_disagree_with_the_model_is_an_error(saved):
    (saved / "manifest.json").write_text(manifest(classes=("a", "b")).to_json())
    with pytest.raises(ModelError, match=r"manifest\.json: lists 2 classes but the Keras model"):
        SequenceModel.load(saved)


def test_the_saved_manifest_keeps_the_feature_recipe(saved):
    assert SequenceModel.load(saved).manifest.recipe == a_recipe()
    stored = json.loads((saved / "manifest.json").read_text())["recipe"]
    assert stored["rate"] == "5" and stored["weights_sha256"] == a_recipe().weights_sha256


@pytest.mark.parametrize(
    "changes",
    [
        {"backbone": "inception_v3"},
        {"weights_sha256": "0" * 64},
        {"crop": 192},
        {"normalisation": "rgb / 255"},
        {"sampler": "every-decoded-picture v1"},
        {"rate": 4},
        {"precision": "float16"},
    ],
)
def test_features_of_another_recipe_are_refused_naming_both(saved, changes):
    other = dataclasses.replace(a_recipe(), **changes)
    model = SequenceModel.load(saved)
    with pytest.raises(RecipeMismatch) as caught:
        model.manifest.check_features(other, "work/features.npz")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("work/features.npz: ")
    assert other.digest in message and a_recipe().digest in message


def test_features_of_the_models_recipe_are_taken(saved):
    SequenceModel.load(saved).manifest.check_features(a_recipe(), "features.npz")


def test_features_that_record_no_recipe_are_refused(saved):
    with pytest.raises(RecipeMismatch, match="features.npz: features record no recipe"):
        SequenceModel.load(saved).manifest.check_features(None, "features.npz")


def test_a_version_1_manifest_is_refused_with_a_reason():
    old = json.loads(manifest().to_json())
    del old["recipe"]
    old["format_version"] = 1
    old["preprocessing"] = {"crop": 224}
    with pytest.raises(ModelError, match="m.json: a version 1 model records no feature recipe"):
        ModelManifest.from_json(json.dumps(old), source="m.json")


# Prediction


def test_predictions_are_float32_probabilities_one_row_per_window(model):
    probabilities = model.predict(windows(600), batch_size=256)
    assert probabilities.shape == (600, 3)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_prediction_does_not_depend_on_the_batch_size(model):
    batch = windows(50)
    np.testing.assert_allclose(model.predict(batch, batch_size=7), model.predict(batch), rtol=1e-5)


def test_predicting_no_windows_gives_no_rows(model):
    assert model.predict(np.zeros((0, STEPS, DIM), np.float32)).shape == (0, 3)


def test_predicting_windows_of_the_wrong_shape_is_an_error(model):
    with pytest.raises(
        ModelError, match=r"expects windows of shape \(W, 10, 16\), got \(4, 10, 8\)"
    ):
        model.predict(np.zeros((4, STEPS, 8), np.float32))


# Fitting


def test_the_compact_model_learns_separable_sequences_quickly():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=300)
    centres = rng.normal(size=(3, DIM)).astype(np.float32)
    x = centres[labels][:, None, :] + 0.5 * rng.normal(size=(300, STEPS, DIM)).astype(np.float32)
    keras.utils.set_random_seed(0)
    net = build_model("compact", STEPS, DIM, 3)
    net.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    net.fit(x[:200], labels[:200], epochs=8, batch_size=32, verbose=0)
    predicted = SequenceModel(net, manifest()).predict(x[200:]).argmax(axis=1)
    assert (predicted == labels[200:]).mean() >= 0.95
