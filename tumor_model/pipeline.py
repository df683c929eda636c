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

from . import adapt, artifacts, evaluate, features, ood, split
from .artifacts import ModelCard
from .config import CLASS_NAMES, Settings
from .crossval import cv_metrics, per_source
from .distribute import Devices
from .imageio import load_image
from .model import BACKBONES, build_model, input_size, last_conv, weights_origin
from .progress import log
from .protocols import random_protocol, shortcut_block
from .train import fit, predict_pixels


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
    is_train, is_val = (table.split == "train").to_numpy(), (table.split == "val").to_numpy()
    guard = ood.calibrate(ood.fit(pooled[is_train]), pooled[is_val])
    anchor = adapt.anchor_rows(table, seed=settings.seed)
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
    probs[~held] = evaluate.apply_temperature(raw, temperature)
    return probs, x


def evaluation(table, threshold, settings) -> dict:
    """Test and validation blocks, per file and per duplicate group, and the protocol."""
    out = {}
    for name in (artifacts.TEST, artifacts.VAL):
        part = table[table.split == name]
        out[name] = evaluate.report(
            part.label, part.probability, threshold, settings.bootstrap, settings.seed
        )
        grouped = evaluate.group_level(part)
        out[f"{name}_groups"] = evaluate.report(
            grouped.label, grouped.probability, threshold, settings.bootstrap, settings.seed
        )
    test = table[table.split == artifacts.TEST]
    by_source = per_source(test, test.probability.to_numpy(), threshold, settings)
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
        table[artifacts.COLUMNS[name]].to_csv(tmp / name, index=False)
    artifacts.write_json(summary, tmp / artifacts.SUMMARY)
    artifacts.write_json(metrics, tmp / artifacts.METRICS)
    ood.save(guard, tmp / artifacts.GUARD)
    adapt.save_anchor(tmp / artifacts.ANCHOR, *record["anchor"])
    seconds = time.perf_counter() - start
    card = model_card(
        settings, model, tmp / artifacts.MODEL, table, summary, record, seconds, metrics
    )
    card.ood = {
        "file": artifacts.GUARD,
        "threshold": guard["threshold"],
        "quantile": guard["quantile"],
        "features": "pool layer output",
    }
    artifacts.write_json(card.to_dict(), tmp / artifacts.CARD)
    if samples:
        write_samples(table, tmp)
    artifacts.replace_dir(tmp, final)
    log(f"artifacts written to {final} in {seconds:.0f} s")
    return final


def refit_guard(folder) -> dict:
    """Refit the OOD guard of a trained model in `folder` with the current `ood` (what `run`
    writes) from its pool-layer features of the train/val rows of split.csv; updates ood.npz and
    the card's "ood" entry in place (each written atomically). Returns the card's entry."""
    from .predict import load_checked_model

    folder = Path(folder)
    card = artifacts.read_card(folder)
    model = load_checked_model(folder, card["model_sha256"])  # the old guard may be unreadable now
    settings = Settings.from_json(folder / artifacts.SETTINGS)
    table = artifacts.read_csv(folder, artifacts.SPLIT)
    pooled = {}
    for name in ("train", "val"):
        rows = table[table.split == name]
        _, pooled[name] = predict_pixels(model, rows, settings, pooled=True)
    guard = ood.calibrate(ood.fit(pooled["train"]), pooled["val"])
    ood.save(guard, folder / artifacts.GUARD)
    card["ood"] = {
        **card.get("ood", {}),
        "threshold": guard["threshold"],
        "quantile": guard["quantile"],
    }
    artifacts.write_json(card, folder / artifacts.CARD)
    return card["ood"]
