"""InceptionV3, the seed project's backbone: 2048-d average-pooled features of a 299x299 crop.

Keras ships no InceptionV3 weights offline, so weights come only from a file the user names
or from `weights="imagenet"`, an explicit request to let Keras download them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np

from highlights.backbones import SHAPING
from highlights.errors import ModelError
from highlights.files import file_sha256
from highlights.images import check_batch

NAME = "inception_v3"
FEATURE_DIM = 2048
# The seed cut the largest centred square from each frame and resized it to 299: the same
# pixels as resizing the short side to 299 and cropping 299. Keeping that geometry keeps
# features comparable with models trained on the seed's features, and keeps play near the
# frame edges that a 342 -> 299 crop would cut away.
GEOMETRY = SHAPING[NAME].geometry
IMAGENET = "imagenet"
# The file `keras.applications.InceptionV3(weights="imagenet", include_top=False)` downloads.
IMAGENET_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/" + IMAGENET_FILE
)
IMAGENET_MD5 = "bcbd6486424b2319ff4ef7d526e38f63"  # as keras.applications checks it
NORMALISATION = SHAPING[NAME].normalisation
_WEIGHT_SUFFIXES = (".weights.h5", ".h5")


def build_model(weights: str | None = None) -> keras.Model:
    """InceptionV3 without its classifier, global-average pooled: (B,299,299,3) -> (B,2048)."""
    return keras.applications.InceptionV3(
        include_top=False,
        weights=weights,
        input_shape=(GEOMETRY.crop, GEOMETRY.crop, 3),
        pooling="avg",
    )


class InceptionV3:
    """Seed-compatible backbone; needs a weights file or an explicit `imagenet` download."""

    name = NAME
    feature_dim = FEATURE_DIM
    geometry = GEOMETRY
    normalisation = NORMALISATION
    backend = "keras"
    precision = "float32"

    def __init__(self, weights: Path | str | None) -> None:
        if weights is None:
            raise ModelError(
                f"{NAME}: needs weights: pass a Keras weights file (.weights.h5 or .h5) "
                f"or 'imagenet' to download the ImageNet weights once"
            )
        path = _download_imagenet() if isinstance(weights, str) and weights == IMAGENET else weights
        self.model = _from_file(Path(path))
        self.weights_sha256 = file_sha256(Path(path))

    def embed(self, images: np.ndarray) -> np.ndarray:
        """(B, 299, 299, 3) uint8 RGB -> (B, 2048) float32 pooled features."""
        batch = check_batch(images, self.geometry)
        if len(batch) == 0:
            return np.zeros((0, self.feature_dim), np.float32)
        batch = keras.applications.inception_v3.preprocess_input(batch)
        return np.asarray(self.model.predict_on_batch(batch), dtype=np.float32)

    def feature_graph(self, images: Any) -> Any:
        """Float RGB 0-255 tensor -> features: what other backends convert."""
        return self.model(images / 127.5 - 1.0, training=False)  # as preprocess_input does


def _download_imagenet() -> Path:
    """The ImageNet weights file, downloaded once into Keras's cache (~/.keras/models)."""
    try:
        return Path(
            keras.utils.get_file(
                IMAGENET_FILE, IMAGENET_URL, cache_subdir="models", file_hash=IMAGENET_MD5
            )
        )
    except Exception as exc:  # a network failure surfaces as several unrelated types
        raise ModelError(f"{NAME}: could not download the ImageNet weights: {exc}") from None


def _from_file(path: Path) -> keras.Model:
    if not path.is_file():
        raise ModelError(f"{path}: InceptionV3 weights file not found")
    if not path.name.endswith(_WEIGHT_SUFFIXES):
        raise ModelError(f"{path}: InceptionV3 weights must be a Keras .weights.h5 or .h5 file")
    model = build_model()
    try:
        with warnings.catch_warnings():
            # Keras warns once per layer it cannot match before raising; the error says it all.
            warnings.simplefilter("ignore", UserWarning)
            model.load_weights(path)
    except Exception as exc:  # h5py and Keras raise many types for a wrong or damaged file
        first_line = str(exc).strip().split("\n", 1)[0]
        raise ModelError(
            f"{path}: not InceptionV3 weights: {type(exc).__name__}: {first_line}"
        ) from None
    return model
