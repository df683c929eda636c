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


def test_artifacts_dir_from_env_or_next_to_app(tmp_path):
    assert places.artifacts_dir({places.ARTIFACTS_ENV: str(tmp_path)}) == tmp_path
    assert places.artifacts_dir({}) == places.APP_DIR / "artifacts"
    assert (places.APP_DIR / "streamlit_app.py").is_file()


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
    assert places.session_data_dir({}, {}) is None


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


def test_as_typed_shows_folders_beside_the_app_relative(tmp_path, monkeypatch):
    beside = places.APP_DIR.parent / "shared"
    if beside.is_dir():
        assert places.as_typed(str(beside)) == "../shared"
        assert places.data_dir(places.as_typed(str(beside))) == beside  # as named, symlink or not
    assert places.as_typed(str(places.APP_DIR / "artifacts")) == "artifacts"
    # far away (two levels up or more): as given, wherever the checkout lies (an app folder of
    # its own here, since a checkout in /tmp has pytest's folders beside it)
    app, far = tmp_path / "deep" / "app", tmp_path / "far" / "away"
    for folder in (app, far, tmp_path / "deep" / "shared"):
        folder.mkdir(parents=True)
    monkeypatch.setattr(places, "APP_DIR", app)
    assert places.as_typed(str(far)) == str(far)
    assert places.as_typed(str(tmp_path / "deep" / "shared")) == "../shared"
    assert places.as_typed("../typed") == "../typed" and places.as_typed(None) == ""
