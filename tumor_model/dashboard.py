"""Pure helpers for the Streamlit dashboard: artifact loading, threshold metrics, plotly figures.

Nothing here imports streamlit (except `through_main_script`): the pages wrap these functions in
`st.cache_data` and render.
Every loader raises `ArtifactError` (a message naming the file and the rebuild command) instead of
a traceback-worthy exception.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import functools
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import ImageOps
from plotly.subplots import make_subplots

from . import evaluate
from .config import AUGMENTATIONS, CLASS_NAMES, HISTORY_COLUMNS
from .imageio import ImageLoadError, load_image

APP_DIR = Path(__file__).resolve().parent.parent  # where streamlit_app.py lives
ARTIFACTS_ENV, DATA_ENV = "NEUROSCAN_ARTIFACTS", "NEUROSCAN_DATA_DIR"
WEIGHTS = "../shared/weights/mobilenet_v2_1.0_224_tfslim_imagenet_no_top.h5"
REBUILD = f"python -m tumor_model train --data-dir <dataset> --weights {WEIGHTS}"
COLUMNS = {
    "history.csv": HISTORY_COLUMNS,
    "predictions.csv": ["path", "root", "split", "group", "label", "probability"],
    "split.csv": ["path", "root", "sha256", "group", "label", "split"],
    "samples/samples.csv": ["file", "label", "class_name"],
}
COLORS = {"healthy": "#2a9d8f", "tumor": "#e76f51", "train": "#264653", "val": "#e9c46a"}
PERCENT = {
    "accuracy",
    "sensitivity",
    "specificity",
    "precision",
    "f1",
    "npv",
    "balanced_accuracy",
    "fraction_tumor",
}
LABELS = {
    "accuracy": "Accuracy",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "precision": "Precision",
    "f1": "F1",
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC",
    "brier": "Brier score",
    "ece": "ECE",
    "npv": "NPV",
}
PROTOCOLS = {
    "test": "Duplicate-group split, test files (default, honest)",
    "test_groups": "Duplicate-group split, test groups (each group once)",
    "random_split": "Random split (the report's protocol, leaks duplicates)",
    "cv": "Grouped cross-validation (frozen features + head)",
    "cv_source": "Cross-source CV: image sizes kept whole across folds (frozen features + head)",
    "cv_fine_tuned": "Grouped cross-validation of the whole recipe (head + fine-tuning per fold)",
    "cv_source_fine_tuned": "Cross-source CV of the whole recipe (head + fine-tuning per fold)",
    "cv_fine_tuned_gpu": (
        "Grouped cross-validation of the whole recipe, run by its JAX port on a GPU "
        "(benchmarks/gpu_cv.py; same folds and weights, images sent as JPEG)"
    ),
    "cv_source_fine_tuned_gpu": (
        "Cross-source CV of the whole recipe, run by its JAX port on a GPU "
        "(benchmarks/gpu_cv.py; same folds and weights, images sent as JPEG)"
    ),
}
SHORT = {
    "test": "Group split",
    "test_groups": "Per group",
    "random_split": "Random split",
    "cv": "Grouped CV",
    "cv_source": "Cross-source CV",
    "cv_fine_tuned": "Grouped CV, fine-tuned",
    "cv_source_fine_tuned": "Cross-source CV, fine-tuned",
    "cv_fine_tuned_gpu": "Grouped CV, fine-tuned (GPU port)",
    "cv_source_fine_tuned_gpu": "Cross-source CV, fine-tuned (GPU port)",
}
TEST_SPLITS = {  # the model's own split (metrics.json "protocol") -> (short, long) test name
    "group": (SHORT["test"], PROTOCOLS["test"]),
    "source": (
        "Source split",
        "Source split, test files: duplicate groups and image sizes kept whole, so every test "
        "image has a size never seen in training",
    ),
    "random": ("Random split", "Random split, test files (the report's protocol, leaks copies)"),
}


class ArtifactError(RuntimeError):
    """An artifact is missing or unreadable; the message says which and how to rebuild it."""

    def __init__(self, directory: str | Path, name: str, problem: str):
        self.name = name
        super().__init__(
            f"Artifact {name!r} in {str(directory)!r} {problem}. Rebuild the artifacts with: "
            f"`{REBUILD}`"
        )


# ----------------------------------------------------------------------------- places


def artifacts_dir(env: dict | None = None) -> Path:
    """$NEUROSCAN_ARTIFACTS, else artifacts/ next to streamlit_app.py."""
    value = (os.environ if env is None else env).get(ARTIFACTS_ENV, "").strip()
    return Path(value).expanduser() if value else APP_DIR / "artifacts"


def data_dir(value: str | None) -> Path | None:
    """The dataset root typed by the user (or from $NEUROSCAN_DATA_DIR) when it is a folder."""
    text = (value or "").strip()
    if not text:
        return None
    path = Path(text).expanduser()
    for candidate in (path, APP_DIR / path):
        if candidate.is_dir():
            return candidate.resolve()
    return None


def session_data_dir(state, env: dict | None = None) -> str | None:
    """The dataset root the sidebar resolved ("data_root" in state), else $NEUROSCAN_DATA_DIR.

    Pages call this so that they also work when Streamlit runs them without the main script.
    """
    if "data_root" in state:
        return state["data_root"]
    root = data_dir((os.environ if env is None else env).get(DATA_ENV))
    return str(root) if root else None


def stamp(directory: str | Path, name: str) -> float:
    """Modification time of an artifact (cache key: a rebuilt file is re-read), -1 if absent."""
    try:
        return (Path(directory) / name).stat().st_mtime
    except OSError:
        return -1.0


def through_main_script() -> None:
    """Make Streamlit run this page through streamlit_app.py (sidebar, notice, page config).

    The one helper that touches Streamlit. Because the pages live in `pages/`, Streamlit starts in
    its old multipage mode and, when the first request of a fresh server (or AppTest) is a page,
    runs that file alone. st.navigation switches the mode off; this does so and reruns.
    """
    import streamlit as st
    from streamlit.runtime.pages_manager import PagesManager

    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, or None where the C library has none (macOS, musl, Windows)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_memory() -> bool:
    """Hand the heap memory freed by this script run back to the OS; True if it could.

    Streamlit runs every rerun in a new thread, and glibc keeps what those threads free in
    per-thread arenas: under 10 concurrent sessions the server's RSS climbed to the high-water
    mark of all reruns at once (docs/reliability.md). Called by the router after every page;
    costs about 2 ms with the model and explainer loaded (measured once, 2026-11-30)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


