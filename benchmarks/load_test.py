"""Load test of the dashboard: concurrent browser sessions upload scans on the Predict page.

    python benchmarks/load_test.py            # 10 sessions x 20 uploads = 200 predictions
    python benchmarks/load_test.py --sessions 10 --uploads 3 --out load.json

Starts ONE `neuroscan dashboard` on 127.0.0.1 (a free port) with $NEUROSCAN_ARTIFACTS
pointing at --artifacts (default: $NEUROSCAN_ARTIFACTS, else artifacts/), then opens --sessions
browser contexts in one headless Chromium (/usr/bin/chromium, Playwright's async API; never a
downloaded browser). Each session opens /predict and uploads --uploads different generated
256 px brain-MRI-like PNGs, one at a time, through the real file input; after each upload it waits
until the page shows the prediction (upload k: the P(tumour) metric when k = 1, else
"Results: k predicted, 0 could not be read"). A scan that the page reports as unreadable, an
exception box on the page or a timeout counts as a failed prediction.

Reported (JSON on stdout, and in --out): predictions that succeeded / failed, end-to-end
latency per upload (p50, p95, max: from handing the file to the input until the result is on
screen), the server process's resident memory (RSS) when it is idle, after the first page loads,
and after 20, 50, 100, 150 and all predictions, and the wall time.

`tests/test_load.py` runs a smaller version of this and asserts on it. Numbers depend on the
machine: the dev box has 2 shared cores, so the browser, the server and TensorFlow compete.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from streamlit_server import (  # noqa: E402,F401
    CHROMIUM,
    CHROMIUM_ARGS,
    free_port,
    streamlit_server,
)

# Polled in the page after upload k: {ok, bad} once the k-th result is on screen, else null.
RESULT_JS = """([k, name]) => {
  const main = document.querySelector('[data-testid="stMain"]');
  if (!main) return null;
  if (main.querySelector('[data-testid="stException"]')) return {ok: 0, bad: k, exception: true};
  const text = main.innerText;
  if (k === 1) {
    if (text.includes("'" + name + "': ")) return {ok: 0, bad: 1};
    for (const m of main.querySelectorAll('[data-testid="stMetric"]')) {
      const label = m.querySelector('[data-testid="stMetricLabel"]');
      const value = m.querySelector('[data-testid="stMetricValue"]');
      if (label && value && label.innerText.includes("P(tumour)")) {
        const p = parseFloat(value.innerText);
        return p >= 0 && p <= 1 ? {ok: 1, bad: 0} : null;
      }
    }
    return null;
  }
  const m = text.match(/Results: (\\d+) predicted, (\\d+) could not be read/);
  if (m && Number(m[1]) + Number(m[2]) === k) return {ok: Number(m[1]), bad: Number(m[2])};
  return null;
}"""


# ----------------------------------------------------------------------------- server


def rss_mb(pid: int) -> float:
    """Resident memory of process `pid` in MiB (psutil when installed, else /proc)."""
    try:
        import psutil
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024  # kB
        raise RuntimeError(f"no VmRSS for process {pid}") from None
    return psutil.Process(pid).memory_info().rss / 2**20


# ----------------------------------------------------------------------------- scans


def make_scans(folder: Path, count: int, seed: int = 0, side: int = 256) -> list[Path]:
    """`count` different brain-MRI-like PNGs (a textured grey ellipse on black, every other one
    with a bright blob) so that every upload is a new prediction, not a cached one."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    paths = []
    for i in range(count):
        cy, cx = side / 2 + rng.uniform(-12, 12, 2)
        ay, ax = rng.uniform(0.32, 0.44) * side, rng.uniform(0.26, 0.38) * side
        head = ((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2 <= 1
        img = np.zeros((side, side), np.float32)
        img[head] = rng.uniform(60, 140) + rng.normal(0, 14, int(head.sum()))
        if i % 2:
            by, bx = cy + rng.uniform(-0.15, 0.15) * side, cx + rng.uniform(-0.12, 0.12) * side
            img[(yy - by) ** 2 + (xx - bx) ** 2 <= (rng.uniform(0.05, 0.1) * side) ** 2] = 235
        buf = io.BytesIO()
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "L").save(buf, "PNG")
        path = folder / f"scan_{i:04d}.png"
        path.write_bytes(buf.getvalue())
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- sessions


async def _session(browser, base: str, scans: list[Path], timeout_s: float, tally: dict) -> dict:
    """One user: open /predict, upload the scans one by one, wait for each result."""
    out = {"ok": 0, "failed": 0, "latencies": [], "errors": []}
    context = await browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        page = await context.new_page()
        start = time.perf_counter()
        await page.goto(f"{base}/predict", wait_until="domcontentloaded", timeout=timeout_s * 1e3)
        await page.get_by_text("Upload one or more scans").wait_for(timeout=timeout_s * 1e3)
        out["page_load_s"] = time.perf_counter() - start
        tally["loaded"] += 1
        if tally["loaded"] == tally["sessions"]:
            tally["rss"]["pages_loaded"] = rss_mb(tally["pid"])
        file_input = page.locator('input[type="file"]')
        for k, scan in enumerate(scans, start=1):
            start = time.perf_counter()
            try:
                await file_input.set_input_files(str(scan), timeout=timeout_s * 1e3)
                handle = await page.wait_for_function(
                    RESULT_JS, arg=[k, scan.name], timeout=timeout_s * 1e3, polling=100
                )
                state = await handle.json_value()
            except Exception as err:  # noqa: BLE001 - a timeout or a closed page: a failure
                out["errors"].append(f"upload {k}: {type(err).__name__}: {str(err)[:200]}")
                out["failed"] += len(scans) - k + 1
                break
            if state.get("exception") or state["bad"]:
                out["errors"].append(f"upload {k}: the page reports {state}")
                out["failed"] += len(scans) - k + 1
                break
            out["latencies"].append(time.perf_counter() - start)
            out["ok"] += 1
            tally["done"] += 1
            if tally["done"] in tally["checkpoints"]:
                tally["rss"][f"after_{tally['done']}"] = rss_mb(tally["pid"])
    except Exception as err:  # noqa: BLE001 - the page never came up
        out["errors"].append(f"page: {type(err).__name__}: {str(err)[:200]}")
        out["failed"] += len(scans) - out["ok"]
    finally:
        await context.close()
    return out


async def _run(base, pid, scans_per_session, checkpoints, timeout_s) -> dict:
    from playwright.async_api import async_playwright

    tally = {
        "pid": pid,
        "sessions": len(scans_per_session),
        "loaded": 0,
        "done": 0,
        "checkpoints": set(checkpoints),
        "rss": {"idle": rss_mb(pid)},
    }
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            results = await asyncio.gather(
                *(_session(browser, base, s, timeout_s, tally) for s in scans_per_session)
            )
        finally:
            await browser.close()
    tally["rss"]["end"] = rss_mb(pid)
    return {"sessions": results, "rss_mb": tally["rss"]}


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def run_load(
    base: str,
    pid: int,
    scans: list[Path],
    sessions: int,
    uploads: int,
    checkpoints: tuple[int, ...] = (),
    timeout_s: float = 120.0,
) -> dict:
    """Run `sessions` concurrent users uploading `uploads` scans each (scans[i*uploads:...]);
    return the summary dict (see the module docstring)."""
    if len(scans) < sessions * uploads:
        raise ValueError(f"need {sessions * uploads} scans, got {len(scans)}")
    per = [scans[i * uploads : (i + 1) * uploads] for i in range(sessions)]
    start = time.perf_counter()
    raw = asyncio.run(_run(base, pid, per, checkpoints, timeout_s))
    wall = time.perf_counter() - start
    latencies = [t for s in raw["sessions"] for t in s["latencies"]]
    loads = [s["page_load_s"] for s in raw["sessions"] if "page_load_s" in s]
    return {
        "sessions": sessions,
        "uploads_per_session": uploads,
        "predicted": sum(s["ok"] for s in raw["sessions"]),
        "failed": sum(s["failed"] for s in raw["sessions"]),
        "errors": [e for s in raw["sessions"] for e in s["errors"]],
        "latency_s": {
            "p50": _pct(latencies, 50),
            "p95": _pct(latencies, 95),
            "max": round(max(latencies), 3) if latencies else None,
        },
        "page_load_s": {"p50": _pct(loads, 50), "max": round(max(loads), 3) if loads else None},
        "rss_mb": {k: round(v, 1) for k, v in raw["rss_mb"].items()},
        "wall_s": round(wall, 1),
        "cpus": os.cpu_count(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--uploads", type=int, default=20, help="scans uploaded per session")
    parser.add_argument(
        "--artifacts",
        default=os.environ.get("NEUROSCAN_ARTIFACTS", "").strip() or str(REPO / "artifacts"),
    )
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per step")
    parser.add_argument("--out", default=None, help="also write the JSON summary here")
    parser.add_argument("--server-log", default=None, help="also keep the server's whole log here")
    args = parser.parse_args(argv)
    artifacts = Path(args.artifacts).resolve()
    if not (artifacts / "model.keras").is_file():
        parser.error(f"no model at {artifacts} (python -m tumor_model train ...)")
    if not CHROMIUM.exists():
        parser.error(f"{CHROMIUM} is missing (apt-get install chromium)")
    total = args.sessions * args.uploads
    with tempfile.TemporaryDirectory(prefix="neuroscan_load_") as tmp:
        scans = make_scans(Path(tmp) / "scans", total)
        log = Path(tmp) / "server.log"
        with streamlit_server(artifacts, log) as (base, proc):
            result = run_load(
                base,
                proc.pid,
                scans,
                args.sessions,
                args.uploads,
                checkpoints=tuple(sorted({min(c, total) for c in (20, 50, 100, 150, total)})),
                timeout_s=args.timeout,
            )
        result["artifacts"] = str(artifacts)
        result["server_log_tail"] = log.read_text()[-1500:] if result["failed"] else ""
        if args.server_log:
            Path(args.server_log).write_text(log.read_text())
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0 if result["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
