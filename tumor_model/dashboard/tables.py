"""The DataFrames and text the dashboard shows, built from the artifacts (no Streamlit here).

Metrics are computed by `tumor_model.evaluate`; this module only selects, names and formats.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .. import artifacts, evaluate
from ..config import AUGMENTATIONS, CLASS_NAMES, DISPLAY_NAMES

PERCENT = {*evaluate.POINT_METRICS, "fraction_tumor"}  # shown as percentages
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

# ----------------------------------------------------------------------------- formatting


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


# ----------------------------------------------------------------------------- protocols


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


HEADLINE = {"accuracy": "Test accuracy", "roc_auc": "Test ROC AUC", "ece": "Test ECE (calibration)"}


def headline_block(card: dict | None, metrics: dict | None) -> dict:
    """The Overview's headline: the test split's accuracy, ROC AUC and ECE (with CIs) and, when
    reported, the cross-source CV accuracy; name -> {"label", "value", "ci", "key"}."""
    out = {}
    for name in ("accuracy", "roc_auc", "ece"):
        item = headline(card, metrics, name)
        if item is not None:
            out[name] = {"label": HEADLINE[name], "key": name, **_shown_item(name, item)}
    source = metric_items((metrics or {}).get("cv_source")).get("accuracy")
    if source is not None:
        label = f"{artifacts.PROTOCOLS['cv_source'][0]} accuracy"
        out["cv_source"] = {"label": label, "key": "accuracy", **_shown_item("accuracy", source)}
    return out


def headline_text(metrics: dict | None) -> str:
    """The sentence above the headline numbers: what they were measured on."""
    metrics = metrics or {}
    names = artifacts.protocol_names(metrics)
    test = metrics.get(artifacts.TEST) or {}
    text = f"**{names[artifacts.TEST][1]}**"
    if test.get("n"):
        text += f", {test['n']} test files"
    text += ": what to expect on new scans from the training sources."
    source = metrics.get("cv_source") or {}
    if metric_items(source):
        folds = f", {source['folds']} folds" if source.get("folds") else ""
        text += (
            f" {names['cv_source'][0]} ({source.get('n', '?')} files{folds}) tests each fold on "
            "image sizes never seen in training: closer to scans from elsewhere."
        )
    return text


def _shown_item(name: str, item: dict) -> dict:
    return {"value": fmt_value(name, item.get("value")), "ci": ci_text(name, item)}


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


# ----------------------------------------------------------------------------- the model


def headline(card: dict | None, metrics: dict | None, name: str = "accuracy") -> dict | None:
    """The test metric with CI: model_card test_metrics first, else metrics.json test block."""
    for items in (
        metric_items((card or {}).get("test_metrics")),
        metric_items((metrics or {}).get(artifacts.TEST)),
    ):
        if name in items:
            return items[name]
    return None


def trained_when(card: dict) -> str:
    """'2025-11-28 10:40 UTC' from the card's ISO trained_at, else the raw value or 'unknown'."""
    value = card.get("trained_at")
    try:
        moment = dt.datetime.fromisoformat(str(value)).astimezone(dt.UTC)
    except ValueError:
        return str(value) if value else "unknown"
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def model_facts(card: dict) -> pd.DataFrame:
    """What the model is, as a two-column table."""
    settings = card.get("settings") or {}
    facts = {
        "Backbone": card.get("backbone", settings.get("backbone")),
        "Input": f"{card.get('input_size', '?')} px RGB, geometry '{card.get('geometry', '?')}'",
        "Head": f"{card.get('head', settings.get('head', '?'))}, "
        f"Dense({settings.get('dense_units', '?')}) + Dropout({settings.get('dropout', '?')}) "
        "+ sigmoid",
        "Preprocessing": card.get("preprocessing"),
        "Fine-tuned layers": settings.get("fine_tune_layers"),
        "Fine-tuning augmentation": augmentation(settings),
        "Fine-tuning epoch": epoch_sampling(settings),
        "Decision threshold": _round(card.get("threshold")),
        "Temperature": _round(card.get("temperature")),
        "Training data": training_sources(card)
        or ", ".join(shown_path(d) for d in settings.get("data_dirs", []))
        or None,
        "Split": card.get("split", settings.get("split")),
        "Weights": _file_name(card.get("weights_origin")),
        "Trained at": trained_when(card),
        "Training time": minutes(card.get("train_seconds")),
    }
    return pd.DataFrame(
        [(k, str(v)) for k, v in facts.items() if v is not None], columns=["property", "value"]
    )


