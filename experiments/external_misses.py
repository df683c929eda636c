"""Which unseen tumours does a model miss? Sensitivity on the Figshare slices (a source the shipped
model never saw) by tumour type and by lesion size, at the model's own threshold.

    PYTHONPATH=. python experiments/external_misses.py artifacts \
        --data-dir ../shared/data/figshare-cheng-t1ce --out docs/lab/external_misses.json

Every slice of `boxes.csv` is predicted by `Predictor` (the path `predict` takes). The lesion size
is the tumour box's share of the image (width x height, fractions of the image's sides), cut into
thirds. Sensitivity comes with a 95% bootstrap interval over slices (`evaluate`); slices of one
patient are not marked, so the intervals are too narrow where a patient gives many slices.
A description of the misses, it chooses nothing.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from tumor_model import metrics  # noqa: E402
from tumor_model.serving.predict import Predictor  # noqa: E402

SIZES = ("small", "medium", "large")  # thirds of the box's share of the image


def sensitivity(frame: pd.DataFrame, threshold: float, seed: int = 0) -> dict:
    """{slices, missed, sensitivity, ci_low, ci_high} of the tumour slices in `frame`."""
    p = frame.probability.to_numpy()
    m = metrics.bootstrap_point_metrics(np.ones(len(p), int), p, threshold, seed=seed)
    s = m["sensitivity"]
    return {
        "slices": int(len(p)),
        "missed": int((p < threshold).sum()),
        "sensitivity": round(s["value"], 4),
        "ci_low": round(s["ci_low"], 4),
        "ci_high": round(s["ci_high"], 4),
    }


def breakdown(boxes: pd.DataFrame, threshold: float) -> dict:
    """Sensitivity overall, by tumour type (and within it by size third) and by size third
    (with each third's area range)."""
    area = boxes.width * boxes.height
    size = pd.qcut(area.rank(method="first"), len(SIZES), labels=SIZES)  # ties: by row order
    out = {"all": sensitivity(boxes, threshold), "by_type": {}, "by_size": {}}
    for kind, part in boxes.groupby("tumour_type"):
        out["by_type"][kind] = sensitivity(part, threshold)
    for third in SIZES:
        part = boxes[size == third]
        share = area[size == third]
        out["by_size"][third] = sensitivity(part, threshold) | {
            "box_share_of_image": [round(float(share.min()), 4), round(float(share.max()), 4)]
        }
    for kind, part in boxes.groupby("tumour_type"):  # is a type's miss rate its lesions' size?
        out["by_type"][kind]["median_box_share"] = round(float(area[part.index].median()), 4)
        out["by_type"][kind]["by_size"] = {
            third: sensitivity(part[size[part.index] == third], threshold)
            for third in SIZES
            if (size[part.index] == third).sum()
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts")
    ap.add_argument("--data-dir", default="../shared/data/figshare-cheng-t1ce")
    ap.add_argument("--out", default=None, help="write the JSON here as well")
    args = ap.parse_args()
    root = Path(args.data_dir)
    boxes = pd.read_csv(root / "boxes.csv")
    predictor = Predictor(args.artifacts)
    results = predictor.predict_files([root / f for f in boxes.file])
    bad = [r for r in results if "error" in r]
    if bad:
        raise SystemExit(f"{len(bad)} slices could not be read, e.g. {bad[0]['error']}")
    boxes["probability"] = [r["probability"] for r in results]
    out = {
        "model_sha256": predictor.card.get("model_sha256"),
        "threshold": predictor.threshold,
        "data": str(root / "boxes.csv"),
        **breakdown(boxes, predictor.threshold),
    }
    text = json.dumps(out, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
