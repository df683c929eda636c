"""Would a small ensemble of trained models beat one? Decided on validation, shown on test.

    PYTHONPATH=. python experiments/ensemble.py artifacts /tmp/ship30 [more artifact folders ...]

Reads each folder's predictions.csv (calibrated P(tumour) of every file, as the shipped model
gives it) and checks that all folders share one split (same files, same train/val/test). The
ensemble averages the members' probabilities. Each row gets its own threshold chosen on
validation (Youden, as `train` does); test columns show what that choice means and choose
nothing. Costs no inference: the predictions are already there.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from tumor_model import metrics


def load(folders: list[Path]) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """(shared table: path, root, split, label; {folder name: probabilities in table order})."""
    base, probs = None, {}
    for folder in folders:
        frame = pd.read_csv(folder / "predictions.csv").sort_values(["root", "path"])
        frame = frame.reset_index(drop=True)
        if base is None:
            base = frame
        elif not frame[["path", "split", "label"]].equals(base[["path", "split", "label"]]):
            raise ValueError(f"{folder}: its files or split differ from {folders[0]}'s")
        probs[str(folder)] = frame["probability"].to_numpy()
    return base, probs


def row(labels: dict, probs: dict) -> list[str]:
    threshold = metrics.choose_threshold(labels["val"], probs["val"])
    cells = [f"{threshold:.3f}"]
    for split in ("val", "test"):
        m = metrics.all_metrics(labels[split], probs[split], threshold)
        cells += [f"{m[k]:.4f}" for k in ("accuracy", "roc_auc", "sensitivity", "ece")]
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+", help="artifact folders, one split")
    args = parser.parse_args()
    if len(args.folders) < 2:
        parser.error("an ensemble needs at least two artifact folders")
    table, probs = load(args.folders)
    probs["ensemble (mean)"] = np.mean(list(probs.values()), axis=0)
    parts = {split: (table["split"] == split).to_numpy() for split in ("val", "test")}
    labels = {split: table["label"].to_numpy()[mask] for split, mask in parts.items()}
    columns = ["model", "threshold (val)"] + [
        f"{split} {m}" for split in ("val", "test") for m in ("acc", "AUC", "sens", "ECE")
    ]
    print("| " + " | ".join(columns) + " |\n" + "|---" * len(columns) + "|")
    for name, p in probs.items():
        cells = row(labels, {split: p[mask] for split, mask in parts.items()})
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
