"""Load a trained model from its artifacts folder and predict scans.

The model card (`tumor_model.artifacts`) carries what the model needs to be used: class names,
input size, geometry, threshold, and the sha256 of model.keras, which is checked before loading.
Anything wrong with the folder raises `artifacts.ArtifactError` naming the file, the problem and
the rebuild command.
"""

from __future__ import annotations

import hashlib
import os
import threading
import zipfile
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tumor_model.artifacts import CARD, GUARD, MODEL, ArtifactError, read_card
from tumor_model.config import CLASS_NAMES, DISPLAY_NAMES, GEOMETRIES
from tumor_model.io.geometry import prepare
from tumor_model.io.imageio import ImageLoadError, load_image
from tumor_model.serving import ood
from tumor_model.serving import runtime as onnx_runtime
from tumor_model.serving.explain import Explainer
from tumor_model.serving.lesion import LesionMap


def confidence_band(probability: float, threshold: float) -> str:
    """Plain-language band from the distance to the decision threshold."""
    side = DISPLAY_NAMES[CLASS_NAMES[int(probability >= threshold)]]
    span = 1 - threshold if probability >= threshold else threshold
    margin = abs(probability - threshold) / max(span, 1e-9)
    if margin >= 0.8:
        return f"confident: {side}"
    if margin >= 0.4:
        return f"fairly confident: {side}"
    return f"uncertain, leaning {side}: have an expert review this scan"


NO_VERDICT = f"no verdict: {ood.NOT_MRI}"


@dataclass(frozen=True)
class Prediction:
    """One scan's result. When the OOD guard says it is not a brain-MRI slice (is_mri false),
    label and band are None ("no verdict") unless it was predicted anyway (predicted_anyway);
    ood_reason then names the checks that fired and stays on the result either way."""

    file: str
    probability: float
    label: str | None
    threshold: float
    band: str | None
    ood_score: float
    out_of_distribution: bool
    is_mri: bool = True
    verdict: str = ""  # the band, NO_VERDICT, or the band with "(predicted anyway: ...)"
    ood_reason: str | None = None
    ood_checks: tuple = ()  # the checks that fired: ood.LIMITS names and "features"
    predicted_anyway: bool = False

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        return {**out, "ood_checks": list(self.ood_checks)}


RUNTIMES = ("auto", "onnx", "keras")
BATCH, PREFETCH = 32, 3  # images per network call; batches the thread pool reads ahead


