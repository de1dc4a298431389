"""The sequence model run by OpenVINO, for scoring: Keras stays the reference and what trains.

`detect` with the openvino backend scores windows with an OpenVINO copy of the model's Keras
network, converted once and cached (`highlights.openvino_cache`) by the sha256 of `model.keras`:
later runs read it without importing TensorFlow (about 600 MB and seconds saved). The LSTM is
converted unrolled over the window's fixed number of steps (OpenVINO has no conversion for the
TensorList loop Keras builds otherwise); masked steps are skipped as in Keras. Its probabilities
agree with Keras's to about 1e-6 (tests/test_openvino_cache.py).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from highlights.backbones.openvino_backend import compile_settings
from highlights.config import OPENVINO_THREADS
from highlights.errors import ModelError
from highlights.files import file_sha256
from highlights.model import MANIFEST_FILE, ModelManifest, SequenceModel, read_model_dir
from highlights.openvino_cache import OpenVinoCache, cache_key

# Change whenever `convert_classifier` would convert differently (v1 converted in-process).
CONVERSION = "unrolled-lstm v2, own process"


class OpenVinoSequenceModel:
    """Class probabilities of windows from the converted network, with the model's manifest."""

    def __init__(
        self,
        network: Any,
        manifest: ModelManifest,
        source: Path | str = MANIFEST_FILE,
        threads: int = OPENVINO_THREADS,
    ) -> None:
        import openvino

        _check_agrees(network, manifest, str(source))
        self._manifest = manifest
        compiled = openvino.Core().compile_model(
            network, "CPU", compile_settings("float32", threads)
        )
        self._request = compiled.create_infer_request()

    @property
    def manifest(self) -> ModelManifest:
        return self._manifest

    @property
    def classes(self) -> tuple[str, ...]:
        return self._manifest.classes

    def predict(self, batch: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(W, steps, feature_dim) windows -> (W, C) float32 class probabilities."""
        batch = self._manifest.check_windows(batch)
        out = np.zeros((len(batch), len(self.classes)), dtype=np.float32)
        for begin in range(0, len(batch), batch_size):
            part = np.ascontiguousarray(batch[begin : begin + batch_size])
            self._request.infer({0: part})
            out[begin : begin + len(part)] = self._request.get_output_tensor(0).data
        return out


def load_scoring_model(
    model_dir: Path, backend: str, cache_dir: Path | None
) -> SequenceModel | OpenVinoSequenceModel:
    """The model of `model_dir` to score windows with: Keras's for the keras backend (or without
    a cache folder), else the OpenVINO copy, converted from Keras only if not cached."""
    if backend != "openvino" or cache_dir is None:
        return SequenceModel.load(model_dir)
    manifest, weights = read_model_dir(model_dir)
    key = cache_key(
        model_sha256=file_sha256(weights),
        steps=manifest.steps,
        feature_dim=manifest.feature_dim,
        classes=len(manifest.classes),
        conversion=CONVERSION,
    )
    with tempfile.TemporaryDirectory(prefix="classifier-") as tmp:
        network = OpenVinoCache(cache_dir).model(
            "classifier", key, lambda: _converted_apart(Path(model_dir), Path(tmp))
        )
        return OpenVinoSequenceModel(network, manifest, source=Path(model_dir) / MANIFEST_FILE)


def _converted_apart(model_dir: Path, folder: Path) -> Any:
    """The converted network, made by a process of its own.

    Converted inside a process that had built and run many other Keras models (a full test
    session), OpenVINO's TensorFlow front end gave a network whose probabilities were up to 0.24
    off Keras's, and a detect in that process scored NaN; the same conversion in a fresh process
    agrees to about 1e-7. It runs once per model (the result is cached), so the process start
    costs little.
    """
    import openvino

    network_file = folder / "model.xml"
    result = subprocess.run(
        [sys.executable, "-m", __name__, str(model_dir), str(network_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise ModelError(f"{model_dir}: converting the classifier to OpenVINO failed: {detail}")
    return openvino.Core().read_model(network_file)


def convert_classifier(model: SequenceModel) -> Any:
    """The `openvino.Model` of `model`'s Keras network, its LSTMs unrolled over the steps."""
    import keras
    import openvino
    import tensorflow as tf

    net = model.keras_model
    config = net.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "LSTM":
            layer["config"]["unroll"] = True
    unrolled = keras.Model.from_config(config)
    unrolled.set_weights(net.get_weights())
    manifest = model.manifest
    graph = tf.function(lambda x: unrolled(x, training=False)).get_concrete_function(
        tf.TensorSpec([None, manifest.steps, manifest.feature_dim], tf.float32)
    )
    return openvino.convert_model(graph)


def _check_agrees(network: Any, manifest: ModelManifest, source: str) -> None:
    inputs = network.input(0).get_partial_shape()
    outputs = network.output(0).get_partial_shape()
    want_in, want_out = (
        f"[?,{manifest.steps},{manifest.feature_dim}]",
        f"[?,{len(manifest.classes)}]",
    )
    if (str(inputs), str(outputs)) != (want_in, want_out):
        raise ModelError(
            f"{source}: the model takes {want_in} and gives {want_out}, "
            f"but its OpenVINO network takes {inputs} and gives {outputs}"
        )


def _main(argv: list[str]) -> int:
    """`python -m highlights.openvino_classifier MODEL_DIR NETWORK.xml`: convert and save."""
    import openvino

    model_dir, network_file = (Path(arg) for arg in argv)
    network = convert_classifier(SequenceModel.load(model_dir))
    openvino.save_model(network, network_file, compress_to_fp16=False)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