def training_sources(card: dict) -> str | None:
    """The model card's sources as 'name (files; one class: which)', None without them."""
    out = []
    for name, src in (card.get("sources") or {}).items():
        held = [DISPLAY_NAMES[c] for c, n in src.get("classes", {}).items() if n]
        only = f"; one class: {held[0]}" if src.get("single_class") and held else ""
        out.append(f"{name} ({src['files']:,} files{only})")
    return ", ".join(out) or None


def minutes(seconds) -> str | None:
    """'21 min 0 s' from seconds; None when not a number."""
    if not isinstance(seconds, (int, float)) or not np.isfinite(seconds):
        return None
    whole = int(round(seconds))
    return f"{whole // 60} min {whole % 60} s"


def _file_name(value) -> str | None:
    """The file name of a weights path (no folder of the machine that trained); None if unset."""
    return Path(str(value)).name if value not in (None, "") else None


def shown_path(path, base: str | Path | None = None) -> str:
    """A path as the dashboard shows it, never absolute: relative to the app folder (`base`,
    default places.APP_DIR) when in it or beside it (one '..'), else its last two names."""
    from .places import APP_DIR

    given = Path(str(path))
    if not given.is_absolute():
        return given.as_posix()
    # abspath, not resolve: a data folder beside the app that is a symlink stays "../shared/..."
    rel = Path(os.path.relpath(os.path.abspath(given), os.path.abspath(base or APP_DIR)))
    if rel.parts.count("..") <= 1:
        return rel.as_posix()
    return Path(*given.parts[-2:]).as_posix()


def augmentation(settings: dict) -> str | None:
    """The fine-tuning augmentation in words; None when the settings do not say."""
    if not settings.get("fine_tune_layers") or "augment" not in settings:
        return None
    if not settings["augment"]:
        return "none"
    words = ", ".join(AUGMENTATIONS)
    strength = settings.get("resample") or 0
    return words + (f", resolution (shrunk by up to {strength:.0%})" if strength else "")


def epoch_sampling(settings: dict) -> str | None:
    """What one fine-tuning epoch shows, in words; None for a model without fine-tuning.
    Cards from before `sample_groups` existed showed every file, as its default says."""
    if not settings.get("fine_tune_layers"):
        return None
    shown = (
        "one random file of each duplicate group"
        if settings.get("sample_groups", False)
        else "every training file"
    )
    if settings.get("balance_sources"):
        shown = f"as many of every source ({shown.replace('every training file', 'its files')})"
    if settings.get("mixup"):
        shown += f", mixed in pairs (mixup {settings['mixup']:g})"
    if settings.get("label_smoothing"):
        shown += f", targets smoothed by {settings['label_smoothing']:g}"
    return shown + (", loss weighted by class" if settings.get("class_weights") else "")


def data_counts(card: dict) -> pd.DataFrame:
    """model_card data_counts ({label: {split: n}}) as split x class counts."""
    counts = card.get("data_counts") or {}
    rows = [
        {"split": s, "class": DISPLAY_NAMES[CLASS_NAMES[int(lab)]], "count": int(n)}
        for lab, per in counts.items()
        for s, n in per.items()
        if n == n
    ]
    return pd.DataFrame(rows, columns=["split", "class", "count"])


def _round(value, digits: int = 4):
    return round(value, digits) if isinstance(value, float) else value


# ----------------------------------------------------------------------------- evaluation


def default_threshold(card: dict | None, metrics: dict | None) -> float:
    """The model's decision threshold: the card's, else the test block's, else 0.5."""
    for source in (card or {}, (metrics or {}).get(artifacts.TEST) or {}):
        if isinstance(source.get("threshold"), (int, float)):
            return float(source["threshold"])
    return 0.5


