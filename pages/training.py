"""Training: loss, accuracy and AUC per epoch for both phases, the chosen epoch marked."""

import streamlit as st

from tumor_model import dashboard as dash

dash.through_main_script()
ART = dash.artifacts_dir()
read = st.cache_data(dash.read_artifact, show_spinner=False)


def load(name: str):
    try:
        return read(str(ART), name, dash.stamp(ART, name))
    except dash.ArtifactError as err:
        st.error(str(err), icon=":material/error:")
        return None


@st.cache_data(show_spinner=False)
def figure(history):
    return dash.history_figure(history)


def chosen(history) -> None:
    best = dash.chosen_epoch(history)
    st.subheader(f"Chosen epoch: {best.phase} epoch {int(best.epoch)} (lowest validation loss)")
    cols = st.columns(4)
    cols[0].metric("Validation loss", f"{best.val_loss:.4f}")
    cols[1].metric("Validation accuracy", dash.fmt_value("accuracy", best.val_accuracy))
    cols[2].metric("Validation AUC", f"{best.val_auc:.3f}")
    cols[3].metric("Epochs trained", len(history))


st.title("Training")
st.caption(
    "Phase 1 trains the head on cached frozen-backbone features; phase 2 (optional) "
    "fine-tunes the top backbone layers. Solid: train, dashed: validation; the star marks "
    "the epoch with the lowest validation loss; grey dashes separate the phases."
)
history = load("history.csv")
if history is not None and len(history):
    chosen(history)
    st.plotly_chart(figure(history), key="training_curves")
    st.subheader("Per phase")
    st.dataframe(dash.phase_summary(history), hide_index=True, key="training_phases")
    with st.expander("history.csv", key="training_raw"):
        st.dataframe(history, hide_index=True, key="training_history")
elif history is not None:
    st.warning("history.csv has no epochs.")
