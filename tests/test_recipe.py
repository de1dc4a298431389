"""Feature recipes: what they hold, their digest, and where they are kept."""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from highlights.errors import InputError, ModelError
from highlights.features import FeatureSequence, load_features, merge_features, save_features
from highlights.recipe import FeatureRecipe
from tests.recipes import a_recipe


def test_the_digest_is_16_hex_digits_of_the_canonical_json():
    recipe = a_recipe()
    assert len(recipe.digest) == 16 and int(recipe.digest, 16) >= 0
    assert json.loads(recipe.to_json())["rate"] == "5"
    assert recipe.digest == a_recipe().digest  # the same recipe, made again


@pytest.mark.parametrize(
    "changes",
    [
        {"backbone": "inception_v3"},
        {"weights_sha256": "0" * 64},
        {"resize_short": 288},
        {"crop": 192},
        {"normalisation": "rgb / 255"},
        {"sampler": "every-decoded-picture v1"},
        {"rate": Fraction(10)},
        {"backend": "onnxruntime"},
        {"precision": "int8"},
    ],
)
def test_every_field_changes_the_digest(changes):
    assert dataclasses.replace(a_recipe(), **changes).digest != a_recipe().digest


def test_rates_are_exact_and_a_decimal_ntsc_rate_is_the_fraction():
    assert a_recipe(rate=29.97).rate == Fraction(30000, 1001)
    assert a_recipe(rate=29.97).digest == a_recipe(rate=Fraction(30000, 1001)).digest
    assert a_recipe(rate=2.5).rate == Fraction(5, 2)


def test_a_recipe_round_trips_through_json():
    recipe = a_recipe(rate=Fraction(30000, 1001), backend="onnxruntime")
    assert FeatureRecipe.from_json(recipe.to_json(), "r.json") == recipe


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        '{"backbone": "x"}',
        json.dumps({**a_recipe().to_dict(), "rate": "fast"}),
        json.dumps({**a_recipe().to_dict(), "crop": "224"}),
        json.dumps({**a_recipe().to_dict(), "colour": "blue"}),
    ],
)
def test_a_broken_recipe_is_a_model_error_naming_its_source(text):
    with pytest.raises(ModelError, match=r"^features\.npz: "):
        FeatureRecipe.from_json(text, "features.npz")


def sequence(recipe: FeatureRecipe | None, count: int = 4) -> FeatureSequence:
    return FeatureSequence(
        np.arange(count) / 5.0,
        np.ones((count, 3), np.float32),
        "efficientnet_lite0",
        5.0,
        recipe=recipe,
    )


def test_every_features_file_keeps_its_recipe(tmp_path: Path):
    recipe = a_recipe(precision="float16")
    assert load_features(save_features(sequence(recipe), tmp_path / "f.npz")).recipe == recipe


def test_a_features_file_written_before_recipes_reads_as_having_none(tmp_path: Path):
    path = tmp_path / "old.npz"
    np.savez(
        path,
        version=np.int64(2),
        times=np.arange(3) / 5.0,
        features=np.ones((3, 2), np.float32),
        backbone=np.str_("efficientnet_lite0"),
        rate=np.float64(5.0),
        damaged=np.zeros(3, bool),
        damaged_ranges=np.zeros((0, 2)),
    )
    assert load_features(path).recipe is None


def test_parts_of_different_recipes_do_not_merge():
    with pytest.raises(InputError, match="different recipes"):
        merge_features([sequence(a_recipe()), sequence(a_recipe(weights_sha256="1" * 64))])
