"""Issue 33 screen: a light lesion-map head decoded from the shipped model's frozen backbone.

Features at `block_13_expand_relu` (14x14), `block_6_expand_relu` (28x28) and `block_2_add`
(56x56) of the shipped model feed a small U-Net-like decoder (1x1 convs, two 2x upsamplings,
3x3 convs, sigmoid at 56x56), trained with Dice + BCE on tcga-lgg's expert masks (all three
sequences; healthy slices: empty targets), split by patient, and on Figshare's boxes (filled
boxes as targets) split in blocks of consecutive slice numbers (Figshare names no patients; a
block of BLOCK numbers of one tumour type stands in for a few patients). Measured on the held-out
patients (Dice per sequence) and on held-out tumour slices of both box sources (pointing game,
energy ratio, top-10% share in the box, from `tumor_model.evaluation.lesion_scores`), beside the
shipped default map on the same slices. Rules and results: docs/lab/2026-12-05-lesion-head.md
(v1: 28x28, tcga-lgg only; its code is this file at e8df1e8) and
docs/lab/2026-12-06-lesion-head-v2.md (this code).

    nice -n 10 python experiments/lesion_head.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from tumor_model import artifacts
from tumor_model.evaluation import lesion_scores
from tumor_model.evaluation.localise_data import Slice, read_boxes, unseen
from tumor_model.io.geometry import prepare_placed
from tumor_model.io.imageio import load_image
from tumor_model.serving.explain import Explainer
from tumor_model.serving.maps import TOLERANCE, default_explanation, shipped
from tumor_model.serving.predict import load_checked_model

LAYERS = ("block_13_expand_relu", "block_6_expand_relu", "block_2_add")  # 14, 28, 56 px
GRID = 56  # the head's output grid
SEED = 33
TRAIN_SHARE = 0.7
MAX_TRAIN = 0  # 0: every training slice
BLOCK = 25  # Figshare slice numbers per block (a few patients)
EPOCHS = 15
BATCH = 32  # head training
EXTRACT_BATCH = 8  # images per backbone call: bigger batches cost GBs on this CPU
KEY = f"pointing_{TOLERANCE}px"


def split_patients(frame: pd.DataFrame) -> tuple[list, list]:
    """(train, test) patient ids: shuffled with SEED, the first TRAIN_SHARE for training."""
    ids = np.sort(frame.patient_id.unique())
    ids = np.random.default_rng(SEED).permutation(ids)
    cut = int(round(TRAIN_SHARE * len(ids)))
    return sorted(ids[:cut]), sorted(ids[cut:])


def mask_in_frame(mask: np.ndarray, placement) -> np.ndarray:
    """bool (S, S): an original-grid mask seen in the prepared square (nearest neighbour,
    through the image's `Placement`; what was cropped away is empty)."""
    size = placement.size
    centres = np.arange(size) + 0.5
    xs = (centres - placement.offset[0]) / placement.scale[0]
    ys = (centres - placement.offset[1]) / placement.scale[1]
    left, top, right, bottom = placement.crop
    ok_x, ok_y = (xs >= left) & (xs < right), (ys >= top) & (ys < bottom)
    ix = np.clip(np.floor(xs).astype(int), 0, mask.shape[1] - 1)
    iy = np.clip(np.floor(ys).astype(int), 0, mask.shape[0] - 1)
    return mask[np.ix_(iy, ix)] & np.outer(ok_y, ok_x)


def load_row(row: dict, size: int, geometry: str):
    """(pixels, box mask, head mask, lesion mask or None) of one row, in the model's frame."""
    img = load_image(Path(row["folder"]) / row["file"], row["file"])
    pixels, placement = prepare_placed(img, size, geometry)
    width, height = img.size
    box = lesion_scores.box_mask(placement, width, height, row) if row["tumour"] else None
    lesion = None
    if isinstance(row.get("mask"), str):
        grid = np.asarray(Image.open(Path(row["folder"]) / row["mask"]).convert("L")) > 127
        lesion = mask_in_frame(grid, placement)
    return pixels, box, lesion_scores.head_mask(pixels), lesion


def tcga_rows(data: Path) -> pd.DataFrame:
    frame = pd.read_csv(data / "tcga-lgg" / "files.csv")
    return frame.assign(
        folder=str(data / "tcga-lgg"), source="tcga-lgg", tumour=frame.label.eq("tumor")
    )


def figshare_rows(data: Path, art: Path) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(train, test) Figshare rows the model never saw, split by blocks of BLOCK consecutive
    slice numbers of one tumour type, TRAIN_SHARE of the blocks (shuffled with SEED) for
    training."""
    rows, how = unseen(read_boxes(data / "figshare-cheng-t1ce" / "boxes.csv"), art)
    number = rows.file.str.extract(r"_(\d+)\.", expand=False).astype(int)
    rows = rows.assign(
        tumour=True, mask=None, patient_id=rows.tumour_type + ":" + (number // BLOCK).astype(str)
    )
    train_ids, _ = split_patients(rows)
    train = rows[rows.patient_id.isin(train_ids)].reset_index(drop=True)
    test = rows[~rows.patient_id.isin(train_ids)].sort_values("file").reset_index(drop=True)
    return train, test, how


def extract(extractor, rows: pd.DataFrame, size: int, geometry: str):
    """Yield (rows chunk, loaded tuples, [14x14 feats, 28x28 feats]) by EXTRACT_BATCH."""
    for start in range(0, len(rows), EXTRACT_BATCH):
        chunk = rows.iloc[start : start + EXTRACT_BATCH]
        loaded = [load_row(r, size, geometry) for r in chunk.to_dict("records")]
        batch = np.stack([item[0] for item in loaded]).astype("float32")
        feats = extractor(batch, training=False)
        yield chunk, loaded, [np.asarray(f) for f in feats]


def target_grid(lesion: np.ndarray | None, size: int) -> np.ndarray:
    """The mask area-averaged onto the GRID x GRID output (soft target); empty when None."""
    if lesion is None:
        return np.zeros((GRID, GRID, 1), "float32")
    k = size // GRID
    return lesion.reshape(GRID, k, GRID, k).mean(axis=(1, 3))[..., None].astype("float32")


def cache_train(extractor, rows, size, geometry):
    """Features (float16, to stay light) and soft targets of the training slices."""
    feats_, targets = [[] for _ in LAYERS], []
    for _, loaded, feats in extract(extractor, rows, size, geometry):
        for kept, f in zip(feats_, feats, strict=True):
            kept.append(f.astype("float16"))
        # the expert mask where there is one, else the filled box (Figshare), else empty
        targets.extend(
            target_grid(item[3] if item[3] is not None else item[1], size) for item in loaded
        )
    return [np.concatenate(f) for f in feats_], np.stack(targets)


def build_head(shapes):
    import keras
    from keras import layers

    deep, mid, fine = (keras.Input(s) for s in shapes)
    a = layers.Conv2D(64, 1, activation="relu")(deep)
    a = layers.UpSampling2D(2, interpolation="bilinear")(a)
    b = layers.Conv2D(32, 1, activation="relu")(mid)
    x = layers.Concatenate()([a, b])
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.UpSampling2D(2, interpolation="bilinear")(x)
    c = layers.Conv2D(16, 1, activation="relu")(fine)
    x = layers.Concatenate()([x, c])
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    out = layers.Conv2D(1, 1, activation="sigmoid")(x)
    return keras.Model([deep, mid, fine], out, name="lesion_head")


def dice_bce(y_true, y_pred):
    from keras import ops

    bce = ops.mean(ops.binary_crossentropy(y_true, y_pred))
    inter = ops.sum(y_true * y_pred)
    dice = (2.0 * inter + 1.0) / (ops.sum(y_true) + ops.sum(y_pred) + 1.0)
    return bce + 1.0 - dice


def train_head(feats, targets):
    import keras

    keras.utils.set_random_seed(SEED)
    head = build_head([f.shape[1:] for f in feats])
    head.compile(optimizer=keras.optimizers.Adam(1e-3), loss=dice_bce)
    rng = np.random.default_rng(SEED)

    def batches():
        while True:
            order = rng.permutation(len(targets))
            for s in range(0, len(order) - BATCH + 1, BATCH):
                i = np.sort(order[s : s + BATCH])
                yield tuple(f[i].astype("float32") for f in feats), targets[i]

    steps = len(targets) // BATCH
    history = head.fit(batches(), steps_per_epoch=steps, epochs=EPOCHS, verbose=2)
    return head, [round(float(v), 4) for v in history.history["loss"]]


def upsample(maps: np.ndarray, size: int) -> np.ndarray:
    import tensorflow as tf

    return tf.image.resize(maps, (size, size), method="bilinear").numpy()[..., 0]


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    total = int(pred.sum()) + int(truth.sum())
    return 1.0 if total == 0 else 2.0 * float((pred & truth).sum()) / total


def evaluate(extractor, head, explainer, ref, rows, size, geometry) -> dict:
    """Per slice: Dice (with a mask), false alarm (healthy), and the MEASURES of the head's map
    and of the reference map (tumour slices with a box)."""
    found = {"dice": [], "alarm": [], "head": [], "ref": [], "slices": []}
    for chunk, loaded, feats in extract(extractor, rows, size, geometry):
        maps = upsample(np.asarray(head(feats, training=False)), size)
        for row, (pixels, box, headm, lesion), heat in zip(
            chunk.to_dict("records"), loaded, maps, strict=True
        ):
            group = (row["source"], row["sequence"] if isinstance(row["sequence"], str) else "")
            if lesion is not None:
                found["dice"].append((group[1], dice(heat >= 0.5, lesion)))
            if not row["tumour"]:
                found["alarm"].append((group[1], bool((heat >= 0.5).any())))
                continue
            one = Slice(row["file"], pixels, box, headm, *group)
            found["slices"].append(one)
            found["head"].append(lesion_scores.slice_scores(heat, one))
            cam = explainer.explain_many(pixels, [ref], target=1)[0].heatmap
            found["ref"].append(lesion_scores.slice_scores(cam, one))
    return found


def per_sequence(pairs, name: str) -> dict:
    frame = pd.DataFrame(pairs, columns=["sequence", name])
    out = {}
    for seq, values in [("all", frame[name]), *frame.groupby("sequence")[name]]:
        out[seq] = {"n": int(len(values)), "mean": round(float(values.mean()), 4)}
        if name == "dice":
            out[seq]["median"] = round(float(values.median()), 4)
    return out


def grouped(found: dict, which: str) -> dict:
    idx = list(range(len(found["slices"])))
    return lesion_scores.group_scores((idx, found[which]), found["slices"])


def latency_ms(extractor, head, pixels: np.ndarray, size: int, repeats: int = 30) -> float:
    """Median ms of one map: backbone to the two layers, head, upsampling, one image."""
    import tensorflow as tf

    @tf.function(autograph=False)
    def one(batch):
        feats = extractor(batch, training=False)
        return tf.image.resize(head(feats, training=False), (size, size))

    batch = tf.constant(pixels[None].astype("float32"))
    one(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        one(batch).numpy()
        times.append(1000 * (time.perf_counter() - start))
    return round(float(np.median(times)), 1)


def rule(result: dict, baseline: dict) -> dict:
    dice_ = result["dice"]
    checks = {
        "dice_flair>=0.6": dice_.get("flair", {}).get("mean", 0) >= 0.6,
        "dice_t1ce>=0.5": dice_.get("t1ce", {}).get("mean", 0) >= 0.5,
    }
    for source, value in baseline.items():
        got = result["head"].get(source, {}).get(KEY) or 0
        same = result["reference_same_slices"].get(source, {}).get(KEY) or 0
        checks[f"{KEY}_{source}>={value}"] = got >= value
        checks[f"{KEY}_{source}>=default_same_slices"] = got >= same
    return {"checks": checks, "ship_worthy": all(checks.values())}


def load_all(args):
    """The model, its feature extractor, the reference explainer and the three row sets."""
    import keras

    art, data = Path(args.artifacts), Path(args.data)
    card = artifacts.read_card(art)
    model = load_checked_model(art, card["model_sha256"])
    extractor = keras.Model(model.input, [model.get_layer(n).output for n in LAYERS])
    explainer = Explainer(model, card["last_conv"], float(card["threshold"]))
    tcga = tcga_rows(data)
    train_ids, test_ids = split_patients(tcga)
    fig_train, fig, fig_how = figshare_rows(data, art)
    train = tcga[tcga.patient_id.isin(train_ids)]
    if args.figshare_train:
        train = pd.concat([train, fig_train])
    if args.max_train:
        train = train.sample(n=min(args.max_train, len(train)), random_state=SEED)
    test = tcga[tcga.patient_id.isin(test_ids)].sort_values("file").reset_index(drop=True)
    if args.max_test:
        test = test.sample(n=min(args.max_test, len(test)), random_state=SEED)
    sizes = {
        "figshare_train_slices": int(len(fig_train)) if args.figshare_train else 0,
        "patients_train": len(train_ids),
        "patients_test": len(test_ids),
        "train_slices": int(len(train)),
        "train_tumour_slices": int(train.tumour.sum()),
        "tcga_test_slices": int(len(test)),
        "tcga_test_tumour_slices": int(test.tumour.sum()),
        "figshare_slices": int(len(fig)),
    }
    print(json.dumps(sizes), flush=True)
    nets = (card, extractor, explainer, default_explanation(art, model))
    return nets, (train, test, fig, fig_how), sizes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", default="artifacts")
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--out", default="docs/lab/2026-12-06-lesion-head-v2.json")
    ap.add_argument("--max-train", type=int, default=MAX_TRAIN)
    ap.add_argument("--max-test", type=int, default=0, help="0: every held-out slice")
    ap.add_argument("--figshare-train", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()
    began = time.time()
    (card, extractor, explainer, ref), (train, test, fig, fig_how), sizes = load_all(args)
    size, geometry = int(card["input_size"]), card["geometry"]
    feats, targets = cache_train(extractor, train, size, geometry)
    print(f"features cached ({time.time() - began:.0f} s)", flush=True)
    head, losses = train_head(feats, targets)
    del feats
    found = evaluate(extractor, head, explainer, ref, pd.concat([test, fig]), size, geometry)
    entry = shipped(args.artifacts) or {}
    baseline = {s: entry["groups"][s][KEY] for s in ("figshare-cheng-t1ce", "tcga-lgg")}
    result = {
        "dice": per_sequence(found["dice"], "dice"),
        "healthy_false_alarm": per_sequence(found["alarm"], "alarm"),
        "head": grouped(found, "head"),
        "reference_same_slices": grouped(found, "ref"),
        "latency_ms_median": latency_ms(extractor, head, found["slices"][0].pixels, size),
    }
    out = {
        "question": "issue 33: a lesion-map head on the frozen backbone (screen v2)",
        "model_sha256": card["model_sha256"],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "setup": {
            "layers": LAYERS,
            "grid": GRID,
            "seed": SEED,
            "epochs": EPOCHS,
            "batch": BATCH,
            "loss": "BCE + soft Dice (batch)",
            "threshold": 0.5,
            "reference_map": f"{ref[0]}:{'+'.join(ref[1] or ())}",
            "figshare": f"{fig_how}; blocks of {BLOCK} slice numbers per type, "
            f"{'trained' if args.figshare_train else 'not trained'} on {TRAIN_SHARE:.0%} of them, "
            f"{len(fig)} held out",
        },
        "sizes": sizes,
        "train_loss": losses,
        "result": result,
        "baseline_shipped_report_half": baseline,
        "rule": rule(result, baseline),
        "seconds": round(time.time() - began, 1),
    }
    artifacts.write_json(out, args.out)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
