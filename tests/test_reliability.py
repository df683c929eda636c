"""Reliability and security of the whole product, end to end (library, CLI, dashboard).

- Bad input: every entry of `badfiles.bad_files()` in ONE batch with a good scan, through
  `python -m tumor_model predict` (a real subprocess) and through the Predict page (AppTest).
- Patient data: predicting (library, CLI, upload) writes no file (Python's own file opens are
  recorded with an audit hook; the temp folder, the repo and the home folder are snapshotted),
  and the patient tags of an uploaded DICOM never reach the screen, the session state, stdout,
  stderr or the logs.
- `app/.streamlit/config.toml`: upload limit, XSRF protection, no telemetry, no run-on-save.
- Broken artifacts: models load in Keras safe mode (a model carrying Python code is refused and
  the code never runs); corrupt, missing or replaced files raise `ArtifactError` with the rebuild
  command, and every dashboard page shows that error instead of a traceback.

Everything runs on the tiny model of `conftest.tiny_artifacts` (trained here), never on the
shipped model. A killed training run is covered by
test_train.test_killed_run_leaves_previous_artifacts.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import tomllib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Dataframe

from tumor_model import commands as cli
from tumor_model.artifacts import REBUILD, ArtifactError
from tumor_model.config import DISPLAY_NAMES
from tumor_model.io.imageio import load_scan
from tumor_model.serving.predict import Predictor

from badfiles import _dicom_bytes, bad_files
from conftest import REPO

APP = REPO / "app" / "streamlit_app.py"
PAGES = ["overview", "dataset", "training", "evaluation", "predict"]
HINT = REBUILD  # the one rebuild command, in every ArtifactError (model and dashboard)

# Distinctive FAKE patient data: none of these strings occurs anywhere in the code base.
PHI_TAGS = {
    "PatientName": "Qzxwolf^Ingeborg",
    "PatientID": "PHI-7731-ZQX",
    "PatientBirthDate": "19230417",
    "InstitutionName": "Sankt Qzx Klinikum",
    "ReferringPhysicianName": "Yrrebnad^Otto",
    "AccessionNumber": "ACC99817Q",
}
PHI_STRINGS = [
    "Qzxwolf",
    "Ingeborg",
    "PHI-7731-ZQX",
    "19230417",
    "1923-04-17",
    "Sankt Qzx",
    "Yrrebnad",
    "ACC99817Q",
]
PHI_NAME = "series_0042.dcm"  # the upload's file name (the user's choice) is not patient data


def phi_dicom() -> bytes:
    """An MR slice (64 x 48, 16 bit) whose patient tags are the fake PHI above."""
    return _dicom_bytes((64, 48), **PHI_TAGS)


def _find_phi(text: str) -> list[str]:
    return [s for s in PHI_STRINGS if s in text]


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def art(tiny_artifacts) -> Path:
    return tiny_artifacts


@pytest.fixture(scope="module")
def good(art) -> tuple[str, bytes]:
    """A held-out sample thumbnail of the tiny model (a PNG the model can predict)."""
    name = pd.read_csv(art / "samples" / "samples.csv").file.iloc[0]
    return name, (art / "samples" / name).read_bytes()


@pytest.fixture(scope="module")
def bad() -> dict[str, bytes]:
    files = bad_files()
    assert len(files) >= 40
    return files


# ----------------------------------------------------------------------------- no-write guard

# Not watched: git's and the tools' caches, and runs/ (logs of training jobs, which may run
# while the tests do; predicting never writes there or anywhere else).
_SKIP_DIRS = {
    ".git",
    ".cache",
    "__pycache__",
    ".pytest_cache",
    ".hypothesis",
    ".ruff_cache",
    "runs",
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_RECORD: dict = {"on": False, "events": []}
_RECORD_LOCK = threading.Lock()


def _audit(event: str, args: tuple) -> None:
    """Record every file this process opens for writing, creates, renames or copies."""
    if not _RECORD["on"]:
        return
    path = None
    if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        mode, flags = (list(args) + [None, 0])[1:3]
        writes = isinstance(mode, str) and any(c in mode for c in "wax+")
        writes = writes or (isinstance(flags, int) and flags & _WRITE_FLAGS)
        path = args[0] if writes else None
    elif event in ("os.mkdir", "os.rename", "os.link", "os.symlink", "shutil.copyfile"):
        path = args[0] if event == "os.mkdir" else args[1]
    if path is not None:
        path = os.fsdecode(path)
        if "__pycache__" not in path:
            with _RECORD_LOCK:
                _RECORD["events"].append((event, path))


sys.addaudithook(_audit)  # process-wide and permanent: cheap while _RECORD["on"] is False


def _snapshot(root: Path, recursive: bool) -> dict[str, int]:
    """relative path -> mtime_ns of the files (and, top-level only, folders) under root."""
    out: dict[str, int] = {}
    if not root.is_dir():
        return out
    if not recursive:
        for entry in os.scandir(root):
            out[entry.name] = entry.stat(follow_symlinks=False).st_mtime_ns
        return out
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS]
        for name in files:
            path = os.path.join(folder, name)
            try:
                out[os.path.relpath(path, root)] = os.stat(path, follow_symlinks=False).st_mtime_ns
            except FileNotFoundError:
                pass  # removed while we walked
    return out


def _changed(before: dict[str, int], after: dict[str, int]) -> list[str]:
    return sorted(k for k, v in after.items() if before.get(k) != v)


@contextmanager
def no_files_written(tmp_path: Path, monkeypatch):
    """Fail if the code run inside writes any file.

    tempfile's folder (and $TMPDIR for subprocesses) is redirected to a fresh empty folder that
    must stay empty; the repo (minus caches and .git) and the home folder's top level must not
    change; and no file may be opened for writing by this process (audit hook).
    Yields the private temp folder (pass it as TMPDIR to subprocesses).
    """
    private = tmp_path / "private_tmp"
    private.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    monkeypatch.setenv("TMPDIR", str(private))
    home = Path.home()
    places = {"repo": (REPO, True), "home": (home, False)}
    before = {k: _snapshot(p, r) for k, (p, r) in places.items()}
    with _RECORD_LOCK:
        _RECORD["events"].clear()
    _RECORD["on"] = True
    try:
        yield private
    finally:
        _RECORD["on"] = False
    assert tempfile.gettempdir() == str(private)
    assert list(private.iterdir()) == [], "files written to the temp folder"
    for key, (path, recursive) in places.items():
        changed = _changed(before[key], _snapshot(path, recursive))
        assert not changed, f"new or modified files in {key} ({path}): {changed}"
    assert _RECORD["events"] == [], "files opened for writing by this process"


def test_the_no_write_guard_catches_writes(tmp_path, monkeypatch):
    """The guard itself: a temp file, a C-level file creation in the repo and a Python
    open-for-write anywhere are each caught."""
    with pytest.raises(AssertionError, match="temp folder"):
        with no_files_written(tmp_path / "a", monkeypatch):
            with tempfile.NamedTemporaryFile(delete=False) as fh:
                fh.write(b"x")
    target = REPO / ".reliability-probe.tmp"
    try:
        with pytest.raises(AssertionError, match="repo"):
            with no_files_written(tmp_path / "b", monkeypatch):
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY))
    finally:
        target.unlink(missing_ok=True)
    with pytest.raises(AssertionError, match="opened for writing"):
        with no_files_written(tmp_path / "c", monkeypatch):
            (tmp_path / "c" / "out.txt").write_text("x")


# ----------------------------------------------------------------------------- bad input: CLI


def test_cli_batch_of_every_bad_file_with_a_good_one(art, good, bad, tmp_path):
    """One `python -m tumor_model predict` run over all bad files, a good PNG and a DICOM with
    patient tags: a JSON line per file in order, errors name their file, exit code 1, no
    traceback, no patient data in the output, nothing written."""
    folder = tmp_path / "in"
    folder.mkdir()
    paths = []
    for name, data in [*bad.items(), good, (PHI_NAME, phi_dicom())]:
        (folder / name).write_bytes(data)
        paths.append(str(folder / name))
    private = tmp_path / "private_tmp"
    private.mkdir()
    before = {"repo": _snapshot(REPO, True), "home": _snapshot(Path.home(), False)}
    done = subprocess.run(
        [sys.executable, "-m", "tumor_model", "predict", *paths, "--artifacts", str(art)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(private)},
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["file"] for line in lines] == paths
    for line in lines[: len(bad)]:
        assert set(line) == {"file", "error"}, line
        assert line["error"].startswith(repr(line["file"]) + ": "), line
        assert "Traceback" not in line["error"]
    for line in lines[len(bad) :]:
        assert "error" not in line, line
        assert 0.0 <= line["probability"] <= 1.0 and line["label"] in DISPLAY_NAMES.values()
    assert _find_phi(done.stdout + done.stderr) == []
    assert list(private.iterdir()) == []
    assert _changed(before["repo"], _snapshot(REPO, True)) == []
    assert _changed(before["home"], _snapshot(Path.home(), False)) == []


def test_library_and_cli_batch_write_nothing(art, good, bad, tmp_path, monkeypatch, capsys):
    """Predictor.predict_files and cli.main (in this process, under the audit hook) on bytes and
    on files: results as expected and not a single file written."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / good[0]).write_bytes(good[1])
    (folder / PHI_NAME).write_bytes(phi_dicom())
    (folder / "text.png").write_bytes(bad["text.png"])
    predictor = Predictor(art)
    names = [*bad, good[0], PHI_NAME]
    sources = [*bad.values(), good[1], phi_dicom()]
    with no_files_written(tmp_path, monkeypatch):
        results = predictor.predict_files(sources, names)
        image, scan = load_scan(phi_dicom(), PHI_NAME)
        code = cli.main(
            [
                "predict",
                str(folder / good[0]),
                str(folder / "text.png"),
                str(folder / PHI_NAME),
                "--artifacts",
                str(art),
            ]
        )
    assert [r["file"] for r in results] == names
    assert sum("error" in r for r in results) == len(bad)
    assert all("probability" in r for r in results[len(bad) :])
    assert image.mode == "RGB" and scan.info.get("Modality") == "MR"
    assert _find_phi(json.dumps(results) + repr(scan.info)) == []
    assert code == 1
    out = capsys.readouterr()
    assert [("error" in json.loads(x)) for x in out.out.splitlines()] == [False, True, False]
    assert _find_phi(out.out + out.err) == []


