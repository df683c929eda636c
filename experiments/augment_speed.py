"""Where does a fine-tuning step's time go: the network or the augmentation? And how much did
`augment.FlipRotateZoom` (flip, rotation and zoom as one 2-D bilinear resampling) save against
the three Keras layers it replaced? Made to run first on a lent GPU (JAX), in a minute or two;
runs on any backend.

    KERAS_BACKEND=jax python experiments/augment_speed.py --weights WEIGHTS --out $OUT/speed.json

Times, median of --repeats after a compiling call, random pixels, batch --batch at --size px:
- each layer of the augmenter alone, the whole augmenter, and Keras's RandomFlip +
  RandomRotation + RandomZoom (the shipped recipe's ranges) in place of FlipRotateZoom;
- whole fine-tuning steps (top 60 layers, the shipped recipe): without augmentation, with the
  augmenter, and with the augmenter whose first layer is Keras's three.
It also checks that `augment.warp` resamples as Keras's `ops.image.affine_transform` does for
the same transforms (largest difference in grey levels).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from tumor_model import model
from tumor_model.config import Settings
from tumor_model.training import augment, train
from tumor_model.training.feed import Batches


def keras_three(seed) -> list:
    """What FlipRotateZoom replaced (augment.py until 2026-12-04)."""
    return [
        layers.RandomFlip("horizontal", seed=seed),
        layers.RandomRotation(0.03, fill_mode="constant", seed=seed),
        layers.RandomZoom((-0.1, 0.1), fill_mode="constant", seed=seed),
    ]


def median_ms(fn, repeats):
    fn()  # compiles
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(float(np.median(times)) * 1000, 1)


def layer_fn(layer, x):
    """A compiled call of `layer` in training mode, on the current backend."""
    if keras.backend.backend() == "jax":
        import jax

        state = [v.value for v in layer.non_trainable_variables]
        call = jax.jit(lambda xx, st: layer.stateless_call([], st, xx, training=True)[0])
        return lambda: call(x, state).block_until_ready()
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        call = tf.function(lambda xx: layer(xx, training=True))
        return lambda: call(x).numpy()
    return lambda: ops.convert_to_numpy(layer(x, training=True))


def step_ms(settings, pixels, labels, augmenter, steps, repeats):
    """Median time of one fine-tuning step (ms), over `repeats` epochs of `steps` steps."""
    net, _, _ = model.build_model(settings)
    model.set_fine_tune(net, settings.fine_tune_layers)
    if augmenter is None:
        trainer = net
    else:
        inputs = keras.Input(net.input.shape[1:])
        trainer = keras.Model(inputs, net(augmenter(inputs)))
    train.compile_model(trainer, settings.fine_tune_lr)
    feed = Batches(pixels, labels, settings.batch_size, training=True, seed=1)

    def epoch():
        trainer.fit(feed, epochs=1, steps_per_epoch=steps, verbose=0)

    return round(median_ms(epoch, repeats) / steps, 1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="none", help="backbone weights (default: random)")
    ap.add_argument("--batch", type=int, default=40)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    settings = dataclasses.replace(
        Settings.from_json(Path("artifacts/settings.json")),
        weights=args.weights,
        input_size=args.size,
        batch_size=args.batch,
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (args.batch, args.size, args.size, 3)).astype("float32")
    shipped = augment.augmenter(settings)
    shipped.build(x.shape)
    three = keras.Sequential(keras_three(settings.seed), name="keras_three")
    three.build(x.shape)
    out = {
        "backend": keras.backend.backend(),
        "devices": [str(d) for d in keras.distribution.list_devices()],
        "batch": args.batch,
        "size": args.size,
        "layers_ms": {
            one.name: median_ms(layer_fn(one, x), args.repeats) for one in shipped.layers
        },  # noqa: E501
    }
    out["layers_ms"]["Keras flip + rotation + zoom (replaced)"] = median_ms(
        layer_fn(three, x), args.repeats
    )
    out["augmenter_ms"] = median_ms(layer_fn(shipped, x), args.repeats)

    flip, angle = rng.uniform(size=4) < 0.5, rng.uniform(-0.19, 0.19, 4).astype("float32")
    zoom = rng.uniform(0.9, 1.1, 4).astype("float32")
    mine = ops.convert_to_numpy(augment.warp(x[:4], flip, angle, zoom))
    gaps = []
    for k in range(4):
        t = augment.affine_transform_of(flip[k], angle[k], zoom[k], args.size)
        ref = ops.image.affine_transform(x[k : k + 1], t, fill_mode="constant")
        gaps.append(float(np.abs(ops.convert_to_numpy(ref)[0] - mine[k]).max()))
    out["warp_vs_keras_max_grey_levels"] = round(max(gaps), 4)

    labels = (np.arange(args.batch * args.steps) % 2).astype("float32")
    pixels = rng.integers(0, 255, (len(labels), args.size, args.size, 3)).astype("uint8")
    before = keras.Sequential(keras_three(settings.seed) + augment.augmenter(settings).layers[1:])
    out["step_ms"] = {
        name: step_ms(settings, pixels, labels, aug, args.steps, args.repeats)
        for name, aug in (
            ("no augmentation", None),
            ("augmenter", augment.augmenter(settings)),
            ("augmenter with Keras's flip + rotation + zoom", before),
        )
    }
    text = json.dumps(out, indent=2)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
