"""Label-noise review: show the shipped model's mistakes on the test split, relabel nothing.

    PYTHONPATH=. python experiments/review_errors.py artifacts \
        --data-dir ../shared/data/brain-tumor-dataset --out docs/test_errors.png

Reads `predictions.csv` and the decision threshold from the model card, picks the test files
whose predicted label differs from the folder label, and writes a contact sheet (one 112 px
thumbnail each, captioned with the file, its folder label and P(tumour)) plus a markdown table
on stdout. Looking at the sheet is how a reviewer tells a model error from a labelling error;
the dataset itself is never changed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw, ImageOps

from tumor_model.io.imageio import ImageLoadError, load_image

THUMB = 112  # px, thumbnail side
CAPTION = 30  # px of text under each thumbnail
COLUMNS = 8


def mistakes(artifacts: Path, split: str) -> tuple[pd.DataFrame, float]:
    card = json.loads((artifacts / "model_card.json").read_text())
    threshold = float(card["threshold"])
    preds = pd.read_csv(artifacts / "predictions.csv")
    if split not in set(preds["split"]):
        raise ValueError(f"no {split!r} rows in {artifacts / 'predictions.csv'}")
    rows = preds[preds["split"] == split].copy()
    rows["predicted"] = (rows["probability"] >= threshold).astype(int)
    wrong = rows[rows["predicted"] != rows["label"]]
    return wrong.sort_values(["label", "probability"]), threshold


def tile(path: Path, caption: str) -> Image.Image:
    cell = Image.new("RGB", (THUMB, THUMB + CAPTION), "white")
    try:
        thumb = ImageOps.contain(load_image(path).convert("RGB"), (THUMB, THUMB))
        cell.paste(thumb, ((THUMB - thumb.width) // 2, (THUMB - thumb.height) // 2))
    except ImageLoadError as err:
        caption = f"unreadable: {err}"[:60]
    draw = ImageDraw.Draw(cell)
    for i, line in enumerate(caption.split("\n")[:2]):
        draw.text((2, THUMB + 2 + 13 * i), line[:19], fill="black")
    return cell


def sheet(wrong: pd.DataFrame, data_dir: Path | None) -> Image.Image:
    rows = max(1, -(-len(wrong) // COLUMNS))
    out = Image.new("RGB", (COLUMNS * THUMB, rows * (THUMB + CAPTION)), "white")
    for k, row in enumerate(wrong.itertuples()):
        root = Path(data_dir) if data_dir else Path(row.root)
        label = "tumour" if row.label == 1 else "healthy"
        caption = f"{Path(row.path).name}\n{label} P={row.probability:.2f}"
        cell = tile(root / row.path, caption)
        out.paste(cell, ((k % COLUMNS) * THUMB, (k // COLUMNS) * (THUMB + CAPTION)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", type=Path)
    parser.add_argument("--data-dir", type=Path, help="dataset root (default: as recorded)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", type=Path, default=Path("docs/test_errors.png"))
    args = parser.parse_args()
    wrong, threshold = mistakes(args.artifacts, args.split)
    sheet(wrong, args.data_dir).save(args.out, optimize=True)
    print(
        f"{len(wrong)} {args.split} files misclassified at threshold {threshold:.3f}, "
        f"from {wrong['group'].nunique()} duplicate groups"
    )
    print("| file | duplicate group | folder label | P(tumour) |\n|---|---|---|---|")
    for row in wrong.itertuples():
        label = "tumour" if row.label == 1 else "healthy"
        print(f"| {row.path} | {row.group} | {label} | {row.probability:.3f} |")
    print(f"contact sheet: {args.out}")


if __name__ == "__main__":
    main()
