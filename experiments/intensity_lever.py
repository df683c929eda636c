"""Frozen-stage screens of augmentations for travelling to new sources (rules fixed in
docs/experiments.md before each run): `--lever intensity` (plan C), `--lever skull-strip`
(plan E), or `--lever label-smoothing` (plan F: no copies, the head's loss smoothed by 0.1).

Every image gets one randomised copy: a random gamma (0.5-2), a random monotone intensity curve
(4 knots), a smooth multiplicative bias field (0.7-1.3) and, with probability 0.3, the head's
intensities inverted (background kept black), so that one sequence can stand in for another
(as domain-randomisation work such as SynthSeg does). The copies' frozen features join the
training rows of every fold (never validation or test rows). Compared with the same CVs without
them: leave-one-source-out (pooled) and the cross-source CV by image size, balanced accuracy.

Skull strip (`strip`): the copy keeps only the head mask (foreground, holes filled) eroded by a
random 4-12% of the image side (9-27 px at 224), roughly the scalp and skull, is black
elsewhere and is cropped to what is left (as the shipped crop-pad geometry does for OASIS): a
random brain mask, so that "no skull" (OASIS is skull-stripped) stops meaning "healthy".

    python experiments/intensity_lever.py --data-dir ../shared/data/brain-tumor-dataset \
        --data-dir ../shared/data/figshare-cheng-t1ce --data-dir ../shared/data/oasis-healthy \
        [--lever skull-strip --out docs/lab/skullstrip_lever.json]
        [--lever label-smoothing --out docs/lab/label_smoothing_lever.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tumor_model import metrics  # noqa: E402
from tumor_model.evaluation.crossval import INNER_FOLDS, frozen_head, recorded_settings  # noqa: E402
from tumor_model.io.geometry import foreground_mask
from tumor_model.io.imageio import prepare  # noqa: E402
from tumor_model.model import build_model, input_size  # noqa: E402
from tumor_model.training import data, features, split


def randomise(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One randomised copy of a prepared uint8 (h, w, 3) image."""
    grey = pixels.mean(axis=2) / 255.0
    head = grey > 0.04
    x = grey ** rng.uniform(0.5, 2.0)
    knots = np.sort(rng.uniform(0, 1, 4))
    x = np.interp(x, np.r_[0, np.linspace(0.2, 0.8, 4), 1], np.r_[0, knots, 1])
    h, w = x.shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w) - 0.5
    a = rng.uniform(-0.6, 0.6, 5)
    field = 1 + a[0] * xx + a[1] * yy + a[2] * xx * yy + a[3] * xx**2 + a[4] * yy**2
    x = x * np.clip(field, 0.7, 1.3)
    if rng.uniform() < 0.3:
        x = np.where(head, 1.0 - x, 0.0)
    x = np.where(head, np.clip(x, 0, 1), 0.0)
    return np.repeat((x * 255).astype(np.uint8)[..., None], 3, axis=2)


