"""Unit tests of tumor_model.dashboard.places: where things are, the artifact reader, previews
and memory release (no Streamlit runtime needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tumor_model import artifacts
from tumor_model.artifacts import ArtifactError
from tumor_model.dashboard import places


def test_artifacts_dir_is_artifacts_locate_without_a_sidebar_choice(tmp_path):
    assert places.artifacts_dir({artifacts.ENV: str(tmp_path)}) == tmp_path
    assert places.artifacts_dir({artifacts.ENV: "  "}) == artifacts.shipped_dir()
    assert places.artifacts_dir({}) == artifacts.locate(None, {}) == artifacts.shipped_dir()
    assert (places.APP_DIR / "app" / "streamlit_app.py").is_file()


def test_data_dir_only_existing_folders(tmp_path):
    assert places.data_dir(str(tmp_path)) == tmp_path.resolve()
    assert places.data_dir(f"  {tmp_path}  ") == tmp_path.resolve()
    assert places.data_dir(str(tmp_path / "absent")) is None
    assert places.data_dir("") is None and places.data_dir(None) is None


def test_session_data_dir_prefers_sidebar_state(tmp_path):
    env = {places.DATA_ENV: str(tmp_path)}
    assert places.session_data_dir({"data_root": None}, env) is None
    assert places.session_data_dir({"data_root": "/x"}, env) == "/x"
    assert places.session_data_dir({}, env) == str(tmp_path.resolve())
    assert places.session_data_dir({}, {places.DATA_ENV: str(tmp_path / "absent")}) is None
    found = places.find_data(None, {}).root  # the dataset beside the app, where there is one
    assert places.session_data_dir({}, {}) == (str(found) if found else None)


def test_missing_artifact_names_file_and_rebuild_command(tmp_path):
    with pytest.raises(ArtifactError) as err:
        places.read_artifact(tmp_path, artifacts.METRICS)
    text = str(err.value)
    assert artifacts.METRICS in text and "is missing" in text and artifacts.REBUILD in text
    assert err.value.name == artifacts.METRICS


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"threshold": 0.5}'])
def test_unreadable_or_incomplete_card_is_an_artifact_error(tmp_path, content):
    (tmp_path / artifacts.CARD).write_text(content)
    with pytest.raises(ArtifactError, match=artifacts.CARD):
        places.read_artifact(tmp_path, artifacts.CARD)


def test_csv_columns_are_checked(tmp_path):
    pd.DataFrame({"epoch": [1], "loss": [0.5]}).to_csv(tmp_path / artifacts.HISTORY, index=False)
    with pytest.raises(ArtifactError, match="lacks the columns"):
        places.read_artifact(tmp_path, artifacts.HISTORY)


def test_read_artifact_round_trip(tmp_path):
    frame = pd.DataFrame(
        {
            "path": ["a.jpg", "b.jpg"],
            "root": "r",
            "source": "r",
            "split": "test",
            "group": [0, 1],
            "label": [0, 1],
            "probability": [0.2, 0.9],
        }
    )
    frame.to_csv(tmp_path / artifacts.PREDICTIONS, index=False)
    (tmp_path / artifacts.METRICS).write_text(json.dumps({"test": {"n": 10}}))
    stamp = places.stamp(tmp_path, artifacts.PREDICTIONS)
    loaded = places.read_artifact(tmp_path, artifacts.PREDICTIONS, stamp)
    pd.testing.assert_frame_equal(loaded, frame, check_dtype=False)
    assert places.read_artifact(tmp_path, artifacts.METRICS)["test"]["n"] == 10
    assert stamp > 0 and places.stamp(tmp_path, "absent.csv") == -1.0


def test_load_preview_reads_and_reports(tmp_path):
    Image.new("L", (400, 200), 128).save(tmp_path / "scan.png")
    pixels, problem = places.load_preview(tmp_path / "scan.png", side=100)
    assert problem is None and pixels.shape == (100, 100, 3) and pixels.dtype == np.uint8
    assert pixels[0, 0].tolist() == [0, 0, 0] and pixels[50, 50].tolist() == [128] * 3
    (tmp_path / "bad.jpg").write_bytes(b"<html>not an image</html>")
    pixels, problem = places.load_preview(tmp_path / "bad.jpg")
    assert pixels is None and "bad.jpg" in problem


def _rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_release_memory_returns_freed_heap_to_the_os():
    """200 MB in 50 kB blocks (heap, not mmap); every 20th kept alive pins the heap, so freeing
    the rest lowers RSS only once release_memory (glibc malloc_trim) hands the holes back."""
    if places._malloc_trim() is None:
        pytest.skip("no glibc malloc_trim in this C library")
    blocks = [bytes(50_000) for _ in range(4000)]
    pinned = blocks[::20]
    del blocks
    before = _rss_mib()
    assert places.release_memory() is True
    assert before - _rss_mib() >= 100, f"RSS {before:.0f} -> {_rss_mib():.0f} MiB"
    assert len(pinned) == 200


# ----------------------------------------------------------------------------- the dataset


@pytest.fixture
def app_dir(tmp_path) -> Path:
    """An app folder of its own, with nothing beside it yet (tmp/app, tmp/shared/data)."""
    (tmp_path / "app").mkdir()
    return tmp_path / "app"


def test_nothing_found_names_every_place_looked_in(app_dir):
    choice = places.find_data(None, {}, app_dir=app_dir)
    beside = app_dir.parent / "shared" / "data" / places.DATA_NAME
    assert choice.root is None and choice.origin == places.FOUND
    assert choice.tried == (beside, app_dir / "data" / places.DATA_NAME)
    note = places.data_note(choice, base=app_dir)
    assert note == (
        "Looked for the dataset in `../shared/data/brain-tumor-dataset`, "
        "`data/brain-tumor-dataset`: none is a folder. Type its folder above or set "
        "$NEUROSCAN_DATA_DIR."
    )
    assert str(app_dir.parent) not in note  # no path of the machine


def test_found_beside_the_app_first_then_inside_it(app_dir):
    inside = app_dir / "data" / places.DATA_NAME
    inside.mkdir(parents=True)
    choice = places.find_data("", {}, app_dir=app_dir)
    assert (choice.root, choice.origin) == (inside, places.FOUND)
    note = places.data_note(choice, base=app_dir)
    assert note.startswith("Reading images from `data/brain-tumor-dataset` (found automatically")
    assert "looked in `../shared/data/brain-tumor-dataset`, `data/brain-tumor-dataset`" in note
    beside = app_dir.parent / "shared" / "data" / places.DATA_NAME
    beside.mkdir(parents=True)
    choice = places.find_data(None, {}, app_dir=app_dir)
    assert (choice.root, choice.tried) == (beside, (beside,))
    assert places.data_note(choice, base=app_dir) == (
        "Reading images from `../shared/data/brain-tumor-dataset` (found automatically)."
    )


def test_typed_wins_then_the_environment_and_neither_is_replaced(app_dir, tmp_path):
    (app_dir / "data" / places.DATA_NAME).mkdir(parents=True)  # would be found
    typed, env_dir = tmp_path / "typed", tmp_path / "env"
    typed.mkdir()
    env_dir.mkdir()
    env = {places.DATA_ENV: str(env_dir)}
    assert places.find_data(str(typed), env, app_dir=app_dir).root == typed
    choice = places.find_data(None, env, app_dir=app_dir)
    assert (choice.root, choice.origin) == (env_dir, places.ENV)
    assert places.data_note(choice, base=app_dir).endswith("($NEUROSCAN_DATA_DIR).")
    for typed_value, env_value in ((str(tmp_path / "absent"), str(env_dir)), (None, "absent")):
        choice = places.find_data(typed_value, {places.DATA_ENV: env_value}, app_dir=app_dir)
        assert choice.root is None and len(choice.tried) == 1  # not replaced by data/...
        assert places.data_note(choice, base=app_dir).endswith("): not a folder.")
    relative = places.find_data("data/brain-tumor-dataset", {}, app_dir=app_dir)  # to the app
    assert relative.root == app_dir / "data" / places.DATA_NAME


def test_the_models_sources_are_looked_for_first(app_dir):
    shared = app_dir.parent / "shared" / "data"
    (shared / "tcga-lgg").mkdir(parents=True)
    (shared / places.DATA_NAME).mkdir()
    card = {"sources": {"tcga-lgg": {"files": 10}, "figshare": {"files": 5}}}
    assert places.data_names(card) == ("tcga-lgg", "figshare", places.DATA_NAME)
    assert places.data_names(None) == (places.DATA_NAME,)
    choice = places.find_data(None, {}, places.data_names(card), app_dir)
    assert choice.root == shared / "tcga-lgg"


def test_each_source_is_read_from_its_own_folder(app_dir):
    shared = app_dir.parent / "shared" / "data"
    for name in ("kaggle", "oasis"):
        (shared / name).mkdir(parents=True)
    split = pd.DataFrame(
        {"path": ["a.jpg", "b.jpg", "c.jpg"], "source": ["kaggle", "oasis", "elsewhere"]}
    )
    root = shared / "kaggle"
    assert places.image_paths(split, root, app_dir) == [
        str(root / "a.jpg"),
        str(shared / "oasis" / "b.jpg"),
        str(root / "c.jpg"),  # found nowhere: under the dataset in use, as before
    ]
    one = pd.DataFrame({"path": ["a.jpg"], "source": ["oasis"]})  # one source: the root holds it
    assert places.image_paths(one, root, app_dir) == [str(root / "a.jpg")]
    assert places.image_paths(one[["path"]], root, app_dir) == [str(root / "a.jpg")]


def test_the_dataset_beside_this_checkout_is_found():
    beside = places.APP_DIR.parent / "shared" / "data" / places.DATA_NAME
    if not beside.is_dir():
        pytest.skip(f"no dataset at {beside}")
    choice = places.find_data(None, {})
    assert (choice.root, choice.origin) == (beside, places.FOUND)
    assert places.data_note(choice).startswith(
        "Reading images from `../shared/data/brain-tumor-dataset`"
    )


def test_an_adapted_model_goes_under_the_user_folder_never_the_app_folder(tmp_path):
    """A name typed on the Your scans page lands under ADAPTED_HOME (absolute), an absolute path
    stays as typed, nothing typed means check only."""
    home = tmp_path / "models"
    assert places.adapted_folder("site-a", home) == home / "site-a"
    assert places.adapted_folder(str(tmp_path / "x"), home) == tmp_path / "x"
    assert places.adapted_folder("  ", home) is None
    default = places.adapted_folder("adapted")
    assert default.is_absolute() and places.APP_DIR not in default.parents
