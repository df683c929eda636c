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

from tumor_model import artifacts, dicom, localise
from tumor_model import explain as ex
from tumor_model import overlay as ov
from tumor_model import volume as vol
from tumor_model.artifacts import ArtifactError
from tumor_model.dashboard import download as dl
from tumor_model.dashboard import places, tables
from tumor_model.dashboard import volume as vv
from tumor_model.dashboard.tables import SHOWN
from tumor_model.imageio import ImageLoadError, load_scan
from tumor_model.predict import Predictor

ART = places.page()
CHUNK = 16  # scans per model call (one progress-bar step)
CACHE_SIZE = 256  # results / heat maps kept per session


def get_predictor(folder: str, stamp: float) -> Predictor:
    """The model and its card, loaded once per artifacts folder and model.keras version (shared
    with the Evaluation page); the first visit says what it is waiting for."""
    if places.predictor_loaded(folder, stamp):
        return places.predictor(folder, stamp)
    note = st.empty()
    note.info(LOADING, icon=":material/hourglass_top:")
    try:
        return places.predictor(folder, stamp)
    finally:
        note.empty()


LOADING = (
    "Loading the model: the first visit after the server starts takes several seconds "
    "(TensorFlow and the network weights); later visits are instant."
)


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
            result = predictor.result(item["name"], probability, score, item["image"]).to_dict()
            item["result"] = _remember(cache, key, result)
        if bar is not None:
            done = min(first + CHUNK, len(todo))
            bar.progress(done / len(todo), text=f"Predicted {done} of {len(todo)} scans")
    if bar is not None:
        seconds = time.perf_counter() - start
        bar.progress(1.0, text=f"Predicted {len(todo)} scans in {seconds:.1f} s")


def batch_section(items: list[dict]) -> None:
    table = tables.results_frame(items)
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
            f"**Unusual image, predicted anyway: {res.get('ood_reason') or ''}.** The prediction "
            "above is unreliable; check that this is an axial brain MRI slice.",
            icon=":material/warning:",
        )


def not_mri_panel(predictor: Predictor, item: dict) -> bool:
    """For a scan the guard says is not a brain-MRI slice: no verdict, the reason and a
    "Predict anyway" toggle. True when the result (warning kept) is to be shown."""
    res = item["result"]
    if res.get("is_mri", True):
        return True
    reason = res.get("ood_reason") or ""
    st.error(
        f"**No verdict: {reason[0].upper()}{reason[1:]}.** NeuroScan only reads brain-MRI slices; "
        "no band and no heat map are given for this image.",
        icon=":material/block:",
    )
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
        allowed = {*dicom.INFO_TAGS, "TransferSyntax"}  # defence in depth: the allowlist only
        rows = [{"tag": k, "value": str(v)} for k, v in scan.info.items() if k in allowed]
        st.dataframe(
            pd.DataFrame(rows, columns=["tag", "value"]),
            hide_index=True,
            key=f"predict_dicom_{item['frame_key']}",
        )


def explanation_panel(predictor: Predictor, item: dict, stamp: float) -> None:
    st.subheader("Why: explanation map")
    line = localise.benchmark_line(ART, predictor.card.get("model_sha256"))
    if line:
        st.caption(line)
    default, default_layers = localise.default_explanation(ART, predictor.model)
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
    target = predictor.class_names.index(item["result"]["label"])
    shown = SHOWN[predictor.class_names[target]]
    cache = _cache("maps")
    layers = default_layers if method == default else None  # the chosen layer(s), else last_conv
    key = (stamp, item["key"], item["frame"], method, target, layers)
    pixels = predictor.pixels(item["image"])
    if key not in cache:
        try:
            with st.spinner(f"Computing {ex.METHOD_NAMES[method]}…"):
                expl = get_explainer(str(ART), stamp).explain(pixels, method, target, layers)
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
        f"({ex.METHOD_NAMES[method]}{' on ' + ' + '.join(expl.layers) if expl.layers else ''}, "
        f"{expl.seconds:.1f} s). Red = strongest with the jet colour "
        "map. A heat map shows where the model looked, not proof of a lesion."
    )
    if expl.empty:
        st.info(f"No region pushed the model towards {shown}: the map is empty.")
    res = item["result"]
    caption = f"P(tumour) {res['probability']:.3f} · decision: {shown} · {ex.METHOD_NAMES[method]}"
    full = dl.annotated_overlay(
        item["image"], expl.heatmap, predictor.geometry, caption, alpha, colormap
    )
    st.download_button(
        "Download overlay (PNG, {}x{} px like the scan)".format(*item["image"].size),
        ov.to_png(full),
        file_name=f"{Path(item['name']).stem}_{method}.png",
        mime="image/png",
        key="predict_overlay_png",
        help="The heat map on the scan at its own resolution, with P(tumour), the decision, "
        "the method and the colour bar written below it.",
    )
    compare_methods(item, pixels, target, stamp, (alpha, colormap), (default, default_layers))


