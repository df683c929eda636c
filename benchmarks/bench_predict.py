"""Latency of prediction and explanation with the shipped model; prints a markdown table.

    python benchmarks/bench_predict.py [--artifacts artifacts] [--repeat 30]

Scans are the shipped sample thumbnails (artifacts/samples/), read from disk each time as a user
upload would be. Not a test: numbers depend on the machine (the dev box has 2 shared cores).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from tumor_model.io.imageio import load_scan  # noqa: E402
from tumor_model.serving.explain import METHOD_NAMES, METHODS  # noqa: E402
from tumor_model.serving.predict import Predictor  # noqa: E402


def _times(fn, n: int) -> np.ndarray:
    out = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - start)
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", default="artifacts")
    parser.add_argument("--repeat", type=int, default=30, help="single-scan predictions timed")
    parser.add_argument("--maps", type=int, default=5, help="explanations timed per method")
    parser.add_argument("--batch", type=int, default=50, help="scans in the batch timing")
    args = parser.parse_args()

    start = time.perf_counter()
    import keras  # noqa: F401  (TensorFlow's import, timed on its own)

    import_s = time.perf_counter() - start
    start = time.perf_counter()
    predictor = Predictor(args.artifacts)
    load_s = time.perf_counter() - start
    folder = Path(args.artifacts) / "samples"
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() != ".csv")
    if not files:
        raise SystemExit(f"no sample images in {folder}")

    def one(i: int) -> None:
        image, _ = load_scan(files[i % len(files)])
        predictor.predict_one(image, files[i % len(files)].name)

    one(0)  # warm-up: traces the predict function
    single = _times(one, args.repeat)

    start = time.perf_counter()
    explainer = predictor.explainer()
    explainer.linear_model()
    build_s = time.perf_counter() - start
    images = [load_scan(f)[0] for f in files]
    pixels = [predictor.pixels(img) for img in images]
    maps, first = {}, {}
    for method in METHODS:
        start = time.perf_counter()
        explainer.explain(pixels[0], method, target=1)  # builds and traces the visualizer
        first[method] = time.perf_counter() - start
        maps[method] = _times(
            lambda i, m=method: explainer.explain(pixels[(i + 1) % len(pixels)], m), args.maps
        )

    batch = [files[i % len(files)] for i in range(args.batch)]
    start = time.perf_counter()
    results = predictor.predict_files(batch, [p.name for p in batch])
    batch_s = time.perf_counter() - start
    assert all("error" not in r for r in results)

    card = predictor.card
    print(
        f"Model: {card.get('backbone')} {predictor.size} px (`{args.artifacts}`), "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"TF threads default.\n"
    )
    print("| what | p50 | p95 | n |")
    print("|---|---|---|---|")
    print(f"| import TensorFlow + Keras | {import_s:.2f} s | | 1 |")
    print(f"| load Predictor (sha256 + model + OOD guard) | {load_s:.2f} s | | 1 |")
    p50, p95 = np.percentile(single, [50, 95])
    print(
        f"| predict one scan (read + prepare + model + OOD) | {p50 * 1e3:.0f} ms "
        f"| {p95 * 1e3:.0f} ms | {args.repeat} |"
    )
    print(f"| build explainer (clone model) | {build_s:.2f} s | | 1 |")
    for method in METHODS:
        p50, p95 = np.percentile(maps[method], [50, 95])
        print(
            f"| {METHOD_NAMES[method]} map (first call {first[method]:.2f} s) | {p50:.2f} s "
            f"| {p95:.2f} s | {args.maps} |"
        )
    print(
        f"| batch of {args.batch} scans (predict_files) | {batch_s:.2f} s total, "
        f"{batch_s / args.batch * 1e3:.0f} ms/scan | | 1 |"
    )


if __name__ == "__main__":
    main()
