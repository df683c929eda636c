"""The Predict page's logic without widgets: decoding the uploads, predicting them in chunks
with a per-session cache, the batch table, the texts around a prediction, the explanation map
(cache keys, captions, the overlay download) and the volume view's slice maps, which use the
model's default explanation (`tumor_model.serving.maps.default_explanation`) like single scans.

Uploads stay in memory; only derived results (predictions, heat maps) are kept, in caches the
page holds in its session state (`session_cache`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from tumor_model.dashboard import card as model_card
from tumor_model.dashboard import download
from tumor_model.dashboard import volume as vv
from tumor_model.dashboard.tables import SHOWN
from tumor_model.io import dicom
from tumor_model.io.imageio import ImageLoadError, load_scan
from tumor_model.serving import overlay as ov
from tumor_model.serving import volume as vol
from tumor_model.serving.explain import METHOD_NAMES

CHUNK = 16  # scans per model call (one progress-bar step)
CACHE_SIZE = 256  # results / heat maps kept per session
VOLUME_CACHE = 2  # volumes (all their slices) kept per session
ROUNDING = {"probability": 4, "threshold": 4, "ood_score": 2}  # digits in the table and CSV
LOADING = (
    "Loading the model: the first visit after the server starts takes several seconds "
    "(TensorFlow and the network weights); later visits are instant."
)

# ----------------------------------------------------------------------------- caches


def session_cache(state, name: str) -> dict:
    """The page's cache `name` (results, maps) in a session state (any mutable mapping)."""
    return state.setdefault("_predict_cache", {}).setdefault(name, {})


def remember(cache: dict, key, value, limit: int = CACHE_SIZE):
    """Store `value` under `key`, dropping the oldest entries beyond `limit`; returns `value`."""
    while len(cache) >= limit:
        cache.pop(next(iter(cache)))
    cache[key] = value
    return value


# ----------------------------------------------------------------------------- scans


def load_all(items: list[dict], state) -> None:
    """Decode every item [{name, data}] in place: 'key' (content + name), 'frame_key' (its DICOM
    frame slider), 'frame' (0-based, from that slider's value in `state`), 'image' and 'dicom';
    or 'error', naming the file and the problem (one bad file never stops a batch)."""
    for item in items:
        item["key"] = hashlib.sha256(item["data"]).hexdigest()[:20] + "|" + item["name"]
        item["frame_key"] = f"predict_frame_{item['key'][:20]}"
        frame = state.get(item["frame_key"])
        item["frame"] = None if frame is None else int(frame) - 1
        try:
            item["image"], item["dicom"] = load_scan(item["data"], item["name"], item["frame"])
        except ImageLoadError as err:
            item["error"] = str(err)
        except Exception as err:  # noqa: BLE001 - UI boundary: one bad file never stops a batch
            item["error"] = f"{item['name']!r}: could not be read ({type(err).__name__})"


def pending(items: list[dict], cache: dict, stamp: float) -> list[tuple]:
    """[(cache key, item)] of the decoded items still to predict; the others get their cached
    'result' (cached per content, name, frame and model version `stamp`)."""
    todo = []
    for item in items:
        if "error" in item:
            continue
        key = (stamp, item["key"], item["frame"])
        if key in cache:
            item["result"] = cache[key]
        else:
            todo.append((key, item))
    return todo


def predict_chunk(predictor, chunk: list[tuple], cache: dict) -> None:
    """Predict one chunk of `pending`'s [(key, item)] in one model call: each item gets its
    'result' (also cached), or all get an 'error' if the call fails."""
    try:
        pairs = predictor.predict_images([item["image"] for _, item in chunk])
    except Exception as err:  # noqa: BLE001 - UI boundary: report, never crash
        for _, item in chunk:
            item["error"] = f"{item['name']!r}: prediction failed ({type(err).__name__})"
        return
    for (key, item), (probability, score) in zip(chunk, pairs, strict=True):
        result = predictor.result(item["name"], probability, score, item["image"]).to_dict()
        item["result"] = remember(cache, key, result)


