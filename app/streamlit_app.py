"""NeuroScan dashboard: the only router. Run with `neuroscan dashboard`, or
`streamlit run app/streamlit_app.py` in the repository.

The sidebar shows the model in use, where the dataset is and the research-only notice; the pages
read the shipped artifacts (see DEVELOPERS.md, "Artifacts contract").
"""

import streamlit as st

from tumor_model import artifacts
from tumor_model.dashboard import card as model_card
from tumor_model.dashboard import places

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
    """The model folder of this session: the shipped model (or $NEUROSCAN_ARTIFACTS) unless
    another one is typed, e.g. a folder `neuroscan adapt` wrote."""
    typed = st.sidebar.text_input(
        "Model folder",
        key=places.MODEL_KEY,
        placeholder="artifacts",
        help="An artifacts folder (e.g. one written by `neuroscan adapt`); empty: "
        f"${artifacts.ENV}, else the shipped model.",
    )
    if typed and places.model_folder(typed) is None:
        st.sidebar.error(f"{typed!r} holds no model_card.json: using the default model.")


def model_panel(card: dict | None) -> None:
    st.sidebar.subheader("Model in use")  # the pages show the full errors; the sidebar notes them
    if card is None:
        st.sidebar.error("No readable model_card.json: open a page for how to rebuild it.")
        return
    panel = model_card.model_panel(card, places.load(artifacts.METRICS, quiet=True))
    st.sidebar.markdown(panel["title"])
    for line in panel["lines"]:
        st.sidebar.caption(line)
    if panel["metric"] is not None:
        st.sidebar.metric(panel["metric"]["label"], panel["metric"]["value"])
        st.sidebar.caption(panel["metric"]["ci"])


def data_panel(card: dict | None) -> None:
    st.sidebar.subheader("Dataset")
    typed = st.sidebar.text_input(
        "Dataset folder",
        key="data_dir",
        placeholder=f"empty: ${places.DATA_ENV} or found",
        help=f"Image root the model was trained on; empty: ${places.DATA_ENV}, else the first "
        f"of the model's sources found in {' or '.join(places.DATA_PLACES)} (beside or in the "
        "app folder).",
    )
    choice = places.find_data(typed, names=places.data_names(card))
    st.session_state["data_root"] = str(choice.root) if choice.root else None
    if choice.root is None:
        st.sidebar.info("dataset not found — pages show the shipped artifacts only")
    st.sidebar.caption(places.data_note(choice))


page = st.navigation(PAGES)
st.sidebar.warning("Research tool — not for diagnosis", icon=":material/warning:")
model_choice()
card_in_use = places.load(artifacts.CARD, quiet=True)
model_panel(card_in_use)
data_panel(card_in_use)
st.sidebar.caption(f"Artifacts: `{places.shown_path(places.artifacts_dir())}`")
try:
    page.run()
finally:  # also after st.stop() / st.rerun(), which raise
    places.release_memory()
