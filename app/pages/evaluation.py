"""Evaluation on the test split: confusion matrix, metrics with CIs, curves and a live threshold."""

from pathlib import Path

import streamlit as st

from tumor_model import artifacts
from tumor_model.dashboard import evaluation, figures, places, tables
from tumor_model.metrics import confusion

ART = places.page()
preview = st.cache_data(places.load_preview, show_spinner=False, max_entries=512)
threshold_metrics = st.cache_data(evaluation.threshold_metrics, show_spinner=False, max_entries=256)
level = st.cache_data(evaluation.level, show_spinner=False, max_entries=8)
CELLS = [
    ("tp", "True positives (TP)"),
    ("fn", "False negatives (FN)"),
    ("tn", "True negatives (TN)"),
    ("fp", "False positives (FP)"),
]
PER_PAGE, COLUMNS = 12, 6  # gallery tiles per page and per row


def reset_threshold(default: float) -> None:
    st.session_state["eval_threshold"] = default


def controls(default: float) -> tuple[float, bool]:
    st.session_state.setdefault("eval_threshold", default)
    left, mid, right = st.columns([3, 1, 1], vertical_alignment="center")
    threshold = left.slider(
        "Decision threshold on P(tumour)",
        0.0,
        1.0,
        step=0.005,
        format="%.3f",
        key="eval_threshold",
        help=f"Tumour when P(tumour) >= threshold. Model card: {default:.3f}.",
    )
    mid.button(
        "Reset threshold",
        key="eval_reset",
        on_click=reset_threshold,
        args=(default,),
        disabled=abs(threshold - default) < 1e-9,
        help=f"Back to the model's threshold, {default:.3f} (chosen on validation).",
        icon=":material/restart_alt:",
    )
    groups = right.toggle(
        "Group level",
        key="eval_group_level",
        help="One row per duplicate group: mean probability of its files, "
        "majority label; each group counted once.",
    )
    return threshold, groups


def confusion_section(frame, threshold: float) -> None:
    conf = confusion(frame.label, frame.probability, threshold)
    st.subheader("Confusion matrix")
    cols = st.columns(5)
    for col, (cell, label) in zip(cols, CELLS, strict=False):
        col.metric(label, conf[cell])
    cols[4].metric("Evaluated", len(frame))
    st.plotly_chart(figures.confusion_figure(conf), key="eval_confusion")


def metrics_section(frame, block, threshold: float, default: float) -> dict:
    st.subheader("Metrics (95% bootstrap confidence intervals)")
    stored = evaluation.stored_point_items(block, threshold, default)
    recomputed = stored is None
    scores = evaluation.score_items(block, frame)
    items = {**(stored or threshold_metrics(frame, threshold)), **scores}
    st.dataframe(
        tables.metrics_frame(items),
        hide_index=True,
        key="eval_metrics",
        column_config={
            c: st.column_config.NumberColumn(format="%.4f") for c in ("value", "ci_low", "ci_high")
        },
    )
    if recomputed:
        where = (
            f"recomputed here for threshold {threshold:.3f} (you moved it from the model's "
            f"{default:.3f}; 1000 bootstrap resamples)"
            if abs(threshold - default) >= 1e-9
            else "recomputed here (metrics.json has no block for this level)"
        )
    else:
        where = "from metrics.json (the model's threshold), the same figures as the Overview"
    st.caption(
        f"Threshold metrics: {where}. ROC AUC, PR AUC, Brier score and ECE do not depend on the "
        "threshold and come from metrics.json."
    )
    return items


def curves_section(frame, items: dict, threshold: float) -> None:
    auc, ap = (items.get(k, {}).get("value") for k in ("roc_auc", "pr_auc"))
    roc, pr, cal = st.columns(3)
    roc.plotly_chart(figures.roc_figure(frame, threshold, auc), key="eval_roc")
    pr.plotly_chart(figures.pr_figure(frame, threshold, ap), key="eval_pr")
    cal.plotly_chart(
        figures.calibration_figure(evaluation.calibration_table(frame)), key="eval_calibration"
    )
    st.caption(
        "Crosses: the current threshold. Reliability: the 10 equal-width bins of P(tumour) "
        "that the ECE uses; n = images in the bin, bars = 95% Wilson interval of the observed "
        "fraction (wide where a bin holds few images); points above the diagonal mean the model "
        "under-estimates P(tumour)."
    )


def open_image(path: str) -> None:
    st.session_state["eval_open"] = path


