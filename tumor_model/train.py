"""Train, evaluate and save a model: scan -> split -> features -> head -> fine-tune -> artifacts.

Phase 1 trains the head on cached frozen-base features (seconds). Phase 2 optionally fine-tunes
the top backbone layers on augmented pixels. Everything is written to a temporary folder that is
renamed into place at the end, so a killed run never leaves half-written artifacts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import platform
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from PIL import Image

from . import data, evaluate, features, ood, split
from .config import CLASS_NAMES, HISTORY_COLUMNS, Settings
from .imageio import load_image, prepare
from .model import (
    BACKBONES,
    build_model,
    fold_temperature,
    input_size,
    last_conv,
    make_head,
    set_fine_tune,
    weights_origin,
)


def log(msg: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {msg}", flush=True)


# ----------------------------------------------------------------------------- data and split


def prepare_table(settings: Settings) -> tuple[pd.DataFrame, dict]:
    """Scan the roots, group duplicates, split. Returns (table, dataset summary)."""
    files = data.find_all(settings.data_dirs)
    log(f"scanning {len(files)} files under {list(settings.data_dirs)}")
    scanned = data.scan(files, settings.dup_thumb)
    for bad in scanned.unreadable:
        log(f"skipped unreadable file: {bad['error']}")
    groups = split.duplicate_groups(
        list(scanned.images.sha256), scanned.thumbs, settings.dup_threshold
    )
    table = scanned.images.assign(group=groups)
    if settings.split in ("group", "source"):
        keep = cv_groups(table, "duplicate" if settings.split == "group" else "source")
        table["split"] = split.group_split(
            table.label, keep, settings.val_fraction, settings.test_fraction, settings.seed
        )
        split.check_no_leak(table)
    else:
        table["split"] = split.random_split(len(table), settings.seed)
    empty = [name for name in split.SPLIT_NAMES if not (table.split == name).any()]
    if empty:
        sizes = table.groupby(["width", "height"]).ngroups
        raise ValueError(
            f"the {settings.split} split left {empty} empty: {len(table)} images, "
            f"{table.group.nunique()} duplicate groups, {sizes} image sizes; add images "
            f"(a source split needs many image sizes) or use another split"
        )
    summary = data.summarize(scanned, groups)
    counts = table.groupby(["split", "label"]).size().unstack(fill_value=0)
    log(f"{table.group.nunique()} duplicate groups; split ({settings.split}):\n{counts}")
    return table, summary


# ----------------------------------------------------------------------------- training


class EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs["seconds"] = time.perf_counter() - self.start
        logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def _compile(model, lr: float) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss="binary_crossentropy",
        metrics=["accuracy", keras.metrics.AUC(name="auc")],
    )


def _fit(model, train, val, epochs, settings, class_weight, phase, verbose=2, **kw):
    stop = keras.callbacks.EarlyStopping(
        "val_loss", patience=settings.patience, restore_best_weights=True
    )
    hist = model.fit(
        *train,
        validation_data=val,
        epochs=epochs,
        class_weight=class_weight,
        callbacks=[EpochTimer(), stop],
        verbose=verbose,
        shuffle=False,  # datasets arrive shuffled
        **kw,
    )
    frame = pd.DataFrame(hist.history)
    frame.insert(0, "epoch", np.arange(1, len(frame) + 1))
    frame.insert(1, "phase", phase)
    return frame.reindex(columns=HISTORY_COLUMNS)


def class_weights(labels: np.ndarray, enabled: bool) -> dict | None:
    if not enabled:
        return None
    counts = np.bincount(labels, minlength=2)
    if not counts.all():
        raise ValueError(f"class weights need both classes in train, got counts {counts.tolist()}")
    return {i: len(labels) / (2.0 * c) for i, c in enumerate(counts)}


def train_head(head, x, y, is_train, is_val, settings, verbose=2) -> pd.DataFrame:
    """Phase 1: the head alone on cached features."""
    _compile(head, settings.head_lr)
    n = int(is_train.sum())
    train_ds = (
        tf.data.Dataset.from_tensor_slices((x[is_train], y[is_train].astype("float32")))
        .shuffle(n, seed=settings.seed, reshuffle_each_iteration=True)
        # full batches only: replicas of a MirroredStrategy must get equal shares
        .batch(settings.batch_size, drop_remainder=n > settings.batch_size)
    )
    return _fit(
        head,
        (train_ds,),
        (x[is_val], y[is_val]),
        settings.head_epochs,
        settings,
        class_weights(y[is_train], settings.class_weights),
        "head",
        verbose=verbose,
    )


def augmenter(seed: int) -> keras.Sequential:
    """Light, brain-preserving augmentation on 0-255 pixels."""
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(0.03, fill_mode="constant", seed=seed),
            keras.layers.RandomZoom((-0.1, 0.1), fill_mode="constant", seed=seed),
            keras.layers.RandomContrast(0.3, value_range=(0, 255), seed=seed),
            keras.layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed),
        ],
        name="augment",
    )


def gamma_and_noise(x):
    """Random gamma in [0.7, 1.4] per image and Gaussian noise of sd 3 grey levels."""
    gamma = tf.exp(tf.random.uniform([tf.shape(x)[0], 1, 1, 1], -0.35, 0.35))
    x = 255.0 * tf.pow(tf.clip_by_value(x, 0.0, 255.0) / 255.0, gamma)
    return x + tf.random.normal(tf.shape(x), stddev=3.0)


def resample(x, strength: float):
    """Shrink each image of batch `x` by a random factor in [1 - strength, 1] and enlarge it
    back: the blur of a lower-resolution scan, so sharpness stops telling sources apart."""
    side = tf.shape(x)[1]

    def one(image):
        factor = tf.random.uniform([], 1.0 - strength, 1.0)
        small = tf.maximum(tf.cast(tf.round(factor * tf.cast(side, "float32")), "int32"), 8)
        image = tf.image.resize(image[None], [small, small], antialias=True)
        return tf.image.resize(image, [side, side])[0]

    # Keep the static shape: with unknown height and width Keras traces a shape-generic
    # training step that ran at half the speed on CPU (measured in docs/experiments.md).
    return tf.ensure_shape(tf.map_fn(one, x), x.shape)


def group_sampler(groups, seed: int) -> tf.data.Dataset:
    """Row indices: one random member of each group per pass, groups in a new random order
    each pass (Keras re-iterates the dataset every epoch)."""
    codes = pd.factorize(np.asarray(groups))[0]
    if len(codes) == 0:
        raise ValueError("group_sampler needs at least one row, got an empty group list")
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    members = tf.constant(order, "int64")
    ranges = tf.data.Dataset.from_tensor_slices((starts, sizes)).shuffle(
        len(sizes), seed=seed, reshuffle_each_iteration=True
    )
    rng = tf.random.Generator.from_seed(seed)
    return ranges.map(
        lambda start, size: tf.gather(members, start + rng.uniform([], 0, size, dtype="int64"))
    )


def pixel_dataset(pixels, labels, settings, training: bool, groups=None) -> tf.data.Dataset:
    """Batches of (pixels, label); for training shuffled (and with `groups`, one file per
    group per epoch) and augmented as `settings` say."""
    labels = np.asarray(labels).astype("float32")
    if groups is not None:
        if not training:
            raise ValueError("groups sample training epochs; pass groups=None for evaluation")
        if len(groups) != len(labels):
            raise ValueError(f"{len(groups)} groups for {len(labels)} images")
        stack, targets = tf.convert_to_tensor(pixels), tf.convert_to_tensor(labels)
        ds = group_sampler(groups, settings.seed).map(
            lambda i: (tf.gather(stack, i), tf.gather(targets, i))
        )
        n = len(set(np.asarray(groups).tolist()))
    else:
        ds = tf.data.Dataset.from_tensor_slices((pixels, labels))
        if training:
            ds = ds.shuffle(len(labels), seed=settings.seed)
        n = len(labels)
    ds = ds.batch(settings.batch_size, drop_remainder=training and n > settings.batch_size)
    if training and settings.augment:
        aug = augmenter(settings.seed)

        def augment(x):
            x = aug(tf.cast(x, "float32"), training=True)
            if settings.resample:
                x = resample(x, settings.resample)
            return tf.clip_by_value(gamma_and_noise(x), 0, 255)

        ds = ds.map(lambda x, y: (augment(x), y), num_parallel_calls=2)
    else:
        ds = ds.map(lambda x, y: (tf.cast(x, "float32"), y))
    return ds.prefetch(2)


def fine_tune(model, table, settings) -> pd.DataFrame:
    """Phase 2: unfreeze the top N backbone layers, low learning rate, augmented pixels."""
    size = input_size(settings)
    parts = {}
    for name in ("train", "val"):
        rows = table[table.split == name]
        by_group = name == "train" and settings.sample_groups
        parts[name] = pixel_dataset(
            features.load_pixels(rows, size, settings.geometry),
            rows.label.to_numpy(),
            settings,
            training=name == "train",
            groups=rows.group.to_numpy() if by_group else None,
        )
    set_fine_tune(model, settings.fine_tune_layers)
    _compile(model, settings.fine_tune_lr)
    train = table[table.split == "train"]
    if settings.sample_groups:  # the weights follow what an epoch shows: one file per group
        train = train.drop_duplicates("group")
        log(f"fine-tuning epochs: one file of each of {len(train)} train duplicate groups")
    return _fit(
        model,
        (parts["train"],),
        parts["val"],
        settings.fine_tune_epochs,
        settings,
        class_weights(train.label.to_numpy(), settings.class_weights),
        "fine_tune",
    )


def predict_pixels(model, table, settings, batch: int = 64, pooled: bool = False):
    """Full-model probabilities for every row of `table` (what the shipped model says);
    with pooled=True also the pool-layer features the OOD guard uses: (probs, pooled)."""
    both = keras.Model(model.input, [model.output, model.get_layer("pool").output])
    probs, pools = [], []
    for start in range(0, len(table), batch * 4):
        chunk = table.iloc[start : start + batch * 4]
        pix = features.load_pixels(chunk, input_size(settings), settings.geometry)
        p, f = both.predict(pix.astype("float32"), batch_size=batch, verbose=0)
        probs.append(p.ravel())
        pools.append(f)
    if not probs:
        return (np.zeros(0), np.zeros((0, 0))) if pooled else np.zeros(0)
    return (np.concatenate(probs), np.concatenate(pools)) if pooled else np.concatenate(probs)


# ----------------------------------------------------------------------------- evaluation


def decide(val_y, val_p, settings) -> tuple[float, float]:
    """(temperature, threshold) chosen on validation only, as `settings` say."""
    return evaluate.decide(val_y, val_p, settings.calibrate, settings.threshold)


CV_GROUPS = {
    "duplicate": "duplicate groups kept whole",
    "source": "duplicate groups and image sizes kept whole (a proxy for unseen sources)",
}


def cv_groups(table: pd.DataFrame, by: str) -> np.ndarray:
    """Fold groups: duplicate groups, or for "source" duplicate groups merged with image size
    (width x height), so no image size is in two folds: cross-source rather than cross-slice."""
    if by not in CV_GROUPS:
        raise ValueError(f"CV groups must be one of {tuple(CV_GROUPS)}, got {by!r}")
    if by == "duplicate":
        return table.group.to_numpy()
    dims = table.width.astype(str) + "x" + table.height.astype(str)
    return split.merge_groups(table.group, dims)


def cv_splits(y, groups, folds: int, seed: int):
    """(k, train_idx, val_idx, test_idx) per outer fold: the fold's test part, then 9 inner
    grouped folds of the rest of which the first picks validation (early stopping, temperature,
    threshold)."""
    for k, (rest, test) in enumerate(split.grouped_folds(y, groups, folds, seed)):
        inner = split.grouped_folds(y[rest], groups[rest], 9, seed + k)[0]
        yield k, rest[inner[0]], rest[inner[1]], test


def _frozen_fold(x, table, tr, va, test, settings) -> tuple[np.ndarray, float]:
    """Head on cached features: (calibrated test probabilities, threshold)."""
    y = table.label.to_numpy()
    head = make_head(settings, x.shape[1])
    train_head(head, x, y, _mask(tr, len(y)), _mask(va, len(y)), settings, verbose=0)
    temperature, thr = decide(y[va], head.predict(x[va], verbose=0).ravel(), settings)
    return evaluate.apply_temperature(head.predict(x[test], verbose=0).ravel(), temperature), thr


def _full_fold(x, table, tr, va, test, settings) -> tuple[np.ndarray, float]:
    """The whole recipe (head, then fine-tuning on augmented pixels) as `fit` runs it."""
    parts = np.full(len(table), "test", dtype=object)
    parts[tr], parts[va] = "train", "val"
    model, _, _, _, thr = fit(settings, table.assign(split=parts), x, None)
    return predict_pixels(model, table.iloc[test], settings), thr


def cross_validate(x, table, settings, folds: int, by: str = "duplicate", full=False) -> dict:
    """Grouped, stratified K-fold CV on all images: of the frozen-feature recipe, or with
    full=True of the whole recipe, fine-tuning included (a training run per fold)."""
    y, groups = table.label.to_numpy(), cv_groups(table, by)
    if not enough_groups(groups, folds):
        raise ValueError(
            f"{by}-grouped {folds}-fold CV needs at least {folds + 9} groups (each fold holds "
            f"one out, then 9 inner folds pick the validation part); got {len(set(groups))}"
        )
    if full and not settings.fine_tune_layers:
        raise ValueError("this recipe does not fine-tune: its frozen-stage CV is the full one")
    one_fold = _full_fold if full else _frozen_fold
    probs, thresholds, fold_of = np.zeros(len(y)), np.zeros(len(y)), np.zeros(len(y), int)
    fold_acc = []
    for k, tr, va, test in cv_splits(y, groups, folds, settings.seed):
        if full:
            keras.utils.set_random_seed(settings.seed + k)
        probs[test], thr = one_fold(x, table, tr, va, test, settings)
        thresholds[test], fold_of[test] = thr, k
        fold_acc.append(float(np.mean((probs[test] >= thr) == y[test])))
        log(
            f"CV ({by}{', full recipe' if full else ''}) fold {k + 1}/{folds}: "
            f"accuracy {fold_acc[-1]:.4f}"
        )
    result = evaluate.report(y, probs, thresholds, settings.bootstrap, settings.seed)
    result.update(
        folds=folds,
        fold_accuracy=fold_acc,
        fold_size=np.bincount(fold_of, minlength=folds).tolist(),
        groups=f"{by}: {CV_GROUPS[by]}",
        recipe=(
            f"full recipe: head + fine-tuning of the top {settings.fine_tune_layers} layers"
            if full
            else "frozen features + head"
        ),
    )
    return result


def enough_groups(groups, folds: int) -> bool:
    """One group per outer fold plus 9 for the inner validation folds."""
    return len(set(np.asarray(groups).tolist())) >= folds + 9


def cv_key(by: str, full: bool = False) -> str:
    """metrics.json key of a CV: "cv", "cv_source", "cv_fine_tuned", "cv_source_fine_tuned"."""
    return {"duplicate": "cv", "source": "cv_source"}[by] + ("_fine_tuned" if full else "")


def cv_metrics(x, table, settings, folds: int, full: bool = False, by=tuple(CV_GROUPS)) -> dict:
    """{cv_key(by): CV} for each grouping in `by` (duplicate-grouped, cross-source), of the
    frozen-feature recipe or with full=True of the whole recipe. Cross-source CV is left out
    (and logged) when the data has too few distinct image sizes."""
    out = {}
    for one in by:
        if one == "source" and not enough_groups(cv_groups(table, "source"), folds):
            log(f"cross-source CV skipped: too few distinct image sizes for {folds} folds")
            continue
        out[cv_key(one, full)] = cross_validate(x, table, settings, folds, one, full)
    return out


def recipe_features(settings: Settings) -> tuple[pd.DataFrame, np.ndarray]:
    """(split table, frozen-base features) of a saved recipe's data, as `run` starts."""
    table, _ = prepare_table(settings)
    _, feat_model, _ = build_model(settings)
    return table, features.extract(feat_model, table, settings)


