"""Prediction speed and memory, whole process, side by side in one run: `neuroscan predict` on the
light runtime (ONNX Runtime), the same command on Keras/TensorFlow, and the seed report's path
(NASNetLarge at 331 px on Keras, random weights: the timing, not the answer).

    PYTHONPATH=. python benchmarks/bench_runtime.py [--artifacts artifacts] [--repeat 3]
        [--data-dir ../shared/data/brain-tumor-dataset] [--big 2000]
        [--out docs/lab/runtime_benchmark.json]

Each timing runs the command as a new process (`/usr/bin/time`'s wall clock and peak memory,
from os.wait4) `--repeat` times and keeps the median: start-up (`neuroscan --help`), the first
answer for one scan, 50 scans, and `--big` scans (their rate after start-up is (big - 1) /
(t_big - t_one)). Per-scan latency p50 / p95 is timed inside one process (Predictor.predict_files
on one file at a time, after a warm-up). Not a test: numbers depend on the machine."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SEED_PATH = """
import sys, numpy as np, keras
from PIL import Image
base = keras.applications.NASNetLarge(weights=None, include_top=False, pooling="avg",
                                      input_shape=(331, 331, 3))
hidden = keras.layers.Dense(250, activation="relu")(base.output)
out = keras.layers.Dense(1, activation="sigmoid")(hidden)
model = keras.Model(base.input, out)
files = sys.argv[1:]
for i in range(0, len(files), 32):
    batch = np.stack([np.asarray(Image.open(f).convert("RGB").resize((331, 331)), "float32")
                      for f in files[i:i + 32]])
    probs = model.predict(keras.applications.nasnet.preprocess_input(batch), verbose=0)
    for f, p in zip(files[i:i + 32], probs.ravel()):
        print(f, float(p))
"""


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak resident MB) of one process."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise RuntimeError(f"{cmd[:4]} failed with {status}")
    return seconds, usage.ru_maxrss / 1024


def median(cmd: list[str], repeat: int) -> dict:
    runs = [timed(cmd) for _ in range(repeat)]
    return {
        "seconds": round(float(np.median([r[0] for r in runs])), 2),
        "peak_mb": round(float(np.median([r[1] for r in runs])), 1),
        "runs": [round(r[0], 2) for r in runs],
    }


def latency(artifacts: str, runtime: str, files: list[Path], n: int = 30) -> dict:
    from tumor_model.serving.predict import Predictor

    predictor = Predictor(artifacts, runtime)
    predictor.predict_files(files[:2])  # warm-up
    times = []
    for f in files[:n]:
        start = time.perf_counter()
        predictor.predict_files([f])
        times.append(time.perf_counter() - start)
    return {
        "p50_ms": round(np.percentile(times, 50) * 1e3, 1),
        "p95_ms": round(np.percentile(times, 95) * 1e3, 1),
    }


def scans(data_dir: Path, n: int) -> list[Path]:
    found = sorted(p for p in data_dir.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not found:
        raise SystemExit(f"{data_dir}: no scans")
    return [found[i % len(found)] for i in range(n)]


def run_paths(args, files: list[Path]) -> dict:
    neuroscan = [sys.executable, "-m", "tumor_model"]
    out = {}
    for path in ("onnx", "keras"):
        predict = [*neuroscan, "predict", "--artifacts", args.artifacts, "--runtime", path]
        out[path] = {
            "one_scan": median([*predict, str(files[0])], args.repeat),
            "scans_50": median([*predict, *map(str, files[:50])], args.repeat),
            "scans_big": median([*predict, *map(str, files[: args.big])], 1),
            "latency": latency(args.artifacts, path, files),
        }
        one, big = out[path]["one_scan"]["seconds"], out[path]["scans_big"]["seconds"]
        out[path]["rate_after_start"] = round((args.big - 1) / max(big - one, 1e-6), 1)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(SEED_PATH)
    out["seed_nasnetlarge"] = {
        "one_scan": median([sys.executable, f.name, str(files[0])], args.repeat),
        "scans_50": median([sys.executable, f.name, *map(str, files[:50])], args.repeat),
    }
    os.unlink(f.name)
    out["startup_help"] = median([*neuroscan, "--help"], args.repeat)
    return out


def table(result: dict) -> str:
    rows = [
        "| path | one scan (s) | 50 scans (s) | peak MB (50) | "
        f"{result['big']} scans (s) | scans/s after start | p50 / p95 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, label in (
        ("onnx", "predict, ONNX Runtime"),
        ("keras", "predict, Keras"),
        ("seed_nasnetlarge", "seed path, NASNetLarge"),
    ):
        r = result["paths"][name]
        big = r.get("scans_big", {}).get("seconds", "-")
        lat = r.get("latency")
        cells = [
            label,
            r["one_scan"]["seconds"],
            r["scans_50"]["seconds"],
            r["scans_50"]["peak_mb"],
            big,
            r.get("rate_after_start", "-"),
            f"{lat['p50_ms']} / {lat['p95_ms']}" if lat else "-",
        ]
        rows.append("| " + " | ".join(str(c) for c in cells) + " |")
    rows.append(
        f"\n`neuroscan --help`: {result['paths']['startup_help']['seconds']} s. {result['ran']}"
    )
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", default=str(REPO / "artifacts"))
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared/data/brain-tumor-dataset"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--big", type=int, default=2000)
    parser.add_argument("--out", default=str(REPO / "docs/lab/runtime_benchmark.json"))
    args = parser.parse_args()
    files = scans(Path(args.data_dir), max(args.big, 50))
    start = time.perf_counter()
    result = {"paths": run_paths(args, files), "big": args.big, "repeat": args.repeat}
    result["ran"] = (
        f"{platform.processor() or platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} cores, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load average at the end {os.getloadavg()[0]:.1f}, "
        f"{time.perf_counter() - start:.0f} s in all"
    )
    Path(args.out).write_text(json.dumps(result, indent=2))
    Path(args.out).with_suffix(".md").write_text(table(result))
    print(table(result))


if __name__ == "__main__":
    main()
