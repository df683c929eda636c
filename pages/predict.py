"""Predict: upload scans (or pick a shipped sample) and get P(tumour), the decision, a confidence
band, an out-of-distribution warning and a visual explanation of the predicted class.

Uploaded scans stay in memory (Streamlit's upload manager): nothing is written to disk or logged.
Only derived results (predictions, heat maps) are kept, in this session's state.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pandas as pd
import streamlit as st

from tumor_model import artifacts, dicom
from tumor_model import explain as ex
from tumor_model import overlay as ov
from tumor_model.artifacts import ArtifactError
from tumor_model.dashboard import places, tables
from tumor_model.dashboard.tables import SHOWN
from tumor_model.imageio import ImageLoadError, load_scan
from tumor_model.predict import Predictor

ART = places.page()
CHUNK = 16  # scans per model call (one progress-bar step)
CACHE_SIZE = 256  # results / heat maps kept per session


@st.cache_resource(show_spinner="Loading the model…", max_entries=2)
def get_predictor(folder: str, stamp: float) -> Predictor:
    """The model and its card, loaded once per artifacts folder and model.keras version."""
    return Predictor(folder)


@st.cache_resource(show_spinner="Preparing the explainer…", max_entries=2)
def get_explainer(folder: str, stamp: float) -> ex.Explainer:
    """The explainer (a clone of the model) of the cached Predictor, built once."""
    return get_predictor(folder, stamp).explainer()


def _cache(name: str) -> dict:
    store = st.session_state.setdefault("_predict_cache", {})
    return store.setdefault(name, {})


def _remember(cache: dict, key, value):
    if len(cache) >= CACHE_SIZE:
        cache.pop(next(iter(cache)))
    cache[key] = value
    return value


def gather_inputs(samples: pd.DataFrame | None) -> list[dict]:
    """[{name, data}] from the uploader, else from the chosen shipped sample."""
    uploads = st.file_uploader(
        "Brain-MRI scans: PNG, JPEG, TIFF, BMP or DICOM (with or without .dcm); one or many",
        accept_multiple_files=True,
        key="predict_upload",
        help="Read by content, not by extension. Scans stay in memory and are not stored.",
    )
    with st.expander("No scan at hand? Try a shipped sample", expanded=not uploads):
        if samples is None or samples.empty:
            st.info("No shipped samples (artifacts/samples/samples.csv) in this build.")
            choice = None
        else:
            labels = dict(zip(samples.file, samples.class_name, strict=True))
            choice = st.selectbox(
                "Sample thumbnail (held-out test images)",
                list(labels),
                index=None,
                format_func=lambda f: f"{f} (labelled {SHOWN.get(labels[f], labels[f])})",
                placeholder="Choose a sample",
                key="predict_sample",
                disabled=bool(uploads),
            )
    if uploads:
        return [{"name": u.name, "data": u.getvalue()} for u in uploads]
    if choice:
        try:
            return [{"name": choice, "data": (ART / artifacts.SAMPLES / choice).read_bytes()}]
        except OSError as err:
            st.error(f"Cannot read the sample {choice!r}: {err.strerror or err}")
    return []


def load_all(items: list[dict]) -> None:
    """Decode every item (DICOM frame from its slider's state); errors are kept per item."""
    for item in items:
        item["key"] = hashlib.sha256(item["data"]).hexdigest()[:20] + "|" + item["name"]
        item["frame_key"] = f"predict_frame_{item['key'][:20]}"
        frame = st.session_state.get(item["frame_key"])
        item["frame"] = None if frame is None else int(frame) - 1
        try:
            item["image"], item["dicom"] = load_scan(item["data"], item["name"], item["frame"])
        except ImageLoadError as err:
            item["error"] = str(err)
        except Exception as err:  # noqa: BLE001 - UI boundary: one bad file never stops a batch
            item["error"] = f"{item['name']!r}: could not be read ({type(err).__name__})"


def predict_all(predictor: Predictor, items: list[dict], stamp: float) -> None:
    """Predict the loaded items (cached per content, name, frame and model), with progress."""
    cache = _cache("results")
    todo = []
    for item in items:
        if "error" in item:
            continue
        key = (stamp, item["key"], item["frame"])
        if key in cache:
            item["result"] = cache[key]
        else:
            todo.append((key, item))
    bar = st.progress(0.0, text=f"Predicting {len(todo)} scans…") if len(todo) > 1 else None
    start = time.perf_counter()
    for first in range(0, len(todo), CHUNK):
        chunk = todo[first : first + CHUNK]
        try:
            pairs = predictor.predict_images([item["image"] for _, item in chunk])
        except Exception as err:  # noqa: BLE001 - UI boundary: report, never crash
            for _, item in chunk:
                item["error"] = f"{item['name']!r}: prediction failed ({type(err).__name__})"
            continue
        for (key, item), (probability, score) in zip(chunk, pairs, strict=True):
            result = predictor.result(item["name"], probability, score).to_dict()
            item["result"] = _remember(cache, key, result)
        if bar is not None:
            done = min(first + CHUNK, len(todo))
            bar.progress(done / len(todo), text=f"Predicted {done} of {len(todo)} scans")
    if bar is not None:
        seconds = time.perf_counter() - start
        bar.progress(1.0, text=f"Predicted {len(todo)} scans in {seconds:.1f} s")


def batch_section(items: list[dict]) -> None:
    table = tables.results_frame(items)
    ok = int(table.error.eq("").sum())
    st.subheader(f"Results: {ok} predicted, {len(table) - ok} could not be read")
    st.dataframe(
        table,
        hide_index=True,
        key="predict_table",
        column_config={
            "probability": st.column_config.ProgressColumn(
                "P(tumour)", min_value=0.0, max_value=1.0, format="%.3f"
            ),
            "out_of_distribution": st.column_config.CheckboxColumn("Unusual image"),
        },
    )
    st.download_button(
        "Download results (CSV)",
        table.to_csv(index=False).encode(),
        file_name="neuroscan_predictions.csv",
        mime="text/csv",
        key="predict_csv",
    )


def prediction_panel(predictor: Predictor, item: dict) -> None:
    res = item["result"]
    label = SHOWN.get(res["label"], res["label"])
    c1, c2, c3 = st.columns(3)
    c1.metric("P(tumour)", f"{res['probability']:.3f}")
    c2.metric("Decision", label)
    c3.metric("Threshold", f"{res['threshold']:.3f}")
    band = res["band"]
    (st.warning if band.startswith("uncertain") else st.info)(
        f"**{band[0].upper()}{band[1:]}.** P(tumour) {res['probability']:.1%} against a threshold "
        f"of {res['threshold']:.1%} chosen on validation scans.",
        icon=":material/psychology:",
    )
    if res["out_of_distribution"]:
        st.warning(
            "**Unusual image: this does not look like the brain MRIs the model was trained on** "
            f"(out-of-distribution score {res['ood_score']:.2f}). The prediction above is "
            "unreliable; check that this is an axial brain MRI slice.",
            icon=":material/warning:",
        )


def dicom_panel(item: dict) -> None:
    scan = item.get("dicom")
    if scan is None:
        return
    if scan.n_frames > 1:
        st.slider(
            f"Frame (of {scan.n_frames})",
            1,
            scan.n_frames,
            value=scan.default_frame + 1,
            key=item["frame_key"],
            help="The prediction and the explanation are for this frame (default: the middle).",
        )
    with st.expander("DICOM information (non-identifying tags only)"):
        allowed = {*dicom.INFO_TAGS, "TransferSyntax"}  # defence in depth: the allowlist only
        rows = [{"tag": k, "value": str(v)} for k, v in scan.info.items() if k in allowed]
        st.dataframe(
            pd.DataFrame(rows, columns=["tag", "value"]),
            hide_index=True,
            key=f"predict_dicom_{item['frame_key']}",
        )


def explanation_panel(predictor: Predictor, item: dict, stamp: float) -> None:
    st.subheader("Why: explanation map")
    c1, c2, c3 = st.columns(3)
    method = c1.selectbox(
        "Method",
        ex.METHODS,
        format_func=ex.METHOD_NAMES.get,
        key="predict_method",
        help="Grad-CAM and Grad-CAM++ take well under a second; Score-CAM and SmoothGrad 2-3 s.",
    )
    alpha = c2.slider("Overlay opacity", 0.0, 1.0, 0.4, 0.05, key="predict_alpha")
    colormap = c3.selectbox("Colour map", tuple(ov.COLORMAPS), key="predict_colormap")
    target = predictor.class_names.index(item["result"]["label"])
    shown = SHOWN[predictor.class_names[target]]
    cache = _cache("maps")
    key = (stamp, item["key"], item["frame"], method, target)
    pixels = predictor.pixels(item["image"])
    if key not in cache:
        try:
            with st.spinner(f"Computing {ex.METHOD_NAMES[method]}…"):
                expl = get_explainer(str(ART), stamp).explain(pixels, method, target)
        except ArtifactError as err:
            st.error(str(err), icon=":material/error:")
            return
        except Exception as err:  # noqa: BLE001 - UI boundary: the prediction stays on screen
            st.error(f"Could not compute the explanation ({type(err).__name__}).")
            return
        _remember(cache, key, expl)
    expl = cache[key]
    picture = ov.overlay(pixels, expl.heatmap, alpha, colormap)
    left, right = st.columns(2)
    left.image(
        pixels,
        caption=f"Model input ({pixels.shape[0]} px, cropped to the head)",
        width="stretch",
        alt="model input",
    )
    right.image(
        picture,
        caption=f"{ex.METHOD_NAMES[method]} overlay: evidence for “{shown}”",
        width="stretch",
        alt="explanation overlay",
    )
    st.caption(
        f"Highlighted: regions that pushed the model towards **{shown}**, the predicted class "
        f"({ex.METHOD_NAMES[method]}, {expl.seconds:.1f} s). Red = strongest with the jet colour "
        "map. A heat map shows where the model looked, not proof of a lesion."
    )
    if expl.empty:
        st.info(f"No region pushed the model towards {shown}: the map is empty.")
    st.download_button(
        "Download overlay (PNG)",
        ov.to_png(picture),
        file_name=f"{Path(item['name']).stem}_{method}.png",
        mime="image/png",
        key="predict_overlay_png",
    )


def detail_section(predictor: Predictor, items: list[dict], stamp: float) -> None:
    good = [item for item in items if "result" in item]
    if not good:
        return
    item = good[0]
    if len(good) > 1:
        names = [f"{i + 1}. {it['name']}" for i, it in enumerate(good)]
        pick = st.selectbox("Explain one scan", names, key="predict_pick")
        item = good[names.index(pick)] if pick in names else good[0]
    st.header(item["name"])
    dicom_panel(item)
    prediction_panel(predictor, item)
    explanation_panel(predictor, item, stamp)


st.title("Predict")
st.caption("Research tool — not for diagnosis. Predictions and maps must be reviewed by an expert.")

stamp = places.stamp(ART, artifacts.MODEL)
try:
    predictor = get_predictor(str(ART), stamp)
except ArtifactError as err:
    st.error(str(err), icon=":material/error:")
    st.stop()

items = gather_inputs(places.load(artifacts.SAMPLES_CSV, quiet=True))
if not items:
    st.info("Upload one or more scans, or pick a shipped sample, to get a prediction.")
    st.stop()

load_all(items)
predict_all(predictor, items, stamp)
for item in items:
    if "error" in item:
        st.error(item["error"], icon=":material/broken_image:")
if len(items) > 1:
    batch_section(items)
detail_section(predictor, items, stamp)
