"""A Keras backbone run by OpenVINO: the same weights, converted once and cached.

Keras stays the reference (and what training's tests compare with); OpenVINO runs the frozen
feature graph about three times faster on this project's 2-core CPUs (see README, Speed).
Conversion needs TensorFlow and takes a few seconds; with a cache folder
(`highlights.openvino_cache`) it happens once, and later runs read the converted model without
building the Keras network or importing TensorFlow.

Precision. OpenVINO's CPU plugin computes in bfloat16 by default where the CPU has it, which
moves features by up to 0.15 (on values up to 5.7); `float32` (the default here) asks for full
precision and agrees with Keras to about 1e-5 (tests/test_backends.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from highlights.config import OPENVINO_THREADS
from highlights.images import check_batch
from highlights.video import FrameGeometry

PRECISIONS = {"float32": "f32", "bfloat16": "bf16"}  # ours -> OpenVINO's inference precision


def convert_backbone(reference: Any) -> Any:
    """The `openvino.Model` of `reference`'s feature graph (float RGB 0-255 in, features out)."""
    import openvino
    import tensorflow as tf

    crop = reference.geometry.crop
    graph = tf.function(reference.feature_graph).get_concrete_function(
        tf.TensorSpec([None, crop, crop, 3], tf.float32)
    )
    return openvino.convert_model(graph)


def compile_settings(precision: str, threads: int = OPENVINO_THREADS) -> dict[str, Any]:
    """What the CPU plugin is told when it compiles a model (`threads` 0: all it finds)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    settings: dict[str, Any] = {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": PRECISIONS[precision],
    }
    if threads:
        settings["INFERENCE_NUM_THREADS"] = threads
    return settings


class OpenVinoBackbone:
    """A backbone's features computed by OpenVINO from its converted `network`.

    `name`, `weights_sha256`, `normalisation` and `geometry` are those of the Keras backbone it was
    converted from; the feature size is read from the network.
    """

    backend = "openvino"

    def __init__(
        self,
        network: Any,
        *,
        name: str,
        weights_sha256: str,
        normalisation: str,
        geometry: FrameGeometry,
        precision: str = "float32",
        threads: int = OPENVINO_THREADS,
    ) -> None:
        import openvino

        settings = compile_settings(precision, threads)
        self.name = name
        self.weights_sha256 = weights_sha256
        self.normalisation = normalisation
        self.geometry = geometry
        self.precision = precision
        self.network = network  # the uncompiled model, to compile again with other settings
        self.feature_dim = int(network.output(0).get_partial_shape()[1].get_length())
        compiled = openvino.Core().compile_model(network, "CPU", settings)
        self._request = compiled.create_infer_request()

    @classmethod
    def from_keras(
        cls, reference: Any, precision: str = "float32", **kwargs: Any
    ) -> OpenVinoBackbone:
        """Convert `reference` (a Keras backbone) now, without caching."""
        return cls(
            convert_backbone(reference),
            name=reference.name,
            weights_sha256=reference.weights_sha256,
            normalisation=reference.normalisation,
            geometry=reference.geometry,
            precision=precision,
            **kwargs,
        )

    def embed(self, images: np.ndarray) -> np.ndarray:
        """(B, crop, crop, 3) uint8 RGB -> (B, feature_dim) float32 pooled features."""
        batch = check_batch(images, self.geometry)
        if len(batch) == 0:
            return np.zeros((0, self.feature_dim), np.float32)
        self._request.infer({0: batch})
        return np.array(self._request.get_output_tensor(0).data, dtype=np.float32)
