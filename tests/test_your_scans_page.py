"""AppTest of the "Your scans" page: a folder of labelled scans is checked and adapted, the
adapted folder is written and can be chosen for the session; bad folders get a clear error
and write nothing; a zip upload is read in memory."""

from __future__ import annotations

import io
import zipfile

import pytest
from streamlit.testing.v1 import AppTest

from tumor_model import artifacts

from conftest import REPO, make_site

APP = REPO / "app" / "streamlit_app.py"


@pytest.fixture
def page(tiny_artifacts, monkeypatch) -> AppTest:
    monkeypatch.setenv("NEUROSCAN_ARTIFACTS", str(tiny_artifacts))
    monkeypatch.delenv("NEUROSCAN_DATA_DIR", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=300)
    at.run()
    at.switch_page("pages/your_scans.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.slow
def test_a_folder_is_checked_adapted_and_can_be_used(page, tmp_path):
    site = make_site(tmp_path / "site")
    out = tmp_path / "adapted"
    page.text_input(key="site_folder").set_value(str(site)).run()
    page.text_input(key="site_out").set_value(str(out)).run()
    page.button(key="site_run").click().run()
    assert not page.exception, [e.value for e in page.exception]
    assert not page.error, [e.value for e in page.error]
    (table,) = [d.value for d in page.dataframe if "step" in d.value.columns]  # has no key
    assert list(table.step) == list(
        [
            "The model as it is",
            "Temperature + threshold refitted",
            "Head retrained (shipped by adapt)",
        ]
    )
    assert "24 labelled scans (12 tumour, 12 healthy)" in page.success[0].value
    assert (out / artifacts.MODEL).is_file() and artifacts.read_card(out)["adapted"]
    assert any(f"`{out}`" in i.value for i in page.info)  # where it is, as an absolute path
    page.button(key="site_use").click().run()
    assert page.text_input(key="model_folder").value == str(out)
    captions = [c.value for c in page.sidebar.caption]
    assert any(c.startswith("Adapted ") and "24 labelled scans" in c for c in captions)
    assert "Threshold chosen on the site's scans (out-of-fold)." in captions
    assert [m.label for m in page.sidebar.metric] == ["Balanced accuracy on the site's scans"]


def test_one_class_folder_gets_a_clear_error_and_writes_nothing(page, tmp_path):
    site = make_site(tmp_path / "site", healthy=0)
    out = tmp_path / "adapted"
    page.text_input(key="site_folder").set_value(str(site)).run()
    page.text_input(key="site_out").set_value(str(out)).run()
    page.button(key="site_run").click().run()
    assert not page.exception
    assert "one class only" in page.error[0].value
    assert not out.exists()


@pytest.mark.slow
def test_a_zip_upload_is_read_in_memory(page, tmp_path):
    site = make_site(tmp_path / "site", seed=11)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for f in sorted(site.rglob("*.png")):
            z.write(f, f"scans/{f.relative_to(site).as_posix()}")
    page.radio(key="site_source").set_value("Upload a zip").run()
    page.text_input(key="site_out").set_value("").run()
    page.file_uploader(key="site_zip").set_value([("site.zip", buf.getvalue(), "application/zip")])
    page.button(key="site_run").click().run()
    assert not page.exception, [e.value for e in page.exception]
    assert not page.error, [e.value for e in page.error]
    assert "24 labelled scans" in page.success[0].value
