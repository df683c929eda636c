"""Load a trained model from its artifacts folder and predict scans.

The model card carries what the model needs to be used: class names, input size, geometry,
threshold, and the sha256 of model.keras, which is checked before loading.
"""

from __future__ import annotations

import hashlib
import json
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from . import ood
from .config import CLASS_NAMES
from .imageio import ImageLoadError, load_image, prepare

REBUILD = (
    "python -m tumor_model train --data-dir ../shared/data/brain-tumor-dataset "
    "--weights ../shared/weights/mobilenet_v2_1.0_224_tfslim_imagenet_no_top.h5"
)


class ArtifactError(RuntimeError):
    """The artifacts folder is missing, incomplete or corrupt; the message says how to rebuild."""


def confidence_band(probability: float, threshold: float) -> str:
    """Plain-language band from the distance to the decision threshold."""
    side = "tumour" if probability >= threshold else "no tumour"
    span = 1 - threshold if probability >= threshold else threshold
    margin = abs(probability - threshold) / max(span, 1e-9)
    if margin >= 0.8:
        return f"confident: {side}"
    if margin >= 0.4:
        return f"fairly confident: {side}"
    return f"uncertain, leaning {side}: have an expert review this scan"


@dataclass(frozen=True)
class Prediction:
    file: str
    probability: float
    label: str
    threshold: float
    band: str
    ood_score: float
    out_of_distribution: bool

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class Predictor:
    """A loaded model plus its card; predicts PIL images, paths or bytes."""

    def __init__(self, artifacts: str | Path = "artifacts"):
        import keras

        from . import model as _model  # noqa: F401  registers BackbonePreprocess

        self.dir = Path(artifacts)
        self.card = read_card(self.dir)
        path = self.dir / "model.keras"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != self.card.get("model_sha256"):
            raise ArtifactError(
                f"{path} does not match the sha256 in its model card (corrupt or "
                f"replaced file); rebuild with: {REBUILD}"
            )
        try:
            self.model = keras.saving.load_model(path, safe_mode=True)
        except (ValueError, OSError, TypeError, KeyError, zipfile.BadZipFile) as err:
            raise ArtifactError(f"cannot load {path}: {err}; rebuild with: {REBUILD}") from err
        try:
            self.size = int(self.card["input_size"])
            self.geometry = self.card["geometry"]
            self.threshold = float(self.card["threshold"])
            self.class_names = tuple(self.card["class_names"])
        except (KeyError, TypeError, ValueError) as err:
            raise ArtifactError(
                f"{self.dir / 'model_card.json'} lacks a valid field ({err!r}); "
                f"rebuild with: {REBUILD}"
            ) from err
        if self.class_names != CLASS_NAMES:
            raise ArtifactError(f"model card class names {self.class_names!r} != {CLASS_NAMES!r}")
        guard = self.dir / "ood.npz"
        try:
            self.guard = ood.load(guard) if guard.is_file() else None
        except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as err:
            raise ArtifactError(f"{guard} is corrupt ({err}); rebuild with: {REBUILD}") from err
        self._forward = _compiled_forward(self.model, self.size)
        self._explainer = None
        self._lock = threading.Lock()

    def pixels(self, image: Image.Image) -> np.ndarray:
        return prepare(image, self.size, self.geometry)

    def predict_images(self, images: list) -> list[tuple[float, float]]:
        """(probability, ood score) for each PIL image."""
        if not images:
            return []
        batch = np.stack([self.pixels(img) for img in images]).astype("float32")
        with self._lock:  # one model call at a time: 2 cores are busy with one already
            parts = [self._forward(batch[i : i + 32]) for i in range(0, len(batch), 32)]
        probs = np.concatenate([np.asarray(p) for p, _ in parts])
        pooled = np.concatenate([np.asarray(f) for _, f in parts])
        scores = ood.score(pooled, self.guard) if self.guard else np.zeros(len(images))
        return list(zip(probs.ravel().tolist(), np.asarray(scores).tolist(), strict=True))

    def result(self, name: str, probability: float, score: float) -> Prediction:
        limit = float(self.guard["threshold"]) if self.guard else np.inf
        return Prediction(
            file=name,
            probability=round(float(probability), 6),
            label=self.class_names[int(probability >= self.threshold)],
            threshold=self.threshold,
            band=confidence_band(probability, self.threshold),
            ood_score=round(float(score), 4),
            out_of_distribution=bool(score > limit),
        )

    def predict_files(self, sources: list, names: list | None = None) -> list[dict]:
        """One dict per source: a Prediction's fields, or {"file", "error"} for unreadable input."""
        names = names or [str(s) for s in sources]
        if len(names) != len(sources):
            raise ValueError(f"{len(sources)} sources but {len(names)} names")
        out, loaded = [None] * len(sources), []
        for i, (src, name) in enumerate(zip(sources, names, strict=True)):
            try:
                loaded.append((i, name, load_image(src, name=name)))
            except ImageLoadError as err:
                out[i] = {"file": name, "error": str(err)}
        for start in range(0, len(loaded), 32):
            chunk = loaded[start : start + 32]
            for (i, name, _), (p, s) in zip(
                chunk, self.predict_images([c[2] for c in chunk]), strict=True
            ):
                out[i] = self.result(name, p, s).to_dict()
        return out

    # ------------------------------------------------------------------ single scans, explaining

    def predict_one(self, image: Image.Image, name: str) -> dict:
        """A Prediction's fields (dict) for one loaded PIL image."""
        ((probability, score),) = self.predict_images([image])
        return self.result(name, probability, score).to_dict()

    def explainer(self):
        """The `explain.Explainer` of this model, built once on first use (it works on a clone:
        self.model is never modified)."""
        with self._lock:
            if self._explainer is None:
                from .explain import Explainer

                last_conv = self.card.get("last_conv")
                if not last_conv:
                    raise ArtifactError(
                        f"{self.dir / 'model_card.json'} has no 'last_conv' "
                        f"(needed to explain); rebuild with: {REBUILD}"
                    )
                self._explainer = Explainer(self.model, last_conv, self.threshold)
            return self._explainer

    def explain(self, image: Image.Image, method: str = "gradcam", target: int | None = None):
        """(pixels, Explanation): the model's view of `image` ((S, S, 3) uint8) and its map for
        `target` (None: the predicted class; 1: tumour; 0: healthy)."""
        pixels = self.pixels(image)
        return pixels, self.explainer().explain(pixels, method, target)