def compare_methods(item: dict, pixels, target: int, stamp: float, look, chosen) -> None:
    """Every explanation method side by side on the same scan, each on the layers the single
    map uses (`chosen` = (default method, its layers)) and cached with it; `look` = (alpha,
    colour map)."""
    if not st.toggle("Compare all methods side by side", key="predict_compare"):
        return
    (alpha, colormap), (default, default_layers) = look, chosen
    cache = _cache("maps")
    for col, method in zip(st.columns(len(ex.METHODS)), ex.METHODS, strict=True):
        layers = default_layers if method == default else None
        key = (stamp, item["key"], item["frame"], method, target, layers)
        if key not in cache:
            try:
                with st.spinner(f"Computing {ex.METHOD_NAMES[method]}…"):
                    explainer = get_explainer(str(ART), stamp)
                    _remember(cache, key, explainer.explain(pixels, method, target, layers))
            except Exception as err:  # noqa: BLE001 - UI boundary: the other maps stay
                col.error(f"{ex.METHOD_NAMES[method]}: failed ({type(err).__name__}).")
                continue
        expl = cache[key]
        col.image(
            ov.overlay(pixels, expl.heatmap, alpha, colormap),
            caption=f"{ex.METHOD_NAMES[method]} ({expl.seconds:.1f} s)",
            width="stretch",
            alt="method comparison",
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
    if not not_mri_panel(predictor, item):
        return
    prediction_panel(predictor, item)
    explanation_panel(predictor, item, stamp)


# ----------------------------------------------------------------------------- volumes

VOLUME_CACHE = 2  # volumes (all their slices) kept per session


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
                    volume = vol.load_volume(item["data"], item["names"])
                    result = vol.predict_volume(predictor, volume)
            except ImageLoadError as err:
                failed.append({"name": item["name"], "error": str(err), "index": item["index"]})
                continue
            except Exception as err:  # noqa: BLE001 - UI boundary: one bad volume never stops a batch
                reason = f"{item['name']!r}: could not be read ({type(err).__name__})"
                failed.append({"name": item["name"], "error": reason, "index": item["index"]})
                continue
            while len(store) >= VOLUME_CACHE:
                store.pop(next(iter(store)))
            store[key] = (volume, result)
        item["volume"], item["result"] = store[key]
    return failed


def slice_maps(item: dict, index: int, stamp: float):
    """(model input, Grad-CAM overlay, what it explains) of a volume slice (0-based), cached."""
    cache = _cache("maps")
    key = (stamp, item["key"], "slice", index, vv.METHOD)
    if key not in cache:
        predictor = get_predictor(str(ART), stamp)
        explainer = get_explainer(str(ART), stamp)
        target = vv.target(item["result"], index)
        _remember(cache, key, vv.slice_overlay(predictor, explainer, item["volume"], index, target))
    return cache[key]


def volume_section(predictor: Predictor, volumes: list[dict], stamp: float) -> None:
    good = [item for item in volumes if "result" in item]
    if not good:
        return
    item = good[0]
    if len(good) > 1:
        st.dataframe(vv.volumes_frame(good), hide_index=True, key="predict_volumes_table")
        names = [f"{i + 1}. {it['name']}" for i, it in enumerate(good)]
        pick = st.selectbox("Show one volume", names, key="predict_volume_pick")
        item = good[names.index(pick)] if pick in names else good[0]
    result, volume = item["result"], item["volume"]
    st.header(item["name"])
    c1, c2, c3 = st.columns(3)
    c1.metric("Volume verdict", vv.shown(result["label"]))
    c2.metric("Slices", f"{volume.n_slices} ({volume.info.get('axis', '?')})")
    c3.metric("Highest P(tumour)", f"{max(result['probabilities']):.3f}")
    st.markdown(vv.verdict_text(result))
    st.caption(vv.check_text(predictor.card.get("model_sha256")))
    slider_key = f"predict_slice_{item['key']}"
    chosen = int(st.session_state.get(slider_key, vv.first_shown(result)))
    st.plotly_chart(
        vv.probability_figure(result, chosen), key=f"predict_volume_chart_{item['key']}"
    )
    chosen = st.slider(
        f"Slice (of {volume.n_slices}, {volume.info.get('order', '')})",
        1,
        volume.n_slices,
        value=vv.first_shown(result),
        key=slider_key,
        help="Starts on the most suspicious slice; the chart's vertical line follows it.",
    )
    top = result["most_suspicious"]
    try:
        pixels, picture, target = slice_maps(item, chosen - 1, stamp)
        tops = [slice_maps(item, number - 1, stamp)[1:] for number in top]
    except Exception as err:  # noqa: BLE001 - UI boundary: the verdict stays on screen
        st.error(f"Could not compute the explanation ({type(err).__name__}).")
        return
    res = result["slices"][chosen - 1]
    left, right = st.columns(2)
    left.image(pixels, caption=f"Slice {chosen}: model input", width="stretch", alt="slice input")
    right.image(
        picture,
        caption=vv.slice_caption(res, target),
        width="stretch",
        alt="slice overlay",
    )
    st.subheader("Most suspicious slices")
    for col, number, (picture, target) in zip(st.columns(len(top)), top, tops, strict=True):
        col.image(
            picture,
            caption=vv.slice_caption(result["slices"][number - 1], target),
            width="stretch",
            alt="suspicious slice overlay",
        )
    with st.expander("Volume geometry (non-identifying)"):
        st.dataframe(vv.info_frame(volume.info), hide_index=True, key=f"predict_geo_{item['key']}")


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
load_all(items)
items = vv.merge(items, read_volumes(predictor, volumes, stamp))
predict_all(predictor, items, stamp)
for item in items:
    if "error" in item:
        st.error(item["error"], icon=":material/broken_image:")
if len(items) > 1:
    batch_section(items)
volume_section(predictor, volumes, stamp)
detail_section(predictor, items, stamp)