def update_metrics(folder: Path, result: dict, drop=()) -> None:
    """Merge `result` into `folder`/metrics.json, first removing the keys in `drop`."""
    path = folder / "metrics.json"
    metrics = json.loads(path.read_text())
    for key in drop:
        metrics.pop(key, None)
    metrics.update(result)
    data.write_json(metrics, path)


def recorded_settings(folder, cache_dir: str | None = None) -> Settings:
    """The settings a model in `folder` was trained with, to rerun its recipe here. Its
    settings.json records the cache folder of the machine that trained it (a /tmp path for the
    shipped model); `cache_dir` replaces it, so a rerun uses this machine's cache."""
    settings = Settings.from_json(Path(folder) / "settings.json")
    if cache_dir is None:
        return settings
    if not isinstance(cache_dir, str | Path) or not str(cache_dir):
        raise ValueError(f"cache_dir must be a folder path, got {cache_dir!r}")
    return dataclasses.replace(settings, cache_dir=str(cache_dir))


def cv_artifacts(
    folder,
    data_dirs=None,
    folds: int = 10,
    save: bool = False,
    full=False,
    by=tuple(CV_GROUPS),
    cache_dir: str | None = None,
) -> dict:
    """The CVs (`by`: "duplicate", "source") of the recipe in `folder`/settings.json, of its
    frozen-feature stage or with full=True of the whole recipe (one training run per fold), on
    its data or on `data_dirs`, with features cached in `cache_dir` (default: the recorded one).
    With save=True they replace their keys (`cv_key`) in `folder`/metrics.json."""
    folder = Path(folder)
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds!r}")
    unknown = [one for one in by if one not in CV_GROUPS]
    if unknown or not by:
        raise ValueError(f"CV groupings must be among {tuple(CV_GROUPS)}, got {list(by)!r}")
    settings = recorded_settings(folder, cache_dir)
    if data_dirs:
        settings = dataclasses.replace(settings, data_dirs=tuple(data_dirs))
    if full and not settings.fine_tune_layers:
        raise ValueError(f"{folder} holds a recipe without fine-tuning: its frozen-stage CV is it")
    table, x = recipe_features(settings)
    result = cv_metrics(x, table, settings, folds, full, by)
    if save:  # a skipped cross-source CV must not leave an old one
        update_metrics(folder, result, drop=[cv_key(one, full) for one in by])
    return result


