"""`neuroscan export`: the model's network for ONNX Runtime (`artifacts.EXPORT`), written beside
model.keras with its sha256 on the model card, so that `predict` runs without TensorFlow.

The export is the same two-output forward pass the Keras path runs (`serving.predict.
compiled_forward`: the probability and the pool features the guard reads), converted by tf2onnx
and checked against Keras on random inputs and the folder's samples before it is written."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from tumor_model import artifacts
from tumor_model.artifacts import CARD, EXPORT, EXPORT_OUTPUTS, ArtifactError

OPSET = 17
TOLERANCE = 1e-4  # the largest |P(keras) - P(onnx)| an export may show on its check inputs


def check_inputs(folder: Path, size: int, geometry: str) -> np.ndarray:
    """Random pixels plus the folder's sample scans (as the model sees them)."""
    from tumor_model.io.geometry import prepare
    from tumor_model.io.imageio import ImageLoadError, load_image

    rng = np.random.default_rng(0)
    batch = [rng.uniform(0, 255, (2, size, size, 3))]
    for path in sorted((folder / artifacts.SAMPLES).glob("*"))[:8]:
        try:
            batch.append(prepare(load_image(path), size, geometry)[None])
        except ImageLoadError:
            continue  # samples.csv and the like
    return np.concatenate(batch).astype("float32")


def convert(model, size: int, path: Path) -> None:
    """Write the ONNX graph of `model`'s two-output forward pass to `path`."""
    import logging

    import tensorflow as tf
    import tf2onnx

    from tumor_model.serving.predict import compiled_forward

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    forward = compiled_forward(model, size)
    spec = tf.TensorSpec((None, size, size, 3), tf.float32)
    tf2onnx.convert.from_function(
        forward, input_signature=[spec], opset=OPSET, output_path=str(path)
    )


def export(folder: str | Path) -> dict:
    """Write `folder`/model.onnx, check it, and record it in the card's "export" block; returns
    the block. ArtifactError when the model cannot be read or the export disagrees with Keras."""
    from tumor_model.serving.predict import compiled_forward, load_checked_model
    from tumor_model.serving.runtime import onnxruntime

    ort = onnxruntime()
    folder = Path(folder)
    card = artifacts.read_card(folder)
    model = load_checked_model(folder, card["model_sha256"])
    size = int(card["input_size"])
    tmp = folder / f".{EXPORT}.tmp{os.getpid()}"
    try:
        convert(model, size, tmp)
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        batch = check_inputs(folder, size, str(card["geometry"]))
        keras_p = np.asarray(compiled_forward(model, size)(batch)[0]).ravel()
        outputs = session.run(None, {session.get_inputs()[0].name: batch})
        order = [0, 1] if outputs[0].shape[-1] == 1 else [1, 0]
        gap = float(np.abs(outputs[order[0]].ravel() - keras_p).max())
        if not gap <= TOLERANCE:
            raise ArtifactError(folder, EXPORT, f"differs from model.keras by {gap:.2e}")
        os.replace(tmp, folder / EXPORT)
    finally:
        tmp.unlink(missing_ok=True)
    entry = {
        "file": EXPORT,
        "sha256": hashlib.sha256((folder / EXPORT).read_bytes()).hexdigest(),
        "model_sha256": card["model_sha256"],
        "runtime": f"onnxruntime (opset {OPSET})",
        "outputs": list(EXPORT_OUTPUTS),
        "output_order": order,
        "checked_on": f"{len(batch)} inputs (random and samples)",
        "max_abs_difference": gap,
    }
    artifacts.write_json({**card, "export": entry}, folder / CARD)
    return entry