def test_rows(predictions: pd.DataFrame) -> pd.DataFrame:
    return predictions[predictions.split == "test"].reset_index(drop=True)


def level(test: pd.DataFrame, groups: bool) -> pd.DataFrame:
    """File level as is, or one row per duplicate group (mean probability, majority label)."""
    return evaluate.group_level(test) if groups else test


def threshold_metrics(frame: pd.DataFrame, threshold: float, n_boot: int = 1000, seed: int = 0):
    """Point metrics at `threshold` with 95% percentile bootstrap CIs (rows resampled)."""
    return evaluate.bootstrap_point_metrics(frame.label, frame.probability, threshold, n_boot, seed)


def stored_point_items(block: dict | None, threshold: float, model_threshold: float):
    """metrics.json's point metrics with their 95% CIs when `threshold` is the model's and the
    block was measured there (one source for every page), else None: the page then recomputes
    them for the threshold the user moved (`threshold_metrics`)."""
    items = metric_items(block)
    stored = {n: items[n] for n in evaluate.POINT_METRICS if n in items}
    measured_at = (block or {}).get("threshold", model_threshold)
    same = abs(float(threshold) - float(model_threshold)) < 1e-9
    if same and stored and abs(float(measured_at) - float(model_threshold)) < 1e-9:
        return stored
    return None


def score_items(block: dict | None, frame: pd.DataFrame) -> dict:
    """Threshold-free metrics: metrics.json values with CIs, else computed without CI."""
    items = metric_items(block)
    names = [n for n in evaluate.SCORE_METRICS if n in items]
    if names:
        return {n: items[n] for n in names}
    scores = evaluate.score_metrics(frame.label.to_numpy(int), frame.probability.to_numpy(float))
    return {n: {"value": v} for n, v in scores.items()}


