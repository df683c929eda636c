"""One recipe, any backend: `train` and `cv` run under KERAS_BACKEND=jax on the CPU, and the
.keras model JAX trained is served unchanged by the TensorFlow app."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from tumor_model import artifacts
from tumor_model.serving.predict import Predictor

from conftest import cli, tiny_settings

pytestmark = pytest.mark.slow  # trains tiny models under JAX


@pytest.fixture(scope="module")
def jax_artifacts(tiny_dataset, tmp_path_factory):
    """The whole recipe (head, fine-tuning with augmentation and resampling, groups) trained by
    the CLI under JAX. ResNet50: a randomly initialised MobileNetV2's features vanish (about
    1e-13 at 32 px), so its probabilities would all be equal and the comparison empty."""
    root, _ = tiny_dataset
    out = tmp_path_factory.mktemp("jax") / "artifacts"
    s = tiny_settings(root, out)
    flags = [
        "--data-dir", str(root), "--weights", "none", "--input-size", "32",
        "--backbone", "resnet50",
        "--dense-units", "16", "--head-epochs", "4", "--fine-tune-layers", "5",
        "--fine-tune-epochs", "1", "--resample", "0.5", "--sample-groups",
        "--val-fraction", "0.2", "--test-fraction", "0.2", "--bootstrap", "20",
        "--cache-dir", s.cache_dir, "--out-dir", str(out), "--no-shortcut",
    ]  # fmt: skip
    done = cli("train", *flags, env={**os.environ, "KERAS_BACKEND": "jax"})
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_jax_trains_and_records_its_backend(jax_artifacts):
    card = artifacts.read_card(jax_artifacts)
    assert card["device"]["backend"] == "jax" and card["device"]["strategy"] == "default"
    assert "jax" in card["versions"] and "tensorflow" not in card["versions"]
    history = pd.read_csv(jax_artifacts / artifacts.HISTORY)
    assert list(history.phase.unique()) == ["head", "fine_tune"]


def test_a_jax_trained_model_predicts_the_same_under_tensorflow(jax_artifacts):
    import keras

    assert keras.backend.backend() == "tensorflow"  # this test process serves as the app does
    predictor = Predictor(jax_artifacts)
    rows = pd.read_csv(jax_artifacts / artifacts.PREDICTIONS)
    held = rows[rows.split != "train"]
    out = predictor.predict_files(
        [os.path.join(r, p) for r, p in zip(held.root, held.path, strict=True)]
    )
    served = np.array([o["probability"] for o in out])
    assert np.ptp(held.probability) > 0.01  # the model tells images apart: a real comparison
    np.testing.assert_allclose(served, held.probability.to_numpy(), atol=1e-4)  # JAX's own


def test_cv_runs_under_jax(jax_artifacts):
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = cli("cv", "--artifacts", str(jax_artifacts), "--folds", "3", "--by", "duplicate",
               "--save", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    block = json.loads((jax_artifacts / artifacts.METRICS).read_text())["cv"]
    assert block["backend"] == "jax" and block["folds"] == 3
    assert sum(block["fold_size"]) == block["n"]
