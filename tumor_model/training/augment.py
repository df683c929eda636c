"""Training-time augmentation as Keras layers, written against `keras.ops` and `keras.random`,
so the same code runs on TensorFlow and on JAX, inside the compiled training step.

Every layer is the identity at inference (`training=False`): validation and prediction see the
pixels as they are. Pixels stay on the 0-255 scale of the model's input throughout.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from tumor_model.config import AUGMENTATIONS, Settings


@keras.saving.register_keras_serializable(package="tumor_model")
class FlipRotateZoom(layers.Layer):
    """A horizontal flip (probability 0.5), a rotation (uniform within +-`rotation` of a turn)
    and a zoom (uniform in 1 +- `zoom`; above 1 shows more of the image) drawn per image, applied
    as one bilinear resampling about the image centre, 0 outside.

    These are the distributions of Keras's RandomFlip("horizontal"), RandomRotation(rotation)
    and RandomZoom((-zoom, zoom)) with constant fill, which this layer replaced: those resample
    twice, and under JAX Keras's affine transform interpolates in three dimensions (channels
    too), which made them 30 times slower on the CPU than this layer (docs/experiments.md,
    plan O). The resampling is Keras's `ops.image.affine_transform` to 0.01 grey levels.
    """

    def __init__(self, rotation: float = 0.03, zoom: float = 0.1, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rotation <= 0.5 or not 0.0 <= zoom < 1.0:
            raise ValueError(
                f"rotation must be in [0, 0.5] turns and zoom in [0, 1), got {rotation!r}, {zoom!r}"
            )
        self.rotation, self.zoom, self.seed = float(rotation), float(zoom), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training:
            return x
        n, turn = ops.shape(x)[0], 2.0 * np.pi * self.rotation
        flip = keras.random.uniform((n,), seed=self.seed_generator) < 0.5
        angle = keras.random.uniform((n,), -turn, turn, seed=self.seed_generator)
        zoom = keras.random.uniform(
            (n,), 1.0 - self.zoom, 1.0 + self.zoom, seed=self.seed_generator
        )
        return warp(x, flip, angle, zoom)

    def get_config(self):
        return {
            **super().get_config(),
            "rotation": self.rotation,
            "zoom": self.zoom,
            "seed": self.seed,
        }


def warp(x, flip, angle, zoom):
    """Images `x` (n, h, w, c) resampled: output pixel q (from the centre) takes the input at
    F R(angle) zoom q (F: the horizontal mirror where `flip`), bilinear, 0 outside. `flip`,
    `angle` (radians) and `zoom` hold one value per image."""
    n, h, w, c = ops.shape(x)[0], x.shape[1], x.shape[2], x.shape[3]
    ci, cj = (h - 1) / 2.0, (w - 1) / 2.0
    rows = ops.cast(ops.reshape(ops.arange(h), (1, h, 1)), x.dtype) - ci
    cols = ops.cast(ops.reshape(ops.arange(w), (1, 1, w)), x.dtype) - cj

    def per_image(v):
        return ops.reshape(ops.cast(v, x.dtype), (-1, 1, 1))

    cos, sin = per_image(zoom * ops.cos(angle)), per_image(zoom * ops.sin(angle))
    sy = cos * rows - sin * cols + ci
    sx = ops.where(per_image(flip) > 0.5, -1.0, 1.0) * (sin * rows + cos * cols) + cj
    y0, x0 = ops.floor(sy), ops.floor(sx)
    wy, wx = sy - y0, sx - x0
    y0, x0 = ops.cast(y0, "int32"), ops.cast(x0, "int32")
    flat = ops.reshape(x, (-1, c))
    first = ops.reshape(ops.arange(n, dtype="int32") * (h * w), (-1, 1, 1))
    out = 0.0
    corners = ((0, 0, (1 - wy) * (1 - wx)), (0, 1, (1 - wy) * wx))
    corners += ((1, 0, wy * (1 - wx)), (1, 1, wy * wx))
    for dy, dx, weight in corners:  # four gathers, one per neighbour
        yy, xx = y0 + dy, x0 + dx
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        index = first + ops.clip(yy, 0, h - 1) * w + ops.clip(xx, 0, w - 1)
        values = ops.reshape(ops.take(flat, ops.reshape(index, (-1,)), axis=0), ops.shape(x))
        out = out + values * ops.expand_dims(ops.where(inside, weight, 0.0), -1)
    return out


def affine_transform_of(flip, angle, zoom, side: int) -> np.ndarray:
    """The 8 numbers of Keras's `ops.image.affine_transform` that do what `warp` does to one
    square image of `side` pixels (for checking `warp` against Keras)."""
    c, s = (side - 1) / 2, -1.0 if flip else 1.0
    a0, a1 = s * zoom * np.cos(angle), s * zoom * np.sin(angle)
    b0, b1 = -zoom * np.sin(angle), zoom * np.cos(angle)
    return np.array([[a0, a1, c - (a0 + a1) * c, b0, b1, c - (b0 + b1) * c, 0, 0]], "float32")


@keras.saving.register_keras_serializable(package="tumor_model")
class GammaNoise(layers.Layer):
    """A random gamma per image in [exp(-log_gamma), exp(log_gamma)] (0.7-1.4 by default), then
    Gaussian noise of `noise` grey levels, clipped to 0-255."""

    def __init__(self, log_gamma: float = 0.35, noise: float = 3.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if log_gamma < 0 or noise < 0:
            raise ValueError(f"log_gamma and noise must be >= 0, got {log_gamma!r}, {noise!r}")
        self.log_gamma, self.noise, self.seed = float(log_gamma), float(noise), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training:
            return x
        n = ops.shape(x)[0]
        log_gamma = keras.random.uniform(
            (n, 1, 1, 1), -self.log_gamma, self.log_gamma, seed=self.seed_generator
        )
        x = 255.0 * ops.power(ops.clip(x, 0.0, 255.0) / 255.0, ops.exp(log_gamma))
        x = x + keras.random.normal(ops.shape(x), stddev=self.noise, seed=self.seed_generator)
        return ops.clip(x, 0.0, 255.0)

    def get_config(self):
        return {
            **super().get_config(),
            "log_gamma": self.log_gamma,
            "noise": self.noise,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="tumor_model")
class Resample(layers.Layer):
    """Shrink each image by a random factor in [1 - strength, 1] and enlarge it back: the blur of
    a lower-resolution scan, so that sharpness stops telling sources apart.

    The factor is drawn per image from `levels` evenly spaced values. Shrinking (antialiased,
    linear) and enlarging (linear) are linear maps along each axis, so each level is one
    side x side matrix B and an image X becomes B X B^T. B is banded (a pixel mixes with its
    neighbours only: 3 on each side at strength 0.5), so each product is a few shifted
    multiply-adds with each image's own band: static shapes, no per-image branch (a per-image
    switch made a GPU training step under JAX about 5 times slower than the rest of it).
    """

    def __init__(self, strength: float, levels: int = 8, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= strength < 1.0:
            raise ValueError(f"resample strength must be in [0, 1), got {strength!r}")
        if levels < 1:
            raise ValueError(f"levels must be >= 1, got {levels!r}")
        self.strength, self.levels, self.seed = float(strength), int(levels), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def sides(self, side: int) -> list[int]:
        """The image sides (pixels) an image of `side` is shrunk to, 8 at the least."""
        factors = np.linspace(1.0 - self.strength, 1.0, self.levels)
        return sorted({max(8, int(round(f * side))) for f in factors})

    def blurs(self, side: int) -> np.ndarray:
        """(levels, side, side) float32: B = enlarge @ shrink for each side of `sides`."""
        pairs = [
            (_linear_resize(small, side), _linear_resize(side, small)) for small in self.sides(side)
        ]
        return np.stack([enlarge @ shrink for enlarge, shrink in pairs]).astype("float32")

    def bands(self, side: int) -> np.ndarray:
        """(levels, 2w + 1, side): band[l, o, i] = blurs[l][i, i + o - w], 0 outside the image,
        w the widest band of any level."""
        blurs = self.blurs(side)
        rows, cols = np.nonzero(np.abs(blurs).max(axis=0))
        w = int(np.abs(rows - cols).max())
        out = np.zeros((len(blurs), 2 * w + 1, side), "float32")
        i = np.arange(side)
        for o in range(2 * w + 1):
            k = i + o - w
            inside = (k >= 0) & (k < side)
            out[:, o, inside] = blurs[:, i[inside], k[inside]]
        return out

    def call(self, x, training=None):
        if not training or not self.strength:
            return x
        side, bands = x.shape[1], self.bands(x.shape[1])
        pick = keras.random.randint(
            (ops.shape(x)[0],), 0, len(bands), seed=self.seed_generator, dtype="int32"
        )
        band = ops.take(ops.convert_to_tensor(bands, dtype=x.dtype), pick, axis=0)
        w = (bands.shape[1] - 1) // 2
        padded = ops.pad(x, [[0, 0], [w, w], [0, 0], [0, 0]])  # along the height
        x = sum(band[:, o, :, None, None] * padded[:, o : o + side] for o in range(2 * w + 1))
        padded = ops.pad(x, [[0, 0], [0, 0], [w, w], [0, 0]])  # along the width
        return sum(band[:, o, None, :, None] * padded[:, :, o : o + side] for o in range(2 * w + 1))

    def get_config(self):
        return {
            **super().get_config(),
            "strength": self.strength,
            "levels": self.levels,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="tumor_model")
class ContrastCurve(layers.Layer):
    """With probability `rate` per image, a random intensity curve and a smooth bias field: one
    MRI sequence made to stand in for another (the SynthSeg idea on 2-D slices).

    The curve is piecewise linear through `knots` evenly spaced points of the image's own 0-max
    range: the first stays 0 (the background stays dark), the others take heights drawn
    uniformly in [0, 1], so a curve may fall as well as rise (dark fluid turns bright, as from
    T1 to FLAIR or T2). The bias field multiplies the image by exp(b), b a random quadratic
    over the image of amplitude up to `bias`. Output on 0-255.
    """

    def __init__(self, rate: float, knots: int = 5, bias: float = 0.3, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate <= 1.0 or knots < 2 or bias < 0:
            raise ValueError(
                "rate must be in [0, 1], knots >= 2 and bias >= 0, "
                f"got {rate!r}, {knots!r}, {bias!r}"
            )
        self.rate, self.knots, self.bias, self.seed = float(rate), int(knots), float(bias), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training or not self.rate:
            return x
        n, k = ops.shape(x)[0], self.knots
        heights = keras.random.uniform((n, k - 1), seed=self.seed_generator, dtype=x.dtype)
        heights = ops.concatenate([ops.zeros_like(heights[:, :1]), heights], axis=1)
        top = ops.maximum(ops.max(x, axis=(1, 2, 3), keepdims=True), 1.0)
        v = ops.clip(x / top, 0.0, 1.0) * (k - 1)
        low = ops.minimum(ops.floor(v), k - 2.0)
        index = ops.reshape(ops.cast(low, "int32"), (n, -1))
        below = ops.reshape(ops.take_along_axis(heights, index, axis=1), ops.shape(x))
        above = ops.reshape(ops.take_along_axis(heights, index + 1, axis=1), ops.shape(x))
        curve = below + (above - below) * (v - low)
        out = ops.clip(255.0 * curve * ops.exp(self.field(x)), 0.0, 255.0)
        chosen = keras.random.uniform((n, 1, 1, 1), seed=self.seed_generator) < self.rate
        return ops.where(chosen, out, x)

    def field(self, x):
        """(n, h, w, 1): a random quadratic in the image's coordinates (-1 to 1), one per image,
        each of its five terms' coefficients uniform in +-bias / 2."""
        n, h, w = ops.shape(x)[0], x.shape[1], x.shape[2]
        r = ops.reshape(ops.linspace(-1.0, 1.0, h), (1, h, 1, 1))
        c = ops.reshape(ops.linspace(-1.0, 1.0, w), (1, 1, w, 1))
        a = keras.random.uniform(
            (5, n, 1, 1, 1), -self.bias / 2, self.bias / 2, seed=self.seed_generator
        )
        return a[0] * r + a[1] * c + a[2] * r * r + a[3] * c * c + a[4] * r * c

    def get_config(self):
        return {
            **super().get_config(),
            "rate": self.rate,
            "knots": self.knots,
            "bias": self.bias,
            "seed": self.seed,
        }


