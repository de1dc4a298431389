"""Training the sequence model on cached backbone features of a folder-per-class data set.

data set -> backbone features per clip (cached) -> windows (each labelled with its clip's class)
-> fit, choosing the epoch on the validation clips -> choose each class's decision settings on
the validation clips joined into one timeline -> score the test clips per window and per clip ->
save. The test clips choose nothing, so their score is an honest estimate.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from highlights.backbones import load_backbone
from highlights.calibration import ClassDecision, calibrate_decisions, manifest_decisions
from highlights.config import Config, WindowConfig
from highlights.damage import check_damage
from highlights.dataset import Clip, Dataset, scan_dataset
from highlights.errors import DatasetError, InputError
from highlights.features import FeatureCache, FeatureSequence
from highlights.files import file_sha256
from highlights.model import TRAINING_REPORT_FILE, ModelManifest, SequenceModel, build_model
from highlights.recipe import FeatureRecipe
from highlights.windows import PAD, gather_frames, window_frame_indices

EARLY_STOPPING_PATIENCE = 5


@dataclass(frozen=True)
class Evaluation:
    """How well predicted classes match the truth over some items (windows or clips)."""

    accuracy: float
    precision: tuple[float, ...]  # per class; 0.0 for a class never predicted
    recall: tuple[float, ...]  # per class; 0.0 for a class with no items
    support: tuple[int, ...]  # items per true class
    confusion: np.ndarray  # (C, C) int64: rows true class, columns predicted class

    @property
    def count(self) -> int:
        return int(self.confusion.sum())

    def to_dict(self, classes: Sequence[str]) -> dict[str, Any]:
        return {
            "count": self.count,
            "accuracy": self.accuracy,
            "per_class": {
                name: {"precision": p, "recall": r, "support": s}
                for name, p, r, s in zip(
                    classes, self.precision, self.recall, self.support, strict=True
                )
            },
            "confusion": self.confusion.tolist(),
        }


def evaluate(labels: np.ndarray, probabilities: np.ndarray, num_classes: int) -> Evaluation:
    """Accuracy, per-class precision/recall and the confusion matrix of argmax predictions."""
    predicted = np.argmax(probabilities, axis=1)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (np.asarray(labels, dtype=np.int64), predicted), 1)
    correct = np.diag(confusion).astype(np.float64)
    predicted_counts, true_counts = confusion.sum(axis=0), confusion.sum(axis=1)
    return Evaluation(
        accuracy=float(correct.sum() / max(1, confusion.sum())),
        precision=tuple(
            float(c / n) if n else 0.0 for c, n in zip(correct, predicted_counts, strict=True)
        ),
        recall=tuple(float(c / n) if n else 0.0 for c, n in zip(correct, true_counts, strict=True)),
        support=tuple(int(n) for n in true_counts),
        confusion=confusion,
    )


@dataclass(frozen=True)
class TrainingReport:
    classes: tuple[str, ...]
    split: str
    preset: str
    train_clips: int
    validation_clips: int
    train_windows: int
    validation_windows: int
    epochs_run: int
    max_epochs: int
    best_epoch: int  # 1-based; its weights are the ones saved
    history: dict[str, list[float]]
    windows: Evaluation  # test clips, every window on its own
    clips: Evaluation  # test clips, mean of each clip's window probabilities
    seconds: float
    test_clips: int = 0
    test_windows: int = 0
    notes: tuple[str, ...] = ()  # classes missing from a part of the split
    epoch_chosen_on: str = "validation"
    scored_on: str = "test"
    decisions: tuple[ClassDecision, ...] = ()  # chosen on the validation clips

    def summary(self) -> dict[str, Any]:
        """The short form kept in the model's manifest."""
        return {
            "split": self.split,
            "train_clips": self.train_clips,
            "validation_clips": self.validation_clips,
            "train_windows": self.train_windows,
            "validation_windows": self.validation_windows,
            "test_clips": self.test_clips,
            "test_windows": self.test_windows,
            "epoch_chosen_on": self.epoch_chosen_on,
            "scored_on": self.scored_on,
            "notes": list(self.notes),
            "epochs_run": self.epochs_run,
            "max_epochs": self.max_epochs,
            "best_epoch": self.best_epoch,
            "window_accuracy": self.windows.accuracy,
            "clip_accuracy": self.clips.accuracy,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "classes": list(self.classes),
            "preset": self.preset,
            "seconds": self.seconds,
            "history": self.history,
            "evaluation": {
                "windows": self.windows.to_dict(self.classes),
                "clips": self.clips.to_dict(self.classes),
            },
            "decisions": {d.label: d.to_dict() for d in self.decisions},
        }

    def format(self) -> str:
        width = max(12, *(len(name) for name in self.classes))
        lines = [
            f"Trained the {self.preset} model on {len(self.classes)} classes: "
            f"{self.train_clips} clips ({self.train_windows} windows) for training, "
            f"{self.validation_clips} clips ({self.validation_windows} windows) for validation, "
            f"{self.test_clips} clips ({self.test_windows} windows) for test.",
            f"Split: {self.split}.",
            *(f"Note: {note}." for note in self.notes),
            f"Epochs: {self.epochs_run} of {self.max_epochs}"
            + (" (stopped early)" if self.epochs_run < self.max_epochs else "")
            + f"; kept epoch {self.best_epoch}, lowest loss on the {self.epoch_chosen_on} split;"
            f" {self.seconds:.1f} s.",
            f"Accuracy on the {self.scored_on} split (it chose nothing): "
            f"{self.windows.accuracy:.1%} per window, {self.clips.accuracy:.1%} per clip.",
            "",
            f"{'class':<{width}}  {'window P':>8}  {'window R':>8}  {'clip P':>6}  {'clip R':>6}  "
            f"{'clips':>5}",
        ]
        for i, name in enumerate(self.classes):
            lines.append(
                f"{name:<{width}}  {self.windows.precision[i]:>8.1%}  "
                f"{self.windows.recall[i]:>8.1%}  {self.clips.precision[i]:>6.1%}  "
                f"{self.clips.recall[i]:>6.1%}  {self.clips.support[i]:>5}"
            )
        lines += ["", "Confusion per clip (rows: true class, columns: predicted):"]
        lines.append(" " * width + "".join(f"  {name[:width]:>{width}}" for name in self.classes))
        for name, row in zip(self.classes, self.clips.confusion, strict=True):
            lines.append(f"{name:<{width}}" + "".join(f"  {n:>{width}}" for n in row))
        lines += ["", *self._decision_lines(width)]
        return "\n".join(lines)

    def _decision_lines(self, width: int) -> list[str]:
        calibrated = {d.label for d in self.decisions}
        lines = [
            "Decision settings chosen on the validation split (segment F1, mean over IoU "
            "0.1-0.7, on its clips joined end to end; 'fixed' is threshold 0.5, no hysteresis):",
            f"{'class':<{width}}  {'thresh':>6}  {'low':>5}  {'min len':>7}  {'gap':>5}  "
            f"{'F1':>5}  {'fixed':>5}  {'events':>6}",
        ]
        for d in self.decisions:
            p = d.policy
            low = "-" if p.low_threshold is None else f"{p.low_threshold:.2f}"
            lines.append(
                f"{d.label:<{width}}  {p.threshold:>6.2f}  {low:>5}  {p.min_length:>7.1f}  "
                f"{p.merge_gap:>5.1f}  {d.f1:>5.2f}  {d.fixed_f1:>5.2f}  {d.events:>6}"
            )
        missing = [name for name in self.classes if name not in calibrated]
        if missing:
            lines.append(
                f"Not calibrated (no validation clip): {', '.join(missing)}; detect decides them "
                "with the configured settings."
            )
        return lines


