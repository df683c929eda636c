"""The `train` command end to end: scan -> split -> features -> recipe -> evaluations -> folder.

Everything is written to a temporary folder that is renamed into place at the end
(`artifacts.replace_dir`), so a killed run never leaves half-written artifacts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import platform
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from tumor_model import artifacts, metrics
from tumor_model.artifacts import ModelCard
from tumor_model.config import CLASS_NAMES, Settings
from tumor_model.evaluation import breakdown
from tumor_model.evaluation.crossval import cv_metrics
from tumor_model.evaluation.protocols import random_protocol, shortcut_block
from tumor_model.io.imageio import load_image
from tumor_model.model import BACKBONES, build_model, input_size, last_conv, weights_origin
from tumor_model.progress import log
from tumor_model.serving import ood
from tumor_model.serving.export import export
from tumor_model.site.anchor import anchor_rows, save_anchor
from tumor_model.training import data, features, split
from tumor_model.training.distribute import Devices
from tumor_model.training.metadata import csv_columns
from tumor_model.training.train import fit, predict_pixels


def train_and_write(
    settings: Settings,
    cv_folds: int = 0,
    shortcut: bool = True,
    samples: bool = True,
    report_protocol: bool = False,
) -> Path:
    """The whole pipeline; returns the artifacts folder."""
    start = time.perf_counter()
    keras.utils.set_random_seed(settings.seed)
    table, summary = split.prepare_table(settings)
    devices = Devices(settings)
    try:
        with devices.scope():
            _, feat_model, _ = build_model(settings)
        x = features.extract(feat_model, table, settings)
        model, head, history, temperature, threshold = fit(settings, table, x, devices)
        size, params = input_size(settings), model.count_params()
        log(f"model {settings.backbone} ({size} px), {params:,} params")
        table["probability"], pooled = all_probabilities(
            model, head, x, table, settings, temperature
        )
        metrics = evaluation(table, threshold, settings)
        if cv_folds:
            metrics.update(cv_metrics(x, table, settings, cv_folds))
        if shortcut:
            metrics[artifacts.SHORTCUT] = shortcut_block(model, table, threshold, settings)
        if report_protocol and settings.split != "random":
            metrics[artifacts.RANDOM_SPLIT] = random_protocol(settings, table, x, devices)
    finally:
        devices.close()
    guard = fit_guard(table, pooled)
    anchor = anchor_rows(table, seed=settings.seed)
    record = {
        "threshold": threshold,
        "temperature": temperature,
        "devices": devices.describe(),
        "anchor": (pooled[anchor], table.loc[anchor]),
    }
    return save(settings, model, table, summary, history, metrics, guard, record, samples, start)


def all_probabilities(model, head, x, table, settings, temperature):
    """(probabilities, pooled features) of the shipped model for every row. Val and test go
    through the full model; train through the head on cached features while the base is frozen."""
    if settings.fine_tune_layers:
        return predict_pixels(model, table, settings, pooled=True)
    probs = np.zeros(len(table))
    held = (table.split != "train").to_numpy()
    probs[held] = predict_pixels(model, table[held], settings)
    raw = head.predict(x[~held], verbose=0).ravel()
    probs[~held] = metrics.apply_temperature(raw, temperature)
    return probs, x


def evaluation(table, threshold, settings) -> dict:
    """Test and validation blocks, per file and per duplicate group, and the protocol."""
    out = {}
    for name in (artifacts.TEST, artifacts.VAL):
        part = table[table.split == name]
        out[name] = metrics.report(
            part.label, part.probability, threshold, settings.bootstrap, settings.seed
        )
        grouped = metrics.group_level(part)
        out[f"{name}_groups"] = metrics.report(
            grouped.label, grouped.probability, threshold, settings.bootstrap, settings.seed
        )
    test = table[table.split == artifacts.TEST]
    by_source = breakdown.nested(test, test.probability.to_numpy(), threshold, settings)
    if by_source:  # a one-class source that was also trained on: its look may tell its label
        out[artifacts.TEST_SOURCES] = by_source
    out[artifacts.PROTOCOL] = {
        "split": settings.split,
        "seed": settings.seed,
        "data_dirs": list(settings.data_dirs),
    }
    m = out[artifacts.TEST]["metrics"]
    log(
        "test: "
        + ", ".join(
            f"{k} {v['value']:.4f} [{v['ci_low']:.4f}, {v['ci_high']:.4f}]" for k, v in m.items()
        )
    )
    return out


def versions() -> dict:
    """Versions of what trained the model (the backend's own included)."""
    backend = keras.backend.backend()
    out = {"python": platform.python_version(), "keras": keras.__version__}
    for name in (backend, "numpy", "pandas"):
        try:
            out[name] = importlib.import_module(name).__version__
        except ImportError:  # a backend Keras names but cannot import is no record
            pass
    return out


def model_card(settings, model, model_path, table, summary, record, seconds, metrics):
    origin, sha = weights_origin(settings.weights)
    spec = BACKBONES[settings.backbone]
    stretch = "per-image min-max stretch, then " if settings.stretch else ""
    return ModelCard(
        class_names=list(CLASS_NAMES),
        input_size=input_size(settings),
        geometry=settings.geometry,
        preprocessing=f"inside the model: {stretch}'{spec.preprocess}' mode of "
        f"keras.applications ({settings.backbone})",
        threshold=float(record["threshold"]),
        temperature=float(record["temperature"]),
        backbone=settings.backbone,
        last_conv=last_conv(model),
        head=settings.head,
        weights_origin=Path(origin).name if sha else origin,
        weights_sha256=sha,
        model_sha256=hashlib.sha256(Path(model_path).read_bytes()).hexdigest(),
        data_fingerprint=summary["fingerprint"],
        data_counts=table.groupby("split").label.value_counts().unstack().to_dict(),
        sources={
            name: {"files": s["files"], "classes": s["classes"], "single_class": s["single_class"]}
            for name, s in summary["sources"].items()
        },
        split=settings.split,
        seed=settings.seed,
        test_metrics={
            k: metrics[artifacts.TEST]["metrics"][k]
            for k in ("accuracy", "sensitivity", "specificity", "roc_auc")
        },
        versions=versions(),
        device=record["devices"],
        train_seconds=round(seconds, 1),
        trained_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        settings=settings.to_dict(),
    )


def write_samples(table: pd.DataFrame, out: Path, per_class: int = 10, side: int = 128) -> None:
    """Small thumbnails of test images, both classes, for the app's sample grid."""
    folder = out / artifacts.SAMPLES
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
    pd.DataFrame(rows).to_csv(out / artifacts.SAMPLES_CSV, index=False)


def save(settings, model, table, summary, history, metrics, guard, record, samples, start):
    """Write the artifact folder (artifacts.FILES) atomically; returns its path."""
    final = Path(settings.out_dir)
    tmp = artifacts.temp_dir(final)
    model.save(tmp / artifacts.MODEL)
    settings.to_json(tmp / artifacts.SETTINGS)
    history.to_csv(tmp / artifacts.HISTORY, index=False)
    for name in (artifacts.PREDICTIONS, artifacts.SPLIT):
        table[csv_columns(table, name)].to_csv(tmp / name, index=False)
    artifacts.write_json(summary, tmp / artifacts.SUMMARY)
    artifacts.write_json(metrics, tmp / artifacts.METRICS)
    ood.save(guard, tmp / artifacts.GUARD)
    save_anchor(tmp / artifacts.ANCHOR, *record["anchor"])
    seconds = time.perf_counter() - start
    card = model_card(
        settings, model, tmp / artifacts.MODEL, table, summary, record, seconds, metrics
    )
    card.ood = {**guard_entry(guard, table), "features": "pool layer output"}
    artifacts.write_json(card.to_dict(), tmp / artifacts.CARD)
    if samples:
        write_samples(table, tmp)
    if settings.export and keras.backend.backend() == "tensorflow":
        export(tmp)  # the same network for ONNX Runtime: `predict` without TensorFlow
    elif settings.export:
        log("no ONNX export on this backend: `neuroscan export` writes one with TensorFlow")
    artifacts.replace_dir(tmp, final)
    log(f"artifacts written to {final} in {seconds:.0f} s")
    return final


def guard_entry(guard: dict, table: pd.DataFrame) -> dict:
    """The model card's "ood" block of a fitted guard."""
    return {
        "file": artifacts.GUARD,
        "version": ood.VERSION,
        "threshold": guard["threshold"],
        "quantile": guard["quantile"],
        "source_thresholds": dict(
            zip(guard["sources"].tolist(), guard["source_thresholds"].tolist(), strict=True)
        ),
        "sources": guard_sources(table),
        "image_checks": ood.LIMITS,
    }


GUARD_HELD_OUT, GUARD_VAL = 0.5, 0.1  # refit-guard's split of a source outside split.csv


def fit_guard(table: pd.DataFrame, pooled: np.ndarray) -> dict:
    """The OOD guard from pool-layer features (rows of `table`): fitted on the train rows,
    threshold from the val rows of each source (`data.sources`), the largest source's."""
    is_train, is_val = (table.split == "train").to_numpy(), (table.split == "val").to_numpy()
    sources = data.sources(table).to_numpy()
    return ood.calibrate(ood.fit(pooled[is_train]), pooled[is_val], sources[is_val])


def guard_table(folder, data_dirs=(), seed: int | None = None) -> pd.DataFrame:
    """Rows for the guard of the model in `folder`: split.csv's (their root replaced by a
    --data-dir of the same source), and for each root in `data_dirs` whose source split.csv
    lacks, its files split by duplicate group with `seed` (default: the model's): half held out
    ("test", what benchmarks/ood_rates.py reports on), GUARD_VAL val (calibration), the rest
    train (fit). Columns path, root, sha256, group, label, split, source."""
    settings = Settings.from_json(Path(folder) / artifacts.SETTINGS)
    seed = settings.seed if seed is None else seed
    table = artifacts.read_csv(folder, artifacts.SPLIT)
    table = table.assign(source=data.sources(table))
    parts = [table]
    for root in data_dirs:
        source = data.source_of(root)
        if source in set(table.source):
            table.loc[table.source == source, "root"] = str(root)
            continue
        scanned = data.scan(data.find_all([root], both_classes=False), settings.dup_thumb)
        groups = split.duplicate_groups(
            list(scanned.images.sha256), scanned.thumbs, settings.dup_threshold
        )
        rows = scanned.images.assign(group=groups + 1 + int(table.group.max()), source=source)
        rows["split"] = split.group_split(rows.label, groups, GUARD_VAL, GUARD_HELD_OUT, seed)
        parts.append(rows[table.columns])
    return pd.concat(parts, ignore_index=True)


def guard_sources(table: pd.DataFrame) -> dict:
    """source -> files the guard was fitted on, calibrated on and not shown (the card's record)."""
    names = {"train": "fit", "val": "calibrate", "test": "held_out"}
    counts = table.groupby([data.sources(table), "split"]).size().unstack(fill_value=0)
    return {
        str(src): {names[k]: int(row.get(k, 0)) for k in names} for src, row in counts.iterrows()
    }


def refit_guard(folder, data_dirs=(), seed: int | None = None) -> dict:
    """Refit the OOD guard of a trained model in `folder` with the current `ood` (what `run`
    writes) from its pool-layer features of the train/val rows of `guard_table` (split.csv, plus
    the sources of `data_dirs` it lacks); updates ood.npz and the card's "ood" entry in place
    (each written atomically). Returns the card's entry."""
    from tumor_model.serving.predict import load_checked_model

    folder = Path(folder)
    card = artifacts.read_card(folder)
    model = load_checked_model(folder, card["model_sha256"])  # the old guard may be unreadable now
    settings = Settings.from_json(folder / artifacts.SETTINGS)
    table = guard_table(folder, data_dirs, seed)
    rows = table[table.split.isin(["train", "val"])].reset_index(drop=True)
    log(f"guard: pool features of {len(rows)} train/val files")
    _, pooled = predict_pixels(model, rows, settings, pooled=True)
    guard = fit_guard(rows, pooled)
    ood.save(guard, folder / artifacts.GUARD)
    card["ood"] = {
        **card.get("ood", {}),
        **guard_entry(guard, table),
        "seed": settings.seed if seed is None else seed,
    }
    artifacts.write_json(card, folder / artifacts.CARD)
    return card["ood"]