def protocol_artifacts(folder, save: bool = False, cache_dir: str | None = None) -> dict:
    """The report's protocol (random split, same seed) with the recipe in `folder`/settings.json:
    a second training run, features cached in `cache_dir` (default: the recorded one). With
    save=True it becomes "random_split" in `folder`/metrics.json."""
    folder = Path(folder)
    settings = recorded_settings(folder, cache_dir)
    if settings.split == "random":
        raise ValueError(f"{folder} already holds a random-split model: its test metrics are it")
    keras.utils.set_random_seed(settings.seed)
    table, x = recipe_features(settings)
    result = random_protocol(settings, table, x, make_strategy(settings))
    if save:
        update_metrics(folder, {"random_split": result})
    return result


def _mask(idx, n) -> np.ndarray:
    m = np.zeros(n, bool)
    m[idx] = True
    return m


def shortcut_check(model, test: pd.DataFrame, settings, side: int = 256) -> pd.DataFrame:
    """Re-encode each test image as PNG, padded to a side x side square, then predict."""
    pix = []
    for row in test.itertuples(index=False):
        img = prepare(load_image(Path(row.root) / row.path), side, "pad")
        buf = _png_bytes(Image.fromarray(img))
        pix.append(prepare(load_image(buf, name=row.path), input_size(settings), settings.geometry))
    p = model.predict(np.stack(pix).astype("float32"), batch_size=64, verbose=0).ravel()
    return test.assign(probability=p)


