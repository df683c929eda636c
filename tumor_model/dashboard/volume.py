"""The Predict page's volume view, without widgets: which uploads are volumes, the P(tumour)
per-slice chart, the verdict text with its rule, the geometry table and the overlays of the most
suspicious slices (by the model's default explanation, as single scans get).

Volumes and their slices stay in memory (the page keeps at most a few per session); geometry
info is non-identifying by construction (`tumor_model.serving.volume.Volume.info`).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from tumor_model.config import CLASS_NAMES, DISPLAY_NAMES
from tumor_model.dashboard.figures import COLORS
from tumor_model.serving import overlay as ov
from tumor_model.serving import volume as vol
from tumor_model.serving.explain import METHOD_NAMES


def split_uploads(items: list[dict]) -> tuple[list[dict], list[dict]]:
    """(volumes, scans) of the page's uploads [{name, data}], each list in upload order.

    A volume item is {"name", "names", "data" (list of bytes), "key", "index"}; a scan item is
    the upload's dict with "index" added (index: the place of its first upload, for `merge`).
    DICOM slices of one series become one volume (`volume.plan`)."""
    volumes, scans = [], []
    for entry in vol.plan(item["data"] for item in items):
        members = [items[i] for i in entry.indices]
        if entry.kind == "scan":
            members[0]["index"] = entry.indices[0]
            scans.append(members[0])
            continue
        digest = hashlib.sha256()
        for item in members:
            digest.update(hashlib.sha256(item["data"]).digest())
        names = [item["name"] for item in members]
        volumes.append(
            {
                "name": vol.series_name(names),
                "names": names,
                "data": [item["data"] for item in members],
                "key": digest.hexdigest()[:20],
                "index": entry.indices[0],
            }
        )
    return volumes, scans


def shown(label: str) -> str:
    return DISPLAY_NAMES.get(label, label)


def verdict_text(result: dict) -> str:
    """Markdown: the verdict, why (the longest run), and the rule."""
    label = result["label"]
    if label == vol.NO_VERDICT:
        why = "every slice was flagged as unusual (not like the brain MRIs the model knows)"
    elif result["run"]:
        first, last = result["run"]
        span = f"slice {first}" if first == last else f"slices {first}-{last}"
        why = (
            f"the longest run at or above the threshold is {result['longest_run']} "
            f"slice(s) ({span})"
        )
    else:
        why = "no slice reaches the threshold"
    return (
        f"**Volume verdict: {shown(label)}**: {why}; {result['slices_counted']} of "
        f"{len(result['slices'])} slices counted. **Rule:** {vol.RULE}."
    )


def probability_figure(result: dict, selected: int | None = None) -> go.Figure:
    """P(tumour) per slice (1-based) with the threshold; unusual slices hollow grey; the chosen
    slice marked."""
    slices = result["slices"]
    x = [s["slice"] for s in slices]
    p = [s["probability"] for s in slices]
    unusual = [not vol.counted(s) for s in slices]
    colour = [
        "#9e9e9e" if u else COLORS["tumor"] if q >= result["threshold"] else COLORS["healthy"]
        for q, u in zip(p, unusual, strict=True)
    ]
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=p,
            mode="lines+markers",
            line={"color": "#607d8b", "width": 1},
            marker={
                "color": colour,
                "size": 9,
                "symbol": ["circle-open" if u else "circle" for u in unusual],
            },
            customdata=["unusual: skipped" if u else "" for u in unusual],
            hovertemplate="slice %{x}: P(tumour) %{y:.3f} %{customdata}<extra></extra>",
            name="P(tumour)",
        )
    )
    fig.add_hline(
        y=result["threshold"],
        line={"dash": "dash", "color": "#444"},
        annotation_text=f"threshold {result['threshold']:.3f}",
        annotation_position="top left",
    )
    if result["run"] and result["longest_run"] >= vol.RUN:
        first, last = result["run"]
        fig.add_vrect(
            x0=first - 0.5, x1=last + 0.5, fillcolor=COLORS["tumor"], opacity=0.12, line_width=0
        )
    if selected is not None:
        fig.add_vline(x=selected, line={"color": "#264653", "width": 2})
    fig.update_layout(
        height=300,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis_title=f"slice ({result['volume'].get('order', '')})",
        yaxis_title="P(tumour)",
        yaxis_range=[0, 1.02],
        showlegend=False,
        title={"text": "P(tumour) per slice", "font": {"size": 14}},
    )
    return fig


def info_frame(info: dict) -> pd.DataFrame:
    """The volume's geometry (non-identifying) as rows of (what, value)."""
    rows = [
        {"what": key, "value": str(value)}
        for key, value in info.items()
        if key != "dicom" and value is not None
    ]
    return pd.DataFrame(rows, columns=["what", "value"])


def slice_overlay(
    predictor, explainer, volume, index: int, target: int, explanation: tuple, alpha: float = 0.4
):
    """(model input pixels, overlay picture, target) of slice `index` (0-based): the map of
    class `target` (the slice's predicted class, `target()`) by `explanation` = (method, layers),
    the model's default explanation (`tumor_model.serving.maps.default_explanation`), as a
    single scan gets."""
    method, layers = explanation
    pixels = predictor.pixels(volume.image(index))
    expl = explainer.explain(pixels, method, target, layers)
    return pixels, ov.overlay(pixels, expl.heatmap, alpha, "jet"), target


def target(result: dict, index: int) -> int:
    """The predicted class (index into CLASS_NAMES) of slice `index` (0-based)."""
    return int(result["slices"][index]["probability"] >= result["threshold"])


def slice_caption(res: dict, target: int, method: str) -> str:
    """A slice overlay's caption: its P(tumour), whether the rule skipped it, and the map's
    method (one of `explain.METHODS`) and class."""
    flag = " (unusual: skipped by the rule)" if not vol.counted(res) else ""
    return (
        f"Slice {res['slice']}: P(tumour) {res['probability']:.3f}{flag}; "
        f"{METHOD_NAMES.get(method, method)} evidence for “{shown(CLASS_NAMES[target])}”"
    )


def first_shown(result: dict) -> int:
    """The slice the slider starts on (1-based): the most suspicious one."""
    top = result.get("most_suspicious") or [max(1, len(result["slices"]) // 2)]
    return int(top[0])


def merge(scans: list[dict], failed: list[dict]) -> list[dict]:
    """The scans and the volumes that could not be read, in upload order."""
    return sorted([*scans, *failed], key=lambda item: item["index"])


def volumes_frame(items: list[dict]) -> pd.DataFrame:
    """One row per predicted volume: slices, verdict, highest P(tumour) and where."""
    rows = []
    for item in items:
        result = item["result"]
        best = int(np.argmax(result["probabilities"]))
        rows.append(
            {
                "volume": item["name"],
                "slices": len(result["slices"]),
                "verdict": shown(result["label"]),
                "highest P(tumour)": round(result["probabilities"][best], 3),
                "at slice": best + 1,
            }
        )
    return pd.DataFrame(rows)
