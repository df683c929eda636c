"""Data-parallel training on two virtual CPU devices gives the loss curve of one device, on
TensorFlow (MirroredStrategy) and on JAX (keras.distribution.DataParallel)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, tiny_settings

TOLERANCE = 1e-5  # absolute, on binary cross-entropy near 0.7; measured gaps are about 1e-6

CODE = """
import json, os, sys
if os.environ["KERAS_BACKEND"] == "tensorflow":  # two logical CPUs, before TensorFlow starts
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import dataclasses
from tumor_model.evaluation import crossval
from tumor_model.training import train
from tumor_model.config import Settings
from tumor_model.training.distribute import Devices
base = Settings.from_json(sys.argv[1])
table, x = crossval.recipe_features(base)
out = {}
for strategy in ("default", "mirrored"):
    settings = dataclasses.replace(base, strategy=strategy)
    devices = Devices(settings)
    try:
        _, _, history, _, _ = train.fit(settings, table, x, devices)
    finally:
        devices.close()
    out[strategy] = {"devices": devices.describe()["devices"],
                     "loss": history[["loss", "val_loss"]].to_numpy().ravel().tolist()}
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_two_devices_give_the_loss_curve_of_one(backend, tiny_dataset, tmp_path):
    root, _ = tiny_dataset
    settings = tiny_settings(
        root, tmp_path / "out", head_epochs=2, patience=10, fine_tune_layers=5,
        fine_tune_epochs=1, batch_size=8, dropout=0.0, augment=False,
    )  # fmt: skip
    settings.to_json(tmp_path / "s.json")
    env = {**os.environ, "KERAS_BACKEND": backend}
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    done = subprocess.run(
        [sys.executable, "-c", CODE, str(tmp_path / "s.json")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    assert len(result["mirrored"]["devices"]) == 2, result
    assert len(result["default"]["devices"]) == 1, result
    one, two = (np.array(result[k]["loss"]) for k in ("default", "mirrored"))
    assert len(one) == len(two) == 2 * (2 + 1)  # head and fine-tuning epochs, loss + val_loss
    np.testing.assert_allclose(two, one, atol=TOLERANCE)
