"""Refit artifacts/ood.npz with the current tumor_model.ood (what train.py writes), from the shipped
model's pool-layer features of the train/val rows of split.csv. About 2 min on 2 cores.

    PYTHONPATH=. python benchmarks/refit_guard.py artifacts
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from tumor_model import ood, train
from tumor_model.config import Settings
from tumor_model.predict import Predictor


def main() -> None:
    art = Path(sys.argv[1] if len(sys.argv) > 1 else "artifacts")
    predictor = Predictor(art)
    settings = Settings.from_json(art / "settings.json")
    table = pd.read_csv(art / "split.csv")
    pooled = {}
    for name in ("train", "val"):
        rows = table[table.split == name]
        _, pooled[name] = train.predict_pixels(predictor.model, rows, settings, pooled=True)
    guard = ood.calibrate(ood.fit(pooled["train"]), pooled["val"])
    ood.save(guard, art / "ood.npz")
    card = json.loads((art / "model_card.json").read_text())
    card["ood"] = {
        **card.get("ood", {}),
        "threshold": guard["threshold"],
        "quantile": guard["quantile"],
    }
    (art / "model_card.json").write_text(json.dumps(card, indent=2))
    print("threshold", guard["threshold"])


if __name__ == "__main__":
    main()
