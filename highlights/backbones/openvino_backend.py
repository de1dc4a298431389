"""A Keras backbone run by OpenVINO: the same weights, converted when the backbone is loaded.

Keras stays the reference (and what training's tests compare with); OpenVINO runs the frozen
feature graph about three times faster on this project's 2-core CPUs (see README, Speed).
Conversion takes a couple of seconds and needs nothing from the network.

Precision. OpenVINO's CPU plugin computes in bfloat16 by default where the CPU has it, which
moves features by up to 0.15 (on values up to 5.7); `float32` (the default here) asks for full
precision and agrees with Keras to about 1e-5 (tests/test_backends.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from highlights.images import check_batch

PRECISIONS = {"float32": "f32", "bfloat16": "bf16"}  # ours -> OpenVINO's inference precision


class OpenVinoBackbone:
    """`reference`'s features, computed by OpenVINO; same name, weights, geometry and size."""

    backend = "openvino"

    def __init__(self, reference: Any, precision: str = "float32", threads: int = 0) -> None:
        import openvino
        import tensorflow as tf

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.name = reference.name
        self.weights_sha256 = reference.weights_sha256
        self.normalisation = reference.normalisation
        self.feature_dim = reference.feature_dim
        self.geometry = reference.geometry
        self.precision = precision
        crop = self.geometry.crop
        graph = tf.function(reference.feature_graph).get_concrete_function(
            tf.TensorSpec([None, crop, crop, 3], tf.float32)
        )
        settings: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": PRECISIONS[precision],
        }
        if threads:
            settings["INFERENCE_NUM_THREADS"] = threads
        compiled = openvino.Core().compile_model(openvino.convert_model(graph), "CPU", settings)
        self._request = compiled.create_infer_request()

    def embed(self, images: np.ndarray) -> np.ndarray:
        """(B, crop, crop, 3) uint8 RGB -> (B, feature_dim) float32 pooled features."""
        batch = check_batch(images, self.geometry)
        if len(batch) == 0:
            return np.zeros((0, self.feature_dim), np.float32)
        self._request.infer({0: batch})
        return np.array(self._request.get_output_tensor(0).data, dtype=np.float32)
