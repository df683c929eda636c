"""`pip install .` gives a working `neuroscan` command, run from a folder that is not the repo.

Offline: the venv sees this interpreter's site-packages (TensorFlow etc. are not reinstalled),
and the package is built with the setuptools already installed (`--no-build-isolation
--no-index`). The working tree (less `.git`, `artifacts/`, `docs/` and caches) is copied to a
temporary folder first, so the in-tree build (`build/`, `*.egg-info`) never touches it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

SAMPLE = REPO / "artifacts" / "samples" / "tumor_00.png"
SKIP = (".git", "artifacts", "docs", ".cache", ".gpu", "runs", "tmp", "build", "*.egg-info")
SKIP += ("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache", ".ruff_cache")


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", TF_CPP_MIN_LOG_LEVEL="2")
    return env


def _run(args, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(venv, a working folder outside the repo) with neuroscan installed from a copy."""
    base = tmp_path_factory.mktemp("install")
    source = base / "source"  # the working tree, less what a build never needs
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*SKIP))
    venv = base / "venv"
    made = _run([sys.executable, "-m", "venv", "--system-site-packages", venv], cwd=base)
    assert made.returncode == 0, made.stderr
    pip = [venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "--no-build-isolation"]
    done = _run([*pip, "--no-index", source], cwd=base)
    assert done.returncode == 0, done.stdout + done.stderr
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    return venv, elsewhere


def test_the_installed_package_is_imported_not_the_repo(installed):
    venv, elsewhere = installed
    out = _run(
        [venv / "bin" / "python", "-c", "import tumor_model; print(tumor_model.__file__)"],
        cwd=elsewhere,
    )
    assert out.returncode == 0, out.stderr
    where = Path(out.stdout.strip()).resolve()
    assert where.is_relative_to(venv.resolve()), where
    assert not where.is_relative_to(REPO), where


def test_only_the_package_and_the_script_are_installed(installed):
    """packages.find takes tumor_model and its subpackages, not tests/, benchmarks/, pages/..."""
    venv, elsewhere = installed
    out = _run(
        [venv / "bin" / "python", "-m", "pip", "show", "--files", "neuroscan"], cwd=elsewhere
    )
    assert out.returncode == 0, out.stderr
    files = [line.strip() for line in out.stdout.split("Files:", 1)[1].splitlines() if line]
    tops = {Path(f).parts[0] for f in files if not f.startswith("..")}
    assert tops == {"tumor_model", "neuroscan-0.1.0.dist-info"}, tops
    assert "tumor_model/dashboard/__init__.py" in files
    assert any(f.endswith("bin/neuroscan") for f in files)


def test_neuroscan_help_lists_the_commands(installed):
    venv, elsewhere = installed
    out = _run([venv / "bin" / "neuroscan", "--help"], cwd=elsewhere)
    assert out.returncode == 0, out.stderr
    for command in ("summarize", "train", "cv", "evaluate", "predict"):
        assert command in out.stdout


def test_neuroscan_predict_a_sample_scan_from_another_folder(installed):
    venv, elsewhere = installed
    scan = elsewhere / "scan.png"
    shutil.copy2(SAMPLE, scan)
    out = _run(
        [venv / "bin" / "neuroscan", "predict", "scan.png", "--artifacts", REPO / "artifacts"],
        cwd=elsewhere,
    )
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, out.stdout
    result = lines[0]
    assert result["file"] == "scan.png"
    assert 0.0 <= result["probability"] <= 1.0
    assert result["label"] in ("no tumour", "tumour")  # spelt as users read it (README)


def test_neuroscan_exit_codes_come_from_main(installed):
    """The console script passes main()'s return value on: 1 when a file fails, 2 on an error."""
    venv, elsewhere = installed
    failed = _run(
        [venv / "bin" / "neuroscan", "predict", "missing.png", "--artifacts", REPO / "artifacts"],
        cwd=elsewhere,
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "error" in json.loads(failed.stdout.splitlines()[-1])
    broken = _run(
        [venv / "bin" / "neuroscan", "predict", "x.png", "--artifacts", elsewhere], cwd=elsewhere
    )
    assert broken.returncode == 2, broken.stdout + broken.stderr
    assert any(line.startswith("error: ") for line in broken.stderr.splitlines()), broken.stderr