def load_scan(source, name: str | None = None, frame: int | None = None):
    """(RGB PIL image, DicomScan or None): like `imageio.load_image`, but for DICOM it keeps the
    decoded scan (frames, non-identifying `info`) and returns frame `frame` (None: the default,
    middle frame; out-of-range values are clipped). Raises ImageLoadError."""
    from .dicom import frame_to_image, read_dicom
    from .imageio import MAX_FILE_BYTES, _check_shape, _read_source, sniff_format

    data, label = _read_source(source, name)
    if data and len(data) <= MAX_FILE_BYTES and sniff_format(data) == "DICOM":
        scan = read_dicom(data, label)
        index = scan.default_frame if frame is None else min(max(int(frame), 0), scan.n_frames - 1)
        image = frame_to_image(scan, index)
        _check_shape(*image.size, label)
        return image, scan
    return load_image(data, name=label), None


def read_card(folder: str | Path) -> dict:
    """The model card, or ArtifactError naming what is missing and how to rebuild."""
    folder = Path(folder)
    for name in ("model_card.json", "model.keras"):
        if not (folder / name).is_file():
            raise ArtifactError(f"{folder / name} is missing; rebuild with: {REBUILD}")
    try:
        card = json.loads((folder / "model_card.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactError(
            f"{folder / 'model_card.json'} is corrupt ({err}); rebuild with: {REBUILD}"
        ) from err
    if not isinstance(card, dict):
        raise ArtifactError(
            f"{folder / 'model_card.json'} is not a JSON object; rebuild with: {REBUILD}"
        )
    return card


def _compiled_forward(model, size: int):
    """(probabilities, pool features) of an image batch, traced once for any batch size.

    Not Model.predict or predict_on_batch: Streamlit runs every rerun in a new thread, and
    concurrent sessions made Keras retrace its predict function again and again (a new graph
    per trace, seen as server memory growing with each prediction under load)."""
    import keras
    import tensorflow as tf

    both = keras.Model(model.input, [model.output, model.get_layer("pool").output])
    spec = tf.TensorSpec((None, size, size, 3), tf.float32)
    return tf.function(lambda batch: both(batch, training=False), input_signature=[spec])
