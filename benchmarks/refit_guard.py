"""Refit artifacts/ood.npz with the current tumor_model.ood (what train.py would write), from the
shipped model's pool-layer features of the train/val rows of split.csv. ~2 min on 2 cores.
    cd /work/main && python benchmarks/refit_guard.py artifacts
"""
import json, sys
from pathlib import Path
import keras, numpy as np, pandas as pd
sys.path.insert(0, str(Path.cwd()))
from tumor_model import ood
from tumor_model.imageio import load_image
from tumor_model.predict import Predictor
art = Path(sys.argv[1] if len(sys.argv) > 1 else "artifacts")
p = Predictor(art)
feat = keras.Model(p.model.input, p.model.get_layer("pool").output)
split = pd.read_csv(art / "split.csv")
def root(r): return Path(r) if Path(r).is_absolute() else Path.cwd() / r
def pooled(df):
    out = []
    for s in range(0, len(df), 64):
        c = df.iloc[s:s + 64]
        pix = np.stack([p.pixels(load_image(root(r) / q)) for r, q in zip(c.root, c.path)])
        out.append(feat.predict(pix.astype("float32"), verbose=0))
    return np.concatenate(out)
guard = ood.calibrate(ood.fit(pooled(split[split.split == "train"])), pooled(split[split.split == "val"]))
ood.save(guard, art / "ood.npz")
card = json.loads((art / "model_card.json").read_text())
card["ood"] = {**card.get("ood", {}), "threshold": guard["threshold"], "quantile": guard["quantile"]}
(art / "model_card.json").write_text(json.dumps(card, indent=2))
print("threshold", guard["threshold"])
