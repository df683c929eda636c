"""Evaluations beside the test split: the report's random-split protocol (a second training run
with the same recipe) and the shortcut check (does re-encoding change the answer?)."""

from __future__ import annotations

import io
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from PIL import Image

from tumor_model import metrics
from tumor_model.artifacts import RANDOM_SPLIT, update_metrics
from tumor_model.evaluation.crossval import recipe_features, recorded_settings
from tumor_model.io.geometry import prepare
from tumor_model.io.imageio import load_image
from tumor_model.model import input_size
from tumor_model.progress import log
from tumor_model.training import split, train


def random_protocol(settings, table, x, devices=None) -> dict:
    """The report's protocol with the same recipe: random 80/10/10 split (seed), test metrics."""
    log("report's protocol: random split, same recipe")
    other = table.assign(split=split.random_split(len(table), settings.seed))
    model, _, _, _, threshold = train.fit(settings, other, x, devices)
    test = other[other.split == "test"]
    probs = train.predict_pixels(model, test, settings)
    out = metrics.report(test.label, probs, threshold, settings.bootstrap, settings.seed)
    copies = set(other[other.split == "train"].group)
    out["test_files_with_copy_in_train"] = int(test.group.isin(copies).sum())
    out["protocol"] = {"split": "random", "seed": settings.seed}
    m = out["metrics"]["accuracy"]
    log(
        f"random split: accuracy {m['value']:.4f}; {out['test_files_with_copy_in_train']} of "
        f"{len(test)} test files have a copy in train"
    )
    return out


def protocol_artifacts(folder, save: bool = False, cache_dir: str | None = None) -> dict:
    """The report's protocol with the recipe in `folder`/settings.json, features cached in
    `cache_dir` (default: the recorded one). With save=True it becomes "random_split" in
    `folder`/metrics.json."""
    folder = Path(folder)
    settings = recorded_settings(folder, cache_dir)
    if settings.split == "random":
        raise ValueError(f"{folder} already holds a random-split model: its test metrics are it")
    keras.utils.set_random_seed(settings.seed)
    table, x = recipe_features(settings)
    result = random_protocol(settings, table, x)
    if save:
        update_metrics(folder, {RANDOM_SPLIT: result})
    return result


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def shortcut_check(model, test: pd.DataFrame, settings, side: int = 256) -> pd.DataFrame:
    """Re-encode each test image as PNG, padded to a side x side square, then predict."""
    pix = []
    for row in test.itertuples(index=False):
        img = prepare(load_image(Path(row.root) / row.path), side, "pad")
        again = load_image(png_bytes(Image.fromarray(img)), name=row.path)
        pix.append(prepare(again, input_size(settings), settings.geometry))
    p = model.predict(np.stack(pix).astype("float32"), batch_size=64, verbose=0).ravel()
    return test.assign(probability=p)


def shortcut_block(model, table, threshold, settings, side: int = 256) -> dict:
    """metrics.json "shortcut": test accuracy as stored and after the re-encoding."""
    test = table[table.split == "test"]
    redone = shortcut_check(model, test, settings, side)
    before = float(np.mean((test.probability >= threshold) == test.label))
    after = float(np.mean((redone.probability >= threshold) == redone.label))
    log(f"shortcut check: accuracy {before:.4f} as stored, {after:.4f} re-encoded as padded PNG")
    return {
        "accuracy_original": before,
        "accuracy_reencoded": after,
        "drop": before - after,
        "protocol": f"every test image padded to a {side}x{side} square and re-encoded as PNG",
        "mean_abs_probability_change": float(
            np.mean(np.abs(redone.probability.to_numpy() - test.probability.to_numpy()))
        ),
    }
