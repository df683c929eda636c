"""Evaluate a saved model on its own test split or on any labelled folder (external data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import data, evaluate, split
from .artifacts import PREDICTIONS, SETTINGS, SPLIT, read_csv
from .config import Settings
from .predict import Predictor


def _rows(artifacts: Path, data_dirs, use_all: bool) -> pd.DataFrame:
    if data_dirs and use_all:
        files = data.find_all(data_dirs)
        scanned = data.scan(files)
        for bad in scanned.unreadable:
            print(f"skipped unreadable file: {bad['error']}")
        groups = split.duplicate_groups(list(scanned.images.sha256), scanned.thumbs, 0.02)
        return scanned.images.assign(group=groups, split="all")
    table = read_csv(artifacts, SPLIT)
    table = table[table.split == "test"]
    if data_dirs:  # the model's test split, read from another copy of the data
        if len(data_dirs) != 1:
            raise ValueError("give one --data-dir for the test split, or use --all")
        table = table.assign(root=data_dirs[0])
    return table


def run(artifacts="artifacts", data_dirs=None, use_all=False, n_boot=1000, threshold=None) -> dict:
    artifacts = Path(artifacts)
    if use_all and not data_dirs:
        raise ValueError("--all needs --data-dir")
    predictor = Predictor(artifacts)
    table = _rows(artifacts, data_dirs, use_all)
    results = predictor.predict_files(
        [Path(r) / p for r, p in zip(table.root, table.path, strict=True)]
    )
    ok = [("error" not in r) for r in results]
    errors = [r for r in results if "error" in r]
    table = table[ok].assign(
        probability=[r["probability"] for r in results if "error" not in r],
        ood=[r["out_of_distribution"] for r in results if "error" not in r],
    )
    thr = predictor.threshold if threshold is None else threshold
    grouped = evaluate.group_level(table)
    out = {
        "summary": {
            "images": int(len(table)),
            "unreadable": len(errors),
            "threshold": thr,
            "flagged_out_of_distribution": int(table.ood.sum()),
        },
        "files": evaluate.report(table.label, table.probability, thr, n_boot),
        "groups": evaluate.report(grouped.label, grouped.probability, thr, n_boot),
        "errors": errors,
    }
    m = out["files"]["metrics"]
    out["summary"].update({k: round(m[k]["value"], 4) for k in ("accuracy", "roc_auc")})
    if table.label.nunique() == 2:
        out["summary"]["local_threshold"] = local_threshold(table.label, table.probability)
    return out


def local_threshold(labels, probs) -> dict:
    """The threshold that would suit these scans (Youden's J, as training picks it on
    validation), with its sensitivity and specificity here. Fit it on one set of local scans
    and check it on another before using it (--threshold)."""
    y, p = np.asarray(labels), np.asarray(probs)
    thr = evaluate.choose_threshold(y, p)
    pred = p >= thr
    return {
        "threshold": thr,
        "sensitivity": round(float(pred[y == 1].mean()), 4),
        "specificity": round(float((~pred[y == 0]).mean()), 4),
    }


def shortcut(artifacts="artifacts", data_dir=None, side: int = 256) -> dict:
    """The shortcut check on a saved model's test split: pad to side x side, re-encode as PNG."""
    from .protocols import shortcut_block  # imports keras: only when the check is asked for

    artifacts = Path(artifacts)
    predictor = Predictor(artifacts)
    settings = Settings.from_json(artifacts / SETTINGS)
    table = _rows(artifacts, [data_dir] if data_dir else None, False)
    preds = read_csv(artifacts, PREDICTIONS)[["path", "root", "probability"]]
    table = (
        table.merge(preds, on=["path", "root"])
        if not data_dir
        else table.merge(preds.drop(columns="root"), on="path")
    )
    return shortcut_block(predictor.model, table, predictor.threshold, settings, side)