@dataclass(frozen=True)
class _WindowSet:
    """The windows of some clips, as frame indices into one array of all their frames."""

    frames: np.ndarray  # (N, D) float32, every clip's frames one after another
    indices: np.ndarray  # (W, T) rows of `frames`, or PAD
    labels: np.ndarray  # (W,) class index
    clip_ids: np.ndarray  # (W,) position of the window's clip in the clip list
    clip_labels: np.ndarray  # (K,) class index of each clip

    def __len__(self) -> int:
        return len(self.indices)

    def gather(self, rows: np.ndarray | slice) -> np.ndarray:
        return gather_frames(self.frames, self.indices[rows])


class _Batches(keras.utils.PyDataset):
    """Windows gathered batch by batch, so frames are held once and not once per window."""

    def __init__(self, data: _WindowSet, batch_size: int, shuffle_seed: int | None = None) -> None:
        super().__init__()
        self._data = data
        self._batch_size = batch_size
        self._rng = None if shuffle_seed is None else np.random.default_rng(shuffle_seed)
        self._order = self._next_order()

    def _next_order(self) -> np.ndarray:
        if self._rng is None:
            return np.arange(len(self._data))
        return self._rng.permutation(len(self._data))

    def __len__(self) -> int:
        return math.ceil(len(self._data) / self._batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self._order[index * self._batch_size : (index + 1) * self._batch_size]
        return self._data.gather(rows), self._data.labels[rows]

    def on_epoch_end(self) -> None:
        self._order = self._next_order()


def train(
    dataset_root: Path, out_dir: Path, config: Config, progress: bool = False
) -> TrainingReport:
    """Train a sequence model on the clips under `dataset_root`; save it as the model `out_dir`.

    Returns the evaluation on the test clips; it is also saved in `out_dir`.
    """
    began = time.monotonic()
    settings = config.train
    dataset = scan_dataset(
        dataset_root,
        settings.split,
        settings.validation_fraction,
        settings.seed,
        settings.test_fraction,
    )
    backbone = load_backbone(
        config.backbone,
        config.backbone_weights,
        config.backbone_backend,
        config.backbone_precision,
        cache_dir=config.cache_dir,
    )
    sequences = _CachedFeatures(FeatureCache(config.cache_dir), backbone, config)
    sequences.extract(dataset.train + dataset.validation + dataset.test, progress)
    model, report = fit_sequences(dataset, sequences, config, progress)
    report = dataclasses.replace(report, seconds=time.monotonic() - began)
    summary = {**report.summary(), **_settings_summary(Path(dataset_root), config)}
    manifest = dataclasses.replace(model.manifest, training=summary)
    SequenceModel(model.keras_model, manifest).save(
        out_dir, extra_files={TRAINING_REPORT_FILE: json.dumps(report.to_dict(), indent=2) + "\n"}
    )
    return report


def fit_sequences(
    dataset: Dataset,
    sequences: Mapping[Path, FeatureSequence],
    config: Config,
    progress: bool = False,
) -> tuple[SequenceModel, TrainingReport]:
    """Fit a model on the clips' feature sequences; choose the epoch on the validation clips and
    score the test clips, which choose nothing.

    Every window of a clip carries the clip's class. The same seed gives the same model.
    """
    if not dataset.train or not dataset.validation or not dataset.test:
        raise DatasetError(
            f"{dataset.root}: training needs clips to train on, to validate on and to test on"
        )
    began = time.monotonic()
    settings = config.train
    first = sequences[dataset.train[0].path]
    steps = config.window.steps(first.rate)
    train_set = _window_set(dataset.train, dataset, sequences, config.window)
    held_set = _window_set(dataset.validation, dataset, sequences, config.window)
    test_set = _window_set(dataset.test, dataset, sequences, config.window)
    num_classes = len(dataset.classes)

    keras.utils.set_random_seed(settings.seed)
    tf.config.experimental.enable_op_determinism()
    net = build_model(settings.preset, steps, train_set.frames.shape[1], num_classes)
    net.compile(
        optimizer=keras.optimizers.Adam(settings.learning_rate),
        loss="sparse_categorical_crossentropy",
        weighted_metrics=["accuracy"],
    )
    stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=EARLY_STOPPING_PATIENCE, restore_best_weights=True
    )
    fitted = net.fit(
        _Batches(train_set, settings.batch_size, shuffle_seed=settings.seed),
        validation_data=_Batches(held_set, settings.batch_size),
        epochs=settings.epochs,
        class_weight=_class_weights(train_set.labels, num_classes),
        callbacks=[stopping],
        shuffle=False,  # _Batches shuffles the windows itself, from the seed
        verbose=2 if progress else 0,
    )
    history = {key: [float(v) for v in values] for key, values in fitted.history.items()}

    manifest = ModelManifest(
        classes=dataset.classes,
        backbone=first.backbone,
        feature_dim=int(train_set.frames.shape[1]),
        rate=first.rate,
        window_length=config.window.length,
        window_stride=config.window.stride,
        steps=steps,
        preset=settings.preset,
        recipe=_recipe_of(first, dataset.train[0].path),
    )
    model = SequenceModel(_without_optimizer(net), manifest)
    decisions, seconds = calibrate_decisions(
        model,
        dataset.validation,
        sequences,
        config.window,
        config.segments.buffer,
        settings.seed,
    )
    manifest = dataclasses.replace(manifest, decisions=manifest_decisions(decisions, seconds))
    model = SequenceModel(model.keras_model, manifest)
    probabilities = _predict(model, test_set, settings.batch_size)
    clip_probabilities = _clip_means(probabilities, test_set.clip_ids, len(test_set.clip_labels))
    report = TrainingReport(
        classes=dataset.classes,
        split=dataset.split,
        preset=settings.preset,
        train_clips=len(dataset.train),
        validation_clips=len(dataset.validation),
        train_windows=len(train_set),
        validation_windows=len(held_set),
        test_clips=len(dataset.test),
        test_windows=len(test_set),
        notes=dataset.notes,
        decisions=decisions,
        epochs_run=len(history["loss"]),
        max_epochs=settings.epochs,
        best_epoch=int(np.argmin(history["val_loss"])) + 1,
        history=history,
        windows=evaluate(test_set.labels, probabilities, num_classes),
        clips=evaluate(test_set.clip_labels, clip_probabilities, num_classes),
        seconds=time.monotonic() - began,
    )
    return model, report


