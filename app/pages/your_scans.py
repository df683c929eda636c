"""Your scans: check the model on your own labelled scans and adapt it (`neuroscan adapt`)."""

import streamlit as st

from tumor_model import artifacts
from tumor_model.config import LOCAL_SHARE
from tumor_model.dashboard import places, site
from tumor_model.site import adapt

folder = places.page()

st.title("Your scans")
st.markdown(
    "Check the model on labelled scans from your site and adapt it to them, as `neuroscan adapt` "
    "does. Put the scans in class folders (`tumor/` and `healthy/`, or `yes/` and `no/`: the "
    f"layouts training reads), at least {adapt.MIN_SCANS} scans with {adapt.MIN_PER_CLASS} of "
    "each class. Every figure for your scans is **cross-validated inside them**: each scan is "
    "scored by a refit that did not see it. An uploaded zip is read in memory and never written."
)

source = st.radio(
    "Scans", ["A folder on this machine", "Upload a zip"], horizontal=True, key="site_source"
)
typed, upload = None, None
if source == "A folder on this machine":
    typed = st.text_input("Folder of labelled scans", key="site_folder", placeholder="site/")
else:
    upload = st.file_uploader("Zip of class folders", type=["zip"], key="site_zip")
out_name = st.text_input(
    f"Write the adapted model to (a new folder, a name goes under {places.ADAPTED_HOME}; empty: "
    "check only)",
    value="adapted",
    key="site_out",
)
share = st.slider(
    "Weight of your scans in the head's loss", 0.1, 0.9, LOCAL_SHARE, 0.1, key="site_share"
)


def request() -> None:  # a callback: the request survives the rerun of a page's first visit
    st.session_state["site_go"] = True


st.button("Check and adapt", type="primary", key="site_run", on_click=request)
if st.session_state.pop("site_go", False):
    out = places.adapted_folder(out_name)
    try:
        with st.spinner("Reading your scans, scoring them and refitting (about a minute)..."):
            if upload is not None:
                card = artifacts.read_card(folder)
                table, pixels = adapt.read_local_zip(
                    upload.getvalue(), upload.name, int(card["input_size"]), card["geometry"]
                )
                record = adapt.adapt(folder, out=out, local_share=share, local=table, pixels=pixels)
            elif typed and places.data_dir(typed):
                record = adapt.adapt(folder, [places.data_dir(typed)], out, share)
            else:
                raise ValueError(f"{typed or 'no folder'!r} is not a folder on this machine")
        st.session_state["site_record"] = record
        st.session_state["site_written"] = str(out) if out else None
    except (ValueError, artifacts.ArtifactError) as err:
        st.session_state.pop("site_record", None)
        st.error(str(err), icon=":material/error:")

record = st.session_state.get("site_record")
if record:
    st.success(site.summary_text(record))
    st.dataframe(site.steps_table(record), hide_index=True, key="site_table")
    cols = st.columns(2)
    cols[0].plotly_chart(site.roc_figure(record), key="site_roc")
    cols[1].plotly_chart(site.reliability_figure(record), key="site_reliability")
    written = st.session_state.get("site_written")
    if written:
        st.info(
            f"The adapted model is in `{written}`: use it with "
            f"`neuroscan predict --artifacts {written}` or here.",
            icon=":material/check_circle:",
        )
        st.button(
            "Use the adapted model in this dashboard",
            key="site_use",
            on_click=places.choose_artifacts,
            args=(written,),
        )
