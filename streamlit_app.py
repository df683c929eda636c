"""NeuroScan dashboard: the only router. Run with `streamlit run streamlit_app.py`.

The sidebar shows the model in use, where the dataset is and the research-only notice; the pages
read the shipped artifacts (see DEVELOPERS.md, "Artifacts contract").
"""

import os

import streamlit as st

from tumor_model import artifacts
from tumor_model.dashboard import places, tables

# The favicon is an emoji (drawn by the browser from a data: URL): a page's :material/ icon
# would become the favicon and Streamlit fetches those from an external font host.
st.set_page_config(page_title="NeuroScan", page_icon="🧠", layout="wide")

PAGES = [
    st.Page("pages/overview.py", title="Overview", icon=":material/home:", default=True),
    st.Page("pages/dataset.py", title="Dataset", icon=":material/photo_library:"),
    st.Page("pages/training.py", title="Training", icon=":material/show_chart:"),
    st.Page("pages/evaluation.py", title="Evaluation", icon=":material/fact_check:"),
    st.Page("pages/predict.py", title="Predict", icon=":material/neurology:"),
    st.Page("pages/your_scans.py", title="Your scans", icon=":material/upload_file:"),
]


def model_choice() -> None:
    """The model folder of this session: artifacts/ (or $NEUROSCAN_ARTIFACTS) unless another
    one is typed, e.g. a folder `neuroscan adapt` wrote."""
    typed = st.sidebar.text_input(
        "Model folder",
        key=places.MODEL_KEY,
        placeholder="artifacts",
        help="An artifacts folder (e.g. one written by `neuroscan adapt`); empty: "
        f"${places.ARTIFACTS_ENV} or artifacts/.",
    )
    if typed and places.model_folder(typed) is None:
        st.sidebar.error(f"{typed!r} holds no model_card.json: using the default model.")


def model_panel() -> None:
    st.sidebar.subheader("Model in use")  # the pages show the full errors; the sidebar notes them
    card = places.load(artifacts.CARD, quiet=True)
    metrics = places.load(artifacts.METRICS, quiet=True)
    if card is None:
        st.sidebar.error("No readable model_card.json: open a page for how to rebuild it.")
        return
    st.sidebar.markdown(
        f"**{card.get('backbone', '?')}**, {card.get('input_size', '?')} px, "
        f"threshold {card.get('threshold', float('nan')):.3f}"
    )
    st.sidebar.caption(f"Trained {tables.trained_when(card)}")
    acc = tables.headline(card, metrics)
    if acc is not None:
        st.sidebar.metric("Test accuracy (group split)", tables.fmt_value("accuracy", acc["value"]))
        st.sidebar.caption(tables.ci_text("accuracy", acc))


def data_panel() -> None:
    st.sidebar.subheader("Dataset")
    typed = st.sidebar.text_input(
        "Dataset folder",
        value=places.as_typed(os.environ.get(places.DATA_ENV, "")),
        key="data_dir",
        placeholder="../shared/data/brain-tumor-dataset",
        help=f"Image root the model was trained on (or ${places.DATA_ENV}).",
    )
    root = places.data_dir(typed)
    st.session_state["data_root"] = str(root) if root else None
    if root:
        st.sidebar.caption(f"Reading images from `{tables.shown_path(root)}`")
    else:
        st.sidebar.info("dataset not found — pages show the shipped artifacts only")


page = st.navigation(PAGES)
st.sidebar.warning("Research tool — not for diagnosis", icon=":material/warning:")
model_choice()
model_panel()
data_panel()
st.sidebar.caption(f"Artifacts: `{tables.shown_path(places.artifacts_dir())}`")
try:
    page.run()
finally:  # also after st.stop() / st.rerun(), which raise
    places.release_memory()
