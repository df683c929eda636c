"""Overview: what the model is, how it was evaluated, headline metrics and the model card."""

import streamlit as st

from tumor_model import artifacts
from tumor_model.dashboard import card as model_card
from tumor_model.dashboard import figures, places, tables

places.page()

GEOMETRY = {
    "crop-pad": "cropped to the head and padded to a square",
    "pad": "padded to a square",
    "squash": "resized to a square (aspect not kept)",
}


def model_section(card: dict) -> None:
    st.header("The model")
    weights = str(card.get("weights_origin") or "")
    start = (
        "trained from scratch" if weights in ("", "none") else "with ImageNet-pretrained weights"
    )
    geometry = GEOMETRY.get(card.get("geometry"), f"prepared with geometry {card.get('geometry')}")
    st.markdown(
        f"A **{card.get('backbone', '?')}** backbone {start}, a small classification head and a "
        "single sigmoid output: P(tumour). Images are read by content (JPEG, PNG, TIFF, DICOM), "
        f"{geometry} and resized to {card.get('input_size', '?')} px. "
        + model_card.calibration_text(card)
    )
    st.table(model_card.model_facts(card), hide_index=True, hide_header=True, border="horizontal")
    counts = model_card.data_counts(card)
    if not counts.empty:
        st.markdown("**Training data**: images per split and class")
        table = counts.pivot(index="split", columns="class", values="count")
        st.table(table)


def evaluation_text() -> None:
    st.header("How it was evaluated")
    st.markdown(
        "- **Duplicate-group split (default).** Exact copies and near copies of an image form one "
        "group; every group lies in one split, so no test image has a copy in training.\n"
        "- **Source split (`train --split source`).** Duplicate groups and image sizes both kept "
        "whole, so validation and test hold only image sizes never seen in training.\n"
        "- **Group level.** Each duplicate group counted once (mean probability of its files).\n"
        "- **Random split (the report's protocol).** Files split 80/10/10 at random: copies of "
        "test images sit in training, so its numbers are optimistic.\n"
        "- **Grouped cross-validation.** K folds by duplicate group on frozen features.\n"
        "- **Cross-source cross-validation.** As above, but every image size (width x height, a "
        "trace of the source website or scanner) also stays in one fold, so each fold is tested "
        "on sources it never saw: closer to what to expect on another hospital's scans.\n"
        "- **Fine-tuned CV.** The same folds, but each fold runs the whole recipe (head, then "
        "fine-tuning) as the shipped model was trained: slow, so often fewer folds (the table's "
        "*folds* column).\n\n"
        "All intervals are 95% percentile-bootstrap confidence intervals."
    )


def headline_section(card: dict | None, metrics: dict) -> None:
    st.header("Results")
    note = model_card.results_note(card)
    if note:
        st.info(note, icon=":material/info:")
    head = model_card.headline_block(card, metrics)
    if head:
        with st.container(border=True, key="overview_headline"):
            st.markdown(model_card.headline_text(metrics))
            for col, item in zip(st.columns(len(head)), head.values(), strict=True):
                col.metric(item["label"], item["value"])
                col.caption(item["ci"])
    if not tables.reported_protocols(metrics):
        st.warning("metrics.json holds no metric blocks (test, random_split, cv, cv_source).")
        return
    st.subheader("All evaluation protocols")
    st.table(tables.results_table(metrics), hide_index=True, border="horizontal")
    st.caption(tables.protocol_caption(metrics))
    missing = tables.absent_protocols(metrics)
    if missing:
        st.caption(f"Not in metrics.json: {', '.join(missing)}.")
    folds_section(metrics)
    travel_section(metrics)
    shortcut_section(metrics.get(artifacts.SHORTCUT))


def travel_section(metrics: dict) -> None:
    rows = tables.travel_rows(metrics)
    if rows is None:
        return
    st.subheader("Does it travel? Unseen sources, sequences, institutions")
    st.table(rows, hide_index=True, border="horizontal")
    st.caption(
        "Cross-source CV keeps each image size in one fold (a stand-in for a scanner); "
        "leave-one-source-out trains the head on all other sources and scores the held-out one. "
        "A source of one class has only its rate (sensitivity for tumours, specificity for "
        "healthy scans); its *twin absent* row comes from a head that never saw the other "
        "one-class source, so the source's look alone cannot give it its label. These CVs "
        "train heads on frozen features; the *This model* rows are the model itself (fine-tuned "
        "as shipped) on whole sources none of whose files it was trained, validated or tested on. "
        "A source whose files.csv names MRI sequences and institutions (tcga-lgg) gets a row "
        "for each: *by sequence* and *by institution*. "
        "A pooled row over one-class sources mixes them: its ROC AUC also rewards telling one "
        "source's look from the other's. "
        "`neuroscan cv --by source` / `--by loso` / `--by institution` recompute the CV rows, "
        "`neuroscan evaluate --all --data-dir DIR --save` the others."
    )


def folds_section(metrics: dict) -> None:
    folds = tables.fold_table(metrics)
    if folds.empty:
        return
    st.subheader("Cross-validation folds")
    st.plotly_chart(figures.fold_figure(folds), key="overview_folds")
    st.caption(
        "Each point is one fold's accuracy at the threshold chosen on that fold's own "
        "validation part; the spread shows how much one held-out split can differ from another."
    )


def shortcut_section(block) -> None:
    if not isinstance(block, dict):
        return
    st.subheader("Shortcut check")
    st.caption("Protocol: " + block.get("protocol", "test images re-encoded without format cues"))
    if "accuracy_original" in block:
        a, b = st.columns(2)
        a.metric("Accuracy as stored", tables.fmt_value("accuracy", block["accuracy_original"]))
        b.metric(
            "Accuracy re-encoded",
            tables.fmt_value("accuracy", block["accuracy_reencoded"]),
            delta=f"{-100 * block.get('drop', 0):.1f} points",
        )
    else:
        st.dataframe(
            tables.metrics_frame(tables.metric_items(block)),
            hide_index=True,
            key="overview_shortcut",
        )


def card_section(card: dict) -> None:
    with st.expander("Model card (model_card.json)", expanded=False, key="overview_card"):
        st.json(card, expanded=1)


def links() -> None:
    st.header("Explore")
    cols = st.columns(4)
    for col, (path, label, icon) in zip(
        cols,
        [
            ("pages/dataset.py", "Dataset and duplicates", ":material/photo_library:"),
            ("pages/training.py", "Training curves", ":material/show_chart:"),
            ("pages/evaluation.py", "Evaluation, threshold", ":material/fact_check:"),
            ("pages/predict.py", "Predict an image", ":material/neurology:"),
        ],
        strict=True,
    ):
        with col:
            st.page_link(path, label=label, icon=icon)


st.title("NeuroScan: brain-MRI tumour detection")
st.caption(
    "Research tool — not for diagnosis. Every number below comes from the shipped artifacts."
)
card, metrics = places.load(artifacts.CARD), places.load(artifacts.METRICS)
if card is not None:
    model_section(card)
evaluation_text()
if metrics is not None:
    headline_section(card, metrics)
if card is not None:
    card_section(card)
links()