def _png_bytes(img: Image.Image) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# ----------------------------------------------------------------------------- artifacts


def model_card(
    settings, model, model_path, table, summary, threshold, temperature, seconds, metrics
):
    origin, sha = weights_origin(settings.weights)
    spec = BACKBONES[settings.backbone]
    versions = {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }
    return {
        "name": "NeuroScan brain-MRI tumour classifier",
        "class_names": list(CLASS_NAMES),
        "output": "sigmoid probability of class_names[1] (tumor), temperature-calibrated",
        "input_size": input_size(settings),
        "input": "RGB 0-255, (input_size, input_size, 3), made by tumor_model.imageio.prepare",
        "geometry": settings.geometry,
        "preprocessing": "inside the model: "
        + ("per-image min-max stretch, then " if settings.stretch else "")
        + f"'{spec.preprocess}' mode of keras.applications ({settings.backbone})",
        "threshold": float(threshold),
        "temperature": float(temperature),
        "backbone": settings.backbone,
        "last_conv": last_conv(model),
        "head": settings.head,
        "weights_origin": origin,
        "weights_sha256": sha,
        "model_sha256": hashlib.sha256(Path(model_path).read_bytes()).hexdigest(),
        "data_fingerprint": summary["fingerprint"],
        "data_counts": table.groupby("split").label.value_counts().unstack().to_dict(),
        "split": settings.split,
        "seed": settings.seed,
        "test_metrics": {
            k: metrics["test"]["metrics"][k]
            for k in ("accuracy", "sensitivity", "specificity", "roc_auc")
        },
        "versions": versions,
        "train_seconds": round(seconds, 1),
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "settings": settings.to_dict(),
    }