class _CachedFeatures(Mapping[Path, FeatureSequence]):
    """The clips' features, read from the feature cache each time they are asked for.

    Held in a dict, every clip's features would be in memory twice while the window sets copy
    them into one array each; read on demand, the window sets hold the only copy.
    """

    def __init__(self, cache: FeatureCache, backbone: Any, config: Config) -> None:
        self._cache = cache
        self._backbone = backbone
        self._rate = config.sampling.rate
        self._batch_size = config.batch_size
        self._checkpoint_every = config.checkpoint_frames
        self._max_damaged_share = config.decode.max_damaged_share
        self._digests: dict[Path, str] = {}
        self._lengths: dict[Path, int] = {}

    def extract(self, clips: Sequence[Clip], progress: bool) -> None:
        """Make sure every clip is in the cache (extracting what is not), noting its length."""
        for clip in tqdm(clips, desc="features", unit="clip", disable=not progress):
            self._digests[clip.path] = file_sha256(clip.path)
            sequence = self[clip.path]
            check_damage(sequence.damage, self._max_damaged_share, clip.path)
            self._lengths[clip.path] = len(sequence)

    def frame_count(self, path: Path) -> int:
        return self._lengths[path]

    def __getitem__(self, path: Path) -> FeatureSequence:
        return self._cache.get_or_extract(
            path,
            self._backbone,
            self._rate,
            self._batch_size,
            digest=self._digests.get(path),
            checkpoint_every=self._checkpoint_every,
        )

    def __iter__(self) -> Iterator[Path]:
        return iter(self._lengths)

    def __len__(self) -> int:
        return len(self._lengths)