# ----------------------------------------------------------------------------- loading


def read_json(directory: str | Path, name: str) -> dict:
    path = Path(directory) / name
    if not path.is_file():
        raise ArtifactError(directory, name, "is missing")
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ArtifactError(directory, name, f"is unreadable ({err})") from err
    if not isinstance(value, dict):
        raise ArtifactError(directory, name, "is not a JSON object")
    return value


def read_csv(directory: str | Path, name: str) -> pd.DataFrame:
    path = Path(directory) / name
    if not path.is_file():
        raise ArtifactError(directory, name, "is missing")
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise ArtifactError(directory, name, f"is unreadable ({err})") from err
    missing = [c for c in COLUMNS.get(name, []) if c not in frame.columns]
    if missing:
        raise ArtifactError(directory, name, f"lacks the columns {missing}")
    return frame


def read_artifact(directory: str | Path, name: str, stamp: float | None = None):
    """A JSON artifact as a dict or a CSV artifact as a checked DataFrame.

    `stamp` is not used: callers pass the file's mtime so that `st.cache_data` re-reads a
    rebuilt artifact.
    """
    return read_json(directory, name) if name.endswith(".json") else read_csv(directory, name)


def image_path(root: str | Path, relative: str) -> Path:
    return Path(root) / relative


def load_preview(path: str | Path, side: int = 256) -> tuple[np.ndarray | None, str | None]:
    """(RGB uint8 side x side preview, the image fitted on black, None), or (None, why)."""
    try:
        img = load_image(Path(path))
    except ImageLoadError as err:
        return None, str(err)
    return np.asarray(ImageOps.pad(img.convert("RGB"), (side, side), color=(0, 0, 0))), None


# ----------------------------------------------------------------------------- metric blocks


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


def fmt_cell(name: str, m: dict) -> str:
    """Compact 'value (ci_low–ci_high)' for tables: '93.1% (90.2–95.4)'."""
    value = fmt_value(name, m.get("value"))
    lo, hi = m.get("ci_low"), m.get("ci_high")
    if lo is None or hi is None:
        return value
    scale, digits = (100, 1) if name in PERCENT else (1, 3)
    return f"{value} ({scale * lo:.{digits}f}–{scale * hi:.{digits}f})"