def write_samples(table: pd.DataFrame, out: Path, per_class: int = 10, side: int = 128) -> None:
    """Small thumbnails of test images, both classes, for the app's sample grid."""
    folder = out / "samples"
    folder.mkdir()
    rows = []
    test = table[table.split == "test"].drop_duplicates("group")
    for label, name in enumerate(CLASS_NAMES):
        part = test[test.label == label]
        part = part.sample(min(per_class, len(part)), random_state=0)
        for i, row in enumerate(part.itertuples(index=False)):
            img = load_image(Path(row.root) / row.path)
            img.thumbnail((side, side))
            file = f"{name}_{i:02d}.png"
            img.save(folder / file, optimize=True)
            rows.append({"file": file, "label": label, "class_name": name, "source": row.path})
    pd.DataFrame(rows).to_csv(folder / "samples.csv", index=False)


def replace_dir(tmp: Path, final: Path) -> None:
    """Swap a finished temporary folder into place; the old one is removed only afterwards."""
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)


# ----------------------------------------------------------------------------- the run


def make_strategy(settings):
    """tf.distribute strategy for the run (None: the default device)."""
    if settings.strategy != "mirrored":
        return None
    strategy = tf.distribute.MirroredStrategy()
    log(f"MirroredStrategy over {strategy.num_replicas_in_sync} devices")
    return strategy


