"""The network on a light runtime: the model's ONNX export (`artifacts.EXPORT`) run by ONNX
Runtime, with the same two outputs as the Keras path (probability, pool features), so that
prediction needs neither TensorFlow nor Keras. Checked against the sha256 on the model card."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from tumor_model.artifacts import CARD, EXPORT, ArtifactError

# images per ONNX Runtime call: MobileNetV2's early activations of a 32-image batch take about
# 150 MB each (32 x 112 x 112 x 96 float32); 8 kept the throughput over 2,000 scans of 32
# (`benchmarks/bench_runtime.py`: docs/lab/runtime_benchmark.md and its git history)
CHUNK = 8
FIX = "rewrite it with `neuroscan export --artifacts {folder}`"


def onnxruntime():
    """The onnxruntime module, imported with its telemetry off: it would otherwise write a
    session file into $TMPDIR, and predicting writes no file (tests/test_reliability.py)."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime as ort

    return ort


def export_entry(card: dict) -> dict | None:
    """The card's "export" block when it names the ONNX file and its sha256, else None."""
    entry = card.get("export")
    ok = isinstance(entry, dict) and entry.get("file") == EXPORT and entry.get("sha256")
    return entry if ok else None


def available(card: dict) -> bool:
    """True when the card names an export and ONNX Runtime is installed (`OnnxNetwork` then
    refuses a missing or mismatched file rather than falling back)."""
    if export_entry(card) is None:
        return False
    try:
        onnxruntime()
    except ImportError:
        return False
    return True


class OnnxNetwork:
    """`network(batch) -> (probabilities (n, 1), pool features (n, d))` for float32 RGB batches
    (n, S, S, 3), as `serving.predict`'s Keras forward pass gives them."""

    def __init__(self, folder: str | Path, card: dict):
        ort = onnxruntime()
        folder = Path(folder)
        entry = export_entry(card)
        if entry is None:
            raise ArtifactError(folder, CARD, "has no export block: " + FIX.format(folder=folder))
        if entry.get("model_sha256") != card.get("model_sha256"):
            raise ArtifactError(
                folder,
                EXPORT,
                "was exported from another model.keras: " + FIX.format(folder=folder),
            )
        path = folder / EXPORT
        data = path.read_bytes() if path.is_file() else None
        if data is None:
            raise ArtifactError(folder, EXPORT, "is missing: " + FIX.format(folder=folder))
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise ArtifactError(
                folder,
                EXPORT,
                "does not match the sha256 on its model card (corrupt or replaced file): "
                + FIX.format(folder=folder),
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = len(os.sched_getaffinity(0))
        options.log_severity_level = 3
        options.enable_cpu_mem_arena = False  # a long-running server must not keep growing
        try:
            self.session = ort.InferenceSession(
                data, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own exception classes
            raise ArtifactError(folder, EXPORT, f"cannot be loaded ({err})") from err
        self.input = self.session.get_inputs()[0].name
        names = [o.name for o in self.session.get_outputs()]
        self.outputs = [names[i] for i in entry.get("output_order", (0, 1))]

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = batch.astype(np.float32)
        parts = [
            self.session.run(self.outputs, {self.input: batch[i : i + CHUNK]})
            for i in range(0, len(batch), CHUNK)
        ]
        return tuple(np.concatenate([part[k] for part in parts]) for k in (0, 1))