def strip(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One skull-stripped copy of a prepared uint8 (h, w, 3) image (a random brain mask)."""
    from scipy.ndimage import binary_erosion, binary_fill_holes

    head = binary_fill_holes(foreground_mask(pixels))
    depth = max(1, round(rng.uniform(0.04, 0.12) * pixels.shape[0]))
    brain = binary_erosion(head, iterations=depth)
    stripped = np.where(brain[..., None], pixels, 0).astype(np.uint8)
    return prepare(stripped, pixels.shape[0], "crop-pad")  # the brain fills the frame, as OASIS


LEVERS = {"intensity": randomise, "skull-strip": strip}  # a randomised copy of every image
SETTINGS_LEVERS = {"label-smoothing": {"label_smoothing": 0.1}}  # the head's loss (plan F)


def randomised_features(settings, table, seed=0, batch=64, lever=randomise) -> np.ndarray:
    _, feat_model, _ = build_model(settings)
    size, rng, out = input_size(settings), np.random.default_rng(seed), []
    for start in range(0, len(table), batch * 4):
        chunk = table.iloc[start : start + batch * 4]
        pix = features.load_pixels(chunk, size, settings.geometry)
        aug = np.stack([lever(p, rng) for p in pix]).astype("float32")
        out.append(feat_model.predict(aug, batch_size=batch, verbose=0))
        print(f"randomised features: {start + len(chunk)}/{len(table)}", flush=True)
    return np.concatenate(out)


def fold(x, x_aug, table, tr, va, test, settings):
    """Calibrated test probabilities and threshold of a head on rows `tr` (+ their copies,
    `x_aug`, unless None)."""
    n = len(table)
    if x_aug is not None:
        xs = np.concatenate([x, x_aug])
        t2 = table.iloc[np.r_[np.arange(n), np.arange(n)]].reset_index(drop=True)
        tr = np.r_[tr, tr + n]
    else:
        xs, t2 = x, table
    head, temperature, thr = frozen_head(xs, t2, tr, va, settings)
    return metrics.apply_temperature(head.predict(x[test], verbose=0).ravel(), temperature), thr


def inner_val(y, groups, rest, seed):
    inner = split.grouped_folds(y[rest], groups[rest], INNER_FOLDS, seed)[0]
    return rest[inner[0]], rest[inner[1]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", default="artifacts")
    ap.add_argument("--data-dir", action="append", required=True)
    ap.add_argument("--cache-dir", default=".cache/features")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--out", default=None)
    ap.add_argument("--lever", choices=sorted({*LEVERS, *SETTINGS_LEVERS}), default="intensity")
    args = ap.parse_args(argv)
    start = time.time()
    settings = recorded_settings(args.artifacts, args.cache_dir)
    settings = dataclasses.replace(settings, data_dirs=tuple(args.data_dir), bootstrap=500)
    table, _ = split.prepare_table(settings)
    x = features.extract_for(settings, table)
    copies = LEVERS.get(args.lever)
    x_aug = randomised_features(settings, table, lever=copies) if copies else None
    y, groups = table.label.to_numpy(), table.group.to_numpy()
    src = data.sources(table).to_numpy()
    result = {}
    for use_aug in (False, True):
        name = ("randomised" if args.lever == "intensity" else args.lever) if use_aug else "plain"
        run = dataclasses.replace(
            settings, **SETTINGS_LEVERS.get(args.lever, {}) if use_aug else {}
        )
        extra = x_aug if use_aug else None
        # leave-one-source-out, pooled
        probs, thrs, tested = np.zeros(len(y)), np.zeros(len(y)), np.zeros(len(y), bool)
        per = {}
        for s in dict.fromkeys(src):
            rest = np.flatnonzero(src != s)
            if len(set(y[rest])) < 2:
                continue
            tr, va = inner_val(y, groups, rest, settings.seed)
            held = np.flatnonzero(src == s)
            probs[held], t = fold(x, extra, table, tr, va, held, run)
            thrs[held], tested[held] = t, True
            per[s] = metrics.point_metrics(metrics.confusion(y[held], probs[held], t))
        loso = metrics.bootstrap(y[tested], probs[tested], thrs[tested], 500, 0)
        # cross-source CV by image size
        cv_groups = split.fold_groups(table, "source")
        p2, t2 = np.zeros(len(y)), np.zeros(len(y))
        for k, (rest, test) in enumerate(split.grouped_folds(y, cv_groups, args.folds, 314)):
            tr, va = inner_val(y, cv_groups, rest, settings.seed + k)
            p2[test], t = fold(x, extra, table, tr, va, test, run)
            t2[test] = t
        cv = metrics.bootstrap(y, p2, t2, 500, 0)
        kag = src == "brain-tumor-dataset"
        cv_k = metrics.point_metrics(metrics.confusion(y[kag], p2[kag], t2[kag]))
        result[name] = {
            "loso_pooled": {k: loso[k] for k in ("balanced_accuracy", "roc_auc", "ece")},
            "loso_sources": per,
            "cv_source": {k: cv[k] for k in ("balanced_accuracy", "roc_auc", "ece")},
            "cv_source_kaggle_rows_balanced_accuracy": cv_k["balanced_accuracy"],
        }
        print(
            f"[{time.time() - start:5.0f}s] {name}: loso balanced "
            f"{loso['balanced_accuracy']['value']:.4f}, cv_source balanced "
            f"{cv['balanced_accuracy']['value']:.4f}",
            flush=True,
        )
    result["ran"] = "2-core AMD EPYC CPU machine, TensorFlow, " + time.strftime("%Y-%m-%d")
    result["seconds"] = round(time.time() - start)
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
