"""Full-page screenshots of every dashboard page, for the README (docs/screenshots/).

    python3 scripts/screenshots.py                       # the shipped model -> docs/screenshots/
    python3 scripts/screenshots.py --out /tmp/shots --artifacts artifacts-adapted

Starts ONE `neuroscan dashboard` on 127.0.0.1 (a free port) on --artifacts (default:
$NEUROSCAN_ARTIFACTS, else the shipped model in artifacts/), with the Kaggle dataset of
../shared/data as the dataset when it is there, and visits it with Debian's Chromium
(/usr/bin/chromium through Playwright; never a downloaded browser):

    overview.png  dataset.png  training.png  evaluation.png
    predict.png          a shipped tumour sample uploaded, with its explanation overlay
    predict_volume.png   a NIfTI stacked from the shipped samples: per-slice chart and overlays
    your_scans.png       a zip of labelled scans (24 of ../shared/data/tcga-lgg, else the
                         shipped samples) checked and adapted in memory (no folder written)

Nothing but --out is written. The browser tests (tests/test_browser.py,
tests/test_predict_browser.py) and the load benchmark start the server with the helpers below
(through tests/streamlit_server.py); they save their screenshots into temporary folders.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "docs" / "screenshots"
SHARED_DATA = REPO.parent / "shared" / "data"
CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; never a downloaded browser
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# url path -> (file name, plotly charts drawn once the page is complete)
PAGES = {
    "": ("overview.png", 1),
    "dataset": ("dataset.png", 4),
    "training": ("training.png", 1),
    "evaluation": ("evaluation.png", 4),
}
SIZE_LIMIT = 1_500_000  # bytes: a larger PNG is saved with 256 colours


# ----------------------------------------------------------------------------- the server


def shipped_artifacts() -> Path | None:
    """$NEUROSCAN_ARTIFACTS or the repo's artifacts/ when it holds a model card, else None."""
    folder = Path(os.environ.get("NEUROSCAN_ARTIFACTS", "").strip() or REPO / "artifacts")
    return folder if (folder / "model_card.json").is_file() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(proc: subprocess.Popen, base: str, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"streamlit exited with {proc.returncode}: {log_path.read_text()[-2000:]}"
            )
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"streamlit not healthy after {timeout:.0f} s: {log_path.read_text()[-2000:]}"
            )
        time.sleep(0.3)


