"""ImageNet CNN backbones that turn frames into feature vectors, chosen by name.

`efficientnet_lite0` (default) runs on weights that ship with a pip package, checked by sha256.
`inception_v3` (the seed's backbone) needs a weights file or an explicit `imagenet` download.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from highlights.errors import ModelError
from highlights.images import prepare_image
from highlights.video import FrameGeometry

BACKBONE_NAMES: tuple[str, ...] = ("efficientnet_lite0", "inception_v3")

__all__ = ["BACKBONE_NAMES", "Backbone", "load_backbone", "prepare_image"]


@runtime_checkable
class Backbone(Protocol):
    name: str
    weights_id: str  # "imagenet" for the standard weights, else a digest of the user's file
    feature_dim: int
    geometry: FrameGeometry

    def embed(self, images: np.ndarray) -> np.ndarray:
        """(B, crop, crop, 3) uint8 RGB 0-255 -> (B, feature_dim) float32."""
        ...


def load_backbone(name: str, weights: Path | str | None = None) -> Backbone:
    """Build the backbone `name` with its weights loaded.

    `weights`: None for the default (the packaged file for efficientnet_lite0; an error for
    inception_v3), a weights file path, or "imagenet" (inception_v3: an explicit download;
    efficientnet_lite0: the packaged ImageNet weights).
    """
    # Imported here: Keras/TensorFlow take seconds to import, and only the chosen one is needed.
    if name == "efficientnet_lite0":
        from highlights.backbones.efficientnet_lite import EfficientNetLite0

        return EfficientNetLite0(None if weights == "imagenet" else _as_path(weights))
    if name == "inception_v3":
        from highlights.backbones.inception import InceptionV3

        return InceptionV3(weights)
    raise ModelError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONE_NAMES)}")


def _as_path(weights: Path | str | None) -> Path | None:
    return None if weights is None else Path(weights)
