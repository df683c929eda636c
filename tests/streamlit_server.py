"""Start `neuroscan dashboard` on 127.0.0.1 for the browser tests and the load
benchmark: the helpers live in scripts/screenshots.py (the command that takes the README's
screenshots), re-exported here for the tests and benchmarks/load_test.py."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _screenshots():
    """scripts/screenshots.py as the module `screenshots` (scripts/ is no package)."""
    if "screenshots" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "screenshots", REPO / "scripts" / "screenshots.py"
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["screenshots"] = module
        spec.loader.exec_module(module)
    return sys.modules["screenshots"]


_script = _screenshots()
CHROMIUM = _script.CHROMIUM
CHROMIUM_ARGS = _script.CHROMIUM_ARGS
free_port = _script.free_port
full_page_screenshot = _script.full_page_screenshot
settle = _script.settle
shipped_artifacts = _script.shipped_artifacts
streamlit_server = _script.streamlit_server

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "free_port",
    "full_page_screenshot",
    "settle",
    "shipped_artifacts",
    "streamlit_server",
]
