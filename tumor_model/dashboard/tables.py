"""The DataFrames and text of metrics.json that several pages show (no Streamlit here): metric
formatting, the evaluation protocols, the results and fold tables, how the model travels.

Metrics are computed by `tumor_model.metrics`; this module only selects, names and formats. The
page-specific tables are in `card` (the model and its card), `evaluation`, `history` (training)
and `predict`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tumor_model import artifacts
from tumor_model.config import DISPLAY_NAMES
from tumor_model.metrics import POINT_METRICS, ROW_METRICS, cv_rows

PERCENT = {*POINT_METRICS, "fraction_tumor"}  # shown as percentages


LABELS = {
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "precision": "Precision",
    "f1": "F1",
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC",
    "brier": "Brier score",
    "ece": "ECE",
}


SHOWN = DISPLAY_NAMES  # class names as every page says them (config.DISPLAY_NAMES)


NOT_DEFINED = "–"  # an en dash: st.table renders a cell "-" as a list bullet


def metric_items(block: dict | None) -> dict:
    """name -> {"value", "ci_low", "ci_high"} of a metrics.json block (flat or under "metrics")."""
    if not isinstance(block, dict):
        return {}
    inner = block.get("metrics", block)
    return {k: v for k, v in inner.items() if isinstance(v, dict) and "value" in v}


def fmt_value(name: str, value) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{100 * value:.1f}%" if name in PERCENT else f"{value:.3f}"


def ci_text(name: str, m: dict) -> str:
    """'95% CI 90.2%–95.4%', or '' without an interval."""
    lo, hi = m.get("ci_low"), m.get("ci_high")
    if lo is None or hi is None:
        return ""
    return f"95% CI {fmt_value(name, lo)}–{fmt_value(name, hi)}"


def fmt_ci(name: str, m: dict) -> str:
    """'93.1% (95% CI 90.2%–95.4%)'."""
    ci = ci_text(name, m)
    return f"{fmt_value(name, m.get('value'))} ({ci})" if ci else fmt_value(name, m.get("value"))


def fmt_cell(name: str, m: dict) -> str:
    """Compact 'value (ci_low–ci_high)' for tables: '93.1% (90.2–95.4)'."""
    value = fmt_value(name, m.get("value"))
    lo, hi = m.get("ci_low"), m.get("ci_high")
    if lo is None or hi is None:
        return value
    scale, digits = (100, 1) if name in PERCENT else (1, 3)
    return f"{value} ({scale * lo:.{digits}f}–{scale * hi:.{digits}f})"


def metrics_frame(items: dict) -> pd.DataFrame:
    """One row per metric: metric, value, ci_low, ci_high, and a formatted 'reported' column."""
    rows = [
        {
            "metric": LABELS.get(k, k),
            "value": m.get("value"),
            "ci_low": m.get("ci_low"),
            "ci_high": m.get("ci_high"),
            "reported": fmt_ci(k, m),
        }
        for k, m in items.items()
    ]
    return pd.DataFrame(rows, columns=["metric", "value", "ci_low", "ci_high", "reported"])


def page_of(frame: pd.DataFrame, page: int, per_page: int) -> pd.DataFrame:
    """Rows of the 1-based `page` (clipped to the pages there are)."""
    pages = max(1, -(-len(frame) // per_page))
    page = min(max(int(page), 1), pages)
    return frame.iloc[(page - 1) * per_page : page * per_page]


def reported_protocols(metrics: dict | None) -> dict[str, tuple[str, str]]:
    """The contract's protocols that hold metrics in metrics.json -> (short, long) name."""
    names = artifacts.protocol_names(metrics)
    return {k: v for k, v in names.items() if metric_items((metrics or {}).get(k))}


def absent_protocols(metrics: dict | None) -> list[str]:
    """Short names of the contract's protocols that metrics.json does not report."""
    present = reported_protocols(metrics)
    return [short for key, (short, _) in artifacts.PROTOCOLS.items() if key not in present]


def protocol_caption(metrics: dict | None) -> str:
    """What the protocol table's cells and test rows are."""
    names = {**artifacts.PROTOCOLS, **artifacts.protocol_names(metrics)}
    (short, long), (_, groups) = names[artifacts.TEST], names[artifacts.TEST_GROUPS]
    return f"Cells: value (95% CI). {short} = {long}; per group = {groups}."


