"""Explanations on a tiny flat CNN trained here (seconds) to find a bright lesion.

Sanity checks in the spirit of Adebayo et al. 2018: the Grad-CAM peak falls in the lesion of
positive images, the map of the other class does not, and randomly initialised models give maps
unlike the trained model's. Nothing in tumor_model.serving.explain is mocked.

Why not the shared `conftest.tiny_artifacts` model: these checks need a model that has surely
learned WHERE the lesion is, and copies of it with random weights; the tiny MobileNetV2 of the
shared fixture (32 px, random backbone) gives no such guarantee. Explaining through the
Predictor of that model is tested in test_predict.py; the colour overlays in test_overlay.py.
"""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
from scipy import ndimage

from tumor_model.serving import explain as ex
from tumor_model.serving.cam_math import fuse_maps

from conftest import fake_scan, lesion_box

SIZE = 64
RANDOM_SEEDS = (100, 101, 102, 103, 104, 105)


def _images(n: int, seed: int):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    grey = np.stack([fake_scan(rng, bool(t), (SIZE, SIZE)) for t in labels])
    return np.repeat(grey[..., None], 3, axis=-1), labels, grey


def _cnn(seed: int) -> keras.Model:
    """Flat functional CNN: raw 0-255 RGB -> 3 convs (the last named "last_conv") -> sigmoid."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Rescaling(1 / 255.0, name="scale")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(name="pool2")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="last_conv")(x)
    x = keras.layers.GlobalMaxPooling2D(name="pool")(x)
    out = keras.layers.Dense(1, activation="sigmoid", name="tumor_probability")(x)
    return keras.Model(inputs, out, name="tiny_cnn")


@pytest.fixture(scope="module")
def trained() -> keras.Model:
    x, y, _ = _images(160, seed=1)
    model = _cnn(0)
    model.compile(keras.optimizers.Adam(5e-3), "binary_crossentropy", metrics=["accuracy"])
    model.fit(x.astype("float32"), y.astype("float32"), epochs=8, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def held_out():
    return _images(40, seed=2)


@pytest.fixture(scope="module")
def explainer(trained) -> ex.Explainer:
    return ex.Explainer(trained, "last_conv")


def _peak_in_lesion(heat: np.ndarray, grey: np.ndarray) -> bool:
    lesion = ndimage.binary_dilation(lesion_box(grey), iterations=3)  # a 3 px margin
    return bool(lesion.flat[int(np.argmax(heat))])


def test_the_tiny_model_learned_the_task(trained, held_out):
    x, y, _ = held_out
    probs = trained.predict(x.astype("float32"), verbose=0).ravel()
    assert np.mean((probs >= 0.5) == y) >= 0.9


def test_gradcam_peak_falls_inside_the_lesion(explainer, held_out):
    x, y, grey = held_out
    positives = np.flatnonzero(y == 1)
    hits = [_peak_in_lesion(explainer.heatmap(x[i], "gradcam"), grey[i]) for i in positives]
    assert np.mean(hits) >= 0.9, f"peak in lesion for {np.mean(hits):.0%} of positives"


def test_explaining_healthy_does_not_point_at_the_lesion(explainer, held_out):
    """target=0 explains 1 - p (score -z): the lesion lowers it, so the peak lies elsewhere."""
    x, y, grey = held_out
    positives = np.flatnonzero(y == 1)
    hits = [
        _peak_in_lesion(explainer.heatmap(x[i], "gradcam", target=0), grey[i]) for i in positives
    ]
    assert np.mean(hits) < 0.5


def test_predicted_class_is_explained_by_default(explainer, held_out):
    x, y, _ = held_out
    for i in (int(np.flatnonzero(y == 1)[0]), int(np.flatnonzero(y == 0)[0])):
        result = explainer.explain(x[i], "gradcam")
        assert result.target == int(result.probability >= explainer.threshold) == y[i]
        assert np.array_equal(result.heatmap, explainer.heatmap(x[i], "gradcam", target=y[i]))


def test_randomised_models_give_different_maps(explainer, held_out):
    """Mean correlation over randomly initialised copies of the architecture < 0.5: a map that
    survived weight randomisation would show the image, not what the model learned."""
    x, y, _ = held_out
    positives = np.flatnonzero(y == 1)[:8]
    trained_maps = [explainer.heatmap(x[i], "gradcam", target=1) for i in positives]
    corr = []
    for seed in RANDOM_SEEDS:
        rand = ex.Explainer(_cnn(seed), "last_conv")
        for i, ref in zip(positives, trained_maps, strict=True):
            heat = rand.heatmap(x[i], "gradcam", target=1)
            corr.append(np.corrcoef(ref.ravel(), heat.ravel())[0, 1] if heat.std() > 0 else 0.0)
    assert np.mean(corr) < 0.5, f"mean correlation {np.mean(corr):.2f}"


@pytest.mark.parametrize("method", ex.METHODS)
def test_every_method_returns_a_unit_map(explainer, held_out, method):
    x, y, grey = held_out
    i = int(np.flatnonzero(y == 1)[0])
    heat = explainer.heatmap(x[i].astype(np.uint8), method)
    assert heat.shape == (SIZE, SIZE) and heat.dtype == np.float32
    assert np.isfinite(heat).all() and heat.min() >= 0.0 and heat.max() <= 1.0
    assert heat.max() == pytest.approx(1.0)  # a real map, scaled to 0..1
    assert heat.std() > 0.01


def test_explaining_never_modifies_the_model(trained, held_out):
    x, _, _ = held_out
    batch = x[:6].astype("float32")
    before = trained.predict(batch, verbose=0)
    weights = [w.copy() for w in trained.get_weights()]
    fresh = ex.Explainer(trained, "last_conv")
    for method in ex.METHODS:
        fresh.heatmap(x[1], method)
    assert trained.get_layer("tumor_probability").activation is keras.activations.sigmoid
    np.testing.assert_array_equal(trained.predict(batch, verbose=0), before)
    assert all(np.array_equal(a, b) for a, b in zip(weights, trained.get_weights(), strict=True))


# Score-CAM with max_n 64 uses all 16 channels, with 6 the 6 maps of largest spatial std.
CASES = [("gradcam", 64), ("gradcam++", 64), ("layercam", 64), ("scorecam", 64), ("scorecam", 6)]


@pytest.mark.parametrize(("method", "max_n"), CASES)
@pytest.mark.parametrize("target", [None, 0, 1])
def test_compiled_maps_match_tf_keras_vis(trained, held_out, method, max_n, target):
    """The compiled Grad-CAM / Grad-CAM++ / Score-CAM (the default) gives tf-keras-vis's map."""
    assert set(ex.COMPILED) == {m for m, _ in CASES}
    x, y, _ = held_out
    explainer = ex.Explainer(trained, "last_conv", scorecam_max_n=max_n)
    reference = ex.Explainer(trained, "last_conv", scorecam_max_n=max_n, compiled=False)
    for i in (int(np.flatnonzero(y == 1)[0]), int(np.flatnonzero(y == 0)[0])):
        fast, slow = (
            explainer.explain(x[i], method, target),
            reference.explain(x[i], method, target),
        )
        assert fast.target == slow.target and slow.heatmap.std() > 0.01
        if target is None:
            assert fast.probability == pytest.approx(slow.probability, abs=1e-5)
        np.testing.assert_allclose(fast.heatmap, slow.heatmap, atol=2e-3)


