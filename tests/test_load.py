"""Load: 10 concurrent browser sessions upload scans to ONE `streamlit run` server.

Uses benchmarks/load_test.py (the benchmark does 10 x 20 = 200 predictions; this test does
10 x 3 = 30, about a minute on 2 cores). Every prediction must succeed and the server's memory
must not keep growing: RSS after all 30 predictions is within 10% + 64 MiB of RSS after 15
(the model, the explainer and TensorFlow's warm-up are all in the first half). The full
200-prediction run on the shipped model is in docs/reliability.md.

Runs on the tiny model of `conftest.tiny_artifacts` (the shared fixture). Skipped
when /usr/bin/chromium is missing, except in CI (env CI set), where that is a failure.
"""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from conftest import REPO

SESSIONS, UPLOADS = 10, 3
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false")

pytestmark = pytest.mark.slow


def _load_test_module():
    spec = importlib.util.spec_from_file_location("load_test", REPO / "benchmarks" / "load_test.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def load(tmp_path_factory, request) -> tuple[dict, str]:
    """Run the load once: (the summary of load_test.run_load, the server log)."""
    load_test = _load_test_module()
    if not load_test.CHROMIUM.exists():
        message = f"{load_test.CHROMIUM} is missing (apt-get install chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    art = request.getfixturevalue("tiny_artifacts")  # trained only when the test can run
    tmp = tmp_path_factory.mktemp("load")
    total = SESSIONS * UPLOADS
    scans = load_test.make_scans(tmp / "scans", total)
    log = tmp / "server.log"
    with load_test.streamlit_server(art, log) as (base, proc):
        result = load_test.run_load(
            base, proc.pid, scans, SESSIONS, UPLOADS, checkpoints=(total // 2, total)
        )
    assert proc.poll() is not None, "the server was not stopped"
    print(json.dumps(result, indent=2))  # shown with -s: the numbers of this run
    return result, log.read_text()


def test_ten_concurrent_sessions_all_predict(load):
    result, log = load
    assert result["errors"] == [], (result["errors"], log[-3000:])
    assert result["predicted"] == SESSIONS * UPLOADS and result["failed"] == 0
    assert result["latency_s"]["p95"] is not None
    assert "Traceback" not in log


@pytest.mark.xfail(
    strict=False,
    reason="known, open: with a tiny model that answers differently per scan (since 2026-12-05) "
    "the server's RSS grew 680 -> 1133 MiB between 15 and 30 predictions in one CI run and "
    "stayed flat in another; 60 predict + explain calls in one process do not grow, so the "
    "growth is in per-session dashboard state. Issue 31's note; fix before relying on it.",
)
def test_server_memory_does_not_keep_growing(load):
    result, _ = load
    total = SESSIONS * UPLOADS
    rss = result["rss_mb"]
    half, full = rss[f"after_{total // 2}"], rss[f"after_{total}"]
    assert full - half <= 0.10 * half + 64, f"server RSS grew from {half} to {full} MiB"
