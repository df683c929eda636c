"""Training-time augmentation layers (tumor_model.training.augment): the same on every backend."""

import dataclasses

import keras
import numpy as np
import pytest

from tumor_model.config import AUGMENTATIONS, Settings
from tumor_model.training import augment


def _checker(n=8, side=32) -> np.ndarray:
    board = (np.indices((side, side)).sum(axis=0) % 2 * 255.0).astype("float32")
    return np.repeat(board[None, :, :, None], n, axis=0).repeat(3, axis=3)


def test_the_augmentations_the_dashboard_names_are_the_augmenter():
    settings = Settings()
    assert augment.step_names(augment.augmenter(settings)) == AUGMENTATIONS
    blurred = dataclasses.replace(settings, resample=0.5)
    assert augment.step_names(augment.augmenter(blurred)) == (*AUGMENTATIONS[:5], "resample",
                                                               *AUGMENTATIONS[5:])  # fmt: skip


def test_resample_blurs_but_keeps_shape_and_range():
    x = _checker()
    out = keras.ops.convert_to_numpy(augment.Resample(0.5, seed=1)(x, training=True))
    assert out.shape == x.shape
    assert out.min() >= -1e-3 and out.max() <= 255 + 1e-3
    assert out.std() < 0.8 * x.std()  # the finest detail is gone
    same = augment.Resample(1e-3, seed=1)(x, training=True)  # a factor of ~1 keeps the image
    np.testing.assert_allclose(keras.ops.convert_to_numpy(same), x, atol=1e-3)
    assert augment.Resample(0.5).sides(224) == sorted(set(augment.Resample(0.5).sides(224)))
    assert min(augment.Resample(0.5).sides(224)) == 112
    with pytest.raises(ValueError, match=r"strength must be in \[0, 1\), got 1.5"):
        augment.Resample(1.5)


def test_resample_draws_a_factor_per_image():
    x = _checker(n=32)
    out = keras.ops.convert_to_numpy(augment.Resample(0.7, seed=2)(x, training=True))
    energy = np.abs(np.diff(out, axis=1)).mean(axis=(1, 2, 3))
    assert len(np.unique(energy.round(3))) > 2  # images got different blurs


def test_resample_is_a_shrink_and_enlarge_of_each_image():
    """The banded matrices give what resizing does: each image shrunk (antialiased) to one of
    the levels' sides and enlarged back (bilinear), to float rounding."""
    x = np.random.default_rng(4).uniform(0, 255, (12, 32, 32, 3)).astype("float32")
    layer = augment.Resample(0.6, seed=5)
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    resize = keras.ops.image.resize
    for image, got in zip(x, out, strict=True):
        levels = [
            resize(resize(image, (small, small), antialias=True), (32, 32))
            for small in layer.sides(32)
        ]
        gaps = [np.abs(keras.ops.convert_to_numpy(level) - got).max() for level in levels]
        assert min(gaps) < 0.01, gaps
    assert layer.bands(32).shape[1] < 32 // 2  # a band, not a full matrix