class Predictor:
    """A loaded model plus its card; predicts PIL images, paths or bytes.

    runtime "auto" runs the network on ONNX Runtime when the folder has an export (no TensorFlow
    is imported until a map is asked for), else on Keras; the guard, calibration, threshold and
    volume rule are the same code on both."""

    def __init__(self, artifacts: str | Path = "artifacts", runtime: str = "auto"):
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
        self.dir = Path(artifacts)
        self.card = read_card(self.dir)
        try:
            self.size = int(self.card["input_size"])
            self.geometry = str(self.card["geometry"])
            self.threshold = float(self.card["threshold"])
            self.class_names = tuple(self.card["class_names"])
        except (TypeError, ValueError) as err:
            raise ArtifactError(self.dir, CARD, f"has an invalid field ({err})") from err
        if self.class_names != CLASS_NAMES:
            raise ArtifactError(
                self.dir, CARD, f"has the class names {self.class_names!r}, not {CLASS_NAMES!r}"
            )
        if self.geometry not in GEOMETRIES:
            raise ArtifactError(self.dir, CARD, f"has an unknown geometry {self.geometry!r}")
        self._model = None
        check_model_file(self.dir, self.card["model_sha256"])  # either runtime: the model of record
        if runtime == "onnx" or (runtime == "auto" and onnx_runtime.available(self.card)):
            self.runtime, self._forward = "onnx", onnx_runtime.OnnxNetwork(self.dir, self.card)
        else:
            self.runtime = "keras"
            self._forward = compiled_forward(self.model, self.size)
        guard = self.dir / GUARD
        try:
            self.guard = ood.load(guard) if guard.is_file() else None
        except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as err:
            raise ArtifactError(self.dir, GUARD, f"is corrupt ({err})") from err
        self._explainer = None
        self._lesion = None  # the lesion head: None not yet read, False none in the folder
        self._lock = threading.Lock()

    @property
    def model(self):
        """The Keras model (loaded on first use when predicting runs on ONNX Runtime)."""
        if self._model is None:
            self._model = load_checked_model(self.dir, self.card["model_sha256"])
        return self._model

    def pixels(self, image: Image.Image) -> np.ndarray:
        return prepare(image, self.size, self.geometry)

    def predict_images(self, images: list) -> list[tuple[float, float]]:
        """(probability, ood score) for each PIL image."""
        if not images:
            return []
        return self.predict_pixels(np.stack([self.pixels(img) for img in images]))

    def predict_pixels(self, batch: np.ndarray) -> list[tuple[float, float]]:
        """(probability, ood score) for each prepared image of a batch (n, S, S, 3)."""
        batch = batch.astype("float32")
        with self._lock:  # one model call at a time: 2 cores are busy with one already
            parts = [self._forward(batch[i : i + 32]) for i in range(0, len(batch), 32)]
        probs = np.concatenate([np.asarray(p) for p, _ in parts])
        pooled = np.concatenate([np.asarray(f) for _, f in parts])
        scores = ood.score(pooled, self.guard) if self.guard else np.zeros(len(batch))
        return list(zip(probs.ravel().tolist(), np.asarray(scores).tolist(), strict=True))

    def result(
        self,
        name: str,
        probability: float,
        score: float,
        image: Image.Image | None = None,
        predict_anyway: bool = False,
        checks: dict | None = None,
    ) -> Prediction:
        """The Prediction of one scan from its (probability, ood score) and, for the guard's
        image checks, its loaded `image` or the `checks` already made on it (neither: the
        feature guard alone)."""
        if checks is None:
            checks = ood.image_checks(image) if image is not None else {}
        found = ood.assess(checks, score, self.guard)
        give = found.is_mri or predict_anyway
        band = confidence_band(probability, self.threshold)
        verdict = band if found.is_mri else f"{band} (predicted anyway: {ood.NOT_MRI})"
        return Prediction(
            file=name,
            probability=round(float(probability), 6),
            label=self.class_names[int(probability >= self.threshold)] if give else None,
            threshold=self.threshold,
            band=band if give else None,
            ood_score=round(float(score), 4),
            out_of_distribution=not found.is_mri,
            is_mri=found.is_mri,
            verdict=verdict if give else NO_VERDICT,
            ood_reason=found.reason,
            ood_checks=found.checks,
            predicted_anyway=bool(predict_anyway and not found.is_mri),
        )

    def predict_anyway(self, result: dict) -> dict:
        """A result dict with the verdict the guard withheld (label, band), the warning kept."""
        if result.get("label") is not None or "error" in result:
            return result
        band = confidence_band(result["probability"], self.threshold)
        return {
            **result,
            "label": self.class_names[int(result["probability"] >= self.threshold)],
            "band": band,
            "verdict": f"{band} (predicted anyway: {ood.NOT_MRI})",
            "predicted_anyway": True,
        }

    def predict_files(
        self, sources: list, names: list | None = None, predict_anyway: bool = False
    ) -> list[dict]:
        """One dict per source: a Prediction's fields, or {"file", "error"} for unreadable input.
        predict_anyway: give a verdict also to what the guard says is not a brain-MRI slice."""
        return list(self.predict_stream(sources, names, predict_anyway))

    def predict_stream(self, sources, names=None, predict_anyway: bool = False, workers=None):
        """`predict_files` as a generator, in input order: images are read and prepared by a
        pool of threads while the network runs on the batch before, and at most a few batches
        are held in memory, however many sources there are."""
        sources = list(sources)
        names = list(names) if names is not None else [str(s) for s in sources]
        if len(names) != len(sources):
            raise ValueError(f"{len(sources)} sources but {len(names)} names")
        workers = workers or len(os.sched_getaffinity(0))
        with ThreadPoolExecutor(workers) as pool:
            pending = deque()
            for source, name in zip(sources, names, strict=True):
                pending.append(pool.submit(self.read, source, name))
                if len(pending) >= BATCH * PREFETCH:
                    chunk = [pending.popleft().result() for _ in range(BATCH)]
                    yield from self.predict_read(chunk, predict_anyway)
            while pending:
                chunk = [pending.popleft().result() for _ in range(min(BATCH, len(pending)))]
                yield from self.predict_read(chunk, predict_anyway)

    def read(self, source, name: str):
        """(name, the guard's image checks, pixels) of one input, or its {"file", "error"}
        result: the decoded image is dropped here, in the reading thread, so that a batch
        holds only network-sized pixels."""
        try:
            image = load_image(source, name=name)
        except ImageLoadError as err:
            return {"file": name, "error": str(err)}
        return name, ood.image_checks(image), self.pixels(image)

    def predict_read(self, chunk: list, predict_anyway: bool = False) -> list[dict]:
        """Results of a chunk of `read` outputs (errors passed through), in order."""
        good = [c for c in chunk if isinstance(c, tuple)]
        pairs = iter(self.predict_pixels(np.stack([c[2] for c in good])) if good else [])
        out = []
        for item in chunk:
            if isinstance(item, dict):
                out.append(item)
                continue
            name, checks, _ = item
            p, score = next(pairs)
            out.append(self.result(name, p, score, None, predict_anyway, checks).to_dict())
        return out

    # ------------------------------------------------------------------ single scans, explaining

    def predict_one(self, image: Image.Image, name: str, predict_anyway: bool = False) -> dict:
        """A Prediction's fields (dict) for one loaded PIL image."""
        ((probability, score),) = self.predict_images([image])
        return self.result(name, probability, score, image, predict_anyway).to_dict()

    def explainer(self):
        """The `explain.Explainer` of this model, built once on first use (it works on a clone:
        self.model is never modified)."""
        with self._lock:
            if self._explainer is None:
                last_conv = self.card.get("last_conv")
                if not last_conv:
                    raise ArtifactError(self.dir, CARD, "has no 'last_conv' (needed to explain)")
                self._explainer = Explainer(self.model, last_conv, self.threshold)
            return self._explainer

    def lesion_map(self):
        """The folder's lesion-map head (`serving.lesion.LesionMap`), built once on first use;
        None when the folder carries none (`neuroscan lesion-head --save` trains one)."""
        model = self.model  # outside the lock: `model` loads once without it
        with self._lock:
            if self._lesion is None:
                self._lesion = LesionMap.from_folder(self.dir, model, self.card) or False
            return self._lesion or None

    def explain(self, image: Image.Image, method: str = "gradcam", target: int | None = None):
        """(pixels, Explanation): the model's view of `image` ((S, S, 3) uint8) and its map for
        `target` (None: the predicted class; 1: tumour; 0: healthy)."""
        pixels = self.pixels(image)
        return pixels, self.explainer().explain(pixels, method, target)


