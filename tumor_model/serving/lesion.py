"""The lesion-map head: "where is the lesion", drawn by a small decoder on the classifier's frozen
backbone and trained on lesion masks and boxes (`neuroscan lesion-head`). It is not an
explanation of the classifier (the post-hoc maps of `serving.explain` are): it is a second
output that has learnt what a lesion looks like, shown beside them.

The head reads three MobileNetV2 layers (strides 16, 8 and 4: `LAYERS`) and gives P(lesion) on
a grid of a quarter of the input size; `LesionMap` runs backbone and head as one network and
upsamples to the input size. The head's file (`artifacts.LESION_HEAD`) and its record
(`artifacts.LESION_RECORD`: the classifier's and the head's sha256, the pixel threshold, the
figures measured on held-out slices) live in the model folder; `LesionMap.from_folder` refuses a
head trained on another classifier."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from tumor_model.artifacts import CARD, LESION_HEAD, LESION_RECORD, ArtifactError

LAYERS = ("block_13_expand_relu", "block_6_expand_relu", "block_2_add")
STRIDE = 4  # the head's grid: input size / STRIDE
RETRAIN = "train a head for it with `neuroscan lesion-head --artifacts {folder}`"


def feature_outputs(model) -> list:
    """The outputs of `LAYERS` in `model` (a flat MobileNetV2 classifier); a clear error
    naming the missing layer otherwise."""
    names = {layer.name for layer in model.layers}
    missing = [n for n in LAYERS if n not in names]
    if missing:
        raise ValueError(
            f"model {model.name!r} has no layer {missing[0]!r}: the lesion head reads the "
            f"MobileNetV2 layers {LAYERS}"
        )
    return [model.get_layer(n).output for n in LAYERS]


def build_head(shapes):
    """The decoder: the three feature maps (shapes without the batch axis) -> P(lesion) on the
    finest map's grid (1 channel, sigmoid). A small U-Net-like ladder: 1x1 convs, two bilinear
    2x upsamplings, 3x3 convs."""
    import keras
    from keras import layers

    deep, mid, fine = (keras.Input(tuple(s)) for s in shapes)
    x = layers.Conv2D(64, 1, activation="relu")(deep)
    x = layers.UpSampling2D(2, interpolation="bilinear")(x)
    x = layers.Concatenate()([x, layers.Conv2D(32, 1, activation="relu")(mid)])
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.UpSampling2D(2, interpolation="bilinear")(x)
    x = layers.Concatenate()([x, layers.Conv2D(16, 1, activation="relu")(fine)])
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    out = layers.Conv2D(1, 1, activation="sigmoid")(x)
    return keras.Model([deep, mid, fine], out, name="lesion_head")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class LesionMap:
    """`lesion_map(pixels) -> float32 (S, S)`: P(lesion) per pixel, 0..1, for one prepared image
    ((S, S, 3) uint8 from `geometry.prepare`, the classifier's input). `threshold`: the pixel
    threshold chosen on validation slices (the outline the dashboard draws)."""

    def __init__(self, model, head, threshold: float = 0.5, record: dict | None = None):
        import keras

        if not 0.0 < threshold < 1.0:
            raise ValueError(f"lesion threshold must be in (0, 1), got {threshold!r}")
        up = keras.layers.UpSampling2D(STRIDE, interpolation="bilinear")
        self.net = keras.Model(model.input, up(head(feature_outputs(model))))
        self.threshold, self.record = float(threshold), record or {}
        self.size = tuple(int(d) for d in model.input.shape[1:3])

    def __call__(self, pixels) -> np.ndarray:
        return self.many(np.asarray(pixels)[None])[0]

    def many(self, batch) -> np.ndarray:
        """(n, S, S) maps of a batch of prepared images."""
        batch = np.asarray(batch, dtype="float32")
        if batch.ndim != 4 or batch.shape[1:3] != self.size:
            raise ValueError(f"expected images of {self.size} px, got shape {batch.shape}")
        # predict_on_batch runs a compiled graph; an eager call is several times slower
        # (measured in docs/lab/2026-12-06-lesion-head-v3.md)
        return np.clip(np.asarray(self.net.predict_on_batch(batch))[..., 0], 0.0, 1.0)

    @classmethod
    def from_folder(cls, folder, model, card: dict):
        """The head a model folder carries, checked against its record and the model card, or
        None when the folder has no record (a model without a lesion head)."""
        import keras

        folder = Path(folder)
        if not (folder / LESION_RECORD).is_file():
            return None
        try:
            record = json.loads((folder / LESION_RECORD).read_text())
        except (OSError, ValueError) as err:
            raise ArtifactError(folder, LESION_RECORD, f"is unreadable ({err})") from err
        if record.get("model_sha256") != card.get("model_sha256"):
            raise ArtifactError(
                folder,
                LESION_RECORD,
                f"belongs to another model.keras (see {CARD}): " + RETRAIN.format(folder=folder),
            )
        path = folder / LESION_HEAD
        if not path.is_file() or sha256_of(path) != record.get("head_sha256"):
            raise ArtifactError(
                folder,
                LESION_HEAD,
                "is missing or does not match its record's sha256: "
                + RETRAIN.format(folder=folder),
            )
        head = keras.models.load_model(path, compile=False, safe_mode=True)
        return cls(model, head, float(record.get("threshold", 0.5)), record)
