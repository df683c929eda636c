"""Training: loss, accuracy and AUC per epoch for both phases, the chosen epoch marked."""

import streamlit as st

from tumor_model import artifacts
from tumor_model.dashboard import figures, places, tables
from tumor_model.dashboard import history as runs

places.page()


@st.cache_data(show_spinner=False)
def figure(history):
    return figures.history_figure(history)


def chosen(history) -> None:
    best = runs.chosen_epoch(history)
    st.subheader(f"Chosen epoch: {best.phase} epoch {int(best.epoch)} (lowest validation loss)")
    cols = st.columns(4)
    cols[0].metric("Validation loss", f"{best.val_loss:.4f}")
    cols[1].metric("Validation accuracy", tables.fmt_value("accuracy", best.val_accuracy))
    cols[2].metric("Validation AUC", f"{best.val_auc:.3f}")
    cols[3].metric("Epochs trained", len(history))


st.title("Training")
st.caption(
    "Phase 1 trains the head on cached frozen-backbone features; phase 2 (optional) "
    "fine-tunes the top backbone layers. Solid: train, dashed: validation; the star marks "
    "the epoch with the lowest validation loss; grey dashes separate the phases."
)
history = places.load(artifacts.HISTORY)
if history is not None and len(history):
    chosen(history)
    st.plotly_chart(figure(history), key="training_curves")
    st.subheader("Per phase")
    st.dataframe(runs.phase_summary(history), hide_index=True, key="training_phases")
    with st.expander("history.csv", key="training_raw"):
        st.dataframe(history, hide_index=True, key="training_history")
elif history is not None:
    st.warning("history.csv has no epochs.")
