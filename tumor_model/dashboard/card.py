"""The model and its card as the dashboard shows them (no Streamlit here): the headline test
metrics, the Overview's facts table, and the sidebar's model panel, which for a model written by
`neuroscan adapt` (card "adapted") shows the adapted model's own facts, not the original's.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from tumor_model import artifacts
from tumor_model.config import AUGMENTATIONS, CLASS_NAMES, DISPLAY_NAMES
from tumor_model.dashboard.places import shown_path
from tumor_model.dashboard.tables import ci_text, fmt_value, metric_items

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
    return moment_text(card.get("trained_at"))


def moment_text(value) -> str:
    """'2025-11-28 10:40 UTC' from an ISO time, else the raw value or 'unknown'."""
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
    block = adapted(card)
    if block is not None:
        facts["Adapted at"] = moment_text(block.get("at"))
        facts["Adapted on"] = adapted_on(block)
        facts["Decision threshold"] = f"{facts['Decision threshold']} ({threshold_origin(card)})"
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


def augmentation(settings: dict) -> str | None:
    """The fine-tuning augmentation in words; None when the settings do not say."""
    if not settings.get("fine_tune_layers") or "augment" not in settings:
        return None
    if not settings["augment"]:
        return "none"
    words = ", ".join(AUGMENTATIONS)
    if settings.get("contrast_curve"):
        share = settings["contrast_curve"]
        words = f"random intensity curve and bias field ({share:.0%} of images), {words}"
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


# ----------------------------------------------------------------------------- adapted models

VALIDATION = "chosen on validation scans"
SITE = "chosen on the site's scans (out-of-fold)"


def adapted(card: dict | None) -> dict | None:
    """The card's `adapted` block (what `neuroscan adapt` changed), None for a trained model."""
    block = (card or {}).get(artifacts.ADAPTED)
    return block if isinstance(block, dict) else None


def threshold_origin(card: dict | None) -> str:
    """Where the model's decision threshold was chosen, in words."""
    return SITE if adapted(card) is not None else VALIDATION


def calibration_text(card: dict | None) -> str:
    """How the threshold and the temperature were chosen, as the Overview says it."""
    if adapted(card) is None:
        return (
            "The decision threshold and a temperature (calibration) were chosen on the validation "
            "split only."
        )
    return (
        "The classification head, the decision threshold and the temperature (calibration) were "
        "refitted by `neuroscan adapt` on a site's labelled scans, the threshold and temperature "
        "on out-of-fold predictions: " + adapted_on(adapted(card)) + "."
    )


def results_note(card: dict | None) -> str | None:
    """For an adapted model: the Overview's results are the original model's (None otherwise)."""
    block = adapted(card)
    if block is None:
        return None
    figure = ((block.get("figures") or {}).get("retrained") or {}).get("balanced_accuracy") or {}
    own = ""
    if "value" in figure:
        own = f" (balanced accuracy {fmt_value('balanced_accuracy', figure['value'])}, out-of-fold)"
    return (
        "This model was adapted by `neuroscan adapt`: the results below are those of the model "
        "it was adapted from, measured before adaptation. Its own figures are on the site's "
        f"scans{own}: the sidebar and the Your scans page."
    )


def adapted_on(block: dict) -> str:
    """'24 labelled scans of `site` (12 tumour, 12 healthy)' from an `adapted` block."""
    classes = block.get("local_classes") or {}
    words = {"tumor": "tumour", "healthy": "healthy"}  # as the "Your scans" page counts them
    counts = ", ".join(f"{classes[c]} {words[c]}" for c in words if c in classes)
    sources = ", ".join(f"`{s}`" for s in block.get("local_sources") or [])
    text = f"{block.get('local_scans', '?')} labelled scans"
    return text + (f" of {sources}" if sources else "") + (f" ({counts})" if counts else "")


def model_panel(card: dict, metrics: dict | None) -> dict:
    """What the sidebar says about the model: {"title" (markdown), "lines" (captions),
    "metric" ({"label", "value", "ci"}, or None)}. A trained model: its training date, where its
    threshold was chosen and its test accuracy. An adapted one: when and on what it was adapted,
    the threshold chosen on the site's scans and its out-of-fold balanced accuracy there (the
    original model's date and test figures are not this model's)."""
    threshold = card.get("threshold")
    threshold = f"{threshold:.3f}" if isinstance(threshold, (int, float)) else "?"
    title = (
        f"**{card.get('backbone', '?')}**, {card.get('input_size', '?')} px, threshold {threshold}"
    )
    block = adapted(card)
    if block is None:
        lines = [f"Trained {trained_when(card)}; threshold {VALIDATION}."]
        item, label, name = headline(card, metrics), "Test accuracy (group split)", "accuracy"
    else:
        source = str(block.get("from_model_sha256") or "")[:8]
        lines = [
            f"Adapted {moment_text(block.get('at'))} on {adapted_on(block)}"
            + (f", from model {source}" if source else "")
            + ".",
            f"Threshold {SITE}.",
        ]
        figures = (block.get("figures") or {}).get("retrained") or {}
        item, name = figures.get("balanced_accuracy"), "balanced_accuracy"
        label = "Balanced accuracy on the site's scans"
    metric = None
    if isinstance(item, dict) and "value" in item:
        metric = {"label": label, **_shown_item(name, item)}
        if block is not None:
            metric["ci"] = ", ".join(t for t in (metric["ci"], "out-of-fold") if t)
    return {"title": title, "lines": lines, "metric": metric}
