"""Evaluate a saved model on its own test split or on any labelled folder (external data), with
`--all` per source and, where a source's files.csv gives them, per sequence and per institution."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tumor_model import metrics
from tumor_model.artifacts import (
    BREAKDOWNS,
    EXTERNAL,
    FLAGGED,
    PREDICTIONS,
    SETTINGS,
    SPLIT,
    TEST_SOURCES,
    read_csv,
    update_metrics,
)
from tumor_model.config import Settings
from tumor_model.evaluation import breakdown
from tumor_model.serving.predict import Predictor
from tumor_model.training import data, split

PARTS = ("test", "val")  # the parts of a split.csv that `evaluate --part` reads


def _rows(
    artifacts: Path, data_dirs, use_all: bool, test_of: Path | None = None, part: str = "test"
) -> tuple[pd.DataFrame, list[dict]]:
    """(rows to evaluate, files that could not be read: data.scan's {path, root, error}).
    `test_of`: another model folder, whose split.csv's `part` rows are evaluated instead."""
    if test_of is not None:
        if not (Path(test_of) / SPLIT).is_file():
            raise ValueError(
                f"--test-of {str(test_of)!r}: no {SPLIT} there (a model folder written by train)"
            )
        table = read_csv(Path(test_of), SPLIT)
        return table[table.split == part], []
    if data_dirs and use_all:
        files = data.find_all(data_dirs)
        scanned = data.scan(files)
        for bad in scanned.unreadable:  # stderr: stdout carries the JSON
            print(f"skipped unreadable file: {bad['error']}", file=sys.stderr)
        groups = split.duplicate_groups(list(scanned.images.sha256), scanned.thumbs, 0.02)
        return scanned.images.assign(group=groups, split="all"), list(scanned.unreadable)
    table = read_csv(artifacts, SPLIT)
    table = table[table.split == part]
    if data_dirs:  # the model's test split, read from another copy of the data
        if len(data_dirs) != 1:
            raise ValueError("give one --data-dir for the test split, or use --all")
        table = table.assign(root=data_dirs[0])
    return table, []


def run(
    artifacts="artifacts",
    data_dirs=None,
    use_all=False,
    n_boot=1000,
    threshold=None,
    save=False,
    test_of=None,
    part="test",
) -> dict:
    """The model in `artifacts` on its test split, with `use_all` on every image under
    `data_dirs`, or with `test_of` on another model folder's test split (two models compared on
    identical files). The latter two give figures per source besides, and within each per
    sequence and per institution where a files.csv gives them, and so does its own test split.
    `save` records `use_all`'s in metrics.json (EXTERNAL, scans the model never saw only), or
    its own test split's per-source figures (TEST_SOURCES, with the guard's share). `part`
    "val" reads the validation rows instead of the test rows (to judge a lever off the test
    split)."""
    artifacts = Path(artifacts)
    refuse(use_all, data_dirs, save, threshold, test_of, part)
    predictor = Predictor(artifacts)  # first: a broken model folder fails before the scan
    table, unread = _rows(artifacts, data_dirs, use_all, test_of, part)
    if save and use_all:
        never_seen(artifacts, table)
    table, errors = scored(predictor, table, unread)
    thr = predictor.threshold if threshold is None else threshold
    grouped = metrics.group_level(table)
    out = {
        "summary": {
            "images": int(len(table)),
            "unreadable": len(errors),
            "threshold": thr,
            FLAGGED: int(table.ood.sum()),
        },
        "files": metrics.report(table.label, table.probability, thr, n_boot),
        "groups": metrics.report(grouped.label, grouped.probability, thr, n_boot),
        "errors": errors,
    }
    m = out["files"]["metrics"]
    out["summary"] |= {k: round(m[k]["value"], 4) for k in ("accuracy", "roc_auc")}
    if table.label.nunique() == 2:
        out["summary"]["local_threshold"] = local_threshold(table.label, table.probability)
    out["sources"] = by_source(artifacts, table, thr, n_boot)
    out["summary"]["sources"] = {
        src: breakdown.brief(block, rates) for src, block in out["sources"].items()
    }
    if save and use_all:
        block = external_block(artifacts, out, data_dirs, predictor.card.get("model_sha256"))
        update_metrics(artifacts, {EXTERNAL: block})
    elif save:
        update_metrics(artifacts, {TEST_SOURCES: own_test_block(out, predictor.card)})
    return out


def scored(predictor, table: pd.DataFrame, unread: list[dict]) -> tuple[pd.DataFrame, list]:
    """(`table`'s readable rows with probability and ood, every file's {file, error}: those the
    scan could not read and those the predictor could not)."""
    results = predictor.predict_files(
        [Path(r) / p for r, p in zip(table.root, table.path, strict=True)]
    )
    ok = [("error" not in r) for r in results]
    unread = [{"file": str(Path(b["root"]) / b["path"]), "error": b["error"]} for b in unread]
    errors = unread + [r for r in results if "error" in r]
    table = table[ok].assign(
        probability=[r["probability"] for r in results if "error" not in r],
        ood=[r["out_of_distribution"] for r in results if "error" not in r],
    )
    return table, errors


def own_test_block(result: dict, card: dict) -> dict:
    """metrics.json's TEST_SOURCES as `evaluate --save` measured it on the model's own test
    split: each source's block (sequences, institutions nested) saying what measured it."""
    ran = {
        "measured_by": "`neuroscan evaluate --save`",
        "date": dt.date.today().isoformat(),
        "model_sha256": card.get("model_sha256"),
    }
    return breakdown.merged(result["sources"], {}, ran)


def refuse(use_all, data_dirs, save, threshold, test_of, part="test") -> None:
    """ValueError for a combination of `run`'s options that cannot be honoured."""
    if part not in PARTS:
        raise ValueError(f"--part {part!r}: choose one of {', '.join(PARTS)}")
    if part != "test" and (use_all or save):
        raise ValueError(f"--part {part} reads a split.csv: it takes no --all or --save")
    if test_of is not None and (use_all or data_dirs or save):
        raise ValueError(
            "--test-of reads the files and their roots from that model's split.csv: "
            "it takes no --all, --data-dir or --save"
        )
    if use_all and not data_dirs:
        raise ValueError("--all needs --data-dir")
    if save and not use_all and threshold is not None:
        raise ValueError(
            "--save records the own test split at the model's threshold: drop --threshold"
        )
    if save and data_dirs and not use_all:
        raise ValueError(
            "--save records the model on folders it never saw (--all) or on its own test split "
            "(no --data-dir): the test split read from another copy of the data is not saved"
        )


def by_source(artifacts: Path, table: pd.DataFrame, threshold, n_boot: int) -> dict:
    """{source: report} of scored `table` (probability, ood), each source's sequences and
    institutions nested where a files.csv gives them, with the share the guard flagged."""
    settings = dataclasses.replace(Settings.from_json(artifacts / SETTINGS), bootstrap=n_boot)
    probs = table.probability.to_numpy()
    return flagged(breakdown.nested(table, probs, threshold, settings, 1), table)


def flagged(sources: dict, table: pd.DataFrame) -> dict:
    """`sources` ({source: block}, sequences and institutions nested) with each block's share of
    files the out-of-distribution guard flagged ("flagged_out_of_distribution": {n, share})."""
    src, ood = data.sources(table).to_numpy(), table.ood.to_numpy(bool)

    def entry(rows) -> dict:
        return {"n": int(ood[rows].sum()), "share": round(float(ood[rows].mean()), 4)}

    out = {}
    for name, block in sources.items():
        mine = src == name
        block = block | {FLAGGED: entry(mine)}
        for key, column in BREAKDOWNS.items():
            if isinstance(block.get(key), dict):
                values = breakdown.values_of(table, column)
                block[key] = {
                    value: one | {FLAGGED: entry(mine & (values == value))}
                    for value, one in block[key].items()
                }
        out[name] = block
    return out


def rates(block: dict) -> dict:
    """The defined ones of balanced accuracy, sensitivity and specificity, rounded, and the share
    the guard flagged when the block has it."""
    keys = ("balanced_accuracy", "sensitivity", "specificity")
    values = {k: block["metrics"].get(k, {}).get("value") for k in keys}
    out = {k: round(v, 4) for k, v in values.items() if v is not None and v == v}
    if isinstance(block.get(FLAGGED), dict):
        out["flagged_by_guard"] = block[FLAGGED]["share"]
    return out


def never_seen(artifacts: Path, table: pd.DataFrame) -> None:
    """ValueError naming a file, unless no file of `table` is in the model's split.csv (the
    scans it was trained, validated or tested on)."""
    seen = table[table.sha256.isin(set(read_csv(artifacts, SPLIT).sha256))]
    if len(seen):
        first = Path(seen.root.iloc[0]) / seen.path.iloc[0]
        raise ValueError(
            f"--save records the model on scans it never saw, but {len(seen)} of these files "
            f"are in its split.csv (trained, validated or tested on), e.g. {str(first)!r}: "
            "leave those folders out or drop --save"
        )


def external_block(artifacts: Path, result: dict, data_dirs, model_sha256: str | None) -> dict:
    """metrics.json's EXTERNAL block: LOSO's layout ("pooled", "sources" with "trained_on",
    each source's sequences and institutions nested in its block) for the model itself, and
    what it was measured on."""
    trained_on = sorted(set(data.sources(read_csv(artifacts, SPLIT))))
    return {
        "pooled": result["files"],
        "sources": breakdown.merged(result["sources"], {}, {"trained_on": trained_on}),
        "recipe": "the model itself (whole recipe as trained)",
        "groups": "source: whole folders none of whose files (by sha256; near copies are not "
        "checked) the model was trained, validated or tested on",
        "data_dirs": [str(d) for d in data_dirs],
        "model_sha256": model_sha256,
        "unreadable": result["summary"]["unreadable"],
        FLAGGED: result["summary"][FLAGGED],
        "date": dt.date.today().isoformat(),
    }


def local_threshold(labels, probs) -> dict:
    """The threshold that would suit these scans (Youden's J, as training picks it on
    validation), with its sensitivity and specificity here. Fit it on one set of local scans
    and check it on another before using it (--threshold)."""
    y, p = np.asarray(labels), np.asarray(probs)
    thr = metrics.choose_threshold(y, p)
    pred = p >= thr
    return {
        "threshold": thr,
        "sensitivity": round(float(pred[y == 1].mean()), 4),
        "specificity": round(float((~pred[y == 0]).mean()), 4),
    }


def shortcut(artifacts="artifacts", data_dir=None, side: int = 256) -> dict:
    """The shortcut check on a saved model's test split: pad to side x side, re-encode as PNG."""
    from tumor_model.evaluation.protocols import (
        shortcut_block,  # imports keras: only when the check is asked for
    )

    artifacts = Path(artifacts)
    predictor = Predictor(artifacts)
    settings = Settings.from_json(artifacts / SETTINGS)
    table, _ = _rows(artifacts, [data_dir] if data_dir else None, False)
    preds = read_csv(artifacts, PREDICTIONS)[["path", "root", "probability"]]
    table = (
        table.merge(preds, on=["path", "root"])
        if not data_dir
        else table.merge(preds.drop(columns="root"), on="path")
    )
    return shortcut_block(predictor.model, table, predictor.threshold, settings, side)
