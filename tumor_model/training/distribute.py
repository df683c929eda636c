"""Several devices, on the engine each backend already has; one setting chooses it.

settings.strategy == "mirrored" trains data-parallel on every local device (the GPUs, else the
CPU devices): on TensorFlow with
`tf.distribute.MirroredStrategy` (models and optimisers are built inside its scope), on JAX with
`keras.distribution.DataParallel` (set globally before the models are built; each batch is
split along its first axis). Any other value trains on the backend's default device.
Several machines: with TF_CONFIG set, TensorFlow uses `MultiWorkerMirroredStrategy`; with
KERAS_DISTRIBUTION_JOB_ADDRESSES set, JAX first joins the other processes
(`keras.distribution.initialize`). How to start them: docs/distributed.md.
"""

from __future__ import annotations

import contextlib
import json
import os

import keras

from tumor_model.config import Settings
from tumor_model.progress import log


class EvenDataParallel(keras.distribution.DataParallel):
    """`DataParallel` that splits a batch only when it divides evenly among the devices.

    Training batches are full (`feed.Batches`); the last batch of an evaluation or prediction
    seldom divides by the device count, and JAX refuses such a split. That batch is given
    whole to every device instead (replicated): the same result, computed redundantly once."""

    def get_data_layout(self, data_shape):
        devices = self.device_mesh.shape[0]
        if data_shape and data_shape[0] is not None and data_shape[0] % devices:
            return keras.distribution.TensorLayout([None] * len(data_shape), self.device_mesh)
        return super().get_data_layout(data_shape)


class Devices:
    """What a run trains on: `scope()` wraps model building and training; `describe()` is the
    record the model card keeps."""

    def __init__(self, settings: Settings, devices: list | None = None):
        self.backend = keras.backend.backend()
        self.strategy = settings.strategy
        self._tf_strategy = None
        if settings.strategy != "mirrored":
            self.devices = _default_devices(self.backend)
            return
        if self.backend == "tensorflow":
            self._tf_strategy = _tf_strategy(devices)
            self.devices = list(self._tf_strategy.extended.worker_devices)
            log(f"{type(self._tf_strategy).__name__} over {len(self.devices)} devices")
        elif self.backend == "jax":
            if os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES") and not _jax_initialised():
                keras.distribution.initialize()  # several processes: docs/distributed.md
            found = devices or keras.distribution.list_devices()
            keras.distribution.set_distribution(EvenDataParallel(devices=found))
            self.devices = [str(d) for d in found]
            log(f"keras.distribution.DataParallel over {len(self.devices)} devices")
        else:
            raise ValueError(
                f"strategy 'mirrored' needs the tensorflow or jax backend, got {self.backend!r}"
            )

    @property
    def replicas(self) -> int:
        return len(self.devices) if self.strategy == "mirrored" else 1

    def scope(self):
        if self._tf_strategy is not None:
            return self._tf_strategy.scope()
        return contextlib.nullcontext()

    def close(self) -> None:
        """Undo a global JAX distribution, so that later runs in this process start clean."""
        if self.backend == "jax" and self.strategy == "mirrored":
            keras.distribution.set_distribution(None)

    def describe(self) -> dict:
        return {
            "backend": self.backend,
            "strategy": self.strategy,
            "devices": self.devices if self.strategy == "mirrored" else self.devices[:1],
        }


def _tf_strategy(devices):
    """MultiWorkerMirroredStrategy when TF_CONFIG names a cluster, else MirroredStrategy over
    the local GPUs (else CPU devices)."""
    import tensorflow as tf

    if json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    local = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy(devices or [d.name for d in local])


def _jax_initialised() -> bool:
    import jax

    return jax.distributed.is_initialized()


def _default_devices(backend: str) -> list[str]:
    try:
        return [str(d) for d in keras.distribution.list_devices()][:1]
    except (RuntimeError, ValueError, NotImplementedError):
        return [f"{backend}:default"]
