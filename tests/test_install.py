"""`pip install .` gives a working `neuroscan` command that finds the shipped model, run from a
folder that is not the repository.

Built and installed with the interpreter running the tests, whatever it is (the system one, as in
CI, or a virtual environment, as many users set one up): the wheel is built offline from a copy of
the working tree with the build tools this interpreter already has (`pip wheel --no-deps
--no-build-isolation`; through pip's own isolated build when it has no `bdist_wheel`), then
unpacked with `pip install --no-deps --target DIR`. The command runs with PYTHONPATH=DIR, so it
imports the installed copy of `tumor_model` and this interpreter's TensorFlow, Streamlit...:
no nested virtual environment, whose view of site-packages depends on how this one was made.
The copy of the tree keeps the in-tree build (`build/`, `*.egg-info`) out of the repository.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow  # builds a 15 MB wheel and loads the shipped model

ARTIFACTS = REPO / "artifacts"
SKIP = (".git", "docs", "tests", "benchmarks", "experiments", "scripts", ".cache")
SKIP += (".gpu", "runs", "tmp", "build", "dist", "*.egg-info", "artifacts-*")
SKIP += ("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache", ".ruff_cache")
SUBPACKAGES = sorted(
    p.parent.relative_to(REPO).as_posix() for p in (REPO / "tumor_model").glob("*/__init__.py")
)


def _env(target: Path | None = None) -> dict:
    drop = ("PYTHONPATH", "PYTHONHOME", "NEUROSCAN_ARTIFACTS", "NEUROSCAN_DATA_DIR")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", TF_CPP_MIN_LOG_LEVEL="2")
    if target is not None:
        env["PYTHONPATH"] = str(target)
    return env


def _run(args, cwd: Path, target: Path | None = None, timeout: int = 300):
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=_env(target),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _has_bdist_wheel() -> bool:
    """setuptools >= 70.1 builds wheels itself; older ones need the `wheel` package."""
    import setuptools

    major, minor = (int(part) for part in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip install .` builds, from a copy of the working tree."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*SKIP))
    offline = ["--no-build-isolation", "--no-index"] if _has_bdist_wheel() else []
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", *offline, "-w", base / "dist"]
    built = _run([*pip, source], cwd=base)
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = (base / "dist").glob("neuroscan-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> tuple[Path, Path]:
    """(the install folder, a working folder outside the repo)."""
    base = tmp_path_factory.mktemp("install")
    target = base / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", target]
    done = _run([*pip, wheel], cwd=base)
    assert done.returncode == 0, done.stdout + done.stderr
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    return target, elsewhere


def _neuroscan(installed, *args: str, timeout: int = 300):
    target, elsewhere = installed
    return _run(
        [target / "bin" / "neuroscan", *args], cwd=elsewhere, target=target, timeout=timeout
    )


def test_the_wheel_holds_every_subpackage_the_model_and_the_script(wheel):
    """pyproject.toml lists the packages (the shipped model is one of them, mapped from the
    repository's artifacts/): a subpackage added to tumor_model/ must be added there too."""
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = zf.read("neuroscan-0.1.0.dist-info/entry_points.txt").decode()
    assert "tumor_model/__init__.py" in names
    missing = [p for p in SUBPACKAGES if f"{p}/__init__.py" not in names]
    assert not missing, f"not in the wheel (add them to [tool.setuptools] packages): {missing}"
    for name in (
        "io",
        "serving",
        "training",
        "evaluation",
        "site",
        "release",
        "commands",
        "dashboard",
    ):
        assert f"tumor_model/{name}/__init__.py" in names, name
    shipped = {
        n.removeprefix("tumor_model/shipped/")
        for n in names
        if n.startswith("tumor_model/shipped/")
    }
    in_repo = {
        p.relative_to(ARTIFACTS).as_posix()
        for p in ARTIFACTS.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }
    assert "model.keras" in shipped and "model_card.json" in shipped
    assert "samples/samples.csv" in shipped
    assert in_repo <= shipped, sorted(in_repo - shipped)
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"tumor_model", "neuroscan-0.1.0.dist-info"}, tops  # no tests/, docs/...
    app = {n.removeprefix("tumor_model/app/") for n in names if n.startswith("tumor_model/app/")}
    in_repo = {
        p.relative_to(REPO / "app").as_posix()
        for p in (REPO / "app").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert in_repo == app, sorted(in_repo ^ app)  # the router, every page, its Streamlit settings
    assert "neuroscan = tumor_model.commands:main" in entry_points


def test_the_installed_package_is_imported_not_the_repo(installed):
    target, elsewhere = installed
    code = "import tumor_model.artifacts as a; print(a.__file__); print(a.locate())"
    out = _run([sys.executable, "-c", code], cwd=elsewhere, target=target)
    assert out.returncode == 0, out.stderr
    module, model = (Path(line).resolve() for line in out.stdout.split())
    assert module.is_relative_to(target.resolve()), module
    assert not module.is_relative_to(REPO), module
    assert model == (target / "tumor_model" / "shipped").resolve(), model


def test_neuroscan_help_lists_the_commands(installed):
    out = _neuroscan(installed, "--help")
    assert out.returncode == 0, out.stderr
    for command in ("summarize", "train", "cv", "evaluate", "predict"):
        assert command in out.stdout
    assert "--help" in _neuroscan(installed, "predict", "--help").stdout


def test_neuroscan_predict_a_shipped_sample_from_another_folder(installed):
    """No --artifacts, no $NEUROSCAN_ARTIFACTS: the model shipped in the wheel answers."""
    target, elsewhere = installed
    samples = target / "tumor_model" / "shipped" / "samples"
    shutil.copy2(samples / "tumor_00.png", elsewhere / "scan.png")
    out = _neuroscan(installed, "predict", "scan.png")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, out.stdout
    result = lines[0]
    assert result["file"] == "scan.png"
    assert 0.0 <= result["probability"] <= 1.0
    assert result["label"] in ("no tumour", "tumour")  # spelt as users read it (README)


def test_neuroscan_exit_codes_come_from_main(installed):
    """The console script passes main()'s return value on: 1 when a file fails, 2 on an error;
    a missing model folder is named, with how to point elsewhere."""
    target, elsewhere = installed
    failed = _neuroscan(installed, "predict", "missing.png")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "error" in json.loads(failed.stdout.splitlines()[-1])
    broken = _neuroscan(installed, "predict", "x.png", "--artifacts", "no-model-here")
    assert broken.returncode == 2, broken.stdout + broken.stderr
    errors = [line for line in broken.stderr.splitlines() if line.startswith("error: ")]
    assert errors, broken.stderr
    assert str(elsewhere / "no-model-here") in errors[0], errors[0]  # the folder it read
    assert "--artifacts" in errors[0] and "NEUROSCAN_ARTIFACTS" in errors[0], errors[0]


APPTEST = """
import sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=60).run()
assert not at.exception, [e.value for e in at.exception]
print("SIDEBAR", " | ".join(m.value for m in at.sidebar.markdown))
at.switch_page("pages/predict.py").run()
assert not at.exception, [e.value for e in at.exception]
print("TITLE", " | ".join(t.value for t in at.title))
"""


def test_the_installed_dashboard_runs_from_another_folder(installed):
    """`neuroscan dashboard` serves the wheel's app (router, pages, settings), and that app's
    pages run on the shipped model, from a folder with no repository in sight."""
    target, elsewhere = installed
    router = target / "tumor_model" / "app" / "streamlit_app.py"
    out = _run([sys.executable, "-c", APPTEST, router], cwd=elsewhere, target=target, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SIDEBAR" in out.stdout and "mobilenetv2" in out.stdout.lower(), out.stdout
    assert "TITLE" in out.stdout and "Predict" in out.stdout, out.stdout
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [target / "bin" / "neuroscan", "dashboard", "--port", port, "--address", "127.0.0.1"]
    server = subprocess.Popen(
        [str(a) for a in command], cwd=elsewhere, env=_env(target),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        health = None
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health") as r:
                    health = r.read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert health == "ok", health
    finally:
        server.terminate()
        printed, _ = server.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}" in printed, printed
    assert "Traceback" not in printed, printed