def in_scope(strategy):
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def fit(settings, table, x, strategy):
    """Build a fresh model, train the head (and fine-tune), pick temperature and threshold on
    validation. Returns (model, head, history, temperature, threshold)."""
    with in_scope(strategy):
        model, _, head = build_model(settings)
    y = table.label.to_numpy()
    is_train, is_val = (table.split == "train").to_numpy(), (table.split == "val").to_numpy()
    with in_scope(strategy):
        history = [train_head(head, x, y, is_train, is_val, settings)]
        if settings.fine_tune_layers:
            history.append(fine_tune(model, table, settings))
    # Decisions on validation; the temperature is folded into the model's last layer.
    val = table[is_val]
    val_p = predict_pixels(model, val, settings)
    temperature, threshold = decide(val.label.to_numpy(), val_p, settings)
    fold_temperature(model, temperature)
    log(f"temperature {temperature:.3f}, threshold {threshold:.3f} (chosen on validation)")
    return model, head, pd.concat(history, ignore_index=True), temperature, threshold


def random_protocol(settings, table, x, strategy) -> dict:
    """The report's protocol with the same recipe: random 80/10/10 split (seed), test metrics."""
    log("report's protocol: random split, same recipe")
    other = table.assign(split=split.random_split(len(table), settings.seed))
    model, _, _, _, threshold = fit(settings, other, x, strategy)
    test = other[other.split == "test"]
    probs = predict_pixels(model, test, settings)
    out = evaluate.report(test.label, probs, threshold, settings.bootstrap, settings.seed)
    copies = set(other[other.split == "train"].group)
    out["test_files_with_copy_in_train"] = int(test.group.isin(copies).sum())
    out["protocol"] = {"split": "random", "seed": settings.seed}
    m = out["metrics"]["accuracy"]
    log(
        f"random split: accuracy {m['value']:.4f}; {out['test_files_with_copy_in_train']} of "
        f"{len(test)} test files have a copy in train"
    )
    return out