def _linear_resize(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of a linear resize with half-pixel centres: a triangle kernel,
    widened by the shrink factor when shrinking (antialiased), each row summing to 1 (so edges
    clamp and 0-255 stays 0-255). n_in == n_out is the identity."""
    scale = n_out / n_in
    width = max(1.0, 1.0 / scale)  # the kernel's half-support, in input pixels
    centres = (np.arange(n_out) + 0.5) / scale - 0.5
    weights = np.maximum(0.0, 1.0 - np.abs(np.arange(n_in)[None, :] - centres[:, None]) / width)
    return weights / weights.sum(axis=1, keepdims=True)


def augmenter(settings: Settings) -> keras.Sequential:
    """Light, brain-preserving augmentation on 0-255 pixels, as `settings` say (AUGMENTATIONS
    names the steps for the dashboard; a contrast curve goes first when settings.contrast_curve
    > 0, resample is added when settings.resample > 0)."""
    seed = settings.seed
    steps = [ContrastCurve(settings.contrast_curve, seed=seed, name="curve")] * bool(
        settings.contrast_curve
    )
    steps += [
        FlipRotateZoom(rotation=0.03, zoom=0.1, seed=seed, name="flip_rotate_zoom"),
        layers.RandomContrast(0.3, value_range=(0, 255), seed=seed),
        layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed),
    ]
    if settings.resample:
        steps.append(Resample(settings.resample, seed=seed, name="resample"))
    steps.append(GammaNoise(seed=seed, name="gamma_noise"))
    return keras.Sequential(steps, name="augment")


def step_names(augment: keras.Sequential) -> tuple[str, ...]:
    """The augmenter's steps in the words of config.AUGMENTATIONS (resample included if used)."""
    names = []
    for layer in augment.layers:
        name = type(layer).__name__.removeprefix("Random").lower()
        split = {"gammanoise": ("gamma", "noise"), "fliprotatezoom": ("flip", "rotation", "zoom")}
        split["contrastcurve"] = ("intensity curve", "bias field")
        names.extend(split.get(name, (name,)))
    return tuple(names)


def training_model(model: keras.Model, settings: Settings) -> keras.Model:
    """`model` behind the augmenter: what fine-tuning fits. It shares every weight with `model`,
    and at inference it is `model` (the augmenter passes pixels through), so validation losses
    are the model's own; `model` alone is saved."""
    if not settings.augment:
        return model
    inputs = keras.Input(model.input.shape[1:], name="image")
    return keras.Model(inputs, model(augmenter(settings)(inputs)), name="neuroscan_training")


__all__ = [
    "AUGMENTATIONS",
    "ContrastCurve",
    "FlipRotateZoom",
    "GammaNoise",
    "Resample",
    "augmenter",
    "step_names",
    "training_model",
    "warp",
]
