"""Shared fixtures: a tiny generated brain-MRI-like dataset and a tiny trained model."""

from __future__ import annotations

import io
import os
import pickle
import shutil
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
# XLA (JAX, and TensorFlow's jit_compile) compiles the tests' tiny 32-px models without LLVM's
# optimisations: their runs are compile-bound (one A/B run each on the 2-core machine, beside a
# training run: the JAX data-parallel test 80 -> 44 s, the XLA fine-tuning benchmark 84 -> 69 s).
# Set before any backend starts; subprocesses inherit it. Numbers compared within a test come
# from one setting.
XLA_TEST_FLAG = "--xla_backend_optimization_level=0"
if XLA_TEST_FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {XLA_TEST_FLAG}".strip()

MAX_WORKERS = 4  # `-n auto`: each worker holds TensorFlow and trains its own session fixtures


def pytest_xdist_auto_num_workers(config) -> int:
    """`pytest -n auto` (the README's test command): one worker per core this process may use,
    at most MAX_WORKERS. Most tests run one core at a time (Streamlit, subprocesses, small
    models), so on a 2-core machine two workers take under half the serial time."""
    return max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS))


# Files whose tests train, serve or cross-validate for a minute or more each (CI's
# --durations), longest first. They are sent to the workers first: `--dist loadfile` would
# otherwise order files by their number of tests, leaving these few-test, long files to the
# end with the other worker idle (longest-first keeps the workers' finishing times close).
LONG_FILES = (
    "test_crossval_recipe.py",
    "test_distribute.py",
    "test_integration_shared.py",
    "test_load.py",
    "test_localise.py",
    "test_crossval.py",
    "test_pipeline.py",
    "test_runtime.py",
    "test_benchmarks.py",
    "test_adapt.py",
    "test_backends.py",
    "test_lesion_head.py",
)


def pytest_configure(config) -> None:
    """Keep the collection order when distributing files (xdist's option, when present)."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items) -> None:
    """LONG_FILES first, in that order; every other file after, as collected (a stable sort
    keeps each file's tests together and in their order)."""
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


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


def built_once(tmp_path_factory, name: str, build) -> Path:
    """`build(folder)` run once per test run, not once per `-n auto` worker: the first worker to
    take the lock builds `name` in the run's temporary folder (shared by the workers), the others
    wait for it and reuse it. Readers only: a test that changes what is built works on a copy."""
    import fcntl

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, done = shared / "once" / name, shared / "once" / f"{name}.done"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(shared / "once" / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            build(folder)
            done.touch()
    return folder


def _dataset_with_facts(folder: Path) -> None:
    facts = make_dataset(folder / "brain-tumor-dataset")
    (folder / "facts.pickle").write_bytes(pickle.dumps(facts))


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> tuple[Path, dict]:
    """The generated dataset (read only: built once per run), and the facts planted in it."""
    folder = built_once(tmp_path_factory, "data", _dataset_with_facts)
    return folder / "brain-tumor-dataset", pickle.loads((folder / "facts.pickle").read_bytes())


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
        export=False,  # the ONNX export (about 10 s a model): `tiny_artifacts` has one
    )
    values.update(kw)
    return Settings(**values)


def calibrated_weights(path: Path, size: int = 32, seed: int = 0) -> Path:
    """A random MobileNetV2 (no top) whose BatchNorm statistics are measured on generated scans,
    saved as a weights file for `Settings.weights` (about 3 s). Left as built (moving mean 0,
    variance 1), a random MobileNetV2's activations shrink about 30-fold per block: its pooled
    features are ~1e-12, zeros once stored as float16, and a model on them answers 0.5 to every
    scan. Calibrated, each BatchNorm standardises its input, as in a trained network, so the
    features of two scans differ (random features, not learned ones)."""
    import keras
    from keras import ops

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    grey = np.stack([fake_scan(rng, bool(i % 2), (size, size)) for i in range(32)])
    x = np.repeat(grey[..., None], 3, axis=-1).astype("float32") / 127.5 - 1.0  # "tf" mode
    base = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(size, size, 3)
    )
    norm = keras.layers.BatchNormalization
    call = norm.call

    def calibrating(self, inputs, training=None, mask=None):  # one eager pass, layer by layer
        self.moving_mean.assign(ops.mean(inputs, axis=(0, 1, 2)))
        self.moving_variance.assign(ops.var(inputs, axis=(0, 1, 2)) + 1e-3)
        return call(self, inputs, training=False, mask=mask)

    norm.call = calibrating
    try:
        base(x, training=False)
    finally:
        norm.call = call
    base.save_weights(path)
    return path


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """`calibrated_weights` for 32 px tiny models (pass as `weights=str(tiny_weights)`)."""
    name = "mobilenetv2_32px_calibrated.weights.h5"

    def calibrate(folder: Path) -> None:
        folder.mkdir()
        calibrated_weights(folder / name)

    return built_once(tmp_path_factory, "weights", calibrate) / name


@pytest.fixture(scope="session")
def tiny_artifacts(tiny_dataset, tiny_weights, tmp_path_factory) -> Path:
    """A tiny model trained end to end on the generated dataset (random MobileNetV2 with
    calibrated BatchNorm statistics, 32 px, about a minute): trained once per test run, and
    copied once per `-n auto` worker, so that a test that rewrites a file of it (e.g. `cv` into
    metrics.json) does so in its own process only."""
    from tumor_model.release import pipeline

    root, _ = tiny_dataset

    def train(folder: Path) -> None:
        settings = tiny_settings(root, folder / "artifacts", weights=str(tiny_weights), export=True)
        pipeline.train_and_write(settings, cv_folds=3)

    trained = built_once(tmp_path_factory, "run", train) / "artifacts"
    return Path(shutil.copytree(trained, tmp_path_factory.mktemp("run") / "artifacts"))


def in_process(capsys, *args: str):
    """`neuroscan ARGS` run by `commands.main` in this process, as a CompletedProcess (returncode,
    stdout, stderr): the command's own code without a new interpreter's 8 CPU-seconds of importing
    TensorFlow. `cli` is the user's view (a subprocess); this is for tests that run a command
    several times on the same folder."""
    import subprocess

    from tumor_model.commands import main

    capsys.readouterr()  # what the test printed before is not the command's
    try:
        code = main(list(args))
    except SystemExit as stop:  # argparse's errors
        code = stop.code
    said = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, said.out, said.err)


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