def run(
    settings: Settings,
    cv_folds: int = 0,
    shortcut: bool = True,
    samples: bool = True,
    report_protocol: bool = False,
) -> Path:
    """The whole pipeline; returns the artifacts folder."""
    start = time.perf_counter()
    keras.utils.set_random_seed(settings.seed)
    table, summary = prepare_table(settings)
    strategy = make_strategy(settings)
    with in_scope(strategy):
        _, feat_model, _ = build_model(settings)
    x = features.extract(feat_model, table, settings)
    model, head, history, temperature, threshold = fit(settings, table, x, strategy)
    log(f"model {settings.backbone} ({input_size(settings)} px), {model.count_params():,} params")
    table["probability"], pooled = _all_probabilities(model, head, x, table, settings, temperature)
    metrics = evaluation(table, threshold, settings)
    if cv_folds:
        metrics.update(cv_metrics(x, table, settings, cv_folds))
    if shortcut:
        metrics["shortcut"] = _shortcut_block(model, table, threshold, settings)
    if report_protocol and settings.split != "random":
        metrics["random_split"] = random_protocol(settings, table, x, strategy)
    is_train, is_val = (table.split == "train").to_numpy(), (table.split == "val").to_numpy()
    guard = ood.calibrate(ood.fit(pooled[is_train]), pooled[is_val])
    seconds = time.perf_counter() - start
    return save(
        settings,
        model,
        table,
        summary,
        history,
        metrics,
        guard,
        threshold,
        temperature,
        seconds,
        samples,
    )


def _all_probabilities(model, head, x, table, settings, temperature):
    """(probabilities, pooled features) of the shipped model for every row. Val and test go
    through the full model; train through the head on cached features while the base is frozen."""
    if settings.fine_tune_layers:
        return predict_pixels(model, table, settings, pooled=True)
    probs = np.zeros(len(table))
    held = (table.split != "train").to_numpy()
    probs[held] = predict_pixels(model, table[held], settings)
    raw = head.predict(x[~held], verbose=0).ravel()
    probs[~held] = evaluate.apply_temperature(raw, temperature)
    return probs, x


def evaluation(table, threshold, settings) -> dict:
    out = {}
    for name in ("test", "val"):
        part = table[table.split == name]
        out[name] = evaluate.report(
            part.label, part.probability, threshold, settings.bootstrap, settings.seed
        )
        grouped = evaluate.group_level(part)
        out[f"{name}_groups"] = evaluate.report(
            grouped.label, grouped.probability, threshold, settings.bootstrap, settings.seed
        )
    out["protocol"] = {
        "split": settings.split,
        "seed": settings.seed,
        "data_dirs": list(settings.data_dirs),
    }
    m = out["test"]["metrics"]
    log(
        "test: "
        + ", ".join(
            f"{k} {v['value']:.4f} [{v['ci_low']:.4f}, {v['ci_high']:.4f}]" for k, v in m.items()
        )
    )
    return out


def _shortcut_block(model, table, threshold, settings, side: int = 256) -> dict:
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


def save(
    settings,
    model,
    table,
    summary,
    history,
    metrics,
    guard,
    threshold,
    temperature,
    seconds,
    samples,
) -> Path:
    final = Path(settings.out_dir)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{int(time.time())}")
    tmp.mkdir()
    model.save(tmp / "model.keras")
    settings.to_json(tmp / "settings.json")
    history.to_csv(tmp / "history.csv", index=False)
    cols = ["path", "root", "split", "group", "label", "probability"]
    table[cols].to_csv(tmp / "predictions.csv", index=False)
    table[["path", "root", "sha256", "group", "label", "split"]].to_csv(
        tmp / "split.csv", index=False
    )
    data.write_json(summary, tmp / "dataset_summary.json")
    data.write_json(metrics, tmp / "metrics.json")
    ood.save(guard, tmp / "ood.npz")
    card = model_card(
        settings,
        model,
        tmp / "model.keras",
        table,
        summary,
        threshold,
        temperature,
        seconds,
        metrics,
    )
    card["ood"] = {
        "file": "ood.npz",
        "threshold": guard["threshold"],
        "quantile": guard["quantile"],
        "features": "pool layer output",
    }
    data.write_json(card, tmp / "model_card.json")
    if samples:
        write_samples(table, tmp)
    replace_dir(tmp, final)
    log(f"artifacts written to {final} in {seconds:.0f} s")
    return final
