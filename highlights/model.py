"""The sequence model: a Keras classifier over windows of backbone features, and its manifest.

A model is a directory holding `model.keras` (architecture + weights, no optimizer state) and
`manifest.json`, which records everything needed to feed it correctly: the classes in output
order, the feature recipe it was trained on (`highlights.recipe`: backbone, weights, frame
shaping, sampling and rate), and the window length in frames. Features of any other recipe are
refused.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from highlights.config import Decisions, WindowConfig
from highlights.errors import ConfigError, ModelError, OutputExistsError
from highlights.recipe import FeatureRecipe, check_recipe

if TYPE_CHECKING:
    import keras

# Keras and TensorFlow are imported where a Keras model is built, loaded or run: reading a
# manifest, or scoring with the OpenVINO copy (`highlights.openvino_classifier`), needs neither.

MODEL_FILE = "model.keras"
MANIFEST_FILE = "manifest.json"
TRAINING_REPORT_FILE = "training_report.json"
FORMAT_VERSION = 2  # 2 replaced `preprocessing` by the feature recipe
PRESETS = ("compact", "seed")
# Files a model directory may hold; any other file means it is not ours to replace.
_MODEL_DIR_FILES = frozenset({MODEL_FILE, MANIFEST_FILE, TRAINING_REPORT_FILE})
_STAGING_PREFIX = ".saving-"  # a save in progress (or one a crash interrupted) inside the folder


@dataclass(frozen=True)
class ModelManifest:
    """What a saved model was trained on and how its input must be prepared."""

    classes: tuple[str, ...]  # in the order of the model's outputs
    backbone: str  # the recipe's, repeated for readers of the JSON
    feature_dim: int
    rate: float  # frames per second sampled for the features (the recipe's)
    window_length: float  # seconds
    window_stride: float  # seconds
    steps: int  # frames per window: WindowConfig.steps(rate)
    preset: str
    recipe: FeatureRecipe  # what made the features the model was trained on
    training: dict[str, Any] = field(default_factory=dict)
    # Decision settings chosen on the validation clips: {"chosen_on", "objective",
    # "classes": {class: SegmentConfig fields + scores}} (highlights.calibration); {} = none.
    decisions: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def window_config(self) -> WindowConfig:
        return WindowConfig(length=self.window_length, stride=self.window_stride)

    def check_windows(self, batch: np.ndarray) -> np.ndarray:
        """`batch` as float32 (W, steps, feature_dim) windows; ModelError for another shape."""
        batch = np.asarray(batch, dtype=np.float32)
        expected = (self.steps, self.feature_dim)
        if batch.ndim != 3 or batch.shape[1:] != expected:
            raise ModelError(
                f"model expects windows of shape (W, {expected[0]}, {expected[1]}), "
                f"got {batch.shape}"
            )
        return batch

    def check_features(self, recipe: FeatureRecipe | None, what: str) -> None:
        """RecipeMismatch (one line naming both recipes) unless features of `recipe` fit."""
        check_recipe(self.recipe, recipe, what)

    def to_json(self) -> str:
        data = asdict(self)
        data["classes"] = list(self.classes)
        data["recipe"] = self.recipe.to_dict()
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: Path | str = MANIFEST_FILE) -> ModelManifest:
        """Parse and validate; any problem is a ModelError naming `source` and the field."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"{source}: not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ModelError(f"{source}: expected a JSON object, got {type(data).__name__}")
        return cls(**_validated_fields(data, str(source)))

    def write(self, path: Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> ModelManifest:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ModelError(
                f"{path}: manifest not found; a model directory needs {MANIFEST_FILE}"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"{path}: cannot read manifest: {exc}") from None
        return cls.from_json(text, source=path)


def _validated_fields(data: dict[str, Any], source: str) -> dict[str, Any]:
    def bad(name: str, why: str) -> ModelError:
        return ModelError(f"{source}: field {name!r} {why}")

    names = {
        "classes",
        "backbone",
        "feature_dim",
        "rate",
        "window_length",
        "window_stride",
        "steps",
        "preset",
        "recipe",
        "training",
        "decisions",
        "format_version",
    }
    version = data.get("format_version", FORMAT_VERSION)
    if version == 1 and not isinstance(version, bool):
        raise ModelError(
            f"{source}: a version 1 model records no feature recipe, so nothing can tell which "
            "weights and sampling its features need; train it again"
        )
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise bad("format_version", f"is {version!r}; this version reads only {FORMAT_VERSION}")
    missing = sorted(names - data.keys() - {"training", "decisions", "format_version"})
    if missing:
        raise bad(missing[0], "is missing")
    unknown = sorted(data.keys() - names)
    if unknown:
        raise bad(unknown[0], "is not a manifest field")
    classes = data["classes"]
    if not isinstance(classes, list) or len(classes) < 2:
        raise bad("classes", "must be a list of at least 2 class names")
    if not all(isinstance(c, str) and c for c in classes) or len(set(classes)) != len(classes):
        raise bad("classes", "must hold distinct, non-empty strings")
    for name in ("backbone", "preset"):
        if not isinstance(data[name], str) or not data[name]:
            raise bad(name, "must be a non-empty string")
    if data["preset"] not in PRESETS:
        raise bad("preset", f"is {data['preset']!r}; expected one of {', '.join(PRESETS)}")
    for name in ("feature_dim", "steps"):
        value = data[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise bad(name, f"must be a positive integer, got {value!r}")
    for name in ("rate", "window_length", "window_stride"):
        value = data[name]
        if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
            raise bad(name, f"must be a positive number, got {value!r}")
    expected_steps = WindowConfig(data["window_length"], data["window_stride"]).steps(data["rate"])
    if data["steps"] != expected_steps:
        raise bad("steps", f"is {data['steps']} but window_length x rate gives {expected_steps}")
    for name in ("training", "decisions"):
        if not isinstance(data.get(name, {}), dict):
            raise bad(name, "must be a JSON object")
    _check_decisions(data.get("decisions", {}), bad)
    recipe = FeatureRecipe.from_dict(data["recipe"], f"{source}: field 'recipe'")
    if recipe.backbone != data["backbone"]:
        raise bad("backbone", f"is {data['backbone']!r} but the recipe's is {recipe.backbone!r}")
    if not math.isclose(float(recipe.rate), data["rate"], rel_tol=1e-9):
        raise bad("rate", f"is {data['rate']!r} but the recipe's is {recipe.rate}")
    return {
        **data,
        "classes": tuple(classes),
        "rate": float(data["rate"]),
        "window_length": float(data["window_length"]),
        "window_stride": float(data["window_stride"]),
        "recipe": recipe,
        "training": data.get("training", {}),
        "decisions": data.get("decisions", {}),
        "format_version": FORMAT_VERSION,
    }


def _check_decisions(decisions: dict[str, Any], bad: Any) -> None:
    classes = decisions.get("classes", {})
    if not isinstance(classes, dict):
        raise bad("decisions", "must hold 'classes', an object of class -> settings")
    try:
        Decisions.from_dict(classes)
    except ConfigError as exc:
        raise bad("decisions", f"has bad settings: {exc}") from None


def build_model(preset: str, steps: int, feature_dim: int, num_classes: int) -> keras.Model:
    """An uncompiled classifier from (steps, feature_dim) windows to num_classes probabilities.

    `seed`: the original project's network, LSTM(2048) -> Dense(512, relu) -> Dropout(0.5) ->
    softmax, about 27 M weights for 1280-d features; it needs a large data set.
    `compact`: for data sets of tens to hundreds of clips per class. Backbone features are highly
    redundant, so dropping 30 % of them at the input is strong, cheap regularisation; a 128-unit
    LSTM (~0.72 M weights for 1280-d features, 37x fewer than `seed`) still learns short motion
    patterns and trains in seconds on CPU.
    Initialisation and dropout follow `keras.utils.set_random_seed`.
    """
    import keras

    if num_classes < 2:
        raise ModelError(f"a classifier needs at least 2 classes, got {num_classes}")
    inputs = keras.Input(shape=(steps, feature_dim), name="features")
    # A window of a clip shorter than the window is padded with all-zero steps: masked, the LSTM
    # skips them. (No real frame's features are all zero.)
    masked = keras.layers.Masking(mask_value=0.0, name="padding")(inputs)
    if preset == "seed":
        x = keras.layers.LSTM(2048, name="lstm")(masked)
        x = keras.layers.Dense(512, activation="relu", name="dense")(x)
        x = keras.layers.Dropout(0.5, name="dropout")(x)
    elif preset == "compact":
        x = keras.layers.Dropout(0.3, name="feature_dropout")(masked)
        x = keras.layers.LSTM(128, name="lstm")(x)
        x = keras.layers.Dropout(0.3, name="dropout")(x)
    else:
        raise ModelError(f"unknown model preset {preset!r}; expected one of {', '.join(PRESETS)}")
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"highlights_{preset}")


class SequenceModel:
    """A Keras window classifier together with its manifest."""

    def __init__(
        self, model: keras.Model, manifest: ModelManifest, source: Path | str = MANIFEST_FILE
    ) -> None:
        import tensorflow as tf

        _check_agrees(model, manifest, str(source))
        self._model = model
        self._manifest = manifest
        self._call = tf.function(
            lambda x: model(x, training=False),
            input_signature=[
                tf.TensorSpec((None, manifest.steps, manifest.feature_dim), tf.float32)
            ],
        )

    @property
    def manifest(self) -> ModelManifest:
        return self._manifest

    @property
    def classes(self) -> tuple[str, ...]:
        return self._manifest.classes

    @property
    def keras_model(self) -> keras.Model:
        return self._model

    def predict(self, batch: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(W, steps, feature_dim) windows -> (W, C) float32 class probabilities."""
        batch = self._manifest.check_windows(batch)
        if len(batch) == 0:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        import tensorflow as tf

        parts = [
            self._call(tf.constant(batch[begin : begin + batch_size])).numpy()
            for begin in range(0, len(batch), batch_size)
        ]
        return np.concatenate(parts).astype(np.float32, copy=False)

    @classmethod
    def load(cls, model_dir: Path) -> SequenceModel:
        """Load a model directory (`manifest.check_features` then says which features fit)."""
        manifest, weights = read_model_dir(model_dir)
        import keras

        try:
            model = keras.saving.load_model(weights, compile=False)
        except Exception as exc:  # Keras raises many kinds for a bad archive
            raise ModelError(f"{weights}: cannot load the Keras model: {exc}") from None
        return cls(model, manifest, source=Path(model_dir) / MANIFEST_FILE)

    def save(self, model_dir: Path, extra_files: dict[str, str] | None = None) -> Path:
        """Write the model directory, replacing an earlier model there.

        `extra_files` (name -> text) are written alongside, e.g. the training report.
        A new directory appears whole (written under a temporary name, then renamed). In an
        existing one (it may be a mount point, as SageMaker's /opt/ml/model is) each file is
        renamed into place, the manifest last, so an interrupted save never loads.
        A directory holding anything but model files is refused, never overwritten.
        """
        model_dir = Path(model_dir)
        extra_files = extra_files or {}
        unknown = set(extra_files) - _MODEL_DIR_FILES
        if unknown:
            raise ModelError(
                f"{model_dir}: cannot save unknown files {sorted(unknown)} with a model"
            )
        _refuse_foreign(model_dir)
        existing = model_dir.exists()
        model_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(
            tempfile.mkdtemp(
                prefix=_STAGING_PREFIX if existing else f".{model_dir.name}.",
                suffix=".partial",
                dir=model_dir if existing else model_dir.parent,
            )
        )
        try:
            self._model.save(staging / MODEL_FILE)
            self._manifest.write(staging / MANIFEST_FILE)
            for name, text in extra_files.items():
                (staging / name).write_text(text, encoding="utf-8")
            if existing:
                _replace_files(staging, model_dir)
            else:
                os.replace(staging, model_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return model_dir


def read_model_dir(model_dir: Path) -> tuple[ModelManifest, Path]:
    """A model directory's manifest and the path of its Keras file (checked to exist)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelError(f"{model_dir}: model directory not found")
    manifest = ModelManifest.read(model_dir / MANIFEST_FILE)
    weights = model_dir / MODEL_FILE
    if not weights.is_file():
        raise ModelError(f"{weights}: model file not found")
    return manifest, weights


def _check_agrees(model: keras.Model, manifest: ModelManifest, source: str) -> None:
    inputs, outputs = tuple(model.input_shape), tuple(model.output_shape)
    if len(inputs) != 3 or inputs[2] != manifest.feature_dim:
        raise ModelError(
            f"{source}: feature_dim is {manifest.feature_dim} "
            f"but the Keras model takes input {inputs}"
        )
    if inputs[1] not in (None, manifest.steps):
        raise ModelError(
            f"{source}: steps is {manifest.steps} but the Keras model takes input {inputs}"
        )
    if len(outputs) != 2 or outputs[1] != len(manifest.classes):
        raise ModelError(
            f"{source}: lists {len(manifest.classes)} classes but the Keras model outputs {outputs}"
        )


def _refuse_foreign(model_dir: Path) -> None:
    if not model_dir.exists():
        return
    if not model_dir.is_dir():
        raise OutputExistsError(
            f"{model_dir}: exists and is not a directory; choose another model path"
        )
    foreign = sorted(
        p.name
        for p in model_dir.iterdir()
        if p.name not in _MODEL_DIR_FILES and not p.name.startswith(_STAGING_PREFIX)
    )
    if foreign:
        raise OutputExistsError(
            f"{model_dir}: exists and holds {', '.join(foreign[:3])}, which are not model files; "
            "choose an empty or new directory"
        )


def _replace_files(staging: Path, model_dir: Path) -> None:
    # Without a manifest the directory does not load, so no moment mixes old and new files.
    (model_dir / MANIFEST_FILE).unlink(missing_ok=True)
    for name in sorted(_MODEL_DIR_FILES - {MANIFEST_FILE}):
        if (staging / name).exists():
            os.replace(staging / name, model_dir / name)
        else:
            (model_dir / name).unlink(missing_ok=True)
    os.replace(staging / MANIFEST_FILE, model_dir / MANIFEST_FILE)
