"""Does test-time augmentation help the shipped model? Decided on validation, shown on test.

    PYTHONPATH=. python experiments/tta.py artifacts --data-dir ../shared/data/brain-tumor-dataset

For the validation and test files of the shipped split, P(tumour) of each image and of its mirror
image (left-right flip: brains are roughly symmetric, tumours are not on one side); TTA averages
the two. Each variant gets its own decision threshold chosen on validation (Youden, as `train`
does); the test rows are printed only to show what the validation choice means, nothing is tuned
on them.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from tumor_model import metrics
from tumor_model.serving.predict import Predictor  # noqa: E402
from tumor_model.training import features  # noqa: E402


def probabilities(model, pixels: np.ndarray) -> dict[str, np.ndarray]:
    plain = model.predict(pixels, batch_size=32, verbose=0).ravel()
    mirror = model.predict(pixels[:, :, ::-1], batch_size=32, verbose=0).ravel()
    return {"single": plain, "flip TTA (mean of 2)": (plain + mirror) / 2.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", type=Path)
    parser.add_argument("--data-dir", type=Path, help="dataset root (default: as recorded)")
    args = parser.parse_args()
    predictor = Predictor(args.artifacts)  # checks the model's sha256, as the app does
    model, card = predictor.model, predictor.card
    table = pd.read_csv(args.artifacts / "split.csv")
    if args.data_dir:
        table["root"] = str(args.data_dir)
    probs, labels = {}, {}
    for split in ("val", "test"):
        rows = table[table["split"] == split]
        pixels = features.load_pixels(rows, int(card["input_size"]), card["geometry"])
        probs[split] = probabilities(model, pixels.astype("float32"))
        labels[split] = rows["label"].to_numpy()
    print(f"{len(labels['val'])} validation / {len(labels['test'])} test files, {card['geometry']}")
    columns = ["variant", "threshold (val)"] + [
        f"{split} {m}" for split in ("val", "test") for m in ("acc", "AUC", "ECE")
    ]
    print("| " + " | ".join(columns) + " |\n" + "|---" * len(columns) + "|")
    for name in probs["val"]:
        threshold = metrics.choose_threshold(labels["val"], probs["val"][name])
        cells = [f"{threshold:.3f}"]
        for split in ("val", "test"):
            m = metrics.all_metrics(labels[split], probs[split][name], threshold)
            cells += [f"{m['accuracy']:.4f}", f"{m['roc_auc']:.4f}", f"{m['ece']:.4f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
