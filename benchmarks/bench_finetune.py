"""Where a fine-tuning epoch's time goes on this machine (a script, not a timed test).

    PYTHONPATH=. python benchmarks/bench_finetune.py [--images 400] [--layers 60] [--size 224]
        [--jit-compile] [--weights WEIGHTS.h5]

With `--jit-compile` the model is compiled with XLA (Keras leaves it off on CPU-only machines);
`TF_ENABLE_ONEDNN_OPTS=0` in the environment turns TensorFlow's oneDNN kernels off.

Random uint8 pixels (the cost does not depend on content). Without `--weights` the backbone is
randomly initialised, so nothing from ../shared is needed; `--weights
../shared/weights/mobilenet_v2_1.0_224_tfslim_imagenet_no_top.h5` uses the real one. On the
2-core development machine single rows vary by up to 2x from run to run (docs/experiments.md,
"A static image shape for the fine-tuning step"), so compare rows over several runs.

Prints a markdown table of images per second for: the forward pass alone, and one training
epoch of the top `--layers` layers (fed by `feed.Batches`, augmented inside the training step by
`augment.training_model`) without augmentation, with it, and with it plus `--resample`. Each is
timed after a warm-up pass that traces the step. Runs on the Keras backend in KERAS_BACKEND.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

import tumor_model  # noqa: F401  (sets TensorFlow's CPU allocator before keras loads)


def timed(fn) -> float:
    """Seconds of fn() after one warm-up call."""
    fn()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(
    images: int,
    layers: int,
    size: int,
    resample: float = 0.5,
    jit_compile: bool = False,
    weights: str = "none",
) -> list[tuple[str, float]]:
    """[(what, images per second)] for the parts of a fine-tuning epoch."""
    from tumor_model.config import Settings
    from tumor_model.model import build_model, set_fine_tune
    from tumor_model.training.augment import training_model
    from tumor_model.training.feed import Batches
    from tumor_model.training.train import compile_model

    if images < 2 or layers < 1 or size < 32:
        raise ValueError(
            f"need images >= 2, layers >= 1, size >= 32; got {images}, {layers}, {size}"
        )
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (images, size, size, 3), dtype=np.uint8)
    labels = np.arange(images) % 2
    base = Settings(weights=weights, input_size=size, fine_tune_layers=layers)
    plain = dataclasses.replace(base, augment=False)
    with_resample = dataclasses.replace(base, resample=resample)
    model, _, _ = build_model(base)
    set_fine_tune(model, layers)
    feed = Batches(pixels, labels, base.batch_size, training=True, seed=base.seed)

    def fit(settings):
        trainer = training_model(model, settings)
        compile_model(trainer, 5e-5)
        if jit_compile:
            trainer.jit_compile = True
        return lambda: trainer.fit(feed, epochs=1, verbose=0, shuffle=False)

    def forward():
        model.predict(pixels.astype("float32"), batch_size=base.batch_size, verbose=0)

    rows = [
        ("forward pass alone (inference)", forward),
        (f"training epoch, top {layers} layers, no augmentation", fit(plain)),
        (f"training epoch, top {layers} layers, augmentation", fit(base)),
        (
            f"training epoch, top {layers} layers, augmentation + resample {resample}",
            fit(with_resample),
        ),
    ]
    return [(what, images / timed(fn)) for what, fn in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--layers", type=int, default=60)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--jit-compile", action="store_true", help="compile with XLA")
    parser.add_argument(
        "--weights", default="none", help="backbone weights file (.h5); 'none': random init"
    )
    args = parser.parse_args()
    print(f"| part ({args.images} images, {args.size} px) | images/s |\n|---|---|")
    rows = measure(
        args.images, args.layers, args.size, jit_compile=args.jit_compile, weights=args.weights
    )
    for what, rate in rows:
        print(f"| {what} | {rate:.1f} |")


if __name__ == "__main__":
    main()