def results_frame(items: list[dict]) -> pd.DataFrame:
    """The Predict page's batch table: one row per scan, its result or why it has none."""
    rows = []
    for item in items:
        res = item.get("result")
        if res is None:
            rows.append({"file": item["name"], "error": item.get("error", "not predicted")})
        else:
            rows.append({**res, "label": SHOWN.get(res["label"], res["label"]), "error": ""})
    columns = ["file", "probability", "label", "band", "out_of_distribution", "ood_score"]
    frame = pd.DataFrame(rows).reindex(columns=[*columns, "threshold", "error"])
    for name, digits in ROUNDING.items():
        frame[name] = pd.to_numeric(frame[name], errors="coerce").round(digits)
    text = ["label", "band", "error"]
    frame[text] = frame[text].fillna("").astype(str)
    frame["out_of_distribution"] = frame.out_of_distribution.astype("boolean")
    return frame


# ----------------------------------------------------------------------------- texts


def band_text(res: dict, card: dict | None) -> str:
    """The confidence band in words, with where the model's threshold was chosen (validation
    scans, or the site's scans for a model written by `neuroscan adapt`)."""
    band = res["band"]
    return (
        f"**{band[0].upper()}{band[1:]}.** P(tumour) {res['probability']:.1%} against a threshold "
        f"of {res['threshold']:.1%} {model_card.threshold_origin(card)}."
    )


def unusual_text(res: dict) -> str:
    return (
        f"**Unusual image, predicted anyway: {res.get('ood_reason') or ''}.** The prediction "
        "above is unreliable; check that this is an axial brain MRI slice."
    )


def no_verdict_text(res: dict) -> str:
    reason = res.get("ood_reason") or ""
    return (
        f"**No verdict: {reason[:1].upper()}{reason[1:]}.** NeuroScan only reads brain-MRI "
        "slices; no band and no heat map are given for this image."
    )


def dicom_rows(scan) -> pd.DataFrame:
    """The DICOM scan's non-identifying tags (the allowlist only, defence in depth)."""
    allowed = {*dicom.INFO_TAGS, "TransferSyntax"}
    rows = [{"tag": k, "value": str(v)} for k, v in scan.info.items() if k in allowed]
    return pd.DataFrame(rows, columns=["tag", "value"])


# ----------------------------------------------------------------------------- explanations


def map_key(stamp: float, item: dict, method: str, target: int, layers) -> tuple:
    """The cache key of a scan's explanation map."""
    return (stamp, item["key"], item["frame"], method, target, layers)


def cached_map(explainer, cache: dict, key: tuple, pixels):
    """The explanation of `map_key`'s `key` for the prepared `pixels`, computed once by
    `explainer()` (called only when the map is not cached: building it loads TensorFlow)."""
    if key not in cache:
        *_, method, target, layers = key
        remember(cache, key, explainer().explain(pixels, method, target, layers))
    return cache[key]


def layers_for(method: str, default: tuple) -> tuple | None:
    """The layers a method explains on: the default's layers for the default method (`default`
    = (method, layers) from `maps.default_explanation`), else None (the card's last_conv)."""
    return default[1] if method == default[0] else None


def explanation_caption(method: str, expl, shown: str) -> str:
    layers = f" on {' + '.join(expl.layers)}" if expl.layers else ""
    return (
        f"Highlighted: regions that pushed the model towards **{shown}**, the predicted class "
        f"({METHOD_NAMES[method]}{layers}, {expl.seconds:.1f} s). Red = strongest with the jet "
        "colour map. A heat map shows where the model looked, not proof of a lesion."
    )


def overlay_download(item: dict, expl, geometry: str, method: str, look: tuple) -> dict:
    """The download button's label, PNG bytes and file name: the map on the scan at its own
    resolution with P(tumour), the decision and the method written below (`look` = (alpha,
    colour map))."""
    res = item["result"]
    shown = SHOWN.get(res["label"], res["label"])
    caption = f"P(tumour) {res['probability']:.3f} · decision: {shown} · {METHOD_NAMES[method]}"
    full = download.annotated_overlay(item["image"], expl.heatmap, geometry, caption, *look)
    return {
        "label": "Download overlay (PNG, {}x{} px like the scan)".format(*item["image"].size),
        "data": ov.to_png(full),
        "file_name": f"{Path(item['name']).stem}_{method}.png",
    }


