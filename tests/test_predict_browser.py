"""The Predict page in a real browser: `streamlit run`, Chromium via Playwright, upload a shipped
sample through the file input, wait for the explanation overlay, take a full-page screenshot
(into a temporary folder: the README's are taken by `python3 scripts/screenshots.py`); then upload
a mixed batch and check the error and the results table.

Skipped when /usr/bin/chromium is missing, except in CI (env CI set), where that is a failure.
Runs on the shipped artifacts, else on the tiny model of conftest.tiny_artifacts.
"""

from __future__ import annotations

import os

import pandas as pd
import pytest
from test_browser import leaves_machine

from badfiles import bad_files
from conftest import REPO
from streamlit_server import (
    CHROMIUM,
    CHROMIUM_ARGS,
    full_page_screenshot,
    shipped_artifacts,
    streamlit_server,
)

IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, request):
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    art = shipped_artifacts() or request.getfixturevalue("tiny_artifacts")
    log = tmp_path_factory.mktemp("predict_server") / "server.log"
    with streamlit_server(art, log) as (base, _):
        yield base, art


def _idle(page) -> None:
    """Wait until the script run is over (no running-man status widget)."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=90_000
    )
    page.wait_for_timeout(300)


def test_upload_and_explain_in_the_browser(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, art = server
    samples = pd.read_csv(art / "samples" / "samples.csv")
    tumour = samples[samples.class_name == "tumor"]  # a tumour scan makes the clearer picture
    sample = art / "samples" / (tumour if len(tumour) else samples).file.iloc[0]
    bad = tmp_path / "notes.png"
    bad.write_bytes(bad_files()["text.png"])
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1250})
            outside = []
            page.on("request", lambda r: outside.append(r.url) if leaves_machine(r.url) else None)
            page.goto(f"{base}/predict", wait_until="domcontentloaded")
            main = page.locator('[data-testid="stMain"]')
            expect(main.get_by_text("Upload one or more scans")).to_be_visible(timeout=90_000)
            page.locator('input[type="file"]').set_input_files(str(sample))
            overlay = page.locator('img[alt="explanation overlay"]')
            expect(overlay).to_be_visible(timeout=90_000)
            _idle(page)
            page.wait_for_function(
                "() => [...document.querySelectorAll('img[alt=\"explanation overlay\"]')]"
                ".every(i => i.complete && i.naturalWidth > 0)",
                timeout=30_000,
            )
            expect(main.get_by_text("P(tumour)").first).to_be_visible()
            assert page.locator('[data-testid="stException"]').count() == 0
            shot = tmp_path / "predict.png"
            full_page_screenshot(page, shot)
            assert 5_000 < shot.stat().st_size < 1_500_000
            assert str(REPO.parent) not in page.locator("body").inner_text()

            # the uploader keeps the sample and adds the bad file: a batch of two
            page.locator('input[type="file"]').set_input_files(str(bad))
            error = main.get_by_test_id("stAlertContentError").get_by_text("'notes.png': not an")
            expect(error).to_be_visible(timeout=90_000)  # (and in the "could not be read" table)
            expect(
                main.get_by_test_id("stTableStyledTable").get_by_text("'notes.png'")
            ).to_be_visible()
            expect(main.get_by_text("Results: 1 predicted, 1 could not be read")).to_be_visible(
                timeout=90_000
            )
            _idle(page)
            assert page.locator('[data-testid="stException"]').count() == 0
            assert outside == [], f"requests left the machine: {sorted(set(outside))[:5]}"
        finally:
            browser.close()


def test_volume_in_the_browser(server, tmp_path):
    """A NIfTI stacked from the shipped samples (tests/volumes.py): the per-slice chart, the slice
    slider, the most suspicious slices' overlays; and a screenshot of the whole view."""
    from playwright.sync_api import expect, sync_playwright

    from volumes import sample_volume

    base, art = server
    path = tmp_path / "stack.nii.gz"
    path.write_bytes(sample_volume(art))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.goto(f"{base}/predict", wait_until="domcontentloaded")
            main = page.locator('[data-testid="stMain"]')
            expect(main.get_by_text("Upload one or more scans")).to_be_visible(timeout=90_000)
            page.locator('input[type="file"]').set_input_files(str(path))
            expect(main.get_by_text("Volume verdict").first).to_be_visible(timeout=120_000)
            shots = page.locator('img[alt="suspicious slice overlay"]')
            expect(shots.first).to_be_visible(timeout=90_000)
            _idle(page)
            page.wait_for_function(
                "() => [...document.querySelectorAll('img[alt$=\"overlay\"]')]"
                ".every(i => i.complete && i.naturalWidth > 0)",
                timeout=30_000,
            )
            assert shots.count() == 3
            expect(main.locator(".js-plotly-plot").first).to_be_visible()
            expect(main.get_by_text("P(tumour) per slice")).to_be_visible()
            expect(main.get_by_role("slider").first).to_be_visible()
            assert page.locator('[data-testid="stException"]').count() == 0
            text = main.inner_text()
            assert "/tmp/" not in text and str(REPO) not in text  # no machine paths on screen
            # Streamlit scrolls inside its main block: grow the window to the content's height
            # so that the full-page shot holds the whole view (slider, overlays, geometry)
            height = page.evaluate(
                "() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight"
            )
            page.set_viewport_size({"width": 1280, "height": int(height) + 40})
            page.wait_for_timeout(1500)
            _idle(page)
            shot = tmp_path / "predict_volume.png"
            page.screenshot(path=str(shot), full_page=True)
            assert 5_000 < shot.stat().st_size < 1_500_000
        finally:
            browser.close()
