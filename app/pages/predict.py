"""Predict: upload scans (or pick a shipped sample) and get P(tumour), the decision, a confidence
band, an out-of-distribution warning and a visual explanation of the predicted class.

Uploaded scans stay in memory (Streamlit's upload manager): nothing is written to disk or logged.
Only derived results (predictions, heat maps) are kept, in this session's state. The logic is in
`tumor_model.dashboard.predict`; this page reads the widgets and renders.
"""

from __future__ import annotations

import time
from functools import partial

import pandas as pd
import streamlit as st

from tumor_model import artifacts
from tumor_model.artifacts import ArtifactError
from tumor_model.dashboard import places
from tumor_model.dashboard import predict as pp
from tumor_model.dashboard import volume as vv
from tumor_model.dashboard.tables import SHOWN
from tumor_model.serving import explain as ex
from tumor_model.serving import maps, volume_check
from tumor_model.serving import overlay as ov
from tumor_model.serving.predict import Predictor

ART = places.page()


def get_predictor(folder: str, stamp: float) -> Predictor:
    """The model and its card, loaded once per artifacts folder and model.keras version (shared
    with the Evaluation page); the first visit says what it is waiting for."""
    if places.predictor_loaded(folder, stamp):
        return places.predictor(folder, stamp)
    note = st.empty()
    note.info(pp.LOADING, icon=":material/hourglass_top:")
    try:
        return places.predictor(folder, stamp)
    finally:
        note.empty()


@st.cache_resource(show_spinner="Preparing the explainer…", max_entries=2)
def get_explainer(folder: str, stamp: float) -> ex.Explainer:
    """The explainer (a clone of the model) of the cached Predictor, built once."""
    return get_predictor(folder, stamp).explainer()


def cache(name: str) -> dict:
    return pp.session_cache(st.session_state, name)


