"""Training-time augmentation as Keras layers, written against `keras.ops` and `keras.random`,
so the same code runs on TensorFlow and on JAX, inside the compiled training step.

Every layer is the identity at inference (`training=False`): validation and prediction see the
pixels as they are. Pixels stay on the 0-255 scale of the model's input throughout.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
from keras import layers, ops

from .config import AUGMENTATIONS, Settings


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

    The factor is drawn per image from `levels` evenly spaced values, so every tensor keeps a
    static shape (a shape-generic training step ran at half the speed on the CPU; JAX needs
    static shapes anyway); each image is resized at its own level only.
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

    def call(self, x, training=None):
        if not training or not self.strength:
            return x
        side = x.shape[1]
        branches = [functools.partial(_blur, small=small, side=side) for small in self.sides(side)]
        pick = keras.random.randint(
            (ops.shape(x)[0],), 0, len(branches), seed=self.seed_generator, dtype="int32"
        )
        # One image at a time, each through its own branch only (a switch, not a select).
        return ops.map(lambda args: ops.switch(args[1], branches, args[0]), (x, pick))

    def get_config(self):
        return {
            **super().get_config(),
            "strength": self.strength,
            "levels": self.levels,
            "seed": self.seed,
        }


def _blur(image, small: int, side: int):
    """`image` (side, side, channels) shrunk to small x small (antialiased) and enlarged back."""
    if small == side:
        return image
    image = ops.image.resize(image, (small, small), antialias=True)
    return ops.image.resize(image, (side, side), interpolation="bilinear")


def augmenter(settings: Settings) -> keras.Sequential:
    """Light, brain-preserving augmentation on 0-255 pixels, as `settings` say (AUGMENTATIONS
    names the steps for the dashboard; resample is added when settings.resample > 0)."""
    seed = settings.seed
    steps = [
        layers.RandomFlip("horizontal", seed=seed),
        layers.RandomRotation(0.03, fill_mode="constant", seed=seed),
        layers.RandomZoom((-0.1, 0.1), fill_mode="constant", seed=seed),
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
        names.extend(("gamma", "noise") if name == "gammanoise" else (name,))
    return tuple(names)


def training_model(model: keras.Model, settings: Settings) -> keras.Model:
    """`model` behind the augmenter: what fine-tuning fits. It shares every weight with `model`,
    and at inference it is `model` (the augmenter passes pixels through), so validation losses
    are the model's own; `model` alone is saved."""
    if not settings.augment:
        return model
    inputs = keras.Input(model.input.shape[1:], name="image")
    return keras.Model(inputs, model(augmenter(settings)(inputs)), name="neuroscan_training")


__all__ = ["AUGMENTATIONS", "GammaNoise", "Resample", "augmenter", "step_names", "training_model"]