def check_model_file(folder: Path, sha256: str) -> Path:
    """model.keras's path after checking it is there and matches the card's sha256."""
    path = folder / MODEL
    if not path.is_file():
        raise ArtifactError(folder, MODEL, "is missing")
    if hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
        raise ArtifactError(
            folder, MODEL, "does not match the sha256 in its model card (corrupt or replaced file)"
        )
    return path


def load_checked_model(folder: Path, sha256: str):
    """model.keras, checked against the card's sha256 and loaded in Keras safe mode."""
    import keras

    from tumor_model import model as _model  # noqa: F401  registers BackbonePreprocess

    path = check_model_file(folder, sha256)
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except (ValueError, OSError, TypeError, KeyError, zipfile.BadZipFile) as err:
        raise ArtifactError(folder, MODEL, f"cannot be loaded ({err})") from err


def compiled_forward(model, size: int):
    """(probabilities, pool features) of an image batch, traced once for any batch size.

    Not Model.predict or predict_on_batch: Streamlit runs every rerun in a new thread, and
    concurrent sessions made Keras retrace its predict function again and again (a new graph
    per trace, seen as server memory growing with each prediction under load)."""
    import keras
    import tensorflow as tf

    both = keras.Model(model.input, [model.output, model.get_layer("pool").output])
    spec = tf.TensorSpec((None, size, size, 3), tf.float32)
    # autograph=False: a plain model call needs no conversion, and autograph would write its
    # converted code to a temporary file (predicting writes no file: test_reliability)
    return tf.function(
        lambda batch: both(batch, training=False), input_signature=[spec], autograph=False
    )
