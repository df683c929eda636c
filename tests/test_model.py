import keras
import numpy as np
import pytest

from tumor_model.config import Settings
from tumor_model.model import (
    BACKBONES,
    BackbonePreprocess,
    backbone,
    base_layers,
    build_model,
    fold_temperature,
    last_conv,
    set_fine_tune,
)

TINY = Settings(backbone="mobilenetv2", weights="none", input_size=32, dense_units=8)


def test_model_is_flat_and_takes_raw_pixels():
    model, feats, head = build_model(TINY)
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    assert model.input_shape == (None, 32, 32, 3)
    assert model.get_layer("preprocess").mode == "tf"
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    p = model.predict(x, verbose=0)
    assert p.shape == (3, 1) and np.all((p >= 0) & (p <= 1))
    # the model equals head(features(x)): they share layers
    np.testing.assert_allclose(head.predict(feats.predict(x, verbose=0), verbose=0), p, rtol=1e-5)
    model.get_layer(BACKBONES["mobilenetv2"].last_conv)


def test_preprocess_modes_match_keras_applications():
    x = np.random.default_rng(1).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    for mode, fn in [
        ("tf", keras.applications.mobilenet_v2.preprocess_input),
        ("torch", keras.applications.densenet.preprocess_input),
        ("caffe", keras.applications.resnet50.preprocess_input),
    ]:
        ours = keras.ops.convert_to_numpy(BackbonePreprocess(mode, stretch=False)(x))
        np.testing.assert_allclose(ours, fn(x.copy()), rtol=1e-4, atol=1e-3)


def test_stretch_maps_each_image_to_full_range():
    x = np.stack([np.full((4, 4, 3), 50.0), np.full((4, 4, 3), 80.0)]).astype("float32")
    x[0, 0, 0] = 100.0
    out = keras.ops.convert_to_numpy(BackbonePreprocess("none", stretch=True)(x))
    assert out[0].min() == 0 and out[0].max() == pytest.approx(255)
    assert np.all(out[1] == 0)  # flat image: no division by zero


@pytest.mark.slow
def test_preprocess_layer_round_trips_with_safe_mode(tmp_path):
    model, _, _ = build_model(TINY)
    model.save(tmp_path / "m.keras")
    back = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    x = np.full((1, 32, 32, 3), 120.0, "float32")
    np.testing.assert_allclose(back.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_fine_tune_unfreezes_top_layers_but_not_batchnorm():
    model, _, _ = build_model(TINY)
    set_fine_tune(model, 10)
    body = base_layers(model)
    trainable = [layer for layer in body if layer.trainable]
    assert trainable and all(layer in body[-10:] for layer in trainable)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in trainable)
    assert not body[0].trainable


def test_fold_temperature_divides_logit():
    model, _, _ = build_model(TINY)
    x = np.random.default_rng(2).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    p = model.predict(x, verbose=0).ravel().astype(float)
    fold_temperature(model, 2.0)
    q = model.predict(x, verbose=0).ravel()
    logit = np.log(p / (1 - p))
    np.testing.assert_allclose(q, 1 / (1 + np.exp(-logit / 2)), rtol=1e-4)
    with pytest.raises(ValueError):
        fold_temperature(model, 0)


@pytest.mark.parametrize(
    "name", ["efficientnetb0", "resnet50", "densenet121", "inceptionv3", "xception"]
)
def test_registry_backbones_build_with_last_conv(name):
    size = 96 if name in ("inceptionv3", "xception") else 64
    model, _, _ = build_model(Settings(backbone=name, weights="none", input_size=size))
    conv = model.get_layer(backbone(name).last_conv)
    assert len(conv.output.shape) == 4
    assert last_conv(model) == backbone(name).last_conv


@pytest.mark.slow
def test_nasnetlarge_builds_at_report_size():
    """The report's backbone (331 px, 'tf' preprocessing), built without weights (no inference)."""
    model, _, _ = build_model(Settings(backbone="nasnetlarge", weights="none"))
    assert model.input_shape == (None, 331, 331, 3)
    assert last_conv(model).startswith("activation")
    assert model.count_params() > 80_000_000


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="unknown backbone"):
        build_model(Settings(backbone="vgg99", weights="none"))
    with pytest.raises(ValueError, match="does not exist"):
        build_model(Settings(weights="/nope/weights.h5"))
    with pytest.raises(ValueError, match="geometry"):
        Settings(geometry="stretchy")
    with pytest.raises(ValueError, match=r"resample must be in \[0, 1\), got 1.0"):
        Settings(resample=1.0)