def calibration_table(frame: pd.DataFrame, z: float = 1.96) -> pd.DataFrame:
    """The reliability table of `frame` (evaluate.calibration_bins: the 10 equal-width bins the
    ECE uses) with each bin's size `n` and a 95% Wilson interval of its observed fraction
    (`low`, `high`), so a bin of three images reads as the guess it is."""
    bins = evaluate.calibration_bins(frame.label, frame.probability)
    columns = ["bin_low", "bin_high", "n", "mean_probability", "fraction_tumor"]
    table = pd.DataFrame(bins, columns=columns)
    n, f = table.n.to_numpy(float), table.fraction_tumor.to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = (f + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(f * (1 - f) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return table.assign(low=np.clip(centre - half, 0, 1), high=np.clip(centre + half, 0, 1))


def gallery_rows(test: pd.DataFrame, threshold: float, k: int = 8) -> dict:
    """Every misclassified test file (most confident error first) and the k least-confident
    test files (one per duplicate group), each with 'file', 'truth', 'predicted' and 'caption'."""
    predicted = (test.probability >= threshold).astype(int)
    frame = test.assign(
        margin=(test.probability - threshold).abs(),
        file=[Path(str(p)).name for p in test.path],
        truth=[SHOWN[CLASS_NAMES[int(v)]] for v in test.label],
        predicted=[SHOWN[CLASS_NAMES[int(v)]] for v in predicted],
        predicted_label=predicted,
    )
    frame["caption"] = [
        f"{f} · truth {t} / predicted {q} · p={v:.3f}"
        for f, t, q, v in zip(
            frame.file, frame.truth, frame.predicted, frame.probability, strict=True
        )
    ]
    wrong = frame[predicted != test.label].sort_values(["margin", "path"], ascending=[False, True])
    least = frame.sort_values(["margin", "path"]).drop_duplicates("group").head(k)
    return {"misclassified": wrong.reset_index(drop=True), "least confident": least}


def page_of(frame: pd.DataFrame, page: int, per_page: int) -> pd.DataFrame:
    """Rows of the 1-based `page` (clipped to the pages there are)."""
    pages = max(1, -(-len(frame) // per_page))
    page = min(max(int(page), 1), pages)
    return frame.iloc[(page - 1) * per_page : page * per_page]


def results_frame(items: list[dict]) -> pd.DataFrame:
    """The Predict page's batch table: one row per scan, its result or why it has none."""
    rows = []
    for item in items:
        res = item.get("result")
        if res is None:
            rows.append({"file": item["name"], "error": item.get("error", "not predicted")})
        else:
            rows.append({**res, "label": SHOWN.get(res["label"], res["label"]), "error": ""})
    columns = ["file", "probability", "label", "band", "out_of_distribution", "ood_score"]
    frame = pd.DataFrame(rows).reindex(columns=[*columns, "threshold", "error"])
    for name, digits in ROUNDING.items():
        frame[name] = pd.to_numeric(frame[name], errors="coerce").round(digits)
    text = ["label", "band", "error"]
    frame[text] = frame[text].fillna("").astype(str)
    frame["out_of_distribution"] = frame.out_of_distribution.astype("boolean")
    return frame


ROUNDING = {"probability": 4, "threshold": 4, "ood_score": 2}  # digits in the table and CSV


# ----------------------------------------------------------------------------- training


def history_steps(history: pd.DataFrame) -> pd.DataFrame:
    """History in training order with a global 1-based 'step' across phases."""
    order = {"head": 0, "fine_tune": 1}
    frame = history.assign(_o=history.phase.map(order).fillna(2))
    frame = frame.sort_values(["_o", "epoch"], kind="stable").drop(columns="_o")
    return frame.reset_index(drop=True).assign(step=lambda d: np.arange(1, len(d) + 1))


def chosen_epoch(history: pd.DataFrame) -> pd.Series:
    """The row with the lowest validation loss (what early stopping keeps)."""
    frame = history_steps(history)
    return frame.loc[frame.val_loss.idxmin()]


def phase_summary(history: pd.DataFrame) -> pd.DataFrame:
    """Per phase: epochs, best validation loss, its epoch, seconds."""
    rows = []
    for phase, part in history_steps(history).groupby("phase", sort=False):
        best = part.loc[part.val_loss.idxmin()]
        rows.append(
            {
                "phase": phase,
                "epochs": len(part),
                "best val_loss": best.val_loss,
                "at epoch": int(best.epoch),
                "val_accuracy there": best.val_accuracy,
                "val_auc there": best.val_auc,
                "seconds": part.seconds.sum(),
            }
        )
    return pd.DataFrame(rows)


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
    rate a head trained on the two-class sources alone gets ("twin absent"). Rates as
    percentages; NOT_DEFINED where a metric is undefined (a one-class source has one rate)."""
    keep = {
        k: v
        for k, v in (metrics or {}).items()
        if k.startswith("cv_source") or k in artifacts.SOURCE_BLOCKS
    }
    rows = evaluate.cv_rows(keep)
    if not rows:
        return None
    names = {**TRAVEL_NAMES, **{k: v[0] for k, v in artifacts.protocol_names(metrics).items()}}
    frame = pd.DataFrame(rows)
    frame["block"] = frame["block"].map(lambda b: names.get(b, b))
    held = frame["held_out"].where(~frame["block"].str.startswith("Cross-source"), "each size fold")
    frame["held_out"] = held
    for k in ("balanced_accuracy", "sensitivity", "specificity"):
        frame[k] = frame[k].map(lambda v: NOT_DEFINED if v is None or v != v else f"{v:.1%}")
    for k in ("roc_auc", "ece"):
        frame[k] = frame[k].map(lambda v: NOT_DEFINED if v is None or v != v else f"{v:.3f}")
    frame["files"] = frame["files"].map(lambda v: "" if v is None or v != v else f"{int(v):,}")
    shown = {k: LABELS.get(k, k) for k in evaluate.ROW_METRICS}
    columns = {"block": "evaluation", "held_out": "held out", "trained_on": "trained on", **shown}
    return frame.rename(columns=columns).fillna("")