def gather_inputs(samples: pd.DataFrame | None) -> list[dict]:
    """[{name, data}] from the uploader, else from the chosen shipped sample."""
    uploads = st.file_uploader(
        "Brain-MRI scans: PNG, JPEG, TIFF, BMP or DICOM (with or without .dcm); one or many. "
        "Volumes: NIfTI (.nii, .nii.gz), multi-frame DICOM, a DICOM series (its .dcm files or "
        "a .zip of them)",
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


def predict_all(predictor: Predictor, items: list[dict], stamp: float) -> None:
    """Predict the loaded items (cached per content, name, frame and model), with progress."""
    results = cache("results")
    todo = pp.pending(items, results, stamp)
    bar = st.progress(0.0, text=f"Predicting {len(todo)} scans…") if len(todo) > 1 else None
    start = time.perf_counter()
    for first in range(0, len(todo), pp.CHUNK):
        pp.predict_chunk(predictor, todo[first : first + pp.CHUNK], results)
        if bar is not None:
            done = min(first + pp.CHUNK, len(todo))
            bar.progress(done / len(todo), text=f"Predicted {done} of {len(todo)} scans")
    if bar is not None:
        seconds = time.perf_counter() - start
        bar.progress(1.0, text=f"Predicted {len(todo)} scans in {seconds:.1f} s")


def batch_section(items: list[dict]) -> None:
    table = pp.results_frame(items)
    good, bad = table[table.error.eq("")], table[table.error.ne("")]
    st.subheader(f"Results: {len(good)} predicted, {len(bad)} could not be read")
    if len(good):
        st.dataframe(
            good.drop(columns="error"),
            hide_index=True,
            key="predict_table",
            column_config={
                "probability": st.column_config.ProgressColumn(
                    "P(tumour)", min_value=0.0, max_value=1.0, format="%.4f"
                ),
                "threshold": st.column_config.NumberColumn("threshold", format="%.4f"),
                "ood_score": st.column_config.NumberColumn("OOD score", format="%.2f"),
                "out_of_distribution": st.column_config.CheckboxColumn("Unusual image"),
            },
        )
    if len(bad):
        st.markdown("**Could not be read**")
        st.table(bad[["file", "error"]], hide_index=True, border="horizontal")
    st.download_button(
        "Download results (CSV)",
        table.to_csv(index=False).encode(),
        file_name="neuroscan_predictions.csv",
        mime="text/csv",
        key="predict_csv",
    )


def prediction_panel(predictor: Predictor, item: dict) -> None:
    res = item["result"]
    c1, c2, c3 = st.columns(3)
    c1.metric("P(tumour)", f"{res['probability']:.3f}")
    c2.metric("Decision", SHOWN.get(res["label"], res["label"]))
    c3.metric("Threshold", f"{res['threshold']:.3f}")
    uncertain = res["band"].startswith("uncertain")
    (st.warning if uncertain else st.info)(
        pp.band_text(res, predictor.card), icon=":material/psychology:"
    )
    if res["out_of_distribution"]:
        st.warning(pp.unusual_text(res), icon=":material/warning:")


def not_mri_panel(predictor: Predictor, item: dict) -> bool:
    """For a scan the guard says is not a brain-MRI slice: no verdict, the reason and a
    "Predict anyway" toggle. True when the result (warning kept) is to be shown."""
    res = item["result"]
    if res.get("is_mri", True):
        return True
    st.error(pp.no_verdict_text(res), icon=":material/block:")
    anyway = st.toggle(
        "Predict anyway",
        key=f"predict_anyway_{item['key'][:20]}",
        help="Show the model's output for this image all the same (with the warning).",
    )
    if anyway:
        item["result"] = predictor.predict_anyway(res)
    return anyway


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
        st.dataframe(pp.dicom_rows(scan), hide_index=True, key=f"predict_dicom_{item['frame_key']}")


def explanation_controls(default: str) -> tuple[str, tuple]:
    """(method, (alpha, colour map)) from the explanation widgets; `default`: the model's."""
    c1, c2, c3 = st.columns(3)
    method = c1.selectbox(
        "Method",
        ex.METHODS,
        index=ex.METHODS.index(default),
        format_func=ex.METHOD_NAMES.get,
        key="predict_method",
        help="Grad-CAM and Grad-CAM++ take well under a second; Score-CAM and SmoothGrad 2-3 s.",
    )
    alpha = c2.slider("Overlay opacity", 0.0, 1.0, 0.4, 0.05, key="predict_alpha")
    colormap = c3.selectbox("Colour map", tuple(ov.COLORMAPS), key="predict_colormap")
    return method, (alpha, colormap)


def explanation(item: dict, pixels, method: str, target: int, layers, stamp: float):
    """The map of `method` on `layers` for the scan (cached), or None after an error."""
    key = pp.map_key(stamp, item, method, target, layers)
    try:
        with st.spinner(f"Computing {ex.METHOD_NAMES[method]}…"):
            return pp.cached_map(
                partial(get_explainer, str(ART), stamp), cache("maps"), key, pixels
            )
    except ArtifactError as err:
        st.error(str(err), icon=":material/error:")
    except Exception as err:  # noqa: BLE001 - UI boundary: the prediction stays on screen
        st.error(f"Could not compute the explanation ({type(err).__name__}).")
    return None


def explanation_panel(predictor: Predictor, item: dict, stamp: float) -> None:
    st.subheader("Why: explanation map")
    line = maps.benchmark_line(ART, predictor.card.get("model_sha256"))
    if line:
        st.caption(line)
    default = maps.default_explanation(ART, predictor.model)
    method, look = explanation_controls(default[0])
    target = predictor.class_names.index(item["result"]["label"])
    shown = SHOWN[predictor.class_names[target]]
    pixels = predictor.pixels(item["image"])
    expl = explanation(item, pixels, method, target, pp.layers_for(method, default), stamp)
    if expl is None:
        return
    where = pp.lesion_image(predictor, item, pixels, look, cache("maps"), stamp)  # None: no head
    cols = st.columns(2 + bool(where))
    cols[0].image(
        pixels,
        caption=f"Model input ({pixels.shape[0]} px, cropped to the head)",
        width="stretch",
        alt="model input",
    )
    cols[1].image(
        ov.overlay(pixels, expl.heatmap, *look),
        caption=f"{ex.METHOD_NAMES[method]} overlay: evidence for “{shown}”",
        width="stretch",
        alt="explanation overlay",
    )
    if where:
        cols[2].image(**where, width="stretch")
    st.caption(pp.explanation_caption(method, expl, shown))
    if expl.empty:
        st.info(f"No region pushed the model towards {shown}: the map is empty.")
    st.download_button(
        **pp.overlay_download(item, expl, predictor.geometry, method, look),
        mime="image/png",
        key="predict_overlay_png",
        help="The heat map on the scan at its own resolution, with P(tumour), the decision, "
        "the method and the colour bar written below it.",
    )
    compare_methods(item, pixels, target, stamp, look, default)


def compare_methods(item: dict, pixels, target: int, stamp: float, look, default) -> None:
    """Every explanation method side by side on the same scan, each on the single map's layers
    (`default` = (method, layers)) and cached with it; `look` = (alpha, colour map)."""
    if not st.toggle("Compare all methods side by side", key="predict_compare"):
        return
    explainer = partial(get_explainer, str(ART), stamp)  # built only when a map is computed
    for col, method in zip(st.columns(len(ex.METHODS)), ex.METHODS, strict=True):
        key = pp.map_key(stamp, item, method, target, pp.layers_for(method, default))
        try:
            with st.spinner(f"Computing {ex.METHOD_NAMES[method]}…"):
                expl = pp.cached_map(explainer, cache("maps"), key, pixels)
        except Exception as err:  # noqa: BLE001 - UI boundary: the other maps stay
            col.error(f"{ex.METHOD_NAMES[method]}: failed ({type(err).__name__}).")
            continue
        col.image(
            ov.overlay(pixels, expl.heatmap, *look),
            caption=f"{ex.METHOD_NAMES[method]} ({expl.seconds:.1f} s)",
            width="stretch",
            alt="method comparison",
        )


def pick(good: list[dict], label: str, key: str) -> dict:
    """One of several items, by a selectbox of their numbered names (the first without one)."""
    if len(good) == 1:
        return good[0]
    names = [f"{i + 1}. {it['name']}" for i, it in enumerate(good)]
    chosen = st.selectbox(label, names, key=key)
    return good[names.index(chosen)] if chosen in names else good[0]


def detail_section(predictor: Predictor, items: list[dict], stamp: float) -> None:
    good = [item for item in items if "result" in item]
    if not good:
        return
    item = pick(good, "Explain one scan", "predict_pick")
    st.header(item["name"])
    dicom_panel(item)
    if not not_mri_panel(predictor, item):
        return
    prediction_panel(predictor, item)
    explanation_panel(predictor, item, stamp)


# ----------------------------------------------------------------------------- volumes


def read_volumes(predictor: Predictor, volumes: list[dict], stamp: float) -> list[dict]:
    """Read and predict every slice of each volume (cached per content and model). A volume that
    cannot be read comes back as an error item, to be listed with the scans."""
    store = st.session_state.setdefault("_predict_volumes", {})
    failed = []
    for item in volumes:
        key = (stamp, item["key"])
        if key not in store:
            try:
                with st.spinner(f"Predicting every slice of {item['name']}…"):
                    pp.remember(store, key, pp.read_volume(predictor, item), pp.VOLUME_CACHE)
            except Exception as err:  # noqa: BLE001 - UI boundary: one bad volume never stops a batch
                failed.append(pp.volume_error(item, err))
                continue
        item["volume"], item["result"] = store[key]
    return failed


def volume_header(predictor: Predictor, item: dict) -> int:
    """The verdict, the rule, the per-slice chart and the slice slider; returns the slice."""
    result, volume = item["result"], item["volume"]
    st.header(item["name"])
    c1, c2, c3 = st.columns(3)
    c1.metric("Volume verdict", vv.shown(result["label"]))
    c2.metric("Slices", f"{volume.n_slices} ({volume.info.get('axis', '?')})")
    c3.metric("Highest P(tumour)", f"{max(result['probabilities']):.3f}")
    st.markdown(vv.verdict_text(result))
    st.caption(volume_check.check_line(ART, predictor.card.get("model_sha256")))
    slider_key = f"predict_slice_{item['key']}"
    chosen = int(st.session_state.get(slider_key, vv.first_shown(result)))
    st.plotly_chart(
        vv.probability_figure(result, chosen), key=f"predict_volume_chart_{item['key']}"
    )
    return st.slider(
        f"Slice (of {volume.n_slices}, {volume.info.get('order', '')})",
        1,
        volume.n_slices,
        value=vv.first_shown(result),
        key=slider_key,
        help="Starts on the most suspicious slice; the chart's vertical line follows it.",
    )


def volume_section(predictor: Predictor, volumes: list[dict], stamp: float) -> None:
    good = [item for item in volumes if "result" in item]
    if not good:
        return
    if len(good) > 1:
        st.dataframe(vv.volumes_frame(good), hide_index=True, key="predict_volumes_table")
    item = pick(good, "Show one volume", "predict_volume_pick")
    chosen = volume_header(predictor, item)
    default = maps.default_explanation(ART, predictor.model)  # as a single scan gets
    try:
        model = (predictor, get_explainer(str(ART), stamp), stamp)
        views = pp.slice_views(model, item, chosen, default, cache("maps"))
    except Exception as err:  # noqa: BLE001 - UI boundary: the verdict stays on screen
        st.error(f"Could not compute the explanation ({type(err).__name__}).")
        return
    left, right = st.columns(2)
    left.image(
        views["input"], caption=f"Slice {chosen}: model input", width="stretch", alt="slice input"
    )
    right.image(*views["chosen"], width="stretch", alt="slice overlay")
    st.subheader("Most suspicious slices")
    for col, (picture, caption) in zip(st.columns(len(views["top"])), views["top"], strict=True):
        col.image(picture, caption=caption, width="stretch", alt="suspicious slice overlay")
    with st.expander("Volume geometry (non-identifying)"):
        st.dataframe(
            vv.info_frame(item["volume"].info), hide_index=True, key=f"predict_geo_{item['key']}"
        )


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

volumes, items = vv.split_uploads(items)
pp.load_all(items, st.session_state)
items = vv.merge(items, read_volumes(predictor, volumes, stamp))
predict_all(predictor, items, stamp)
for item in items:
    if "error" in item:
        st.error(item["error"], icon=":material/broken_image:")
if len(items) > 1:
    batch_section(items)
volume_section(predictor, volumes, stamp)
detail_section(predictor, items, stamp)
