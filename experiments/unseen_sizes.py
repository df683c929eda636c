"""Where do a trained model's errors sit: on image sizes seen in training, or on new ones?

    PYTHONPATH=. python experiments/unseen_sizes.py artifacts [more artifact folders ...]
    PYTHONPATH=. python experiments/unseen_sizes.py --by side /tmp/src_r0.0 /tmp/src_r0.5

Image size (width x height) is a trace of where a file came from (website, scanner, export).
For the validation and test files of each model's own split, this prints accuracy, sensitivity
and specificity separately for files whose size occurs among that model's training files and
files whose size does not: a cheap, after-the-fact view of how the model does on sources it has
not seen. Reads predictions.csv and model_card.json; image sizes come from the file headers
(PIL, no decoding). `--by side` splits by the shorter side instead (< 256, 256-511, >= 512 px).
Nothing here is used to choose anything.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def image_size(path: Path) -> str:
    with Image.open(path) as img:
        return f"{img.width}x{img.height}"


def side_bucket(size: str) -> str:
    """Shorter side of a "WxH" size, in three bands: small images reach the model upsampled."""
    side = min(int(v) for v in size.split("x"))
    return "shorter side < 256 px" if side < 256 else "256-511 px" if side < 512 else ">= 512 px"


def parts(part: pd.DataFrame, seen: set, by: str):
    """(label, rows) of one split: by image size seen in train / new to train, or by side."""
    if by == "side":
        buckets = part["size"].map(side_bucket)
        for label in ("shorter side < 256 px", "256-511 px", ">= 512 px"):
            yield label, part[buckets == label]
    else:
        yield "size seen in train", part[part["size"].isin(seen)]
        yield "size new to train", part[~part["size"].isin(seen)]
    yield "all", part


def rates(frame: pd.DataFrame, threshold: float) -> dict:
    pred = frame.probability.to_numpy() >= threshold
    y = frame.label.to_numpy() == 1
    return {
        "n": len(frame),
        "tumour": int(y.sum()),
        "accuracy": float(np.mean(pred == y)) if len(frame) else float("nan"),
        "sensitivity": float(pred[y].mean()) if y.any() else float("nan"),
        "specificity": float((~pred[~y]).mean()) if (~y).any() else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", type=Path, nargs="+")
    parser.add_argument(
        "--by", choices=("seen", "side"), default="seen", help="seen: size seen in train or not"
    )
    args = parser.parse_args()
    print("| model | split | files | n (tumour) | accuracy | sensitivity | specificity |")
    print("|---|---|---|---|---|---|---|")
    for folder in args.artifacts:
        preds = pd.read_csv(folder / "predictions.csv")
        threshold = json.loads((folder / "model_card.json").read_text())["threshold"]
        preds["size"] = [
            image_size(Path(r) / p) for r, p in zip(preds.root, preds.path, strict=True)
        ]
        seen = set(preds.loc[preds.split == "train", "size"])
        for name in ("val", "test"):
            part = preds[preds.split == name]
            for label, rows in parts(part, seen, args.by):
                r = rates(rows, threshold)
                print(
                    f"| {folder} | {name} | {label} | {r['n']} ({r['tumour']}) | "
                    f"{r['accuracy']:.4f} | {r['sensitivity']:.3f} | {r['specificity']:.3f} |"
                )


if __name__ == "__main__":
    main()