# ----------------------------------------------------------------------------- the app


def _predict_page(art: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("NEUROSCAN_ARTIFACTS", str(art))
    monkeypatch.delenv("NEUROSCAN_DATA_DIR", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    at.switch_page("pages/predict.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _upload(at: AppTest, files: list[tuple[str, bytes]]) -> AppTest:
    at.file_uploader(key="predict_upload").set_value(
        [(name, data, "application/octet-stream") for name, data in files]
    ).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _results(at: AppTest) -> pd.DataFrame:
    (table,) = [d.value for d in at.dataframe if "probability" in d.value.columns]
    return table


def _rendered_text(at: AppTest) -> str:
    """Everything on screen: every element's protobuf as text, plus the dataframes' values."""
    parts = []
    for node in at._tree:
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        if isinstance(node, Dataframe):
            parts.append(node.value.to_string())
    return "\n".join(parts)


def test_app_batch_of_every_bad_file_with_a_good_one(art, good, bad, tmp_path, monkeypatch):
    """All bad files and one good scan in one upload: no exception, one st.error per bad file
    naming it, exactly one prediction (the good file), nothing written."""
    at = _predict_page(art, monkeypatch)
    files = [*bad.items(), good]
    with no_files_written(tmp_path, monkeypatch):
        _upload(at, files)
    errors = [e.value for e in at.error]
    assert len(errors) == len(bad)
    for name, message in zip(bad, errors, strict=True):
        assert message.startswith(f"'{name}': ") and "Traceback" not in message, message
    predicted = _results(at)  # the predicted scans' table; the unread ones are listed apart
    assert list(predicted.file) == [good[0]]
    assert 0.0 <= float(predicted.probability.iloc[0]) <= 1.0
    (unread,) = [t.value for t in at.table if "error" in t.value.columns]
    assert list(unread.file) == list(bad) and unread.error.str.len().gt(0).all()
    assert at.header[0].value == good[0] and at.metric  # the good scan's detail panel


def _phi_everywhere():
    import pandas as pd
    import streamlit as st

    st.caption("caption Qzxwolf")
    st.error("error Ingeborg")
    with st.expander("closed"):
        st.dataframe(pd.DataFrame({"tag": ["PatientID"], "value": ["PHI-7731-ZQX"]}))
    st.sidebar.json({"born": "19230417"})
    st.metric("Sankt Qzx", 1)


def test_the_screen_walk_sees_every_kind_of_element():
    """The PHI check below can fail: text in a caption, an error, a dataframe inside a closed
    expander, sidebar JSON and a metric label is all found."""
    at = AppTest.from_function(_phi_everywhere).run()
    assert not at.exception
    assert _find_phi(_rendered_text(at)) == [
        "Qzxwolf",
        "Ingeborg",
        "PHI-7731-ZQX",
        "19230417",
        "Sankt Qzx",
    ]


def test_app_never_shows_or_logs_dicom_patient_data(art, tmp_path, monkeypatch, capfd, caplog):
    """Upload a DICOM with patient tags: it is predicted and its safe tags are shown, but no
    patient string is rendered, kept in the session state, printed or logged; nothing written."""
    data = phi_dicom()
    assert all(s.encode() in data for s in ("Qzxwolf^Ingeborg", "PHI-7731-ZQX", "19230417"))
    caplog.set_level(logging.DEBUG)
    quiet = [
        lg
        for lg in [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)]
        if isinstance(lg, logging.Logger) and not lg.propagate
    ]
    for lg in quiet:  # streamlit's loggers do not propagate: listen to them directly
        lg.addHandler(caplog.handler)
    try:
        at = _predict_page(art, monkeypatch)
        with no_files_written(tmp_path, monkeypatch):
            _upload(at, [(PHI_NAME, data)])
    finally:
        for lg in quiet:
            lg.removeHandler(caplog.handler)
    assert not at.error
    assert at.header[0].value == PHI_NAME and "P(tumour)" in {m.label for m in at.metric}
    screen = _rendered_text(at)
    assert "Modality" in screen and "PhotometricInterpretation" in screen  # the safe tags table
    assert PHI_NAME in screen  # the walk sees the page's text
    assert _find_phi(screen) == []
    state = repr(at.session_state)  # uploads show as UploadedFile(name, size), not bytes
    assert _find_phi(state) == []
    captured = capfd.readouterr()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert _find_phi(captured.out + captured.err + logged) == []


# ----------------------------------------------------------------------------- config


def test_streamlit_config_is_safe():
    config = tomllib.loads((REPO / "app" / ".streamlit" / "config.toml").read_text())
    server, browser = config["server"], config["browser"]
    assert 1 <= server["maxUploadSize"] <= 200  # MB
    assert server["enableXsrfProtection"] is True
    assert server["runOnSave"] is False
    assert server["fileWatcherType"] == "none"  # a serving process never reloads its code
    assert browser["gatherUsageStats"] is False
    assert server.get("enableCORS", True) is True  # never switched off


# ----------------------------------------------------------------------------- artifacts


def _copy(art: Path, dest: Path) -> Path:
    shutil.copytree(art, dest)
    return dest


def _flip(path: Path, at: float = 0.5, n: int = 64) -> bytes:
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    for i in range(start, min(start + n, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return bytes(data)


def _rehash(folder: Path) -> None:
    """Make the model card's sha256 match whatever model.keras now is."""
    card = json.loads((folder / "model_card.json").read_text())
    card["model_sha256"] = hashlib.sha256((folder / "model.keras").read_bytes()).hexdigest()
    (folder / "model_card.json").write_text(json.dumps(card))


def test_models_are_only_loaded_in_safe_mode():
    """Every load_model call in the product passes safe_mode=True; nothing enables unsafe
    deserialization."""
    sources = [*(REPO / "tumor_model").rglob("*.py"), *(REPO / "pages").glob("*.py"), APP]
    calls = []
    for path in sources:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name == "enable_unsafe_deserialization":
                    pytest.fail(f"{path}: enables unsafe deserialization")
                if name == "load_model":
                    safe = {k.arg: k.value for k in node.keywords}.get("safe_mode")
                    calls.append((path.name, isinstance(safe, ast.Constant) and safe.value))
    assert calls and all(ok is True for _, ok in calls), calls


def test_a_model_carrying_python_code_is_refused(art, tmp_path):
    """A model.keras with a Lambda layer (arbitrary code) and a matching sha256: the Predictor
    refuses it and the code never runs (on Keras: safe mode; on ONNX Runtime the export no longer
    matches the card); loaded unsafely, the same file does run it."""
    import keras

    folder = _copy(art, tmp_path / "artifacts")
    marker = tmp_path / "code_ran"
    code = f"lambda t: (__import__('pathlib').Path({str(marker)!r}).write_text('x'), t)[1]"
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Lambda(eval(code))(inputs)  # the payload under test
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="tumor_probability")(x)
    keras.Model(inputs, outputs).save(folder / "model.keras")
    marker.unlink(missing_ok=True)
    _rehash(folder)
    with pytest.raises(ArtifactError, match="Lambda") as err:
        Predictor(folder, runtime="keras")
    assert HINT in str(err.value)
    with pytest.raises(ArtifactError, match="exported from another model.keras"):
        Predictor(folder)
    assert not marker.exists()
    unsafe = keras.saving.load_model(folder / "model.keras", safe_mode=False)  # the control
    unsafe.predict(np.zeros((1, 32, 32, 3), "float32"), verbose=0)
    assert marker.exists(), "the payload did not run even when loaded unsafely"


def test_flipped_bytes_in_model_keras_fail_the_sha256_check(art, tmp_path):
    folder = _copy(art, tmp_path / "artifacts")
    _flip(folder / "model.keras")
    with pytest.raises(ArtifactError, match="sha256") as err:
        Predictor(folder)
    assert HINT in str(err.value) and "model.keras" in str(err.value)


@pytest.mark.parametrize("name", ["model_card.json", "model.keras"])
def test_a_missing_artifact_is_named(art, tmp_path, name):
    folder = _copy(art, tmp_path / "artifacts")
    (folder / name).unlink()
    with pytest.raises(ArtifactError, match="is missing") as err:
        Predictor(folder)
    assert name in str(err.value) and HINT in str(err.value)


BREAKS = {
    # model.keras corrupt inside, with a model card rehashed to match (CRC errors in the zip)
    "rehashed_corrupt_model": lambda d: (_flip(d / "model.keras", 0.3), _rehash(d)),
    "rehashed_truncated_model": lambda d: (
        (d / "model.keras").write_bytes((d / "model.keras").read_bytes()[:5000]),
        _rehash(d),
    ),
    "card_not_an_object": lambda d: (d / "model_card.json").write_text("[1, 2, 3]"),
    "card_truncated": lambda d: (d / "model_card.json").write_text('{"model_sha256": "ab'),
    "card_without_fields": lambda d: (
        (d / "model_card.json").write_text(json.dumps({"model_sha256": "0"})),
        _rehash(d),
    ),
    "ood_corrupt": lambda d: (d / "ood.npz").write_bytes(b"PK\x03\x04 not really a zip"),
    "ood_not_npz": lambda d: (d / "ood.npz").write_bytes(b"\x93NUMPY garbage" * 10),
}


@pytest.mark.parametrize("kind", sorted(BREAKS))
def test_any_broken_artifact_is_an_artifact_error(art, tmp_path, kind):
    """Whatever is wrong with the artifacts, Predictor raises ArtifactError with the rebuild
    command (never BadZipFile, AttributeError, a numpy error...)."""
    folder = _copy(art, tmp_path / "artifacts")
    BREAKS[kind](folder)
    with pytest.raises(ArtifactError) as err:
        Predictor(folder)
    assert HINT in str(err.value), str(err.value)


@pytest.mark.parametrize("fault", ["missing", "flipped", "rehashed_corrupt_model"])
def test_cli_with_broken_artifacts_says_how_to_rebuild(art, good, tmp_path, capsys, fault):
    """`predict` on broken artifacts: exit code 2 and one `error:` line with the rebuild
    command, not a traceback."""
    folder = tmp_path / "artifacts"
    if fault != "missing":
        _copy(art, folder)
        if fault == "flipped":
            _flip(folder / "model.keras")
        else:
            BREAKS[fault](folder)
    scan = tmp_path / good[0]
    scan.write_bytes(good[1])
    assert cli.main(["predict", str(scan), "--artifacts", str(folder)]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith("error: ") and HINT in out.err and "Traceback" not in out.err


def _break_app(art: Path, tmp_path: Path, fault: str) -> Path:
    if fault == "empty folder":
        (tmp_path / "empty").mkdir()
        return tmp_path / "empty"
    folder = _copy(art, tmp_path / "artifacts")
    if fault == "model.keras flipped":
        _flip(folder / "model.keras")
    elif fault == "model.keras missing":
        (folder / "model.keras").unlink()
    elif fault == "model.keras rehashed corrupt":
        BREAKS["rehashed_corrupt_model"](folder)
    elif fault == "model_card.json truncated":
        BREAKS["card_truncated"](folder)
    elif fault == "ood.npz corrupt":
        BREAKS["ood_corrupt"](folder)
    return folder


# fault -> the pages that need the broken file (each must show the rebuild command)
APP_FAULTS = {
    "empty folder": PAGES,
    "model.keras flipped": ["predict"],
    "model.keras missing": ["predict"],
    "model.keras rehashed corrupt": ["predict"],
    "model_card.json truncated": ["overview", "evaluation", "predict"],
    "ood.npz corrupt": ["predict"],
}


@pytest.mark.parametrize("fault", list(APP_FAULTS))
def test_app_with_broken_artifacts_explains_on_every_page(art, tmp_path, monkeypatch, fault):
    """NEUROSCAN_ARTIFACTS at a broken copy: every page renders without an exception; the pages
    that need the broken file show an st.error with the rebuild command."""
    folder = _break_app(art, tmp_path, fault)
    monkeypatch.setenv("NEUROSCAN_ARTIFACTS", str(folder))
    monkeypatch.delenv("NEUROSCAN_DATA_DIR", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if fault in ("empty folder", "model_card.json truncated"):
        assert at.sidebar.error, "the sidebar does not say the model card is unreadable"
    for page in PAGES:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])
        errors = " ".join(e.value for e in at.main.error)
        if page in APP_FAULTS[fault]:
            assert HINT in errors, (page, errors)
            if fault == "model.keras flipped":
                assert "sha256" in errors
        else:
            assert not errors, (page, errors)