def protocol_names(metrics: dict | None) -> dict[str, tuple[str, str]]:
    """metrics.json key -> (short, long) protocol name; the test split is named after the split
    the model was trained on (group by default, or source / random)."""
    split = ((metrics or {}).get("protocol") or {}).get("split", "group")
    short, long = TEST_SPLITS.get(split, (f"{split} split", f"{split} split, test files"))
    names = {key: (SHORT[key], PROTOCOLS[key]) for key in PROTOCOLS}
    names["test"] = (short, long)
    names["test_groups"] = (SHORT["test_groups"], f"{short}, test groups (each group once)")
    return names


def protocol_table(metrics: dict, names=("accuracy", "sensitivity", "specificity", "roc_auc")):
    """Rows = evaluation protocols present in metrics.json, cells = 'value (95% CI)'."""
    rows = []
    for key, (short, _) in protocol_names(metrics).items():
        items = metric_items(metrics.get(key))
        if items:
            folds = metrics[key].get("folds")
            row = {
                "protocol": short,
                "n": metrics[key].get("n"),
                "folds": str(folds) if folds else "-",
            }
            row.update(
                {LABELS.get(k, k): fmt_cell(k, items[k]) if k in items else "n/a" for k in names}
            )
            rows.append(row)
    return pd.DataFrame(rows)


def fold_table(metrics: dict | None) -> pd.DataFrame:
    """One row per cross-validation fold present in metrics.json: protocol, fold, files,
    accuracy (at that fold's own validation-chosen threshold)."""
    rows = []
    for key, (short, _) in protocol_names(metrics).items():
        block = (metrics or {}).get(key)
        if not isinstance(block, dict) or not block.get("fold_accuracy"):
            continue
        sizes = block.get("fold_size") or [None] * len(block["fold_accuracy"])
        for k, (acc, n) in enumerate(zip(block["fold_accuracy"], sizes, strict=False), 1):
            rows.append({"protocol": short, "fold": k, "files": n, "accuracy": float(acc)})
    return pd.DataFrame(rows, columns=["protocol", "fold", "files", "accuracy"])


def headline(card: dict | None, metrics: dict | None, name: str = "accuracy") -> dict | None:
    """The test metric with CI: model_card test_metrics first, else metrics.json test block."""
    for items in (
        metric_items((card or {}).get("test_metrics")),
        metric_items((metrics or {}).get("test")),
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
        "Training data": ", ".join(settings.get("data_dirs", [])) or None,
        "Split": card.get("split", settings.get("split")),
        "Weights": card.get("weights_origin"),
        "Trained at": trained_when(card),
        "Training time (s)": card.get("train_seconds"),
    }
    return pd.DataFrame(
        [(k, str(v)) for k, v in facts.items() if v is not None], columns=["property", "value"]
    )


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
    return shown + (", loss weighted by class" if settings.get("class_weights") else "")


def data_counts(card: dict) -> pd.DataFrame:
    """model_card data_counts ({label: {split: n}}) as split x class counts."""
    counts = card.get("data_counts") or {}
    rows = [
        {"split": s, "class": CLASS_NAMES[int(lab)], "count": int(n)}
        for lab, per in counts.items()
        for s, n in per.items()
        if n == n
    ]
    return pd.DataFrame(rows, columns=["split", "class", "count"])


# ----------------------------------------------------------------------------- threshold metrics


def test_rows(predictions: pd.DataFrame) -> pd.DataFrame:
    return predictions[predictions.split == "test"].reset_index(drop=True)


def level(test: pd.DataFrame, groups: bool) -> pd.DataFrame:
    """File level as is, or one row per duplicate group (mean probability, majority label)."""
    return evaluate.group_level(test) if groups else test


def confusion(frame: pd.DataFrame, threshold: float) -> dict:
    """tp, fn, tn, fp at `threshold` (tumour when probability >= threshold)."""
    return evaluate.confusion(frame.label, frame.probability, threshold)


def _point_metrics(tp, fn, tn, fp) -> dict:
    """evaluate.point_metrics, vectorised over arrays of counts (nan where undefined)."""
    tp, fn, tn, fp = (np.asarray(a, dtype=float) for a in (tp, fn, tn, fp))
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "accuracy": (tp + tn) / (tp + tn + fp + fn),
            "sensitivity": tp / (tp + fn),
            "specificity": tn / (tn + fp),
            "precision": tp / (tp + fp),
            "f1": 2 * tp / (2 * tp + fp + fn),
        }


