"""Where the dashboard reads from, and the preamble every page runs.

The model: the folder chosen in the sidebar, else `artifacts.locate` ($NEUROSCAN_ARTIFACTS, else
the shipped model). The dataset (`find_data`): the folder typed in the sidebar, else
$NEUROSCAN_DATA_DIR, else the first of the model's sources found under ../shared/data or ./data
(`data_places`); `data_note` says which folder is used, or where it looked.

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ImageOps

from tumor_model import artifacts
from tumor_model.artifacts import ArtifactError
from tumor_model.io.imageio import ImageLoadError, load_image


def _home() -> Path:
    """The folder relative places are read from: the repository in a source checkout (where
    app/streamlit_app.py lives), else (an installed wheel) the working folder."""
    repository = Path(__file__).resolve().parents[2]
    return repository if (repository / "app" / "streamlit_app.py").is_file() else Path.cwd()


APP_DIR = _home()
DATA_ENV = "NEUROSCAN_DATA_DIR"  # the dataset root when none is typed in the sidebar
DATA_NAME = "brain-tumor-dataset"  # the dataset looked for when the model card names none
DATA_PLACES = ("../shared/data", "data")  # where datasets are looked for, from the app folder


MODEL_KEY = "model_folder"  # session state: the artifacts folder chosen in the sidebar


def artifacts_dir(env: dict | None = None) -> Path:
    """The folder chosen in the sidebar ("Model folder"), else `artifacts.locate`'s
    ($NEUROSCAN_ARTIFACTS, else the model shipped with the package)."""
    return artifacts.locate(_session_choice(), env)


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


# ----------------------------------------------------------------------------- the dataset


def data_dir(value: str | None, app_dir: str | Path | None = None) -> Path | None:
    """A typed dataset root (absolute, relative to the working folder or to the app folder)
    when it is a folder, else None."""
    text = (value or "").strip()
    if not text:
        return None
    path = Path(text).expanduser()
    for candidate in (path, Path(app_dir or APP_DIR) / path):
        if candidate.is_dir():
            return Path(os.path.abspath(candidate))  # not resolve: a symlink keeps its name
    return None


def data_places(app_dir: str | Path | None = None) -> list[Path]:
    """The folders datasets are looked for in: ../shared/data (beside the app folder), then
    ./data (in it)."""
    return [Path(os.path.abspath(Path(app_dir or APP_DIR) / p)) for p in DATA_PLACES]


def data_names(card: dict | None) -> tuple[str, ...]:
    """The dataset folders to look for: the model's training sources (model card "sources",
    each named after its root folder), then DATA_NAME."""
    return tuple(dict.fromkeys([*((card or {}).get("sources") or {}), DATA_NAME]))


@dataclass(frozen=True)
class DataChoice:
    """Where the dashboard reads images from: `root` (None when none was found), how it was
    chosen (`origin`) and every folder looked at, in order (`tried`)."""

    root: Path | None
    origin: str  # TYPED, ENV or FOUND
    tried: tuple[Path, ...]


TYPED, ENV, FOUND = "typed in the sidebar", f"${DATA_ENV}", "found automatically"


def find_data(
    typed: str | None = None,
    env: dict | None = None,
    names: tuple[str, ...] = (DATA_NAME,),
    app_dir: str | Path | None = None,
) -> DataChoice:
    """The dataset root, in order: the folder typed in the sidebar, else $NEUROSCAN_DATA_DIR,
    else the first existing of `names` under `data_places` (../shared/data/NAME, ./data/NAME,
    for each name in turn). A typed or environment folder that does not exist is not replaced by
    another one: the choice is reported as not found."""
    values = os.environ if env is None else env
    for origin, value in ((TYPED, typed), (ENV, values.get(DATA_ENV))):
        text = (value or "").strip()
        if text:
            return DataChoice(data_dir(text, app_dir), origin, (Path(text).expanduser(),))
    tried = []
    for name in names:
        for place in data_places(app_dir):
            tried.append(place / name)
            if tried[-1].is_dir():
                return DataChoice(tried[-1], FOUND, tuple(tried))
    return DataChoice(None, FOUND, tuple(tried))


def data_note(choice: DataChoice, base: str | Path | None = None) -> str:
    """What the sidebar says about the dataset: the folder in use and why, or where it looked."""
    shown = ", ".join(f"`{shown_path(p, base)}`" for p in choice.tried)
    if choice.root is not None:
        where = f"Reading images from `{shown_path(choice.root, base)}` ({choice.origin}"
        if choice.origin == FOUND and len(choice.tried) > 1:
            where += f"; looked in {shown}"
        return where + ")."
    if choice.origin == FOUND:
        return (
            f"Looked for the dataset in {shown}: none is a folder. Type its folder above or set "
            f"${DATA_ENV}."
        )
    return f"Looked for the dataset in {shown} ({choice.origin}): not a folder."


def session_data_dir(state, env: dict | None = None) -> str | None:
    """The dataset root the sidebar resolved ("data_root" in state), else `find_data`'s.

    Pages call this so that they also work when Streamlit runs them without the main script.
    """
    if "data_root" in state:
        return state["data_root"]
    root = find_data(None, env).root
    return str(root) if root else None


def source_roots(sources, root: str | Path, app_dir: str | Path | None = None) -> dict:
    """Where each source's images are (source -> folder): `root` for the source it holds (the
    one named like it, or the only one), else the folder of the source's name under
    `data_places`, else `root` again."""
    names, root = list(dict.fromkeys(str(s) for s in sources)), Path(root)
    folders = data_places(app_dir)
    out = {}
    for name in names:
        found = [folder / name for folder in folders if (folder / name).is_dir()]
        held = len(names) == 1 or name == root.name or not found
        out[name] = root if held else found[0]
    return out


def image_paths(frame, root: str | Path, app_dir: str | Path | None = None) -> list[str]:
    """The image file of each row of a split.csv / predictions.csv frame ('path', and 'source'
    when the model was trained on several sources) with the dataset in use at `root`."""
    if "source" not in frame:
        return [str(Path(root) / p) for p in frame.path]
    roots = source_roots(frame.source.unique(), root, app_dir)
    return [str(roots[str(s)] / p) for s, p in zip(frame.source, frame.path, strict=True)]


ADAPTED_HOME = Path("~/neuroscan-models")  # where the Your scans page writes adapted models


def adapted_folder(typed: str | None, home: str | Path = ADAPTED_HOME) -> Path | None:
    """The folder the Your scans page writes an adapted model to, absolute: a typed absolute
    path as it is, a name or relative path under `home` (never the app's own folder, which is
    the installed package or the repository); None when nothing is typed (check only)."""
    text = (typed or "").strip()
    if not text:
        return None
    path = Path(text).expanduser()
    return Path(os.path.abspath(path if path.is_absolute() else Path(home).expanduser() / path))


def shown_path(path, base: str | Path | None = None) -> str:
    """A path as the dashboard shows it, never absolute: relative to the app folder (`base`,
    default APP_DIR) when in it or beside it (one '..'), else its last two names."""
    given = Path(str(path))
    if not given.is_absolute():
        return given.as_posix()
    # abspath, not resolve: a data folder beside the app that is a symlink stays "../shared/..."
    rel = Path(os.path.relpath(os.path.abspath(given), os.path.abspath(base or APP_DIR)))
    if rel.parts.count("..") <= 1:
        return rel.as_posix()
    return Path(*given.parts[-2:]).as_posix()


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
    from tumor_model.serving.predict import Predictor

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