def tiles(rows, key: str) -> None:
    cols = st.columns(COLUMNS)
    for i, row in enumerate(rows.itertuples(index=False)):
        pixels, problem = preview(row.image, 192)
        with cols[i % COLUMNS]:
            if pixels is None:
                st.caption(f"{row.caption}: cannot load ({problem})")
                continue
            st.image(pixels, caption=row.caption, width="stretch")
            st.button(
                "Enlarge",
                key=f"{key}_{row.path}",
                on_click=open_image,
                args=(row.path,),
                help="Show this image large, with the Grad-CAM heat map of the model's decision.",
                icon=":material/zoom_in:",
                width="stretch",
            )


def gallery(test, threshold: float, root) -> None:
    st.subheader("Misclassified and least-confident test images")
    if not root:
        st.caption("Set the dataset folder in the sidebar to see the images.")
        return
    test = test.assign(image=places.image_paths(test, root))  # each source's own folder
    shown = evaluation.gallery_rows(test, threshold)
    wrong = shown["misclassified"]
    pages = max(1, -(-len(wrong) // PER_PAGE))
    st.markdown(
        f"**Misclassified ({len(wrong)} of {len(test)} test files)** at threshold "
        f"{threshold:.3f}, most confident error first; file level."
    )
    if pages > 1:
        page = st.number_input(f"Page (of {pages})", 1, pages, key=f"eval_error_page_{pages}")
    else:
        page = 1
    tiles(tables.page_of(wrong, page, PER_PAGE), "eval_open_wrong")
    detail(test, threshold)
    least = shown["least confident"]
    st.markdown(f"**Least confident** ({len(least)}, one per duplicate group)")
    tiles(least, "eval_open_least")


def detail(test, threshold: float) -> None:
    """The opened test image, large, with the Grad-CAM heat map of the model's decision."""
    path = st.session_state.get("eval_open")
    rows = test[test.path == path]
    if not path or rows.empty:
        return
    row = evaluation.gallery_rows(rows, threshold)["least confident"].iloc[0]
    with st.container(border=True, key="eval_detail"):
        head, close = st.columns([5, 1], vertical_alignment="center")
        head.markdown(f"**{row.file}** · truth **{row.truth}** / predicted **{row.predicted}**")
        close.button(
            "Close", key="eval_close", on_click=open_image, args=(None,), icon=":material/close:"
        )
        st.caption(f"`{row.path}` · P(tumour) = {row.probability:.3f} · group {row.group}")
        left, right = st.columns(2)
        pixels, problem = preview(row.image, 512)
        if pixels is None:
            left.error(f"Cannot load {row.path}: {problem}")
            return
        left.image(pixels, caption=f"{row.file} (fitted to 512 px)", width="stretch")
        with right:
            heat_map(Path(row.image), row)


def heat_map(path: Path, row) -> None:
    from tumor_model.io.imageio import ImageLoadError, load_image
    from tumor_model.serving import overlay

    try:
        image = load_image(path)
    except ImageLoadError as err:
        st.error(str(err))
        return
    stamp = places.stamp(ART, artifacts.MODEL)
    try:
        with st.spinner("Loading the model and computing Grad-CAM…"):
            predictor = places.predictor(str(ART), stamp)
            pixels, expl = predictor.explain(image, "gradcam", int(row.predicted_label))
    except artifacts.ArtifactError as err:
        st.error(str(err), icon=":material/error:")
        return
    st.image(
        overlay.overlay(pixels, expl.heatmap, 0.4, "jet"),
        caption=f"Grad-CAM: evidence for “{row.predicted}” (model input, {pixels.shape[0]} px)",
        width="stretch",
    )


st.title("Evaluation")
card, metrics, predictions = (
    places.load(artifacts.CARD),
    places.load(artifacts.METRICS),
    places.load(artifacts.PREDICTIONS),
)
if predictions is None:
    st.stop()
test = evaluation.test_rows(predictions)
if test.empty:
    st.warning("predictions.csv has no rows with split == 'test'.")
    st.stop()
default = evaluation.default_threshold(card, metrics)
threshold, groups = controls(default)
frame = level(test, groups)
block = (metrics or {}).get(artifacts.TEST_GROUPS if groups else artifacts.TEST)
st.caption(
    f"Test split: {len(test)} files in {test.group.nunique()} duplicate groups; showing "
    f"{'group' if groups else 'file'} level at threshold {threshold:.3f}."
)
confusion_section(frame, threshold)
items = metrics_section(frame, block, threshold, default)
curves_section(frame, items, threshold)
gallery(test, threshold, places.session_data_dir(st.session_state))
