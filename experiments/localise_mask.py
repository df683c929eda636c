"""Would masking the explanation map to the head find the lesion more often? A probe on the
SELECTION half of `neuroscan localise` (the report half is not read).

Each map of four configurations is scored as it is ("raw"), multiplied by the head mask the
benchmark uses ("head"), by that mask eroded by 8 px ("head-8", off the skull ring) and
blurred (Gaussian sigma 4 px) then masked ("blur"): pointing game at 8 px and energy ratio,
as `tumor_model.evaluation.localise` defines them.

    PYTHONPATH=. python experiments/localise_mask.py --n 60
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_erosion, gaussian_filter

from tumor_model import artifacts
from tumor_model.evaluation import lesion_scores
from tumor_model.evaluation import localise as loc
from tumor_model.evaluation.localise_data import read_boxes
from tumor_model.serving.explain import Explainer
from tumor_model.serving.predict import load_checked_model

CONFIGS = [
    ("layercam", ("block_6_expand_relu",)),
    ("layercam", ("block_2_add",)),
    ("layercam", ("block_13_expand_relu",)),
    ("gradcam", ("block_6_expand_relu",)),
]


def variants(heat: np.ndarray, head: np.ndarray) -> dict:
    return {
        "raw": heat,
        "head": heat * head,
        "head-8": heat * binary_erosion(head, iterations=8),
        "blur": gaussian_filter(heat, 4) * head,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", default="artifacts")
    ap.add_argument("--boxes", default=loc.DEFAULT_BOXES[0])
    ap.add_argument("--n", type=int, default=60)
    args = ap.parse_args()
    art, boxes = Path(args.artifacts), Path(args.boxes)
    rows, _ = loc.unseen(read_boxes(boxes), art)
    selection, _ = loc.halves(rows, loc.SEED)
    card = artifacts.read_card(art)
    model = load_checked_model(art, card["model_sha256"])
    explainer = Explainer(model, card["last_conv"], float(card["threshold"]))
    slices, _ = loc.load_slices(selection.head(args.n), int(card["input_size"]),
                                card["geometry"], print)  # fmt: skip
    found: dict = {}
    for _, pixels, box, head, _, _ in slices:
        maps = explainer.explain_many(pixels, CONFIGS, target=1)
        for (method, layers), expl in zip(CONFIGS, maps, strict=True):
            for tag, heat in variants(expl.heatmap, head).items():
                name = f"{loc.config_name(method, layers)} {tag}"
                hits, ratios = found.setdefault(name, ([], []))
                hits.append(lesion_scores.pointing(heat, box, loc.TOLERANCE))
                ratios.append(lesion_scores.energy_ratio(heat, box, head))
    out = {
        name: {
            "pointing_8px": round(float(np.mean(h)), 3),
            "energy_ratio": round(float(np.nanmean(r)), 2),
        }
        for name, (h, r) in found.items()
    }
    print(json.dumps({"slices": len(slices), "half": "selection", "scores": out}, indent=1))


if __name__ == "__main__":
    main()
