"""Memory of the Predictor called the way Streamlit calls it: from many short-lived threads at once.

    PYTHONPATH=. python benchmarks/memory_threads.py [--artifacts artifacts] [--calls 200]

10 worker threads; every call starts a new thread (as each Streamlit rerun does) that predicts
one generated 256 px scan and, every third call, computes its Grad-CAM. Prints the process RSS
(MiB) at the start and after 20, 50, 100, 150 and 200 calls. Steady growth after the first 50
would be a leak; docs/reliability.md has the figures. Linux only (reads /proc/self/statm).
"""

from __future__ import annotations

import argparse
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from tumor_model.serving.predict import Predictor  # noqa: E402


def rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", default="artifacts")
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    predictor = Predictor(args.artifacts)
    rng = np.random.default_rng(0)
    scans = [Image.fromarray((rng.random((256, 256)) * 255).astype("uint8")) for _ in range(8)]

    def call(i: int) -> None:
        def work() -> None:
            predictor.predict_images([scans[i % 8].convert("RGB")])
            if i % 3 == 0:
                predictor.explain(scans[i % 8].convert("RGB"), "gradcam")

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()

    print(f"start: {rss_mib():.0f} MiB")
    done = 0
    with ThreadPoolExecutor(10) as pool:
        for mark in (20, 50, 100, 150, 200, args.calls):
            if mark <= done or mark > args.calls:
                continue
            list(pool.map(call, range(done, mark)))
            done = mark
            print(f"after {done} calls: {rss_mib():.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