def _frame_count(features: Mapping[Path, FeatureSequence], path: Path) -> int:
    if isinstance(features, _CachedFeatures):
        return features.frame_count(path)
    return len(features[path])


def _window_set(
    clips: Sequence[Clip],
    dataset: Dataset,
    features: Mapping[Path, FeatureSequence],
    window: WindowConfig,
) -> _WindowSet:
    """The clips' windows over one array of all their frames, filled clip by clip (so the
    frames are never held twice)."""
    reference = features[dataset.train[0].path]
    counts = [_frame_count(features, clip.path) for clip in clips]
    frames = np.empty((sum(counts), reference.feature_dim), dtype=np.float32)
    indices, labels, clip_ids = [], [], []
    offset = 0
    for position, (clip, count) in enumerate(zip(clips, counts, strict=True)):
        seq = features[clip.path]
        _check_alike(seq, reference, clip.path)
        if len(seq) != count:
            raise DatasetError(f"{clip.path}: its cached features changed during training")
        try:
            rows = window_frame_indices(
                len(seq), window.steps(seq.rate), window.stride_steps(seq.rate)
            )
        except InputError as exc:
            raise DatasetError(f"{clip.path}: {exc}") from None
        frames[offset : offset + count] = seq.features
        indices.append(np.where(rows == PAD, PAD, rows + offset))
        labels.append(np.full(len(rows), dataset.label_index(clip)))
        clip_ids.append(np.full(len(rows), position))
        offset += count
    return _WindowSet(
        frames=frames,
        indices=np.concatenate(indices),
        labels=np.concatenate(labels).astype(np.int64),
        clip_ids=np.concatenate(clip_ids).astype(np.int64),
        clip_labels=np.array([dataset.label_index(c) for c in clips], dtype=np.int64),
    )


