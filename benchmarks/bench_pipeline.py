"""Pipeline benchmark for MobileNetV2 on this machine (a script, not a timed test).

    PYTHONPATH=. python benchmarks/bench_pipeline.py \
        --weights ../shared/weights/mobilenet_v2_1.0_224_tfslim_imagenet_no_top.h5

Prints a markdown table: feature extraction images/s, head training seconds, a full default
training run's wall time and peak memory (run in a child process), and predict latency per image
(p50/p95) with the shipped model loaded.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def extraction_rate(weights: str, data_dir: str, n: int) -> tuple[float, float, float]:
    """(images/s of uncached feature extraction, images/s of its reading + cropping part alone,
    head training seconds on cached features)."""
    from tumor_model.config import Settings
    from tumor_model.model import build_model, input_size
    from tumor_model.training import features, split, train

    with tempfile.TemporaryDirectory() as cache:
        settings = Settings(data_dirs=(data_dir,), weights=weights, cache_dir=cache)
        table, _ = split.prepare_table(settings)
        _, feat_model, _ = build_model(settings)
        sample = table.drop_duplicates("sha256").sample(n, random_state=0)
        start = time.perf_counter()
        features.extract(feat_model, sample, settings, verbose=False)
        rate = n / (time.perf_counter() - start)
        start = time.perf_counter()  # the files are in the OS cache by now, as in a real run
        features.load_pixels(sample, input_size(settings), settings.geometry)
        read_rate = n / (time.perf_counter() - start)
    cached = Settings(data_dirs=(data_dir,), weights=weights)
    _, feat_model, head = build_model(cached)
    x = features.extract(feat_model, table, cached, verbose=False)
    y = table.label.to_numpy()
    start = time.perf_counter()
    train.train_head(
        head,
        x,
        y,
        (table.split == "train").to_numpy(),
        (table.split == "val").to_numpy(),
        cached,
        verbose=0,
    )
    return rate, read_rate, time.perf_counter() - start


def full_training(weights: str, data_dir: str) -> tuple[float, float]:
    """(wall seconds, peak RSS GiB) of `python -m tumor_model train` with default settings."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [
            sys.executable,
            "-m",
            "tumor_model",
            "train",
            "--data-dir",
            data_dir,
            "--weights",
            weights,
            "--out-dir",
            str(Path(out) / "artifacts"),
            "--cache-dir",
            str(Path(out) / "cache"),
        ]
        start = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, peak_kib / 2**20


def predict_latency(artifacts: str, n: int = 40) -> tuple[float, float]:
    from PIL import Image

    from tumor_model.serving.predict import Predictor

    predictor = Predictor(artifacts)
    samples = sorted((Path(artifacts) / "samples").glob("*.png"))
    images = [Image.open(p).convert("RGB") for p in samples] or [Image.new("RGB", (256, 256))]
    predictor.predict_images(images[:1])  # warm-up
    times = []
    for i in range(n):
        start = time.perf_counter()
        predictor.predict_images([images[i % len(images)]])
        times.append(time.perf_counter() - start)
    return float(np.percentile(times, 50) * 1000), float(np.percentile(times, 95) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared/data/brain-tumor-dataset"))
    parser.add_argument("--artifacts", default=str(REPO / "artifacts"))
    parser.add_argument("--images", type=int, default=500, help="images for the extraction rate")
    parser.add_argument("--skip-full", action="store_true", help="skip the full training run")
    args = parser.parse_args()
    rate, read_rate, head_s = extraction_rate(args.weights, args.data_dir, args.images)
    p50, p95 = predict_latency(args.artifacts)
    rows = [
        ("feature extraction (uncached)", f"{rate:.0f} images/s", ">= 80"),
        ("its reading + cropping part alone", f"{read_rate:.0f} images/s", ""),
        ("head training on cached features", f"{head_s:.1f} s", "< 30 s"),
        (
            "predict latency per image, model loaded",
            f"p50 {p50:.0f} ms, p95 {p95:.0f} ms",
            "p50 < 100 ms",
        ),
    ]
    if not args.skip_full:
        wall, peak = full_training(args.weights, args.data_dir)
        rows += [
            ("full default training (cold cache)", f"{wall:.0f} s", ""),
            ("peak memory of training", f"{peak:.1f} GiB", "< 6 GB"),
        ]
    print("| measure | result | target |\n|---|---|---|")
    for name, value, target in rows:
        print(f"| {name} | {value} | {target} |")


if __name__ == "__main__":
    main()