def threshold_metrics(
    frame: pd.DataFrame, threshold: float, n_boot: int = 1000, seed: int = 0
) -> dict:
    """Point metrics at `threshold` with 95% percentile bootstrap CIs (rows resampled)."""
    y = frame.label.to_numpy(dtype=int)
    pred = frame.probability.to_numpy(dtype=float) >= threshold
    cells = np.stack([pred & (y == 1), ~pred & (y == 1), ~pred & (y == 0), pred & (y == 0)])
    value = _point_metrics(*cells.sum(axis=1))
    idx = np.random.default_rng(seed).integers(0, len(y), (n_boot, len(y)))
    draws = _point_metrics(*(cells[:, idx].sum(axis=2)))
    out = {}
    for name, v in value.items():
        d = draws[name][np.isfinite(draws[name])]
        lo, hi = np.percentile(d, [2.5, 97.5]) if d.size else (np.nan, np.nan)
        out[name] = {"value": float(v), "ci_low": float(lo), "ci_high": float(hi)}
    return out


def score_items(block: dict | None, frame: pd.DataFrame) -> dict:
    """Threshold-free metrics: metrics.json values with CIs, else computed without CI."""
    items = metric_items(block)
    names = [n for n in evaluate.SCORE_METRICS if n in items]
    if names:
        return {n: items[n] for n in names}
    scores = evaluate.score_metrics(frame.label.to_numpy(int), frame.probability.to_numpy(float))
    return {n: {"value": v} for n, v in scores.items()}


def gallery_rows(test: pd.DataFrame, threshold: float, k: int = 8) -> dict:
    """Misclassified (most confident first) and least-confident test files, one per group."""
    margin = (test.probability - threshold).abs()
    wrong = (test.probability >= threshold).astype(int) != test.label
    frame = test.assign(margin=margin)

    def pick(rows, ascending):
        ordered = rows.sort_values(["margin", "path"], ascending=[ascending, True])
        return ordered.drop_duplicates("group").head(k)

    return {"misclassified": pick(frame[wrong], False), "least confident": pick(frame, True)}


# ----------------------------------------------------------------------------- figures: evaluation


