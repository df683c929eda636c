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
from tumor_model.predict import confidence_band

from badfiles import bad_files, odd_files
from conftest import REPO
from streamlit_server import shipped_artifacts

APP = REPO / "streamlit_app.py"


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


def test_upload_one_sample_shows_probability_and_overlay(page, sample):
    at = _upload(page, [sample])
    shown = _metrics(at)
    p, threshold = float(shown["P(tumour)"]), float(shown["Threshold"])
    assert 0.0 <= p <= 1.0
    assert shown["Decision"] == ("tumour" if p >= threshold else "no tumour")
    band = confidence_band(p, threshold)
    assert any(band[1:] in m.value for m in [*at.info, *at.warning])
    assert _overlay_captions(at) == [f"Grad-CAM overlay: evidence for “{shown['Decision']}”"]
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
    assert list(table.file) == ["first.png", "truncated.jpg", "third.png"]
    assert table.probability.notna().tolist() == [True, False, True]
    assert (table.error != "").tolist() == [False, True, False]
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
    assert _results(at).probability.notna().sum() == 1


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


def test_out_of_distribution_warning_is_shown(page, art):
    """A blank image is far from brain MRIs; when the guard flags it the page must say so."""
    from tumor_model.predict import Predictor

    buf = io.BytesIO()
    Image.new("RGB", (128, 128), (255, 255, 255)).save(buf, "PNG")
    result = Predictor(art).predict_files([buf.getvalue()], ["white.png"])[0]
    at = _upload(page, [("white.png", buf.getvalue())])
    warned = any("Unusual image" in w.value for w in at.warning)
    assert warned == result["out_of_distribution"]


def test_missing_artifacts_show_the_rebuild_command(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROSCAN_ARTIFACTS", str(tmp_path))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    at.switch_page("pages/predict.py").run()
    _clean(at)
    errors = " ".join(e.value for e in at.error)
    assert f"Artifact {CARD!r}" in errors and "is missing" in errors and REBUILD in errors
    assert not at.file_uploader
