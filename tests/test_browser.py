"""The dashboard in a real browser: start `streamlit run`, visit every page with Chromium, check
what is visible and save a screenshot per page into docs/screenshots/.

Skipped when /usr/bin/chromium is missing, except in CI (env CI set), where that is a failure.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from streamlit_server import CHROMIUM, CHROMIUM_ARGS, streamlit_server

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "docs" / "screenshots"
SHARED_DATA = REPO.parent / "shared" / "data" / "brain-tumor-dataset"
# url path -> (visible texts, minimum number of rendered plotly charts). A page comes first: the
# first request of a fresh server must still run through streamlit_app.py (sidebar, notice).
PAGES = {
    "dataset": (["Class balance", "Sample images", "Duplicate audit", "shortcut"], 4),
    "training": (["Training", "Chosen epoch", "Per phase"], 1),
    "evaluation": (
        [
            "Evaluation",
            "Decision threshold",
            "True positives (TP)",
            "Metrics (95% bootstrap confidence intervals)",
        ],
        4,
    ),
    "predict": (["Predict"], 0),
    "": (["NeuroScan: brain-MRI tumour detection", "How it was evaluated", "Headline metrics"], 0),
}
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false")


def _artifacts() -> Path:
    env = os.environ.get("NEUROSCAN_ARTIFACTS", "").strip()
    return Path(env) if env else REPO / "artifacts"


def _require(condition: bool, message: str) -> None:
    if not condition:
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _require(CHROMIUM.exists(), f"{CHROMIUM} is missing (apt-get install chromium)")
    art = _artifacts()
    _require((art / "model_card.json").is_file(), f"no artifacts at {art}")
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    data = SHARED_DATA if SHARED_DATA.is_dir() else None
    with streamlit_server(art, log, data_dir=data) as (base, _):
        yield base


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 900})
        finally:
            browser.close()


IDLE = """(n) => !document.querySelector('[data-testid="stStatusWidget"]')
              && !document.querySelector('[data-testid="stSkeleton"]')
              && !document.querySelector('[data-testid="stSpinner"]')
              && document.querySelectorAll('.js-plotly-plot .main-svg').length >= n"""


def _settle(page, charts: int, timeout: float = 90) -> None:
    """Wait until the app is idle (no run, spinner or skeleton) for 1 s, with `charts` plotly
    charts drawn: a run may start a moment after the page looks done."""
    page.wait_for_selector('[data-testid="stSidebar"]', timeout=60_000)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.wait_for_function(IDLE, arg=charts, timeout=60_000)
        page.wait_for_timeout(1000)
        if page.evaluate(IDLE, charts):
            return
    pytest.fail(f"page {page.url} never settled")


def test_every_page_in_the_browser(server, page):
    from playwright.sync_api import expect

    SHOTS.mkdir(parents=True, exist_ok=True)
    for path, (texts, charts) in PAGES.items():
        page.goto(f"{server}/{path}", wait_until="domcontentloaded")
        _settle(page, charts)
        body = page.locator('[data-testid="stMain"]')
        for text in texts:
            expect(body.get_by_text(text).first).to_be_visible(timeout=30_000)
        assert page.locator('[data-testid="stException"]').count() == 0, f"/{path} raised"
        sidebar = page.locator('[data-testid="stSidebar"]')
        expect(sidebar.get_by_text("Research tool — not for diagnosis")).to_be_visible()
        assert page.locator(".js-plotly-plot").count() >= charts
        shot = SHOTS / f"{path or 'overview'}.png"
        page.screenshot(path=str(shot))
        assert shot.stat().st_size < 600_000


def test_threshold_slider_in_the_browser(server, page):
    import pandas as pd
    from playwright.sync_api import expect

    page.goto(f"{server}/evaluation", wait_until="domcontentloaded")
    _settle(page, 4)
    slider = page.locator('[data-testid="stSlider"]')
    shown_value = slider.locator('[data-testid="stSliderThumbValue"]')
    start = float(shown_value.inner_text())
    handle = slider.locator('input[type="range"]')
    handle.focus()
    handle.press("PageUp")  # one page step: a tenth of the range
    expect(shown_value).not_to_have_text(f"{start:.3f}")
    threshold = float(shown_value.inner_text())
    assert threshold >= start + 0.05
    test = pd.read_csv(_artifacts() / "predictions.csv").query("split == 'test'")
    expected = int(((test.label == 1) & (test.probability >= threshold)).sum())
    metric = page.locator('[data-testid="stMetric"]', has_text="True positives (TP)")
    expect(metric.locator('[data-testid="stMetricValue"]')).to_have_text(
        str(expected), timeout=30_000
    )
