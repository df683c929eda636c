"""Shared fixtures: a tiny generated brain-MRI-like dataset and a tiny trained model."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "brain-tumor-dataset"
SHARED_WEIGHTS = (
    REPO.parent / "shared" / "weights" / "mobilenet_v2_1.0_224_tfslim_imagenet_no_top.h5"
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MAX_WORKERS = 4  # `-n auto`: each worker holds TensorFlow and trains its own session fixtures


def pytest_xdist_auto_num_workers(config) -> int:
    """`pytest -n auto` (the README's test command): one worker per core this process may use,
    at most MAX_WORKERS. Most tests run one core at a time (Streamlit, subprocesses, small
    models), so on a 2-core machine two workers take under half the serial time."""
    return max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS))


def fake_scan(rng: np.random.Generator, tumor: bool, size=(64, 64)) -> np.ndarray:
    """A grey ellipse 'head' on black; tumour scans carry a bright blob inside it."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = h / 2 + rng.uniform(-6, 6), w / 2 + rng.uniform(-6, 6)
    ay, ax = rng.uniform(0.3, 0.45) * h, rng.uniform(0.25, 0.4) * w
    head = ((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2 <= 1
    img = np.zeros((h, w), np.float32)
    img[head] = rng.uniform(50, 150) + rng.normal(0, 12, head.sum())
    if tumor:
        by, bx = cy + rng.uniform(-0.2, 0.2) * h, cx + rng.uniform(-0.15, 0.15) * w
        blob = (yy - by) ** 2 + (xx - bx) ** 2 <= (0.1 * min(h, w)) ** 2
        img[blob] = 235
    return np.clip(img, 0, 255).astype(np.uint8)


def lesion_box(arr: np.ndarray) -> np.ndarray:
    return arr >= 200


def _save(img: Image.Image, path: Path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt)


def make_dataset(root: Path, per_class: int = 24, seed: int = 0) -> dict:
    """Kaggle-like flat layout with planted duplicates, every mode, a lying extension, one corrupt
    file. Returns facts the tests check against."""
    rng = np.random.default_rng(seed)
    facts = {"exact_copies": [], "near_copies": [], "corrupt": None, "lying": None}
    for label, folder in ((1, "Brain Tumor"), (0, "Healthy")):
        for i in range(per_class):
            arr = fake_scan(rng, bool(label))
            img = Image.fromarray(arr, "L")
            mode_choice = ["RGB", "L", "P", "RGBA", "LA", "I;16"][i % 6]
            if mode_choice == "RGB":
                img = img.convert("RGB")
            elif mode_choice == "P":
                img = img.convert("P")
            elif mode_choice == "RGBA":
                img = img.convert("RGBA")
            elif mode_choice == "LA":
                img = img.convert("LA")
            elif mode_choice == "I;16":
                img = Image.fromarray(arr.astype(np.uint16) * 257)
            fmt = "PNG" if mode_choice in ("P", "RGBA", "LA", "I;16") else "JPEG"
            name = f"{folder} ({i}).{'png' if fmt == 'PNG' else 'jpg'}"
            _save(img, root / folder / name, fmt)
        # an exact copy and a near copy (slightly brighter) of image 0
        src = root / folder / f"{folder} (0).jpg"
        (root / folder / "copy.jpg").write_bytes(src.read_bytes())
        facts["exact_copies"].append((f"{folder}/{src.name}", f"{folder}/copy.jpg"))
        near = np.asarray(Image.open(src).convert("L"), dtype=np.int16) + 2
        _save(
            Image.fromarray(np.clip(near, 0, 255).astype(np.uint8)),
            root / folder / "near.png",
            "PNG",
        )
        facts["near_copies"].append((f"{folder}/{src.name}", f"{folder}/near.png"))
    # a PNG named .jpg, and a truncated file
    lying = root / "Healthy" / "lying.jpg"
    buf = io.BytesIO()
    Image.fromarray(fake_scan(rng, False)).save(buf, format="PNG")
    lying.write_bytes(buf.getvalue())
    facts["lying"] = "Healthy/lying.jpg"
    good = (root / "Brain Tumor" / "Brain Tumor (1).jpg").read_bytes()
    (root / "Brain Tumor" / "corrupt.jpg").write_bytes(good[: len(good) // 3])
    facts["corrupt"] = "Brain Tumor/corrupt.jpg"
    (root / "metadata.csv").write_text("image,class,format\n")
    return facts


def make_site(root: Path, tumours=12, healthy=12, seed=5, size=(72, 72)) -> Path:
    """A 'local site' or another source: generated scans of another size in yes/ and no/ (a
    class of 0 scans gets no folder: a one-class root)."""
    rng = np.random.default_rng(seed)
    for folder, n, tumour in (("yes", tumours, True), ("no", healthy, False)):
        for i in range(n):
            _save(Image.fromarray(fake_scan(rng, tumour, size)), root / folder / f"{i}.png", "PNG")
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("data") / "brain-tumor-dataset"
    facts = make_dataset(root)
    return root, facts


def tiny_settings(root: Path, out_dir: Path, **kw):
    """Settings of a quick run on `root` (one root or a list of roots)."""
    from tumor_model.config import Settings

    roots = root if isinstance(root, (list, tuple)) else [root]
    values = dict(
        data_dirs=tuple(str(r) for r in roots),
        backbone="mobilenetv2",
        weights="none",
        input_size=32,
        dense_units=16,
        head_epochs=15,
        patience=5,
        bootstrap=50,
        cache_dir=str(out_dir.parent / "cache"),
        out_dir=str(out_dir),
        val_fraction=0.2,
        test_fraction=0.2,
    )
    values.update(kw)
    return Settings(**values)


@pytest.fixture(scope="session")
def tiny_artifacts(tiny_dataset, tmp_path_factory) -> Path:
    """A tiny model trained end to end on the generated dataset (random MobileNetV2, 32 px)."""
    from tumor_model import pipeline

    root, _ = tiny_dataset
    out = tmp_path_factory.mktemp("run") / "artifacts"
    return pipeline.run(tiny_settings(root, out), cv_folds=3)


def cli(*args: str, env: dict | None = None, timeout: int = 600):
    """Run `python -m tumor_model ARGS` from the repo, as a user would."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "tumor_model", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