def test_visualizers_are_built_once(explainer, held_out):
    x, _, _ = held_out
    explainer.heatmap(x[0], "gradcam")
    first, compiled = explainer.visualizer("gradcam"), explainer.gradient_function()
    explainer.heatmap(x[1], "gradcam")
    explainer.heatmap(x[2], "gradcam++", target=0)
    assert explainer.visualizer("gradcam") is first
    assert explainer.gradient_function() is compiled
    assert compiled.experimental_get_tracing_count() == 1  # one graph, reused for every image
    assert explainer.linear_model() is explainer.linear_model()


def test_bad_arguments_are_named(explainer, held_out):
    x, _, _ = held_out
    with pytest.raises(ValueError, match=re.escape("'gradcam+++'")):
        explainer.heatmap(x[0], "gradcam+++")
    with pytest.raises(ValueError, match=r"\(32, 32, 3\)"):
        explainer.heatmap(x[0][:32, :32], "gradcam")
    with pytest.raises(ValueError, match="'no_such_layer'"):
        ex.Explainer(explainer.model, "no_such_layer")
    with pytest.raises(ValueError, match="target"):
        explainer.heatmap(x[0], "gradcam", target=2)


@pytest.mark.parametrize("method", ex.CAMS)
def test_target_layers_match_tf_keras_vis(trained, held_out, method):
    """A finer layer and a fused list of layers: the compiled map is tf-keras-vis's, layer by
    layer, fused the same way; explain_many gives explain's maps from one pass."""
    x, y, _ = held_out
    i = int(np.flatnonzero(y == 1)[0])
    fast = ex.Explainer(trained, "last_conv", scorecam_max_n=6)
    slow = ex.Explainer(trained, "last_conv", scorecam_max_n=6, compiled=False)
    for layer in ("conv2", ["last_conv", "conv2", "conv1"]):
        a, b = fast.explain(x[i], method, 1, layer), slow.explain(x[i], method, 1, layer)
        assert a.layers == b.layers == ((layer,) if isinstance(layer, str) else tuple(layer))
        assert b.heatmap.std() > 0.01
        np.testing.assert_allclose(a.heatmap, b.heatmap, atol=2e-3)
    coarse, fine = fast.heatmap(x[i], method, 1), fast.heatmap(x[i], method, 1, "conv1")
    assert not np.allclose(coarse, fine, atol=0.05)  # the layer changes the map
    configs = [(method, None), (method, "conv1"), (method, ("last_conv", "conv1"))]
    for (m, layer), many in zip(configs, fast.explain_many(x[i], configs, 1), strict=True):
        np.testing.assert_array_equal(many.heatmap, fast.heatmap(x[i], m, 1, layer))


def test_fused_layers_follow_layer_cam():
    """One map as it is; several: divided by their max, tanh(2 m) but the coarsest, maximum."""
    coarse, fine = np.array([[0.0, 4.0], [2.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 0.5]])
    np.testing.assert_array_equal(fuse_maps([coarse], [49]), coarse)
    fused = fuse_maps([coarse, fine], [4, 16])
    np.testing.assert_allclose(fused, [[np.tanh(2.0), 1.0], [0.5, np.tanh(1.0)]])


def test_bad_layers_are_named(explainer, held_out):
    x, _, _ = held_out
    with pytest.raises(ValueError, match="'no_such_layer'"):
        explainer.heatmap(x[0], "gradcam", layer="no_such_layer")
    with pytest.raises(ValueError, match="'pool'"):  # a layer without (h, w, channels) maps
        explainer.heatmap(x[0], "layercam", layer=["last_conv", "pool"])
    with pytest.raises(ValueError, match="takes no layer"):
        explainer.heatmap(x[0], "smoothgrad", layer="conv1")
    with pytest.raises(ValueError, match="repeat"):
        explainer.heatmap(x[0], "gradcam", layer=["conv1", "conv1"])
    with pytest.raises(ValueError, match="'smoothgrad'"):
        explainer.explain_many(x[0], [("smoothgrad", None)])