def test_flip_rotate_zoom_resamples_as_keras_affine_transform():
    rng = np.random.default_rng(6)
    x = rng.uniform(0, 255, (4, 40, 40, 3)).astype("float32")
    flip, angle = np.array([0, 1, 0, 1], bool), rng.uniform(-0.19, 0.19, 4).astype("float32")
    zoom = np.array([0.9, 1.0, 1.1, 0.95], "float32")
    got = keras.ops.convert_to_numpy(augment.warp(x, flip, angle, zoom))
    for k in range(4):
        t = augment.affine_transform_of(flip[k], angle[k], zoom[k], 40)
        ref = keras.ops.image.affine_transform(x[k : k + 1], t, fill_mode="constant")
        np.testing.assert_allclose(got[k], keras.ops.convert_to_numpy(ref)[0], atol=0.02)
    plain = augment.warp(x, np.zeros(4, bool), np.zeros(4, "float32"), np.ones(4, "float32"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(plain), x, atol=1e-3)
    mirrored = augment.warp(x, np.ones(4, bool), np.zeros(4, "float32"), np.ones(4, "float32"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(mirrored), x[:, :, ::-1], atol=1e-3)


def test_flip_rotate_zoom_draws_per_image_and_refuses_bad_ranges():
    x = np.repeat(_checker(n=1, side=24) * np.linspace(0, 1, 24)[None, None, :, None], 16, axis=0)
    out = keras.ops.convert_to_numpy(augment.FlipRotateZoom(seed=7)(x, training=True))
    assert out.shape == x.shape and out.min() >= -1e-3 and out.max() <= 255 + 1e-3
    assert len(np.unique(out.sum(axis=(1, 2, 3)).round(1))) > 8  # a transform per image
    with pytest.raises(ValueError, match="zoom in \\[0, 1\\), got 0.03, 1.5"):
        augment.FlipRotateZoom(zoom=1.5)


def test_gamma_noise_changes_each_image_within_range():
    x = np.full((16, 8, 8, 3), 128.0, "float32")
    out = keras.ops.convert_to_numpy(augment.GammaNoise(seed=3)(x, training=True))
    means = out.mean(axis=(1, 2, 3))
    assert out.min() >= 0 and out.max() <= 255
    low, high = (255 * (128 / 255) ** np.exp(g) for g in (0.35, -0.35))  # gamma 0.70-1.42
    assert low - 1 < means.min() and means.max() < high + 1  # 1: the noise's share of a mean
    assert means.std() > 1  # a gamma per image
    with pytest.raises(ValueError, match="must be >= 0, got -1"):
        augment.GammaNoise(log_gamma=-1)


@pytest.mark.parametrize(
    "layer",
    [augment.GammaNoise(seed=0), augment.Resample(0.5, seed=0), augment.FlipRotateZoom(seed=0)],
)
def test_augmentation_is_the_identity_at_inference(layer):
    x = _checker(n=2)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x)


def test_training_model_shares_the_weights_and_serialises_its_layers(tmp_path):
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(inputs)))
    trainer = augment.training_model(model, Settings(resample=0.3))
    assert {id(v) for v in model.weights} <= {id(v) for v in trainer.weights}
    x = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(trainer.predict(x, verbose=0), model.predict(x, verbose=0))
    assert augment.training_model(model, Settings(augment=False)) is model
    trainer.save(tmp_path / "t.keras")  # the custom layers round-trip
    again = keras.saving.load_model(tmp_path / "t.keras")
    assert [type(lr).__name__ for lr in again.get_layer("augment").layers] == [
        "FlipRotateZoom",
        "RandomContrast",
        "RandomBrightness",
        "Resample",
        "GammaNoise",
    ]


def test_contrast_curve_keeps_background_and_range_and_varies_per_image():
    x = np.repeat(_checker(), 1, axis=0)
    x[:, :4] = 0.0  # a dark band: background stays background under any curve
    layer = augment.ContrastCurve(1.0, seed=4)
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    assert out.shape == x.shape
    assert out.min() >= 0.0 and out.max() <= 255.0
    assert np.abs(out[:, :4]).max() == 0.0
    assert not np.allclose(out[0], out[1])  # a curve of its own per image
    assert np.allclose(keras.ops.convert_to_numpy(layer(x, training=False)), x)
    assert np.allclose(keras.ops.convert_to_numpy(augment.ContrastCurve(0.0)(x, training=True)), x)


def test_contrast_curve_can_invert_and_is_named_for_the_dashboard():
    ramp = np.tile(np.linspace(0, 255, 40, dtype="float32"), (40, 1))
    x = np.repeat(ramp[None, :, :, None], 64, axis=0).repeat(3, axis=3)
    out = keras.ops.convert_to_numpy(augment.ContrastCurve(1.0, bias=0.0, seed=2)(x, training=True))
    falling = [np.corrcoef(ramp[0, 1:], o[0, 1:, 0])[0, 1] < 0 for o in out]
    assert 0 < sum(falling) < len(falling)  # some curves fall (a sequence's contrast inverted)
    settings = dataclasses.replace(Settings(), contrast_curve=0.5)
    names = augment.step_names(augment.augmenter(settings))
    assert names == ("intensity curve", "bias field", *AUGMENTATIONS)
    with pytest.raises(ValueError, match="contrast_curve"):
        Settings(contrast_curve=1.5)
    with pytest.raises(ValueError, match="rate"):
        augment.ContrastCurve(-0.1)
