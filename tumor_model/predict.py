"""Load a trained model from its artifacts folder and predict scans.

The model card (`tumor_model.artifacts`) carries what the model needs to be used: class names,
input size, geometry, threshold, and the sha256 of model.keras, which is checked before loading.
Anything wrong with the folder raises `artifacts.ArtifactError` naming the file, the problem and
the rebuild command.
"""

from __future__ import annotations

import hashlib
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from . import ood
from .artifacts import CARD, GUARD, MODEL, ArtifactError, read_card
from .config import CLASS_NAMES, DISPLAY_NAMES, GEOMETRIES
from .explain import Explainer
from .imageio import ImageLoadError, load_image, prepare


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


class Predictor:
    """A loaded model plus its card; predicts PIL images, paths or bytes."""

    def __init__(self, artifacts: str | Path = "artifacts"):
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
        self.model = load_checked_model(self.dir, self.card["model_sha256"])
        guard = self.dir / GUARD
        try:
            self.guard = ood.load(guard) if guard.is_file() else None
        except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as err:
            raise ArtifactError(self.dir, GUARD, f"is corrupt ({err})") from err
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

    def result(
        self,
        name: str,
        probability: float,
        score: float,
        image: Image.Image | None = None,
        predict_anyway: bool = False,
    ) -> Prediction:
        """The Prediction of one scan from its (probability, ood score) and, for the guard's
        image checks, its loaded `image` (None: the feature guard alone)."""
        found = ood.assess(ood.image_checks(image) if image is not None else {}, score, self.guard)
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
            for (i, name, image), (p, s) in zip(
                chunk, self.predict_images([c[2] for c in chunk]), strict=True
            ):
                out[i] = self.result(name, p, s, image, predict_anyway).to_dict()
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

    def explain(self, image: Image.Image, method: str = "gradcam", target: int | None = None):
        """(pixels, Explanation): the model's view of `image` ((S, S, 3) uint8) and its map for
        `target` (None: the predicted class; 1: tumour; 0: healthy)."""
        pixels = self.pixels(image)
        return pixels, self.explainer().explain(pixels, method, target)


def load_checked_model(folder: Path, sha256: str):
    """model.keras, checked against the card's sha256 and loaded in Keras safe mode."""
    import keras

    from . import model as _model  # noqa: F401  registers BackbonePreprocess

    path = folder / MODEL
    if not path.is_file():
        raise ArtifactError(folder, MODEL, "is missing")
    if hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
        raise ArtifactError(
            folder, MODEL, "does not match the sha256 in its model card (corrupt or replaced file)"
        )
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except (ValueError, OSError, TypeError, KeyError, zipfile.BadZipFile) as err:
        raise ArtifactError(folder, MODEL, f"cannot be loaded ({err})") from err


def _compiled_forward(model, size: int):
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
