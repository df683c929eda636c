"""What the "Your scans" page shows of an `adapt` record: the before/after table with CIs, the
ROC curves and the reliability diagram of the local scans (no widgets here)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from tumor_model.dashboard.tables import NOT_DEFINED

STEPS = {
    "before": "The model as it is",
    "recalibrated": "Temperature + threshold refitted",
    "retrained": "Head retrained (shipped by adapt)",
}
SHOWN = ("balanced_accuracy", "sensitivity", "specificity", "roc_auc", "ece")
NAMES = {
    "balanced_accuracy": "Balanced accuracy",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "roc_auc": "ROC AUC",
    "ece": "ECE",
}


def steps_table(record: dict) -> pd.DataFrame:
    """One row per step: each metric as 'value [low, high]' (95% bootstrap CI) and how the
    figure was obtained (out-of-fold for the refits)."""
    rows = []
    for step, title in STEPS.items():
        block = record[step]
        row = {"step": title}
        for k in SHOWN:
            m = block["metrics"][k]
            row[NAMES[k]] = _ci(k, m)
        row["threshold"] = round(float(block["threshold"]), 3)
        row["how"] = block["how"]
        rows.append(row)
    return pd.DataFrame(rows)


def _ci(key: str, m: dict) -> str:
    if m["value"] != m["value"]:
        return NOT_DEFINED
    if key in ("roc_auc", "ece"):
        return f"{m['value']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"
    return f"{m['value']:.1%} [{m['ci_low']:.1%}, {m['ci_high']:.1%}]"


def roc_figure(record: dict) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dot", "color": "grey"}
        )
    )
    for step, title in STEPS.items():
        roc = record[step]["roc"]
        auc = record[step]["metrics"]["roc_auc"]["value"]
        fig.add_trace(
            go.Scatter(x=roc["fpr"], y=roc["tpr"], mode="lines", name=f"{title} (AUC {auc:.3f})")
        )
    fig.update_layout(
        title="ROC on your scans",
        xaxis_title="1 - specificity",
        yaxis_title="sensitivity",
        height=420,
        margin={"t": 50, "b": 40},
    )
    return fig


def reliability_figure(record: dict) -> go.Figure:
    """Mean predicted P(tumour) against the observed share of tumours per bin, marker size
    and hover showing how many scans each bin holds."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", name="perfect", line={"dash": "dot", "color": "grey"}
        )
    )
    for step, title in STEPS.items():
        bins = record[step]["calibration"]
        fig.add_trace(
            go.Scatter(
                x=[b["mean_probability"] for b in bins],
                y=[b["fraction_tumor"] for b in bins],
                mode="lines+markers",
                name=title,
                text=[f"{b['n']} scans" for b in bins],
                hovertemplate="P %{x:.2f}, tumours %{y:.0%}, %{text}",
                marker={"size": [6 + min(b["n"], 60) / 4 for b in bins]},
            )
        )
    fig.update_layout(
        title="Reliability on your scans (marker size: scans per bin)",
        xaxis={"title": "mean predicted P(tumour)", "range": [-0.05, 1.05]},
        yaxis={"title": "observed share of tumours", "range": [-0.05, 1.05]},
        height=420,
        margin={"t": 50, "b": 40},
    )
    return fig


def summary_text(record: dict) -> str:
    n, c = record["local_scans"], record["local_classes"]
    before = record["before"]["metrics"]["balanced_accuracy"]["value"]
    after = record["retrained"]["metrics"]["balanced_accuracy"]["value"]
    return (
        f"{n} labelled scans ({c['tumor']} tumour, {c['healthy']} healthy). Balanced accuracy "
        f"{before:.1%} as the model is, {after:.1%} with the head retrained (out-of-fold: each "
        "scan scored by a refit that did not see it)."
    )
