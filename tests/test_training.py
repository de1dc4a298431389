"""Training: evaluation arithmetic, fitting on feature sequences, and `train()` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from highlights.backbones import load_backbone
from highlights.config import Config
from highlights.dataset import Clip, Dataset, scan_dataset
from highlights.errors import DatasetError
from highlights.features import FeatureCache, FeatureSequence
from highlights.model import SequenceModel
from highlights.training import evaluate, fit_sequences, train
from highlights.windows import iter_window_batches
from tests.media import SHARED_VIDEOS_DIR, require_shared
from tests.recipes import a_recipe

RATE, DIM = 5.0, 16
SYNTHETIC = a_recipe("synthetic", RATE)
FAST = Config().replace(**{"train.epochs": 12, "train.batch_size": 16, "train.learning_rate": 3e-3})


# Evaluation


def test_evaluation_counts_a_confusion_matrix_with_true_classes_as_rows():
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 1, 1])
    result = evaluate(labels, np.eye(3)[predicted], num_classes=3)
    assert result.confusion.tolist() == [[2, 1, 0], [0, 2, 0], [0, 1, 0]]
    assert result.accuracy == pytest.approx(4 / 6)
    assert result.precision == pytest.approx((1.0, 0.5, 0.0))  # class 2 is never predicted
    assert result.recall == pytest.approx((2 / 3, 1.0, 0.0))
    assert result.support == (3, 2, 1)
    assert result.count == 6


# Fitting on feature sequences (real Keras, synthetic features)


def synthetic_dataset(
    train_per_class: tuple[int, ...] = (10, 10), held_per_class: int = 3, seed: int = 0
) -> tuple[Dataset, dict[Path, FeatureSequence]]:
    """Clips whose frames scatter around one centre per class: separable, but noisy."""
    rng = np.random.default_rng(seed)
    classes = tuple(f"class{c}" for c in range(len(train_per_class)))
    centres = rng.normal(size=(len(classes), DIM))
    sequences: dict[Path, FeatureSequence] = {}
    train, validation, test = [], [], []
    for c, name in enumerate(classes):
        for i in range(train_per_class[c] + 2 * held_per_class):
            path = Path(f"/clips/{name}/{i}.mp4")
            frames = int(rng.integers(6, 25))  # some clips are shorter than one window
            values = centres[c] + 0.8 * rng.normal(size=(frames, DIM))
            sequences[path] = FeatureSequence(
                np.arange(frames) / RATE,
                values.astype(np.float32),
                "synthetic",
                RATE,
                recipe=SYNTHETIC,
            )
            part = (
                train
                if i < train_per_class[c]
                else validation
                if i < train_per_class[c] + held_per_class
                else test
            )
            part.append(Clip(path, name))
    dataset = Dataset(
        Path("/clips"), classes, tuple(train), tuple(validation), "made up", tuple(test)
    )
    return dataset, sequences


def fit(dataset, sequences, config=FAST):
    return fit_sequences(dataset, sequences, config)


@pytest.fixture(scope="module")
def fitted():
    """One fit shared by the tests that only inspect its result (each fit takes seconds)."""
    dataset, sequences = synthetic_dataset()
    model, report = fit(dataset, sequences)
    return dataset, sequences, model, report


def window_features(seq: FeatureSequence) -> np.ndarray:
    """The features of every window of `seq`, as the pipeline makes them."""
    return np.concatenate([batch.features for batch in iter_window_batches(seq, FAST.window)])


def probe_windows(dataset: Dataset, sequences: dict[Path, FeatureSequence]) -> np.ndarray:
    return window_features(sequences[dataset.validation[0].path])


def test_fitting_separable_clips_classifies_held_out_clips_correctly(fitted):
    _, _, model, report = fitted
    assert report.clips.accuracy == 1.0
    assert report.windows.accuracy >= 0.9
    assert report.clips.count == 6
    assert model.classes == ("class0", "class1")


def test_every_window_of_a_test_clip_is_scored_with_the_clips_class(fitted):
    dataset, sequences, _, report = fitted
    counts = [len(window_features(sequences[c.path])) for c in dataset.test]
    assert report.windows.count == report.test_windows == sum(counts)
    assert report.windows.support == (sum(counts[:3]), sum(counts[3:]))


def test_the_validation_clips_choose_the_epoch_and_only_the_test_clips_are_scored(fitted):
    dataset, sequences, _, report = fitted
    validation_windows = sum(
        len(window_features(sequences[c.path])) for c in dataset.validation
    )
    assert report.validation_windows == validation_windows != report.test_windows
    assert (report.epoch_chosen_on, report.scored_on) == ("validation", "test")
    text = report.format()
    assert "lowest loss on the validation split" in text
    assert "Accuracy on the test split (it chose nothing)" in text


def test_decision_settings_are_chosen_per_class_on_the_validation_clips(fitted):
    _, _, model, report = fitted
    assert [d.label for d in report.decisions] == ["class0", "class1"]
    assert all(d.events >= 1 and 0 <= d.fixed_f1 <= d.f1 <= 1 for d in report.decisions)
    decisions = model.manifest.decisions
    assert decisions["chosen_on"] == "validation"
    saved = decisions["classes"]["class1"]
    chosen = report.decisions[1].policy
    assert (saved["threshold"], saved["low_threshold"]) == (chosen.threshold, chosen.low_threshold)
    assert "Decision settings chosen on the validation split" in report.format()


def test_the_manifest_records_what_the_model_needs_as_input(fitted):
    manifest = fitted[2].manifest
    assert (manifest.backbone, manifest.feature_dim, manifest.rate) == ("synthetic", DIM, RATE)
    assert (manifest.window_length, manifest.window_stride, manifest.steps) == (2.0, 1.0, 10)
    assert manifest.recipe == SYNTHETIC


def test_the_same_seed_trains_the_same_model(fitted):
    dataset, sequences, model, _ = fitted
    again, _ = fit(dataset, sequences)
    probe = probe_windows(dataset, sequences)
    np.testing.assert_array_equal(again.predict(probe), model.predict(probe))


def test_another_seed_trains_another_model(fitted):
    dataset, sequences, model, _ = fitted
    other, _ = fit(dataset, sequences, FAST.replace(**{"train.seed": 7}))
    probe = probe_windows(dataset, sequences)
    assert not np.array_equal(other.predict(probe), model.predict(probe))


def test_class_weights_keep_a_rare_class_from_being_ignored():
    _, report = fit(*synthetic_dataset(train_per_class=(24, 3), held_per_class=3))
    assert report.clips.recall[1] == 1.0


def test_the_reported_best_epoch_has_the_lowest_held_out_loss(fitted):
    report = fitted[3]
    losses = report.history["val_loss"]  # epoch 1 first
    assert 1 <= report.best_epoch <= report.epochs_run == len(losses) <= FAST.train.epochs
    assert losses[report.best_epoch - 1] == min(losses)


def test_the_model_keeps_the_weights_of_the_best_epoch(fitted):
    dataset, sequences, model, report = fitted
    losses = []
    for clip in dataset.validation:
        probabilities = model.predict(window_features(sequences[clip.path]))
        losses.extend(-np.log(probabilities[:, dataset.label_index(clip)]))
    assert np.mean(losses) == pytest.approx(min(report.history["val_loss"]), rel=1e-4)


def test_clips_with_features_of_another_rate_are_an_error():
    dataset, sequences = synthetic_dataset()
    odd = dataset.train[-1].path
    seq = sequences[odd]
    slower = a_recipe("synthetic", RATE / 2)
    sequences[odd] = FeatureSequence(
        seq.times * 2, seq.features, seq.backbone, RATE / 2, recipe=slower
    )
    with pytest.raises(
        DatasetError, match=rf"{odd}: features are .*5/2 frames/s.* other clips' are .* 5 frames/s"
    ):
        fit(dataset, sequences)


def test_the_report_reads_as_a_summary_and_serialises_to_json(fitted):
    report = fitted[3]
    text = report.format()
    assert "class0" in text and "class1" in text
    assert f"{report.clips.accuracy:.1%} per clip" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["evaluation"]["clips"]["confusion"] == report.clips.confusion.tolist()
    assert (
        data["evaluation"]["windows"]["per_class"]["class1"]["support"] == report.windows.support[1]
    )


# train() end to end: real videos, the real EfficientNet-Lite0 backbone


@pytest.fixture(scope="module")
def trained(synthetic_dataset_dir, feature_cache, tmp_path_factory) -> tuple[Path, object]:
    model_dir = tmp_path_factory.mktemp("trained") / "model"
    config = FAST.replace(cache_dir=feature_cache)
    return model_dir, train(synthetic_dataset_dir, model_dir, config)


@pytest.fixture(scope="module")
def synthetic_dataset_dir(tmp_path_factory) -> Path:
    from highlights import synthetic

    root = tmp_path_factory.mktemp("videos")
    return synthetic.make_dataset(root, clips_per_class=4, seconds=2.5)


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def test_train_writes_a_model_folder_that_loads(trained):
    model_dir, _ = trained
    assert sorted(p.name for p in model_dir.iterdir()) == [
        "manifest.json",
        "model.keras",
        "training_report.json",
    ]
    model = SequenceModel.load(model_dir)
    assert model.manifest.feature_dim == 1280
    assert model.manifest.recipe == a_recipe(rate=model.manifest.rate)


def test_train_tells_held_out_synthetic_classes_apart(trained):
    _, report = trained
    assert report.classes == ("OpenPlay", "PenaltyKick")
    assert report.validation_clips == 2
    assert report.clips.accuracy == 1.0


def test_train_keeps_its_summary_in_the_manifest_and_its_report_beside_it(trained):
    model_dir, report = trained
    summary = SequenceModel.load(model_dir).manifest.training
    assert summary["clip_accuracy"] == report.clips.accuracy
    assert summary["seed"] == FAST.train.seed
    saved = json.loads((model_dir / "training_report.json").read_text())
    assert saved["evaluation"]["clips"]["confusion"] == report.clips.confusion.tolist()


def test_training_again_with_the_same_seed_replaces_the_model_with_an_identical_one(
    trained, synthetic_dataset_dir, feature_cache
):
    model_dir, _ = trained
    before = SequenceModel.load(model_dir)
    windows = np.random.default_rng(0).normal(size=(4, 10, 1280)).astype(np.float32)
    expected = before.predict(windows)
    train(synthetic_dataset_dir, model_dir, FAST.replace(cache_dir=feature_cache))
    np.testing.assert_array_equal(SequenceModel.load(model_dir).predict(windows), expected)


def test_training_from_the_cache_fits_the_same_model_as_features_held_in_memory(
    trained, synthetic_dataset_dir, feature_cache
):
    # train() reads each clip's features from the cache when it needs them instead of holding
    # them all; the model must be the one the same features held in a dict give.
    _, report = trained
    config = FAST.replace(cache_dir=feature_cache)
    settings = config.train
    dataset = scan_dataset(
        synthetic_dataset_dir, settings.split, settings.validation_fraction, settings.seed
    )
    backbone = load_backbone("efficientnet_lite0")
    cache = FeatureCache(feature_cache)
    in_memory = {
        clip.path: cache.get_or_extract(clip.path, backbone, config.sampling.rate)
        for clip in dataset.train + dataset.validation + dataset.test
    }
    _, again = fit_sequences(dataset, in_memory, config)
    assert again.history == report.history
    assert again.windows.to_dict(again.classes) == report.windows.to_dict(report.classes)


SHARED_VIDEOS = SHARED_VIDEOS_DIR
REAL_CLIPS = {
    "SoccerJuggling": [
        "Text-To-Video-Finetuning/v_SoccerJuggling_g16_c01.mp4",
        "vision/v_SoccerJuggling_g23_c01.avi",
        "vision/v_SoccerJuggling_g24_c01.avi",
    ],
    "Wave": [
        "vision/RATRACE_wave_f_nm_np1_fr_goo_37.avi",
        "vision/SchoolRulesHowTheyHelpUs_wave_f_nm_np1_ba_med_0.avi",
        "vision/TrumanShow_wave_f_nm_np1_fr_med_26.avi",
    ],
}


@pytest.mark.slow
def test_train_on_real_camera_clips_of_mixed_containers(tmp_path, feature_cache):
    require_shared(SHARED_VIDEOS)
    for label, names in REAL_CLIPS.items():
        (tmp_path / "data" / label).mkdir(parents=True)
        for name in names:
            source = SHARED_VIDEOS / name
            (tmp_path / "data" / label / source.name).symlink_to(source)
    report = train(tmp_path / "data", tmp_path / "model", FAST.replace(cache_dir=feature_cache))
    assert (report.train_clips, report.validation_clips, report.test_clips) == (2, 2, 2)
    assert report.windows.count == report.test_windows > 0
    summary = SequenceModel.load(tmp_path / "model").manifest.training
    assert (summary["validation_clips"], summary["test_clips"]) == (2, 2)
    assert (summary["epoch_chosen_on"], summary["scored_on"]) == ("validation", "test")


def test_fitting_without_held_out_clips_is_an_error():
    dataset, sequences = synthetic_dataset()
    no_held = Dataset(dataset.root, dataset.classes, dataset.train, (), dataset.split)
    with pytest.raises(DatasetError, match="to validate on and to test on"):
        fit(no_held, sequences)
