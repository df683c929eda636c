"""The dashboard's plotly figures: evaluation, training and dataset (no Streamlit here).

Each takes what the pages already hold (a predictions frame, a history, the dataset summary or
a table from `tables`) and returns a `go.Figure`; metrics come from `tumor_model.metrics`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tumor_model import metrics
from tumor_model.config import CLASS_NAMES, DISPLAY_NAMES
from tumor_model.dashboard.history import chosen_epoch, history_steps

COLORS = {"healthy": "#2a9d8f", "tumor": "#e76f51", "train": "#264653", "val": "#e9c46a"}

# ----------------------------------------------------------------------------- evaluation


def confusion_figure(conf: dict) -> go.Figure:
    """Heatmap coloured by row rate, annotated with count and rate."""
    counts = np.array([[conf["tn"], conf["fp"]], [conf["fn"], conf["tp"]]])
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.nan_to_num(counts / counts.sum(axis=1, keepdims=True))
    text = [
        [f"{c}<br>{100 * r:.1f}%" for c, r in zip(cr, rr, strict=True)]
        for cr, rr in zip(counts, rates, strict=True)
    ]
    names = [DISPLAY_NAMES[n] for n in CLASS_NAMES]
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
    """The ROC curve with the operating point at `threshold` marked."""
    roc, rates = _curves(frame, threshold)
    point = (1 - rates["specificity"], rates["sensitivity"])
    chance = _line([0, 1], [0, 1], "chance")
    fig = go.Figure([chance, _curve(roc["fpr"], roc["tpr"], "ROC"), _point(point, threshold)])
    fig.update_xaxes(title="false positive rate (1 - specificity)", range=[0, 1])
    fig.update_yaxes(title="true positive rate (sensitivity)", range=[0, 1.02])
    return _layout(fig, f"ROC curve, AUC = {_num(auc)}")


def pr_figure(frame: pd.DataFrame, threshold: float, ap: float | None) -> go.Figure:
    """The precision-recall curve with the operating point at `threshold` marked."""
    curves, rates = _curves(frame, threshold, "pr")
    point = (rates["sensitivity"], rates["precision"])
    prevalence = _line([0, 1], [frame.label.mean()] * 2, "prevalence")
    pr = _curve(curves["recall"], curves["precision"], "PR")
    fig = go.Figure([prevalence, pr, _point(point, threshold)])
    fig.update_xaxes(title="recall (sensitivity)", range=[0, 1])
    fig.update_yaxes(title="precision", range=[0, 1.02])
    return _layout(fig, f"Precision-recall curve, AP = {_num(ap)}")


def _curves(frame: pd.DataFrame, threshold: float, kind: str = "roc") -> tuple[dict, dict]:
    """Every point of the ROC or PR curve, and the point metrics at `threshold`."""
    y, p = frame.label, frame.probability
    curve = metrics.curves(y, p, points=len(frame) + 1)[kind]
    return curve, metrics.point_metrics(metrics.confusion(y, p, threshold))


def _line(x, y, name: str) -> go.Scatter:
    return go.Scatter(x=x, y=y, mode="lines", name=name, line={"dash": "dot", "color": "grey"})


def _curve(x, y, name: str) -> go.Scatter:
    return go.Scatter(x=x, y=y, mode="lines", name=name, line={"color": COLORS["tumor"]})


def _point(point: tuple, threshold: float) -> go.Scatter:
    return go.Scatter(
        x=[point[0]],
        y=[point[1]],
        mode="markers",
        name=f"threshold {threshold:.3f}",
        marker={"size": 12, "color": "black", "symbol": "x"},
    )


def calibration_figure(table: pd.DataFrame) -> go.Figure:
    """The reliability diagram of `evaluation.calibration_table`: one marker per bin with its number
    of images written next to it and its 95% interval as an error bar; the axes leave room so
    no marker is cut at the edge."""
    fig = go.Figure(
        [
            _line([0, 1], [0, 1], "perfect calibration"),
            go.Scatter(
                x=table.mean_probability,
                y=table.fraction_tumor,
                mode="lines+markers+text",
                name="model (text: images in the bin)",
                text=[f"n={k}" for k in table.n],
                textposition="middle right",
                textfont={"size": 10},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": table.high - table.fraction_tumor,
                    "arrayminus": table.fraction_tumor - table.low,
                    "thickness": 1,
                },
                customdata=table[["n", "bin_low", "bin_high"]],
                hovertemplate="%{customdata[0]} images with P(tumour) in %{customdata[1]:.1f}-"
                "%{customdata[2]:.1f}<br>mean %{x:.3f}, observed %{y:.3f}<extra></extra>",
                line={"color": COLORS["tumor"]},
                marker={"size": 8},
                cliponaxis=False,
            ),
        ]
    )
    fig.update_xaxes(title="mean predicted P(tumour)", range=[-0.05, 1.12])
    fig.update_yaxes(title="observed fraction with tumour", range=[-0.05, 1.08])
    return _layout(fig, "Reliability (10 equal-width bins)")


# ----------------------------------------------------------------------------- training


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


# ----------------------------------------------------------------------------- dataset


def class_balance_figure(counts: pd.DataFrame) -> go.Figure:
    fig = go.Figure(
        [
            go.Bar(
                x=part.split,
                y=part["count"],
                name=DISPLAY_NAMES[name],
                text=part["count"],
                marker_color=COLORS[name],
            )
            for name, part in (
                (n, counts[counts["class"] == DISPLAY_NAMES[n]]) for n in CLASS_NAMES
            )
        ]
    )
    fig.update_layout(barmode="group")
    fig.update_yaxes(title="images")
    return _layout(fig, "Class balance, overall and per split")


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
                    x=[DISPLAY_NAMES[name]],
                    q1=q["p25"],
                    median=q["median"],
                    q3=q["p75"],
                    lowerfence=q["min"],
                    upperfence=q["max"],
                    mean=q["mean"],
                    name=DISPLAY_NAMES[name],
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
                x=[DISPLAY_NAMES[n] for n in CLASS_NAMES],
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


# ----------------------------------------------------------------------------- shared


def _layout(fig: go.Figure, title: str | None, height: int = 400) -> go.Figure:
    fig.update_layout(
        title=title,
        height=height,
        margin={"l": 40, "r": 20, "t": 60, "b": 40},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def _num(value) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3f}"