RESULT_METRICS = ("accuracy", "sensitivity", "specificity", "roc_auc", "ece")


def results_table(metrics: dict, names=RESULT_METRICS) -> pd.DataFrame:
    """The results table: one row per evaluation protocol present in metrics.json (in the
    contract's order), cells = 'value (95% CI)'. The one place its rows are built."""
    rows = []
    for key, (short, _) in reported_protocols(metrics).items():
        items, folds = metric_items(metrics[key]), metrics[key].get("folds")
        folds = str(folds) if folds else NOT_DEFINED
        row = {"protocol": short, "n": metrics[key].get("n"), "folds": folds}
        row.update({LABELS[k]: fmt_cell(k, items[k]) if k in items else "n/a" for k in names})
        rows.append(row)
    return pd.DataFrame(rows, columns=["protocol", "n", "folds", *(LABELS[k] for k in names)])


def fold_table(metrics: dict | None) -> pd.DataFrame:
    """One row per cross-validation fold present in metrics.json: protocol, fold, files,
    accuracy (at that fold's own validation-chosen threshold)."""
    rows = []
    for key, (short, _) in artifacts.protocol_names(metrics).items():
        block = metrics[key]
        if not block.get("fold_accuracy"):
            continue
        sizes = block.get("fold_size") or [None] * len(block["fold_accuracy"])
        for k, (acc, n) in enumerate(zip(block["fold_accuracy"], sizes, strict=False), 1):
            rows.append({"protocol": short, "fold": k, "files": n, "accuracy": float(acc)})
    return pd.DataFrame(rows, columns=["protocol", "fold", "files", "accuracy"])


TRAVEL_NAMES = {
    artifacts.LOSO: "Leave-one-source-out",
    f"{artifacts.LOSO}: pooled": "Leave-one-source-out, pooled",
    f"{artifacts.LOSO}: twin absent": "Leave-one-source-out, twin absent",
    artifacts.LOSO_FINE_TUNED: "Leave-one-source-out, fine-tuned",
    f"{artifacts.LOSO_FINE_TUNED}: pooled": "Leave-one-source-out, fine-tuned, pooled",
    f"{artifacts.LOSO_FINE_TUNED}: twin absent": "Leave-one-source-out, fine-tuned, twin absent",
    artifacts.EXTERNAL: "This model on a source it never saw",
    f"{artifacts.EXTERNAL}: pooled": "This model on sources it never saw, pooled",
}


def travel_rows(metrics: dict | None) -> pd.DataFrame | None:
    """How the model travels, from metrics.json: the cross-source CV (image sizes kept whole)
    with its rows per source, and the leave-one-source-out CV with, for a one-class source, the
    rate a head trained on the two-class sources alone gets ("twin absent"); a source whose
    files.csv names sequences and institutions gets a row for each. Rates as
    percentages; NOT_DEFINED where a metric is undefined (a one-class source has one rate)."""
    keep = {
        k: v
        for k, v in (metrics or {}).items()
        if k.startswith("cv_source") or k in artifacts.SOURCE_BLOCKS
    }
    rows = cv_rows(keep)
    if not rows:
        return None
    names = {**TRAVEL_NAMES, **{k: v[0] for k, v in artifacts.protocol_names(metrics).items()}}
    frame = pd.DataFrame(rows)

    def named(block: str) -> str:  # "external: by sequence" -> "This model ..., by sequence"
        key, by, part = block.partition(": by ")
        return names.get(block, block) if not by else f"{names.get(key, key)}, by {part}"

    frame["block"] = frame["block"].map(named)
    held = frame["held_out"].where(~frame["block"].str.startswith("Cross-source"), "each size fold")
    frame["held_out"] = held
    for k in ("balanced_accuracy", "sensitivity", "specificity"):
        frame[k] = frame[k].map(lambda v: NOT_DEFINED if v is None or v != v else f"{v:.1%}")
    for k in ("roc_auc", "ece"):
        frame[k] = frame[k].map(lambda v: NOT_DEFINED if v is None or v != v else f"{v:.3f}")
    frame["files"] = frame["files"].map(lambda v: "" if v is None or v != v else f"{int(v):,}")
    shown = {k: LABELS.get(k, k) for k in ROW_METRICS}
    columns = {"block": "evaluation", "held_out": "held out", "trained_on": "trained on", **shown}
    return frame.rename(columns=columns).fillna("")
