"""Backbone registry and the flat functional classifier.

The model takes raw RGB pixels 0-255 at the backbone's input size (after `geometry.prepare`) and
does its own pixel preprocessing, so training, CLI and app feed it the same thing. It is FLAT:
input -> preprocess -> backbone layers -> pool -> Dense -> Dropout -> Dense(sigmoid), with no
nested models, which tf-keras-vis needs for Grad-CAM.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import keras
from keras import layers, ops

from tumor_model.config import Settings

# ImageNet statistics used by the "torch" and "caffe" preprocessing modes of keras.applications.
_TORCH_MEAN, _TORCH_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@dataclass(frozen=True)
class Backbone:
    build: str  # name of the keras.applications constructor
    size: int  # default square input side, pixels
    preprocess: str  # pixel mode: tf ([-1, 1]), torch, caffe, or none (model rescales itself)
    last_conv: str | None  # Grad-CAM layer (the base's last 4-D output); None: auto-named


BACKBONES = {
    "mobilenetv2": Backbone("MobileNetV2", 224, "tf", "out_relu"),
    "nasnetlarge": Backbone("NASNetLarge", 331, "tf", None),
    "efficientnetb0": Backbone("EfficientNetB0", 224, "none", "top_activation"),
    "resnet50": Backbone("ResNet50", 224, "caffe", "conv5_block3_out"),
    "densenet121": Backbone("DenseNet121", 224, "torch", "relu"),
    "inceptionv3": Backbone("InceptionV3", 299, "tf", "mixed10"),
    "xception": Backbone("Xception", 299, "tf", "block14_sepconv2_act"),
}


def backbone(name: str) -> Backbone:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[name]


def input_size(settings: Settings) -> int:
    return settings.input_size or backbone(settings.backbone).size


@keras.saving.register_keras_serializable(package="tumor_model")
class BackbonePreprocess(layers.Layer):
    """Raw RGB 0-255 -> what the backbone expects; optional per-image min-max contrast stretch."""

    def __init__(self, mode: str = "tf", stretch: bool = True, **kwargs):
        super().__init__(**kwargs)
        if mode not in ("tf", "torch", "caffe", "none"):
            raise ValueError(f"unknown preprocessing mode {mode!r}")
        self.mode, self.stretch = mode, bool(stretch)

    def call(self, x):
        x = ops.cast(x, "float32")
        if self.stretch:  # same brightness range for every scanner: lo -> 0, hi -> 255
            lo = ops.min(x, axis=(1, 2, 3), keepdims=True)
            hi = ops.max(x, axis=(1, 2, 3), keepdims=True)
            x = (x - lo) * (255.0 / ops.maximum(hi - lo, 1.0))
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            return (x / 255.0 - ops.array(_TORCH_MEAN)) / ops.array(_TORCH_STD)
        if self.mode == "caffe":
            return ops.flip(x, axis=-1) - ops.array(_CAFFE_MEAN_BGR)
        return x

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "stretch": self.stretch}


def weights_origin(weights: str) -> tuple[str, str | None]:
    """(origin, sha256) of a weights setting: a local file is hashed, imagenet/none are named."""
    if weights in ("imagenet", "none"):
        return weights, None
    path = Path(weights)
    if not path.is_file():
        raise ValueError(
            f"weights file {weights!r} does not exist (use 'imagenet', 'none' or a path)"
        )
    return str(path), hashlib.sha256(path.read_bytes()).hexdigest()


def build_base(settings: Settings, inputs):
    """The backbone built on top of `inputs` (a preprocessed KerasTensor), flat, frozen."""
    spec = backbone(settings.backbone)
    weights = None if settings.weights == "none" else settings.weights
    if weights not in (None, "imagenet"):
        weights_origin(weights)  # clear error for a missing file
    constructor = getattr(keras.applications, spec.build)
    try:
        base = constructor(include_top=False, weights=weights, input_tensor=inputs)
    except (OSError, ValueError) as err:
        if weights == "imagenet":
            raise ValueError(
                f"could not get ImageNet weights for {settings.backbone} ({err}); offline, pass a "
                "local .h5 file with --weights PATH"
            ) from err
        raise
    base.trainable = False
    return base


def build_model(settings: Settings) -> tuple[keras.Model, keras.Model, keras.Model]:
    """(model, features, head): the flat classifier, its frozen feature extractor (image ->
    pooled features) and the head alone (features -> probability). All three share layers."""
    spec = backbone(settings.backbone)
    size = input_size(settings)
    keras.utils.set_random_seed(settings.seed)
    inputs = keras.Input((size, size, 3), name="image")
    x = BackbonePreprocess(spec.preprocess, stretch=settings.stretch, name="preprocess")(inputs)
    base = build_base(settings, x)
    pool = (
        layers.GlobalAveragePooling2D(name="pool")
        if settings.head == "gap"
        else (layers.Flatten(name="pool"))
    )
    pooled = pool(base.output)
    stack = head_layers(settings)
    model = keras.Model(inputs, _apply(stack, pooled), name="neuroscan")
    features = keras.Model(inputs, pooled, name="features")
    head_in = keras.Input(pooled.shape[1:], name="features")
    head = keras.Model(head_in, _apply(stack, head_in), name="head")
    return model, features, head


def head_layers(settings: Settings) -> list:
    """Dense(relu) -> Dropout -> Dense(1, sigmoid): the report's head after pooling."""
    return [
        layers.Dense(settings.dense_units, activation="relu", name="head_dense"),
        layers.Dropout(settings.dropout, name="head_dropout"),
        layers.Dense(1, activation="sigmoid", name="tumor_probability"),
    ]


def make_head(settings: Settings, dim: int) -> keras.Model:
    """A fresh, seeded head on its own (features -> probability), for cross-validation."""
    keras.utils.set_random_seed(settings.seed)
    head_in = keras.Input((dim,), name="features")
    return keras.Model(head_in, _apply(head_layers(settings), head_in), name="head")


def _apply(stack, x):
    for layer in stack:
        x = layer(x)
    return x


def base_layers(model: keras.Model) -> list:
    """The backbone's layers inside a built model (between preprocess and pool)."""
    names = [layer.name for layer in model.layers]
    return model.layers[names.index("preprocess") + 1 : names.index("pool")]


def last_conv(model: keras.Model) -> str:
    """Name of the backbone's last layer in a built model: the layer Grad-CAM looks at."""
    return base_layers(model)[-1].name


def set_fine_tune(model: keras.Model, n_layers: int) -> None:
    """Unfreeze the top n backbone layers; BatchNorm stays frozen (inference mode)."""
    if n_layers < 0:
        raise ValueError(f"n_layers must be >= 0, got {n_layers!r}")
    body = base_layers(model)
    for i, layer in enumerate(body):
        top = i >= len(body) - n_layers
        layer.trainable = top and not isinstance(layer, layers.BatchNormalization)


def fold_temperature(model: keras.Model, temperature: float) -> None:
    """Divide the output logit by `temperature` by scaling the last Dense layer in place."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    last = model.get_layer("tumor_probability")
    kernel, bias = last.get_weights()
    last.set_weights([kernel / temperature, bias / temperature])