def confusion_figure(conf: dict) -> go.Figure:
    """Heatmap coloured by row rate, annotated with count and rate."""
    counts = np.array([[conf["tn"], conf["fp"]], [conf["fn"], conf["tp"]]])
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.nan_to_num(counts / counts.sum(axis=1, keepdims=True))
    text = [
        [f"{c}<br>{100 * r:.1f}%" for c, r in zip(cr, rr, strict=True)]
        for cr, rr in zip(counts, rates, strict=True)
    ]
    names = list(CLASS_NAMES)
    fig = go.Figure(
        go.Heatmap(
            z=rates,
            x=[f"predicted {n}" for n in names],
            y=[f"actual {n}" for n in names],
            text=text,
            texttemplate="%{text}",
            textfont={"size": 18},
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar={"title": "row rate"},
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "Confusion matrix (count, rate per actual class)")


def fold_figure(folds: pd.DataFrame) -> go.Figure:
    """Accuracy of every CV fold, one column of points per protocol."""
    fig = go.Figure(
        go.Scatter(
            x=folds.protocol,
            y=100 * folds.accuracy,
            mode="markers",
            marker={"size": 10, "color": COLORS["train"], "opacity": 0.7},
            customdata=folds[["fold", "files"]],
            hovertemplate="fold %{customdata[0]}, %{customdata[1]} files: %{y:.1f}%<extra></extra>",
        )
    )
    fig.update_yaxes(title="fold accuracy (%)")
    return _layout(fig, "Accuracy of each cross-validation fold")


def roc_figure(frame: pd.DataFrame, threshold: float, auc: float | None) -> go.Figure:
    fpr, tpr, point = _roc(frame, threshold)
    fig = go.Figure(
        [
            go.Scatter(
                x=[0, 1],
                y=[0, 1],
                mode="lines",
                name="chance",
                line={"dash": "dot", "color": "grey"},
            ),
            go.Scatter(x=fpr, y=tpr, mode="lines", name="ROC", line={"color": COLORS["tumor"]}),
            go.Scatter(
                x=[point[0]],
                y=[point[1]],
                mode="markers",
                name=f"threshold {threshold:.3f}",
                marker={"size": 12, "color": "black", "symbol": "x"},
            ),
        ]
    )
    fig.update_xaxes(title="false positive rate (1 - specificity)", range=[0, 1])
    fig.update_yaxes(title="true positive rate (sensitivity)", range=[0, 1.02])
    return _layout(fig, f"ROC curve, AUC = {_num(auc)}")


def _roc(frame: pd.DataFrame, threshold: float):
    from sklearn.metrics import roc_curve

    y, p = frame.label.to_numpy(int), frame.probability.to_numpy(float)
    fpr, tpr, _ = roc_curve(y, p)
    c = confusion(frame, threshold)
    point = (_safe(c["fp"], c["fp"] + c["tn"]), _safe(c["tp"], c["tp"] + c["fn"]))
    return fpr, tpr, point


def pr_figure(frame: pd.DataFrame, threshold: float, ap: float | None) -> go.Figure:
    from sklearn.metrics import precision_recall_curve

    y, p = frame.label.to_numpy(int), frame.probability.to_numpy(float)
    precision, recall, _ = precision_recall_curve(y, p)
    c = confusion(frame, threshold)
    point = (_safe(c["tp"], c["tp"] + c["fn"]), _safe(c["tp"], c["tp"] + c["fp"]))
    fig = go.Figure(
        [
            go.Scatter(
                x=[0, 1],
                y=[y.mean()] * 2,
                mode="lines",
                name="prevalence",
                line={"dash": "dot", "color": "grey"},
            ),
            go.Scatter(
                x=recall, y=precision, mode="lines", name="PR", line={"color": COLORS["tumor"]}
            ),
            go.Scatter(
                x=[point[0]],
                y=[point[1]],
                mode="markers",
                name=f"threshold {threshold:.3f}",
                marker={"size": 12, "color": "black", "symbol": "x"},
            ),
        ]
    )
    fig.update_xaxes(title="recall (sensitivity)", range=[0, 1])
    fig.update_yaxes(title="precision", range=[0, 1.02])
    return _layout(fig, f"Precision-recall curve, AP = {_num(ap)}")


def calibration_table(frame: pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    """Equal-width bins of P(tumour): n, mean predicted probability, observed tumour fraction."""
    p, y = frame.probability.to_numpy(float), frame.label.to_numpy(int)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rows = [
        {
            "bin_low": edges[b],
            "bin_high": edges[b + 1],
            "n": int((which == b).sum()),
            "mean_probability": float(p[which == b].mean()),
            "fraction_tumor": float(y[which == b].mean()),
        }
        for b in range(bins)
        if (which == b).any()
    ]
    return pd.DataFrame(
        rows, columns=["bin_low", "bin_high", "n", "mean_probability", "fraction_tumor"]
    )


def calibration_figure(table: pd.DataFrame) -> go.Figure:
    fig = go.Figure(
        [
            go.Scatter(
                x=[0, 1],
                y=[0, 1],
                mode="lines",
                name="perfect calibration",
                line={"dash": "dot", "color": "grey"},
            ),
            go.Scatter(
                x=table.mean_probability,
                y=table.fraction_tumor,
                mode="lines+markers",
                name="model",
                text=[f"n = {n}" for n in table.n],
                line={"color": COLORS["tumor"]},
                marker={"size": 6 + 18 * np.sqrt(table.n / max(table.n.max(), 1))},
            ),
        ]
    )
    fig.update_xaxes(title="mean predicted P(tumour)", range=[0, 1])
    fig.update_yaxes(title="observed fraction tumour", range=[0, 1.02])
    return _layout(fig, "Reliability diagram")


# ----------------------------------------------------------------------------- figures: training


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


def history_figure(history: pd.DataFrame) -> go.Figure:
    """Loss, accuracy, AUC per epoch; train solid, validation dashed; phases and choice marked."""
    frame, best = history_steps(history), chosen_epoch(history)
    panels = [("loss", "Loss"), ("accuracy", "Accuracy"), ("auc", "AUC")]
    fig = make_subplots(rows=1, cols=3, subplot_titles=[t for _, t in panels])
    for col, (metric, _) in enumerate(panels, start=1):
        for prefix, name, dash in (("", "train", "solid"), ("val_", "validation", "dash")):
            fig.add_trace(
                go.Scatter(
                    x=frame.step,
                    y=frame[prefix + metric],
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    mode="lines+markers",
                    marker={"size": 4},
                    line={"dash": dash, "color": COLORS["train" if prefix == "" else "val"]},
                    customdata=frame[["phase", "epoch"]],
                    hovertemplate="%{customdata[0]} epoch %{customdata[1]}: %{y:.4f}",
                ),
                row=1,
                col=col,
            )
        fig.add_trace(
            go.Scatter(
                x=[best.step],
                y=[best["val_" + metric]],
                mode="markers",
                name="chosen (best val_loss)",
                legendgroup="chosen",
                showlegend=col == 1,
                marker={"symbol": "star", "size": 16, "color": "crimson"},
            ),
            row=1,
            col=col,
        )
        fig.add_vline(
            x=best.step, line={"color": "crimson", "dash": "dot", "width": 1}, row=1, col=col
        )
    for step in _phase_starts(frame):
        fig.add_vline(x=step - 0.5, line={"color": "grey", "dash": "dash", "width": 1})
    fig.update_xaxes(title="epoch (head, then fine-tune)")
    return _layout(fig, None, height=420)


def _phase_starts(frame: pd.DataFrame) -> list:
    change = frame.phase.ne(frame.phase.shift()) & (frame.index > 0)
    return frame.step[change].tolist()


def phase_summary(history: pd.DataFrame) -> pd.DataFrame:
    """Per phase: epochs, best validation loss, its epoch, seconds."""
    frame = history_steps(history)
    rows = []
    for phase, part in frame.groupby("phase", sort=False):
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


# ----------------------------------------------------------------------------- figures: dataset


def class_counts(split: pd.DataFrame) -> pd.DataFrame:
    """Image counts per split and class, plus an 'all' split."""
    frame = pd.concat([split.assign(split="all"), split])
    counts = frame.groupby(["split", "label"]).size().reset_index(name="count")
    counts["class"] = counts.label.map(dict(enumerate(CLASS_NAMES)))
    order = ["all", "train", "val", "test"]
    order += sorted(set(counts.split) - set(order))
    counts["split"] = pd.Categorical(counts.split, categories=order, ordered=True)
    counts = counts.sort_values(["split", "label"])
    counts["split"] = counts.split.astype(str)
    return counts[["split", "class", "count"]].reset_index(drop=True)


def class_balance_figure(counts: pd.DataFrame) -> go.Figure:
    fig = go.Figure(
        [
            go.Bar(
                x=part.split,
                y=part["count"],
                name=name,
                text=part["count"],
                marker_color=COLORS[name],
            )
            for name, part in ((n, counts[counts["class"] == n]) for n in CLASS_NAMES)
        ]
    )
    fig.update_layout(barmode="group")
    fig.update_yaxes(title="images")
    return _layout(fig, "Class balance, overall and per split")


def sample_rows(frame: pd.DataFrame, n: int, seed: int, class_name: str | None = None):
    """n random rows (all if fewer), optionally of one class."""
    if class_name in CLASS_NAMES:
        frame = frame[frame.label == CLASS_NAMES.index(class_name)]
    return frame.sample(min(n, len(frame)), random_state=seed).reset_index(drop=True)


def split_images(split: pd.DataFrame, root: str | Path) -> pd.DataFrame:
    """split.csv rows with 'image' (a path under the dataset root) and 'caption'."""
    return split.assign(
        image=[str(image_path(root, p)) for p in split.path],
        caption=[
            f"{CLASS_NAMES[lab]} · {s}" for lab, s in zip(split.label, split.split, strict=True)
        ],
    )


def sample_images(samples: pd.DataFrame, directory: str | Path) -> pd.DataFrame:
    """samples.csv rows with 'image' (the shipped thumbnail) and 'caption'."""
    folder = Path(directory) / "samples"
    return samples.assign(
        image=[str(folder / f) for f in samples.file],
        caption=[CLASS_NAMES[int(lab)] for lab in samples.label],
    )


def size_figure(summary: dict) -> go.Figure:
    """Width, height and file size per class as boxes drawn from the summary's quantiles."""
    panels = [
        ("width", "width (px)", 1),
        ("height", "height (px)", 1),
        ("file_bytes", "file size (KB)", 1024),
    ]
    fig = make_subplots(rows=1, cols=3, subplot_titles=[t for _, t, _ in panels])
    classes = summary.get("classes", {})
    for col, (key, _, scale) in enumerate(panels, start=1):
        for name in CLASS_NAMES:
            d = classes.get(name, {}).get(key) or {}
            if "median" not in d:
                continue
            q = {k: [d[k] / scale] for k in ("min", "p25", "median", "p75", "max", "mean")}
            fig.add_trace(
                go.Box(
                    x=[name],
                    q1=q["p25"],
                    median=q["median"],
                    q3=q["p75"],
                    lowerfence=q["min"],
                    upperfence=q["max"],
                    mean=q["mean"],
                    name=name,
                    marker_color=COLORS[name],
                    showlegend=col == 1,
                    legendgroup=name,
                ),
                row=1,
                col=col,
            )
    return _layout(fig, "Image size per class (min, quartiles, max, mean)", height=380)


def category_figure(summary: dict, key: str) -> go.Figure:
    """Stacked share of each file format (key='formats') or colour mode ('modes') per class."""
    classes = summary.get("classes", {})
    values = sorted({v for c in classes.values() for v in (c.get(key) or {})})
    fig = go.Figure()
    for value in values:
        counts = [classes.get(n, {}).get(key, {}).get(value, 0) for n in CLASS_NAMES]
        totals = [max(classes.get(n, {}).get("count", 0), 1) for n in CLASS_NAMES]
        fig.add_trace(
            go.Bar(
                x=list(CLASS_NAMES),
                y=[c / t for c, t in zip(counts, totals, strict=True)],
                name=value,
                customdata=counts,
                hovertemplate="%{y:.1%} (%{customdata})",
            )
        )
    fig.update_layout(barmode="stack")
    fig.update_yaxes(title="share of class", tickformat=".0%")
    return _layout(
        fig, f"{'File format' if key == 'formats' else 'Colour mode'} per class", height=360
    )


def duplicate_numbers(summary: dict) -> dict:
    """Headline numbers of the duplicate audit (only those present)."""
    dup = summary.get("duplicates") or {}
    numbers = {
        "Exact duplicate groups": dup.get("exact_groups"),
        "Redundant exact copies": dup.get("redundant_exact_copies"),
        "Exact cross-class groups": dup.get("exact_cross_class"),
        "Near-duplicate groups": dup.get("near_groups"),
        "Images in near groups": dup.get("images_in_near_groups"),
        "Largest group": dup.get("largest_group"),
        "Cross-class groups": (
            len(dup["cross_class_groups"])
            if isinstance(dup.get("cross_class_groups"), list)
            else None
        ),
    }
    return {k: int(v) for k, v in numbers.items() if v is not None}


def duplicate_examples(summary: dict, k: int = 4) -> list:
    """Up to k example groups, cross-class ones first: lists of {path, root, label}."""
    dup = summary.get("duplicates") or {}
    groups = (
        (dup.get("cross_class_groups") or [])
        + (dup.get("near_examples") or [])
        + (dup.get("exact_examples") or [])
    )
    seen, out = set(), []
    for g in groups:
        key = tuple(sorted(item["path"] for item in g))
        if key not in seen and len(g) > 1:
            seen.add(key)
            out.append(g)
    return out[:k]


def group_images(group: list, root: str | Path | None) -> pd.DataFrame:
    """A duplicate group ([{path, root, label}]) as rows with 'image', 'path' and 'caption'."""
    frame = pd.DataFrame(group, columns=["path", "root", "label"])
    base = [root or r for r in frame.root]
    return frame.assign(
        image=[str(image_path(b, p)) for b, p in zip(base, frame.path, strict=True)],
        caption=[
            f"{CLASS_NAMES[int(lab)]} · {p}" for lab, p in zip(frame.label, frame.path, strict=True)
        ],
    )


# ----------------------------------------------------------------------------- shared


def _layout(fig: go.Figure, title: str | None, height: int = 400) -> go.Figure:
    fig.update_layout(
        title=title,
        height=height,
        margin={"l": 40, "r": 20, "t": 60, "b": 40},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def _round(value, digits: int = 4):
    return round(value, digits) if isinstance(value, float) else value


def _safe(a, b) -> float:
    return a / b if b else float("nan")


def _num(value) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3f}"
