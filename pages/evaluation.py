"""Evaluation on the test split: confusion matrix, metrics with CIs, curves and a live threshold."""

from pathlib import Path

import streamlit as st

from tumor_model import artifacts, evaluate
from tumor_model.config import CLASS_NAMES
from tumor_model.dashboard import figures, places, tables

places.page()
preview = st.cache_data(places.load_preview, show_spinner=False, max_entries=512)
threshold_metrics = st.cache_data(tables.threshold_metrics, show_spinner=False, max_entries=256)
level = st.cache_data(tables.level, show_spinner=False, max_entries=8)
CELLS = [
    ("tp", "True positives (TP)"),
    ("fn", "False negatives (FN)"),
    ("tn", "True negatives (TN)"),
    ("fp", "False positives (FP)"),
]


def controls(default: float) -> tuple[float, bool]:
    left, right = st.columns([3, 2], vertical_alignment="center")
    threshold = left.slider(
        "Decision threshold on P(tumour)",
        0.0,
        1.0,
        default,
        0.005,
        format="%.3f",
        key="eval_threshold",
        help=f"Tumour when P(tumour) >= threshold. Model card: {default:.3f}.",
    )
    groups = right.toggle(
        "Group level",
        key="eval_group_level",
        help="One row per duplicate group: mean probability of its files, "
        "majority label; each group counted once.",
    )
    return threshold, groups


def confusion_section(frame, threshold: float) -> None:
    conf = evaluate.confusion(frame.label, frame.probability, threshold)
    st.subheader("Confusion matrix")
    cols = st.columns(5)
    for col, (cell, label) in zip(cols, CELLS, strict=False):
        col.metric(label, conf[cell])
    cols[4].metric("Evaluated", len(frame))
    st.plotly_chart(figures.confusion_figure(conf), key="eval_confusion")


def metrics_section(frame, block, threshold: float) -> dict:
    st.subheader("Metrics (95% bootstrap confidence intervals)")
    items = {**threshold_metrics(frame, threshold), **tables.score_items(block, frame)}
    st.dataframe(
        tables.metrics_frame(items),
        hide_index=True,
        key="eval_metrics",
        column_config={
            c: st.column_config.NumberColumn(format="%.4f") for c in ("value", "ci_low", "ci_high")
        },
    )
    st.caption(
        "Threshold metrics are recomputed live (1000 bootstrap resamples); ROC AUC, PR AUC, "
        "Brier score and ECE do not depend on the threshold and come from metrics.json."
    )
    return items


def curves_section(frame, items: dict, threshold: float) -> None:
    auc, ap = (items.get(k, {}).get("value") for k in ("roc_auc", "pr_auc"))
    roc, pr, cal = st.columns(3)
    roc.plotly_chart(figures.roc_figure(frame, threshold, auc), key="eval_roc")
    pr.plotly_chart(figures.pr_figure(frame, threshold, ap), key="eval_pr")
    cal.plotly_chart(
        figures.calibration_figure(tables.calibration_table(frame)), key="eval_calibration"
    )
    st.caption(
        "Crosses: the current threshold. Reliability: marker size = images in the bin; "
        "points above the diagonal mean the model under-estimates P(tumour)."
    )


def gallery(test, threshold: float, root) -> None:
    st.subheader("Misclassified and least-confident test images")
    if not root:
        st.caption("Set the dataset folder in the sidebar to see the images.")
        return
    for title, rows in tables.gallery_rows(test, threshold).items():
        st.markdown(f"**{title.capitalize()}** ({len(rows)})")
        cols = st.columns(8)
        for i, row in enumerate(rows.itertuples(index=False)):
            caption = f"{CLASS_NAMES[row.label]}, p={row.probability:.3f}"
            pixels, problem = preview(str(Path(root) / row.path), 192)
            with cols[i % 8]:
                if pixels is None:
                    st.caption(f"{caption}: cannot load ({problem})")
                else:
                    st.image(pixels, caption=caption, width="stretch")


st.title("Evaluation")
card, metrics, predictions = (
    places.load(artifacts.CARD),
    places.load(artifacts.METRICS),
    places.load(artifacts.PREDICTIONS),
)
if predictions is None:
    st.stop()
test = tables.test_rows(predictions)
if test.empty:
    st.warning("predictions.csv has no rows with split == 'test'.")
    st.stop()
threshold, groups = controls(tables.default_threshold(card, metrics))
frame = level(test, groups)
block = (metrics or {}).get(artifacts.TEST_GROUPS if groups else artifacts.TEST)
st.caption(
    f"Test split: {len(test)} files in {test.group.nunique()} duplicate groups; showing "
    f"{'group' if groups else 'file'} level at threshold {threshold:.3f}."
)
confusion_section(frame, threshold)
items = metrics_section(frame, block, threshold)
curves_section(frame, items, threshold)
gallery(test, threshold, places.session_data_dir(st.session_state))