def _check_alike(seq: FeatureSequence, reference: FeatureSequence, path: Path) -> None:
    """Clips must share recipe and feature size, or their windows mean nothing together."""
    if seq.features.shape[1:] != reference.features.shape[1:] or seq.recipe != reference.recipe:
        mine, theirs = (_describe(s) for s in (seq, reference))
        raise DatasetError(
            f"{path}: features are {mine}, other clips' are {theirs}; "
            "clear the feature cache or extract all clips the same way"
        )


def _describe(seq: FeatureSequence) -> str:
    made = seq.recipe.describe() if seq.recipe else f"{seq.backbone} at {seq.rate:g} frames/s"
    return f"{seq.features.shape[1]}-d by {made}"


def _recipe_of(seq: FeatureSequence, path: Path) -> FeatureRecipe:
    if seq.recipe is None:
        raise DatasetError(f"{path}: features record no recipe; extract them again")
    return seq.recipe


def _class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Weights inversely proportional to each class's share of the training windows."""
    counts = np.bincount(labels, minlength=num_classes)
    return {c: float(len(labels) / (num_classes * n)) if n else 0.0 for c, n in enumerate(counts)}


def _without_optimizer(net: keras.Model) -> keras.Model:
    """An uncompiled copy with the trained weights, so the saved file carries no optimizer state."""
    copy = keras.models.clone_model(net)
    copy.set_weights(net.get_weights())
    return copy


def _predict(model: SequenceModel, data: _WindowSet, batch_size: int) -> np.ndarray:
    parts = [
        model.predict(data.gather(slice(begin, begin + batch_size)))
        for begin in range(0, len(data), batch_size)
    ]
    return np.concatenate(parts)


def _clip_means(probabilities: np.ndarray, clip_ids: np.ndarray, clips: int) -> np.ndarray:
    sums = np.zeros((clips, probabilities.shape[1]), dtype=np.float64)
    np.add.at(sums, clip_ids, probabilities)
    return sums / np.bincount(clip_ids, minlength=clips)[:, None]


def _settings_summary(dataset_root: Path, config: Config) -> dict[str, Any]:
    return {
        "dataset": str(dataset_root),
        "seed": config.train.seed,
        "learning_rate": config.train.learning_rate,
        "batch_size": config.train.batch_size,
    }
