"""AppTest of the Predict page: uploads (one, bad, a mixed batch, DICOM), the shipped-sample
picker, explanation controls and missing artifacts. Never a traceback on screen.

Runs on the shipped artifacts (`artifacts/` or $NEUROSCAN_ARTIFACTS); without them a tiny model is
trained on the generated dataset (conftest.tiny_dataset), so the page logic is still checked.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from tumor_model.artifacts import CARD, REBUILD
from tumor_model.serving import maps
from tumor_model.serving.explain import METHOD_NAMES
from tumor_model.serving.predict import confidence_band

from badfiles import bad_files, odd_files
from conftest import REPO
from streamlit_server import shipped_artifacts

APP = REPO / "app" / "streamlit_app.py"


@pytest.fixture(scope="module")
def art(request) -> Path:
    """The shipped artifacts, else the tiny model conftest trains once per session."""
    return shipped_artifacts() or request.getfixturevalue("tiny_artifacts")


@pytest.fixture(scope="module")
def sample(art) -> tuple[str, bytes]:
    frame = pd.read_csv(art / "samples" / "samples.csv")
    name = frame.file.iloc[0]
    return name, (art / "samples" / name).read_bytes()


@pytest.fixture
def page(art, monkeypatch) -> AppTest:
    monkeypatch.setenv("NEUROSCAN_ARTIFACTS", str(art))
    monkeypatch.delenv("NEUROSCAN_DATA_DIR", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    at.switch_page("pages/predict.py").run()
    _clean(at)
    return at


def _clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _upload(at: AppTest, files: list[tuple[str, bytes]]) -> AppTest:
    at.file_uploader(key="predict_upload").set_value(
        [(name, data, "application/octet-stream") for name, data in files]
    ).run()
    _clean(at)
    return at


def _metrics(at: AppTest) -> dict:
    return {m.label: m.value for m in at.metric}


def _results(at: AppTest) -> pd.DataFrame:
    (table,) = [d.value for d in at.dataframe if "probability" in d.value.columns]
    return table


def _overlay_captions(at: AppTest) -> list[str]:
    return [c for img in at.image for c in img.captions if "overlay" in c]


def test_page_starts_empty_with_the_notice(page):
    assert page.title[0].value == "Predict"
    assert any("Research tool — not for diagnosis" in c.value for c in page.caption)
    assert any("Upload one or more scans" in i.value for i in page.info)
    assert not page.error and not page.main.metric  # the sidebar shows the model's metric


def test_upload_one_sample_shows_probability_and_overlay(page, sample, art):
    at = _upload(page, [sample])
    shown = _metrics(at)
    p, threshold = float(shown["P(tumour)"]), float(shown["Threshold"])
    assert 0.0 <= p <= 1.0
    assert shown["Decision"] == ("tumour" if p >= threshold else "no tumour")
    band = confidence_band(p, threshold)
    assert any(band[1:] in m.value for m in [*at.info, *at.warning])
    default = METHOD_NAMES[maps.default_explanation(art)[0]]  # neuroscan localise's choice
    assert _overlay_captions(at) == [f"{default} overlay: evidence for “{shown['Decision']}”"]
    shipped = maps.shipped(art) is not None  # then its benchmark line is shown
    assert any(c.value.startswith("Default map: ") for c in at.caption) == shipped
    assert at.download_button(key="predict_overlay_png")
    assert not at.error


def test_upload_a_bad_file_shows_its_error(page):
    at = _upload(page, [("notes.png", bad_files()["text.png"])])
    assert [e.value for e in at.error] == [
        "'notes.png': not an image: looks like text (starts with b'This is ')"
    ]
    assert not at.main.metric and not _overlay_captions(at)


def test_batch_of_three_with_one_bad(page, sample):
    name, data = sample
    files = [
        ("first.png", data),
        ("truncated.jpg", bad_files()["jpeg_cut_half.jpg"]),
        ("third.png", data),
    ]
    at = _upload(page, files)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("'truncated.jpg': ")
    table = _results(at)
    assert list(table.file) == ["first.png", "third.png"]  # predicted scans: no empty cells
    assert not table.isna().any().any() and "error" not in table
    assert (table.probability == table.probability.round(4)).all()
    assert (table.threshold == table.threshold.round(4)).all()
    (unread,) = [t.value for t in at.table if "error" in t.value.columns]
    assert unread.file.tolist() == ["truncated.jpg"]
    assert unread.error.tolist() == errors  # the whole message, in a table that wraps it
    assert at.download_button(key="predict_csv")
    assert len(at.get("progress")) == 1
    assert _overlay_captions(at), "the first good scan is explained"
    assert at.selectbox(key="predict_pick").options == ["1. first.png", "2. third.png"]
    at.selectbox(key="predict_pick").set_value("2. third.png").run()
    _clean(at)
    assert at.header[0].value == "third.png"


def test_many_bad_kinds_in_one_batch_never_crash(page, sample):
    bad = bad_files()
    kinds = [
        "empty.png",
        "report.jpg",
        "png_cut_half.png",
        "bomb_30000.png",
        "no_pixels.dcm",
        "zeros.png",
        "tiny_7px.png",
    ]
    at = _upload(page, [sample, *[(k, bad[k]) for k in kinds]])
    errors = [e.value for e in at.error]
    assert len(errors) == len(kinds)
    for kind, message in zip(kinds, errors, strict=True):
        assert message.startswith(f"'{kind}': ") and "Traceback" not in message
    assert len(_results(at)) == 1
    (unread,) = [t.value for t in at.table if "error" in t.value.columns]
    assert unread.error.tolist() == errors


def test_dicom_frame_slider_and_safe_tags(page):
    odd = odd_files()
    at = _upload(page, [("series", odd["mr_multiframe.dcm"])])  # no extension: read by content
    slider = at.slider(key=next(k for k in _keys(at) if k.startswith("predict_frame_")))
    assert slider.value == 3 and slider.max == 5  # the middle of 5 frames, 1-based
    tags = at.dataframe[0].value
    assert {"Modality", "Rows", "NumberOfFrames"} <= set(tags.tag)
    text = tags.to_string()
    for secret in ("Doe", "PID-0001", "19700101", "Test Hospital", "Patient"):
        assert secret not in text
    slider.set_value(1).run()
    _clean(at)
    _predict_anyway(at)  # a synthetic head pattern: the guard may withhold the verdict
    assert _overlay_captions(at) and "P(tumour)" in _metrics(at)


def _keys(at: AppTest) -> list[str]:
    return [w.key for w in at.slider if w.key]


def test_explanation_controls(page, sample):
    at = _upload(page, [sample])
    first = at.image[-1].value
    at.slider(key="predict_alpha").set_value(0.8).run()
    at.selectbox(key="predict_colormap").set_value("viridis").run()
    _clean(at)
    assert at.image[-1].value != first
    at.selectbox(key="predict_method").set_value("gradcam++").run()
    _clean(at)
    assert _overlay_captions(at)[0].startswith("Grad-CAM++ overlay")


def test_shipped_sample_picker(page, sample):
    name, _ = sample
    at = page.selectbox(key="predict_sample").set_value(name).run()
    _clean(at)
    assert "P(tumour)" in _metrics(at)
    assert at.header[0].value == name
    assert _overlay_captions(at)


def _predict_anyway(at: AppTest) -> AppTest:
    """Turn on "Predict anyway" where the guard withheld the verdict (no-op otherwise)."""
    for toggle in at.toggle:
        if toggle.key and toggle.key.startswith("predict_anyway_"):
            toggle.set_value(True).run()
            _clean(at)
    return at


def test_not_a_brain_mri_gets_no_verdict_until_predicted_anyway(page):
    """A white image is no brain-MRI slice: the page says so with the reason, shows no
    decision, band or heat map; "Predict anyway" shows them with the warning kept."""
    buf = io.BytesIO()
    Image.new("RGB", (128, 128), (255, 255, 255)).save(buf, "PNG")
    at = _upload(page, [("white.png", buf.getvalue())])
    (message,) = [e.value for e in at.error]
    assert "does not look like a brain-mri slice" in message.lower()
    assert "grey level" in message  # the check that fired is named
    assert not at.main.metric and not _overlay_captions(at) and not at.image
    assert not [i for i in at.info if "against a threshold" in i.value]  # no band
    at = _predict_anyway(at)
    shown = _metrics(at)
    assert shown["Decision"] in ("tumour", "no tumour")
    assert any("Unusual image, predicted anyway" in w.value for w in at.warning)
    assert _overlay_captions(at)


def test_missing_artifacts_show_the_rebuild_command(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROSCAN_ARTIFACTS", str(tmp_path))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    at.switch_page("pages/predict.py").run()
    _clean(at)
    errors = " ".join(e.value for e in at.error)
    assert f"Artifact {CARD!r}" in errors and "is missing" in errors and REBUILD in errors
    assert not at.file_uploader


# ----------------------------------------------------------------------------- volumes


def test_volume_shows_chart_slider_verdict_and_suspicious_slices(page, art):
    from tumor_model.serving import volume as vol
    from tumor_model.serving.predict import Predictor

    from volumes import sample_volume

    data = sample_volume(art)  # 14 shipped sample slices, 4 tumour ones in the middle
    expected = vol.predict_volume(Predictor(art), vol.load_volume([data], ["stack.nii.gz"]))
    at = _upload(page, [("stack.nii.gz", data)])
    assert not at.error and at.header[0].value == "stack.nii.gz"
    shown = _metrics(at)
    assert shown["Volume verdict"] == {"tumor": "tumour", "healthy": "no tumour"}.get(
        expected["label"], expected["label"]
    )
    assert shown["Slices"] == "14 (axial)"
    assert float(shown["Highest P(tumour)"]) == pytest.approx(max(expected["probabilities"]), 1e-3)
    assert any(vol.RULE in m.value for m in at.markdown)
    assert any(c.value.startswith("How the rule was checked (on this model)") for c in at.caption)
    (chart,) = [e for e in at.get("plotly_chart") if e.key.startswith("predict_volume_chart_")]
    slider = at.slider(key=next(k for k in _keys(at) if k.startswith("predict_slice_")))
    assert slider.max == 14 and slider.value == expected["most_suspicious"][0]
    captions = [c for img in at.image for c in img.captions]
    top = [f"Slice {k}: P(tumour) " for k in expected["most_suspicious"]]
    assert [c[: len(t)] for c, t in zip(captions[2:], top, strict=True)] == top
    default = METHOD_NAMES[maps.default_explanation(art)[0]]  # as single scans get
    assert all(f"; {default} evidence for “" in c for c in captions[1:])
    slider.set_value(1).run()
    _clean(at)
    assert (
        at.image[1].captions[0].startswith(f"Slice 1: P(tumour) {expected['probabilities'][0]:.3f}")
    )


@pytest.mark.slow
def test_volume_slice_maps_are_the_models_default_explanation(art):
    """The volume view's overlays are the default map (method and layers of
    `maps.default_explanation`) of each slice's predicted class, not Grad-CAM's."""
    import numpy as np

    from tumor_model.dashboard import predict as pp
    from tumor_model.serving import overlay as ov
    from tumor_model.serving import volume as vol
    from tumor_model.serving.predict import Predictor

    from volumes import sample_volume

    predictor = Predictor(art)
    explainer = predictor.explainer()
    volume = vol.load_volume([sample_volume(art)], ["stack.nii.gz"])
    item = {"key": "stack", "volume": volume, "result": vol.predict_volume(predictor, volume)}
    method, layers = maps.default_explanation(art, predictor.model)
    chosen = item["result"]["most_suspicious"][0]
    views = pp.slice_views((predictor, explainer, 0.0), item, chosen, (method, layers), {})
    pixels = predictor.pixels(volume.image(chosen - 1))
    target = int(item["result"]["slices"][chosen - 1]["probability"] >= item["result"]["threshold"])
    expl = explainer.explain(pixels, method, target, layers)
    assert expl.method == method and (layers is None or expl.layers == layers)
    picture, caption = views["chosen"]
    assert np.abs(picture.astype(int) - ov.overlay(pixels, expl.heatmap, 0.4, "jet")).max() <= 1
    assert f"; {METHOD_NAMES[method]} evidence for" in caption
    assert len(views["top"]) == len(item["result"]["most_suspicious"])
    if (method, layers) != ("gradcam", None):  # the shipped model's default is not Grad-CAM
        gradcam = explainer.explain(pixels, "gradcam", target).heatmap
        assert np.abs(gradcam - expl.heatmap).max() > 0.05


def test_bad_volumes_are_errors_and_the_rest_is_predicted(page, sample):
    import numpy as np

    from volumes import nifti_bytes, series_files, zip_bytes

    mixed = zip_bytes([*series_files(n=3), *series_files(n=3, uid="1.2.3", prefix="b/")])
    files = [
        ("4d.nii", nifti_bytes(np.zeros((16, 16, 8, 3), np.int16))),
        sample,
        ("mixed.zip", mixed),
    ]
    at = _upload(page, files)
    errors = [e.value for e in at.error]
    assert len(errors) == 2
    assert errors[0].startswith("'4d.nii': 4-D NIfTI-1 data")
    assert errors[1].startswith("'mixed.zip': mixed series: 2 series")
    assert "Results: 1 predicted, 2 could not be read" in [h.value for h in at.subheader]
    assert list(_results(at).file) == [sample[0]]
    assert "P(tumour)" in _metrics(at) and _overlay_captions(at)


# ----------------------------------------------------------------------------- downloads, methods


def test_overlay_download_is_at_the_scans_resolution(page, sample):
    buf = io.BytesIO()  # a real scan at an odd size (a flat grey image gets no verdict, no map)
    Image.open(io.BytesIO(sample[1])).convert("RGB").resize((317, 251)).save(buf, "PNG")
    at = _upload(page, [("odd_size.png", buf.getvalue())])
    button = at.download_button(key="predict_overlay_png")
    assert "317x251 px like the scan" in button.proto.label


@pytest.mark.slow
def test_methods_side_by_side(page, sample):
    from tumor_model.serving.explain import METHODS

    at = _upload(page, [sample])
    assert not [c for img in at.image for c in img.captions if c.endswith(" s)")]
    at.toggle(key="predict_compare").set_value(True).run()
    _clean(at)
    shown = [c for img in at.image for c in img.captions if c.endswith(" s)")]
    assert [c.split(" (")[0] for c in shown] == [METHOD_NAMES[m] for m in METHODS]
    assert not at.error
