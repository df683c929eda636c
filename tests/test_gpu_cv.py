"""benchmarks/gpu_cv.py: the JAX port must compute what the Keras recipe computes."""

import importlib.util
import json
import sys

import keras
import numpy as np
import pytest

from conftest import REPO, fake_scan, tiny_settings

jax = pytest.importorskip("jax")


def _load():
    """The script as a module (registered, so its dataclass resolves its own module)."""
    spec = importlib.util.spec_from_file_location("gpu_cv", REPO / "benchmarks" / "gpu_cv.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_cv"] = module
    spec.loader.exec_module(module)
    return module


gpu_cv = _load()


def test_port_gives_the_keras_backbones_features(tmp_path):
    settings = tiny_settings(tmp_path, tmp_path / "out", fine_tune_layers=5)
    weights, tuned, feature_model = gpu_cv.keras_backbone(settings)
    pixels = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3)).astype("float32")
    want = feature_model.predict(pixels, verbose=0)
    got = np.asarray(gpu_cv.backbone(weights, gpu_cv.preprocess(jax.numpy.asarray(pixels))))
    assert got.shape == want.shape == (3, 1280)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # the top 5 Keras layers of MobileNetV2 hold two kernels (Conv_1 and block_16_project)
    assert tuned == ["block_16_project/kernel", "Conv_1/kernel"]


def test_adam_step_matches_keras():
    value, grad = np.array([0.5, -1.0], "float32"), np.array([0.2, -0.4], "float32")
    variable = keras.Variable(value)
    optimizer = keras.optimizers.Adam(0.01)
    params, state = value, gpu_cv.adam_state(value)
    for _ in range(3):
        optimizer.apply_gradients([(grad, variable)])
        params, state = gpu_cv.adam(params, grad, state, 0.01)
    np.testing.assert_allclose(np.asarray(params), variable.numpy(), rtol=1e-6)
    assert not np.allclose(np.asarray(params), value)


def test_recipe_takes_unset_fields_from_the_settings():
    settings = {"fine_tune_epochs": 8, "fine_tune_lr": 5e-5, "seed": 314, "resample": 0.5}
    recipe = gpu_cv.Recipe(epochs=16, seed=315).resolve(settings)
    assert (recipe.epochs, recipe.lr, recipe.seed, recipe.resample) == (16, 5e-5, 315, 0.5)
    assert gpu_cv.Recipe(resample=0.0).resolve(settings).resample == 0.0  # 0 is a value


def test_augmentation_keeps_range_and_follows_its_key():
    rng = np.random.default_rng(1)
    batch = np.stack([np.repeat(fake_scan(rng, t)[..., None], 3, -1) for t in (0, 1)])
    x = jax.numpy.asarray(batch, "float32")
    key = jax.random.PRNGKey(0)
    out = np.asarray(gpu_cv.augment(x, key, 0.5))
    assert out.shape == batch.shape and out.min() >= 0 and out.max() <= 255
    np.testing.assert_array_equal(out, np.asarray(gpu_cv.augment(x, key, 0.5)))
    assert not np.allclose(out, np.asarray(gpu_cv.augment(x, jax.random.PRNGKey(1), 0.5)))
    assert np.abs(out - batch).mean() > 1.0


def test_resampling_blurs_but_keeps_a_flat_image_flat():
    flat = jax.numpy.full((32, 32, 3), 100.0)
    np.testing.assert_allclose(np.asarray(gpu_cv._resample(flat, 0.5))[:30, :30], 100, atol=1e-3)
    stripes = jax.numpy.asarray(np.tile([0.0, 255.0], (32, 16))[..., None].repeat(3, -1))
    blurred = np.asarray(gpu_cv._resample(stripes, 0.5))
    assert blurred[4:28, 4:28].std() < 0.5 * np.asarray(stripes).std()


def test_export_run_store_end_to_end(tiny_dataset, tmp_path):
    root, facts = tiny_dataset
    art = tmp_path / "artifacts"
    art.mkdir()
    tiny_settings(root, art, fine_tune_layers=5).to_json(art / "settings.json")
    (art / "metrics.json").write_text(json.dumps({"test": {"n": 1}}))
    data = tmp_path / "cv_data.npz"
    exported = gpu_cv.export(str(art / "settings.json"), str(data), quality=95)
    with np.load(data) as z:
        assert exported["rows"] == len(z["label"]) == len(z["row_image"])
        assert exported["images"] == len(z["jpeg_end"]) < exported["rows"]  # copies stored once
        assert z["roles_duplicate_3"].shape == (3, exported["rows"])
        # every row is tested exactly once across the folds
        assert ((z["roles_duplicate_10"] == 2).sum(axis=0) == 1).all()
        assert "roles_source_10" not in z  # one image size: too few source groups
    out = tmp_path / "results.json"
    jobs = ["frozen_duplicate_3", "full_duplicate_3", "full_source_10"]
    results = gpu_cv.run(str(data), str(out), jobs, budget_s=600)
    written = json.loads(out.read_text())
    assert list(written["jobs"]) == jobs
    assert results["port_max_abs_feature_diff"] < 1e-3
    full = written["jobs"]["full_duplicate_3"]
    assert full["n"] == exported["rows"] and len(full["fold_accuracy"]) == 3
    assert 0.0 <= full["metrics"]["accuracy"]["value"] <= 1.0
    assert results["jobs"]["frozen_duplicate_3"]["recipe"]["fine_tune"] is False
    # the job's unset fields came from the exported settings, not from the shipped recipe
    assert {k: full["recipe"][k] for k in ("epochs", "lr", "resample", "seed")} == {
        "epochs": 8,
        "lr": 1e-5,
        "resample": 0.0,
        "seed": 314,
    }
    assert "no source-grouped 10-fold split" in results["jobs"]["full_source_10"]["skipped"]
    into = {"cv_fine_tuned_gpu": "full_duplicate_3", "cv_source_fine_tuned_gpu": "full_source_10"}
    stored = gpu_cv.store(str(out), str(data), str(art), "this test's CPU", into)
    metrics = json.loads((art / "metrics.json").read_text())
    assert set(stored) == {"cv_fine_tuned_gpu"} and metrics["test"] == {"n": 1}
    block = metrics["cv_fine_tuned_gpu"]
    assert sum(block["fold_size"]) == exported["rows"]
    assert block["recipe"].endswith(
        "top 5 layers; JAX port (benchmarks/gpu_cv.py) on this test's CPU"
    )
    reference = gpu_cv.tf_cv(str(data), folds=(3,))  # TensorFlow on the same JPEG pixels
    assert set(reference) == {"duplicate_3"} and reference["duplicate_3"]["n"] == exported["rows"]
    with pytest.raises(ValueError, match="JPEG quality"):
        gpu_cv.export(str(art / "settings.json"), str(data), quality=0)


def test_store_refuses_results_without_the_stored_jobs(tmp_path):
    results = tmp_path / "r.json"
    results.write_text(
        json.dumps({"device": "cpu", "jobs": {"full_duplicate_10": {"skipped": "x"}}})
    )
    (tmp_path / "settings.json").write_text(json.dumps({"fine_tune_layers": 5}))
    np.savez(tmp_path / "d.npz", label=np.zeros(2))
    with pytest.raises(ValueError, match="holds none of the jobs"):
        gpu_cv.store(str(results), str(tmp_path / "d.npz"), str(tmp_path))
