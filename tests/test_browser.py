"""The dashboard in a real browser: start `streamlit run`, visit every page with Chromium, check
what is visible, that no request leaves the machine and that no absolute path of this machine is
on screen, and take a full-page screenshot per page (into a temporary folder: the README's
screenshots are taken by `python3 scripts/screenshots.py`).

Skipped when /usr/bin/chromium is missing, except in CI (env CI set), where that is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from streamlit_server import (
    CHROMIUM,
    CHROMIUM_ARGS,
    full_page_screenshot,
    settle,
    streamlit_server,
)

pytestmark = pytest.mark.slow  # a Streamlit server and a browser

REPO = Path(__file__).resolve().parents[1]
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
    "predict": (["Predict", "Upload one or more scans"], 0),
    "your_scans": (["Your scans"], 0),
    "": (
        [
            "NeuroScan: brain-MRI tumour detection",
            "How it was evaluated",
            "Results",
            "Does it travel?",
        ],
        1,
    ),
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


LOCAL = {"127.0.0.1", "localhost", "::1", "[::1]"}


def leaves_machine(url: str) -> bool:
    """Whether a browser request goes anywhere but this machine (data:/blob: never do)."""
    parts = urlsplit(url)
    return parts.scheme not in ("data", "blob", "about") and parts.hostname not in LOCAL


@pytest.fixture(scope="module")
def outside():
    """Every request of the module's browser page that left localhost."""
    return []


@pytest.fixture(scope="module")
def page(server, outside):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 900})
            tab.on("request", lambda r: outside.append(r.url) if leaves_machine(r.url) else None)
            yield tab
        finally:
            browser.close()


def test_every_page_in_the_browser(server, page, outside, tmp_path):
    from playwright.sync_api import expect

    machine = str(REPO.parent)  # e.g. /work: no path under it may be shown
    for path, (texts, charts) in PAGES.items():
        page.goto(f"{server}/{path}", wait_until="domcontentloaded")
        body = page.locator('[data-testid="stMain"]')
        if path == "predict":  # the first visit loads the model (on ONNX Runtime it may be
            # too quick to see the notice): wait until no "Loading the model" is left
            expect(body.get_by_text("Loading the model")).to_have_count(0, timeout=240_000)
        settle(page, charts)
        for text in texts:
            expect(body.get_by_text(text).first).to_be_visible(timeout=30_000)
        assert page.locator('[data-testid="stException"]').count() == 0, f"/{path} raised"
        sidebar = page.locator('[data-testid="stSidebar"]')
        expect(sidebar.get_by_text("Research tool — not for diagnosis")).to_be_visible()
        assert page.locator(".js-plotly-plot").count() >= charts
        values = page.eval_on_selector_all("input, textarea", "els => els.map(e => e.value)")
        shown = "\n".join([page.locator("body").inner_text(), *values])
        assert machine not in shown, f"/{path} shows a path of this machine"
        assert "tumour" in shown or path not in ("", "dataset", "evaluation")
        if path in ("", "dataset", "training", "evaluation"):  # the README's (predict.png is
            # shot by tests/test_predict_browser.py with a scan uploaded)
            shot = tmp_path / f"{path or 'overview'}.png"
            full_page_screenshot(page, shot)
            assert 20_000 < shot.stat().st_size < 1_500_000
    assert outside == [], f"requests left the machine: {sorted(set(outside))[:5]}"


def test_threshold_slider_in_the_browser(server, page):
    import pandas as pd
    from playwright.sync_api import expect

    page.goto(f"{server}/evaluation", wait_until="domcontentloaded")
    settle(page, 4)
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


def test_no_request_leaves_the_machine(server, page, outside):
    """After every page and the slider above (the module's tests run in file order): nothing
    the dashboard showed (favicon, icons, fonts, chart assets) asked the network."""
    page.goto(f"{server}/", wait_until="domcontentloaded")
    page.locator('[data-testid="stPageLink"]').first.wait_for(timeout=60_000)
    page.wait_for_timeout(2000)
    assert outside == [], f"requests left the machine: {sorted(set(outside))[:5]}"
    assert not any(leaves_machine(u) for u in ("http://127.0.0.1:1/x", "data:image/png,00"))
    assert leaves_machine("https://fonts.gstatic.com/s/i/x.svg")