@contextmanager
def streamlit_server(
    artifacts: Path, log_path: Path, data_dir: Path | None = None, ready_timeout: float = 120.0
):
    """Yield (base url, Popen) once /_stcore/health answers; always terminate the server."""
    port = free_port()
    env = {**os.environ, "NEUROSCAN_ARTIFACTS": str(artifacts), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("NEUROSCAN_DATA_DIR", None)
    if data_dir is not None:
        env["NEUROSCAN_DATA_DIR"] = str(data_dir)
    cmd = [sys.executable, "-m", "tumor_model", "dashboard", "--port", str(port)]
    cmd += ["--address", "127.0.0.1"]
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(proc, base, log_path, ready_timeout)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


# ----------------------------------------------------------------------------- the browser

IDLE = """(n) => !document.querySelector('[data-testid="stStatusWidget"]')
              && !document.querySelector('[data-testid="stSkeleton"]')
              && !document.querySelector('[data-testid="stSpinner"]')
              && document.querySelectorAll('.js-plotly-plot .main-svg').length >= n"""
IMAGES_LOADED = """(alt) => [...document.querySelectorAll(`img[alt$="${alt}"]`)]
                       .every(i => i.complete && i.naturalWidth > 0)"""


@contextmanager
def browser():
    """A headless Debian Chromium (Playwright's sync API)."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        raise FileNotFoundError(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def settle(page, charts: int = 0, timeout: float = 90) -> None:
    """Wait until the app is idle (no run, spinner or skeleton) for 1 s, with `charts` plotly
    charts drawn: a run may start a moment after the page looks done."""
    page.wait_for_selector('[data-testid="stSidebar"]', timeout=60_000)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.wait_for_function(IDLE, arg=charts, timeout=60_000)
        page.wait_for_timeout(1000)
        if page.evaluate(IDLE, charts):
            return
    raise TimeoutError(f"page {page.url} never settled")


def full_page_screenshot(page, path: Path, limit: int = SIZE_LIMIT) -> None:
    """The whole page, not the first screen: Streamlit scrolls inside its main block, so the
    viewport is grown to the content's height first; a large PNG is saved with 256 colours."""
    from PIL import Image

    size = page.viewport_size
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll("
        "'[data-testid=stMain], [data-testid=stAppViewContainer], section')]"
        ".map(e => e.scrollHeight), window.innerHeight)"
    )
    page.set_viewport_size({"width": size["width"], "height": min(int(height), 12_000)})
    page.wait_for_timeout(1500)  # charts redraw at the new size
    settle(page)
    shot = page.screenshot()
    page.set_viewport_size(size)
    if len(shot) > limit:
        picture = Image.open(io.BytesIO(shot)).convert("RGB").quantize(256)
        buf = io.BytesIO()
        picture.save(buf, "PNG", optimize=True)
        shot = buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(shot)


def _main(page):
    return page.locator('[data-testid="stMain"]')


def _upload(page, base: str, file: Path, shown: str, alt: str, timeout: int = 120_000) -> None:
    """Open /predict, upload `file`, wait for the text `shown` and overlays named `alt`."""
    page.goto(f"{base}/predict", wait_until="domcontentloaded")
    _main(page).get_by_text("Upload one or more scans").wait_for(timeout=90_000)
    page.locator('input[type="file"]').set_input_files(str(file))
    _main(page).get_by_text(shown).first.wait_for(timeout=timeout)
    page.locator(f'img[alt="{alt}"]').first.wait_for(timeout=90_000)
    settle(page)
    page.wait_for_function(IMAGES_LOADED, arg="overlay", timeout=30_000)


def shoot_page(page, base: str, path: str, out: Path, charts: int) -> None:
    page.goto(f"{base}/{path}", wait_until="domcontentloaded")
    settle(page, charts)
    full_page_screenshot(page, out)


def shoot_your_scans(page, base: str, zip_path: Path, out: Path) -> None:
    """Upload a zip of class folders, check only (no folder written), wait for the results."""
    page.goto(f"{base}/your_scans", wait_until="domcontentloaded")
    main = _main(page)
    main.get_by_text("Upload a zip").click()
    page.locator('input[type="file"]').wait_for(state="attached", timeout=60_000)
    page.locator('input[type="file"]').set_input_files(str(zip_path))
    settle(page)
    target = main.get_by_label(re.compile(r"^Write the adapted model to"))
    target.fill("")
    target.press("Enter")
    settle(page)
    main.get_by_role("button", name="Check and adapt").click()
    main.get_by_test_id("stAlertContentSuccess").first.wait_for(timeout=300_000)
    settle(page, 2, timeout=300)
    full_page_screenshot(page, out)


# ----------------------------------------------------------------------------- the inputs


def sample_volume(art: Path, tumour: int = 4, healthy: int = 10) -> bytes:
    """A .nii.gz stacked from the artifacts' shipped sample slices: `healthy` healthy slices
    with `tumour` tumour slices in the middle, each padded onto 128 x 128 (RAS+, 0.9 x 0.9 x
    5 mm), stored so that the Predict page shows them as they are."""
    import nibabel as nib
    import numpy as np
    import pandas as pd
    from PIL import Image, ImageOps

    table = pd.read_csv(art / "samples" / "samples.csv")
    files = {c: list(table.file[table.class_name == c]) for c in ("healthy", "tumor")}
    names = files["healthy"][: healthy // 2] + files["tumor"][:tumour]
    names += files["healthy"][healthy // 2 : healthy]
    planes = []
    for name in names:
        img = Image.open(art / "samples" / name).convert("L")
        img = np.asarray(ImageOps.pad(img, (128, 128), color=0))
        planes.append(img.T[::-1, ::-1])  # the inverse of the radiological display
    image = nib.Nifti1Image(np.stack(planes, axis=2), None)
    image.header.set_zooms((0.9, 0.9, 5.0))
    image.header.set_sform(np.diag([0.9, 0.9, 5.0, 1.0]), code=2)
    image.header["sform_code"], image.header["qform_code"] = 2, 0
    return gzip.compress(image.to_bytes(), mtime=0)


def site_files(art: Path, per_class: int = 12) -> dict[str, list[Path]]:
    """Labelled scans for the Your scans page: FLAIR slices spread over the patients of
    ../shared/data/tcga-lgg when it is there, else the shipped samples."""
    tcga = SHARED_DATA / "tcga-lgg"
    chosen = {}
    for label, folder in (("yes", "tumor"), ("no", "healthy")):
        files = sorted((tcga / folder).glob("*_flair.jpg"))
        step = max(1, len(files) // per_class)
        chosen[label] = files[::step][:per_class]
    if all(len(files) == per_class for files in chosen.values()):
        return chosen
    samples = sorted((art / "samples").glob("*.png"))
    return {
        "yes": [p for p in samples if p.name.startswith("tumor")],
        "no": [p for p in samples if p.name.startswith("healthy")],
    }


def site_zip(files: dict[str, list[Path]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for label, paths in files.items():
            for path in paths:
                zf.write(path, f"site/{label}/{path.name}")
    return buf.getvalue()


def tumour_sample(art: Path) -> Path:
    import pandas as pd

    samples = pd.read_csv(art / "samples" / "samples.csv")
    tumour = samples[samples.class_name == "tumor"]  # a tumour scan makes the clearer picture
    return art / "samples" / (tumour if len(tumour) else samples).file.iloc[0]


# ----------------------------------------------------------------------------- the command


def take_all(art: Path, out: Path, data_dir: Path | None, work: Path) -> list[Path]:
    """Every page's screenshot into `out`; `work` holds the server log and the uploads."""
    volume = work / "stack.nii.gz"
    volume.write_bytes(sample_volume(art))
    site = work / "site.zip"
    site.write_bytes(site_zip(site_files(art)))
    written = []
    with streamlit_server(art, work / "server.log", data_dir=data_dir) as (base, _):
        with browser() as chromium:
            page = chromium.new_page(viewport={"width": 1280, "height": 900})
            for path, (name, charts) in PAGES.items():
                shoot_page(page, base, path, out / name, charts)
                written.append(out / name)
            page.set_viewport_size({"width": 1280, "height": 1250})
            _upload(page, base, tumour_sample(art), "P(tumour)", "explanation overlay")
            full_page_screenshot(page, out / "predict.png")
            page.set_viewport_size({"width": 1280, "height": 1100})
            _upload(page, base, volume, "Volume verdict", "suspicious slice overlay")
            full_page_screenshot(page, out / "predict_volume.png")
            page.set_viewport_size({"width": 1280, "height": 900})
            shoot_your_scans(page, base, site, out / "your_scans.png")
            written += [out / n for n in ("predict.png", "predict_volume.png", "your_scans.png")]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=SHOTS, help="default: docs/screenshots/")
    parser.add_argument(
        "--artifacts", type=Path, default=None, help="default: $NEUROSCAN_ARTIFACTS or artifacts/"
    )
    kaggle = SHARED_DATA / "brain-tumor-dataset"
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=kaggle if kaggle.is_dir() else None,
        help="the dataset the Dataset page shows (default: ../shared/data/brain-tumor-dataset)",
    )
    args = parser.parse_args(argv)
    art = args.artifacts or shipped_artifacts()
    if art is None or not (art / "model_card.json").is_file():
        print(f"error: no model_card.json in {art or REPO / 'artifacts'}", file=sys.stderr)
        return 2
    if not CHROMIUM.exists():
        print(f"error: {CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="neuroscan-shots-") as work:
        started = time.monotonic()
        for path in take_all(art.resolve(), args.out, args.data_dir, Path(work)):
            print(f"{path}  {path.stat().st_size // 1000} kB")
        print(f"{time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