def lesion_caption(record: dict) -> str:
    """What the lesion head's map is, with the figures `neuroscan lesion-head` measured on
    held-out slices (Dice per sequence where masks were, pointing game per source)."""
    test = record.get("test") or {}
    dice = ", ".join(
        f"{g.split('/')[-1]} {v['mean']:.2f}" for g, v in test.get("dice", {}).items() if "/" in g
    )
    point = ", ".join(
        f"{g} {v['pointing_8px']:.0%}" for g, v in test.get("head", {}).items() if "/" not in g
    )
    return (
        f"Where: the lesion head's P(lesion) per pixel (>= {record.get('threshold', 0.5):.2f} "
        "counts as lesion). Trained on expert masks and boxes, not the model's evidence. On "
        f"held-out slices: Dice {dice or '-'}; peak within 8 px of the lesion: {point or '-'}."
    )


def lesion_image(predictor, item: dict, pixels, look: tuple, cache: dict, stamp: float):
    """`st.image` arguments for the lesion head's map over the model input (`look` = (alpha,
    colour map)), the map kept in `cache` (like the explanation maps) so that a rerun, a slider
    moved, does not run the network again; None when the model folder carries no head, the
    input alone with the reason when its head is refused."""
    from tumor_model.artifacts import ArtifactError

    try:
        head = predictor.lesion_map()
    except ArtifactError as err:
        return {"image": pixels, "caption": f"Lesion head unavailable: {err}", "alt": "no map"}
    if head is None:
        return None
    key = map_key(stamp, item, "lesion-head", 1, ())
    heat = cache[key] if key in cache else remember(cache, key, head(pixels))
    return {
        "image": ov.overlay(pixels, heat, *look),
        "caption": lesion_caption(head.record),
        "alt": "lesion head overlay",
    }


# ----------------------------------------------------------------------------- volumes


def read_volume(predictor, item: dict) -> tuple:
    """(volume, its per-slice result) of a volume item; ImageLoadError when it cannot be read."""
    volume = vol.load_volume(item["data"], item["names"])
    return volume, vol.predict_volume(predictor, volume)


def volume_error(item: dict, err: Exception) -> dict:
    """The error item of a volume that could not be read, listed with the scans."""
    if isinstance(err, ImageLoadError):
        reason = str(err)
    else:
        reason = f"{item['name']!r}: could not be read ({type(err).__name__})"
    return {"name": item["name"], "error": reason, "index": item["index"]}


def slice_maps(model: tuple, item: dict, index: int, explanation: tuple, cache: dict):
    """(model input, overlay, target) of slice `index` (0-based) of a predicted volume item:
    `explanation` = (method, layers), the model's default (`maps.default_explanation`), by
    `model` = (predictor, explainer, stamp of model.keras); cached per model, slice and map."""
    predictor, explainer, stamp = model
    key = (stamp, item["key"], "slice", index, *explanation)
    if key not in cache:
        target = vv.target(item["result"], index)
        picture = vv.slice_overlay(predictor, explainer, item["volume"], index, target, explanation)
        remember(cache, key, picture)
    return cache[key]


def slice_views(model: tuple, item: dict, chosen: int, explanation: tuple, cache: dict) -> dict:
    """The volume view's pictures, by `slice_maps`: "input" (the model input of slice `chosen`,
    1-based), "chosen" (its overlay, caption) and "top" ([(overlay, caption)] of the most
    suspicious slices)."""
    result = item["result"]

    def view(number: int) -> tuple:
        pixels, picture, target = slice_maps(model, item, number - 1, explanation, cache)
        caption = vv.slice_caption(result["slices"][number - 1], target, explanation[0])
        return pixels, picture, caption

    pixels, picture, caption = view(chosen)
    top = [view(number)[1:] for number in result["most_suspicious"]]
    return {"input": pixels, "chosen": (picture, caption), "top": top}
