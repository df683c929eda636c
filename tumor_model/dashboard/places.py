"""Where the dashboard reads from, and the preamble every page runs.

`page()` and `load(name)` are the shared preamble: a page calls `page()` first (it is then always
run through streamlit_app.py) and `load()` for each artifact, which is read once per file version
(`st.cache_data`) and shown as an `st.error` naming the file and the rebuild command when it is
missing or broken. Streamlit is imported only by the functions that need it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from pathlib import Path

import numpy as np
from PIL import ImageOps

from .. import artifacts
from ..artifacts import ArtifactError
from ..imageio import ImageLoadError, load_image

APP_DIR = Path(__file__).resolve().parents[2]  # where streamlit_app.py lives
ARTIFACTS_ENV, DATA_ENV = "NEUROSCAN_ARTIFACTS", "NEUROSCAN_DATA_DIR"


MODEL_KEY = "model_folder"  # session state: the artifacts folder chosen in the sidebar


def artifacts_dir(env: dict | None = None) -> Path:
    """The folder chosen in the sidebar ("Model folder"), else $NEUROSCAN_ARTIFACTS, else
    artifacts/ next to streamlit_app.py."""
    chosen = _session_choice()
    if chosen:
        return chosen
    value = (os.environ if env is None else env).get(ARTIFACTS_ENV, "").strip()
    return Path(value).expanduser() if value else APP_DIR / "artifacts"


def model_folder(value: str | None) -> Path | None:
    """A typed model folder (absolute, or relative to the app folder) when it holds a model
    card, else None."""
    text = (value or "").strip()
    if not text:
        return None
    path = Path(text).expanduser()
    for candidate in (path, APP_DIR / path):
        if (candidate / artifacts.CARD).is_file():
            return candidate.resolve()
    return None


def choose_artifacts(folder: str | Path) -> None:
    """Make `folder` the model of this session (the sidebar's "Model folder" shows it)."""
    import streamlit as st

    st.session_state[MODEL_KEY] = str(folder)


def _session_choice() -> Path | None:
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        if get_script_run_ctx(suppress_warning=True) is None:
            return None
        import streamlit as st

        return model_folder(st.session_state.get(MODEL_KEY))
    except (ImportError, AttributeError, KeyError):
        return None


def data_dir(value: str | None) -> Path | None:
    """The dataset root typed by the user (or from $NEUROSCAN_DATA_DIR) when it is a folder."""
    text = (value or "").strip()
    if not text:
        return None
    path = Path(text).expanduser()
    for candidate in (path, APP_DIR / path):
        if candidate.is_dir():
            return Path(os.path.abspath(candidate))  # not resolve: a symlink keeps its name
    return None


def as_typed(value: str | None) -> str:
    """A folder from the environment as the sidebar pre-fills it: relative to the app folder
    when it lies in it or beside it (`data_dir` resolves that back), so no absolute path of the
    machine is on screen; any other value as given."""
    text = (value or "").strip()
    if not text or not Path(text).is_absolute():
        return text
    rel = Path(os.path.relpath(os.path.abspath(text), APP_DIR))  # a symlink stays as named
    return rel.as_posix() if rel.parts.count("..") <= 1 and (APP_DIR / rel).is_dir() else text


def session_data_dir(state, env: dict | None = None) -> str | None:
    """The dataset root the sidebar resolved ("data_root" in state), else $NEUROSCAN_DATA_DIR.

    Pages call this so that they also work when Streamlit runs them without the main script.
    """
    if "data_root" in state:
        return state["data_root"]
    root = data_dir((os.environ if env is None else env).get(DATA_ENV))
    return str(root) if root else None


def stamp(directory: str | Path, name: str) -> float:
    """Modification time of an artifact (cache key: a rebuilt file is re-read), -1 if absent."""
    try:
        return (Path(directory) / name).stat().st_mtime
    except OSError:
        return -1.0


# ----------------------------------------------------------------------------- reading


def read_artifact(directory: str | Path, name: str, stamp: float | None = None):
    """A JSON artifact as a dict (the model card checked for its fields) or a CSV artifact as a
    DataFrame checked for its columns; `ArtifactError` otherwise.

    `stamp` is not used: callers pass the file's mtime so that `st.cache_data` re-reads a
    rebuilt artifact.
    """
    if name == artifacts.CARD:
        return artifacts.read_card(directory)
    if name.endswith(".json"):
        return artifacts.read_json(directory, name)
    return artifacts.read_csv(directory, name)


def load_preview(path: str | Path, side: int = 256) -> tuple[np.ndarray | None, str | None]:
    """(RGB uint8 side x side preview, the image fitted on black, None), or (None, why)."""
    try:
        img = load_image(Path(path))
    except ImageLoadError as err:
        return None, str(err)
    return np.asarray(ImageOps.pad(img.convert("RGB"), (side, side), color=(0, 0, 0))), None


# ----------------------------------------------------------------------------- the preamble


def page() -> Path:
    """What every page runs first: go through the router, then return the artifacts folder."""
    through_main_script()
    return artifacts_dir()


def load(name: str, quiet: bool = False):
    """The artifact `name` of the artifacts folder (cached per file version), or None after an
    `st.error` naming the problem and the rebuild command (nothing shown when `quiet`)."""
    import streamlit as st

    folder = artifacts_dir()
    try:
        return _cached_reader()(str(folder), name, stamp(folder, name))
    except ArtifactError as err:
        if not quiet:
            st.error(str(err), icon=":material/error:")
        return None


@functools.cache
def _cached_reader():
    import streamlit as st

    return st.cache_data(read_artifact, show_spinner=False)


_LOADED: set = set()  # (folder, stamp) of the models this server has loaded


def predictor(folder: str, stamp: float):
    """The `Predictor` of an artifacts folder, loaded once per model.keras version and shared by
    every page and session (st.cache_resource). Imports TensorFlow: call it only when needed."""
    return _cached_predictor()(str(folder), stamp)


def predictor_loaded(folder: str, stamp: float) -> bool:
    """Whether `predictor(folder, stamp)` is loaded already (pages then skip the loading note)."""
    return (str(folder), stamp) in _LOADED


def _load_predictor(folder: str, stamp: float):
    from ..predict import Predictor

    loaded = Predictor(folder)
    _LOADED.add((folder, stamp))
    return loaded


@functools.cache
def _cached_predictor():
    import streamlit as st

    return st.cache_resource(_load_predictor, show_spinner=False, max_entries=2)


def through_main_script() -> None:
    """Make Streamlit run this page through streamlit_app.py (sidebar, notice, page config).

    Because the pages live in `pages/`, Streamlit starts in its old multipage mode and, when the
    first request of a fresh server (or AppTest) is a page, runs that file alone. st.navigation
    switches the mode off; this does so (a private Streamlit attribute) and reruns.
    """
    import streamlit as st
    from streamlit.runtime.pages_manager import PagesManager

    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


# ----------------------------------------------------------------------------- memory


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, or None where the C library has none (macOS, musl, Windows)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_memory() -> bool:
    """Hand the heap memory freed by this script run back to the OS; True if it could.

    Streamlit runs every rerun in a new thread, and glibc keeps what those threads free in
    per-thread arenas: under 10 concurrent sessions the server's RSS climbed to the high-water
    mark of all reruns at once (docs/reliability.md). Called by the router after every page;
    costs about 2 ms with the model and explainer loaded (measured once, 2026-11-30)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
