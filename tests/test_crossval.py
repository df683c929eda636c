"""Duplicate-grouped and cross-source CV (tumor_model.evaluation.crossval) and the `cv` command."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tumor_model.config import Settings
from tumor_model.evaluation import crossval
from tumor_model.training import split

from conftest import in_process, tiny_settings


def _sized_table(n=160, sizes=40, seed=0):
    """Labels, duplicate groups (a few near-copy pairs) and image sizes for a CV on synthetic
    features."""
    rng = np.random.default_rng(seed)
    label = np.arange(n) % 2
    group = np.arange(n)
    group[1:20:2] = group[0:19:2]  # ten pairs of copies, each may join two sizes
    dims = rng.integers(0, sizes, n)
    table = pd.DataFrame({"label": label, "group": group, "width": 100 + dims, "height": 90})
    x = rng.normal(0, 1, (n, 8)).astype("float32")
    x[:, 0] += 6.0 * label  # a strong, source-independent signal
    return table, x


def test_cross_source_folds_keep_each_image_size_whole():
    table, _ = _sized_table()
    groups = split.fold_groups(table, "source")
    dims = table.width.astype(str) + "x" + table.height.astype(str)
    seen = {}
    for k, (_, test) in enumerate(split.grouped_folds(table.label, groups, 3, 314)):
        for d in set(dims.iloc[test]):
            assert seen.setdefault(d, k) == k, f"size {d} in folds {seen[d]} and {k}"
        for g in set(table.group.iloc[test]):
            assert seen.setdefault(("group", g), k) == k
    assert len(set(groups)) < table.group.nunique()  # sizes really merged groups
    with pytest.raises(ValueError, match="'sizes'"):
        split.fold_groups(table, "sizes")


@pytest.mark.slow
def test_cross_validate_by_source(tmp_path):
    table, x = _sized_table()
    settings = tiny_settings(tmp_path, tmp_path / "out", head_epochs=30, patience=30, head_lr=0.01)
    result = crossval.cross_validate(x, table, settings, 3, "source")
    assert result["groups"].startswith("source:")
    assert sum(result["fold_size"]) == len(table) and result["folds"] == 3
    assert result["metrics"]["accuracy"]["value"] > 0.9  # the signal does not depend on size
    few = table.assign(width=100)  # one size: every row merges into a handful of groups
    with pytest.raises(ValueError, match="needs at least 12 groups"):
        crossval.cross_validate(x, few, settings, 3, "source")
    assert set(crossval.cv_metrics(x, few, settings, 3)) == {"cv"}


@pytest.mark.slow
def test_cv_command_recomputes_and_saves(tiny_artifacts, tmp_path, capsys):
    import shutil

    art = tmp_path / "art"
    shutil.copytree(tiny_artifacts, art)
    before = json.loads((art / "metrics.json").read_text())
    del before["cv"]
    before["cv_source"] = {"stale": True}
    (art / "metrics.json").write_text(json.dumps(before))
    proc = in_process(capsys, "cv", "--artifacts", str(art), "--folds", "3")
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert printed["cv"]["folds"] == 3 and 0 <= printed["cv"]["accuracy"] <= 1
    assert printed["saved"] is False
    assert "cv" not in json.loads((art / "metrics.json").read_text())  # not saved
    proc = in_process(capsys, "cv", "--artifacts", str(art), "--folds", "3", "--save")
    assert proc.returncode == 0, proc.stderr
    after = json.loads((art / "metrics.json").read_text())
    assert after["cv"]["folds"] == 3 and after["test"] == before["test"]
    assert "cv_source" not in after  # one image size here: skipped, and the old one dropped
    bad = in_process(capsys, "cv", "--artifacts", str(art), "--folds", "1")
    assert bad.returncode == 2 and "folds must be >= 2, got 1" in bad.stderr


@pytest.mark.slow
def test_cv_reruns_with_this_machines_feature_cache(tiny_artifacts, tmp_path, capsys):
    """settings.json records the training machine's cache folder (the shipped model's is a /tmp
    path): reused where it exists, else the default; `cv --cache-dir` caches elsewhere and gets
    the same CV as the recorded cache."""
    here = tmp_path / "cache_here"
    recorded = crossval.recorded_settings(tiny_artifacts)
    written = json.loads((tiny_artifacts / "settings.json").read_text())["cache_dir"]
    assert recorded.cache_dir == written and Path(written).is_dir()  # the training's, reused
    moved = tmp_path / "moved"  # a folder trained elsewhere: its cache path is not here
    moved.mkdir()
    (moved / "settings.json").write_text(json.dumps({**recorded.to_dict(), "cache_dir": "/no"}))
    assert crossval.recorded_settings(moved).cache_dir == Settings.cache_dir
    assert recorded.cache_dir != str(here)
    assert crossval.recorded_settings(tiny_artifacts, str(here)).cache_dir == str(here)
    here_args = ("--folds", "3", "--by", "duplicate", "--cache-dir", str(here))
    proc = in_process(capsys, "cv", "--artifacts", str(tiny_artifacts), *here_args)
    assert proc.returncode == 0, proc.stderr
    assert [p.suffix for p in here.iterdir()] == [".npz"]  # features extracted into it
    saved = json.loads((tiny_artifacts / "metrics.json").read_text())["cv"]["metrics"]
    assert json.loads(proc.stdout)["cv"]["accuracy"] == round(saved["accuracy"]["value"], 4)
    with pytest.raises(ValueError, match="cache_dir must be a folder path, got ''"):
        crossval.recorded_settings(tiny_artifacts, "")


def test_fine_tuned_cv_refuses_a_frozen_recipe(tiny_artifacts):
    with pytest.raises(ValueError, match="recipe without fine-tuning"):
        crossval.cv_artifacts(tiny_artifacts, folds=3, full=True)
    with pytest.raises(ValueError, match=r"got \['size'\]"):
        crossval.cv_artifacts(tiny_artifacts, folds=3, by=("size",))


def _three_sources(seed=0):
    """Source a (both classes), b (tumours only), c (healthy only), on synthetic features where
    feature 0 carries the class and feature 1 the source b/c look (the one-class shortcut)."""
    table, x = _sized_table(n=240, seed=seed)
    source = np.array(["a"] * 120 + ["b"] * 60 + ["c"] * 60)
    table["label"] = np.r_[np.arange(120) % 2, np.ones(60, int), np.zeros(60, int)]
    table["group"] = np.arange(240)
    table["source"] = source
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (240, 8)).astype("float32")
    x[:, 0] += 6.0 * table.label.to_numpy()
    x[:, 1] += np.where(source == "b", 5.0, np.where(source == "c", -5.0, 0.0))
    return table, x


@pytest.mark.slow
def test_leave_one_source_out_holds_each_source_out(tmp_path):
    table, x = _three_sources()
    settings = tiny_settings(
        tmp_path, tmp_path / "out", bootstrap=20, head_epochs=30, patience=30, head_lr=0.01
    )
    result = crossval.leave_source_out(x, table, settings)
    blocks = result["sources"]
    assert list(blocks) == ["a", "b", "c"]
    assert blocks["a"]["trained_on"] == ["b", "c"] and blocks["a"]["classes"] == [0, 1]
    assert blocks["b"]["files"] == 60 and blocks["b"]["classes"] == [1]
    # a one-class source is also scored by a head that saw only the two-class sources
    assert blocks["b"]["twin_absent"]["trained_on"] == ["a"]
    assert blocks["c"]["twin_absent"]["trained_on"] == ["a"]
    assert "twin_absent" not in blocks["a"]
    b = blocks["b"]["metrics"]
    assert b["sensitivity"]["value"] == b["accuracy"]["value"]  # tumours only
    assert np.isnan(b["specificity"]["value"]) and np.isnan(b["balanced_accuracy"]["value"])
    assert result["pooled"]["n"] == 240
    assert blocks["b"]["twin_absent"]["n"] == 60 and blocks["b"]["twin_absent"]["n_tumor"] == 60
    # held out on request only, without the twin-absent training: the same head for b
    one = crossval.leave_source_out(x, table, settings, hold_out=("b",), twin=False)
    assert list(one["sources"]) == ["b"] and "twin_absent" not in one["sources"]["b"]
    assert one["sources"]["b"]["trained_on"] == ["a", "c"] and one["pooled"]["n"] == 60
    assert one["sources"]["b"]["metrics"]["sensitivity"] == b["sensitivity"]
    assert "only ['b']" in one["groups"]
    with pytest.raises(ValueError, match=r"no source of the data: \['d'\] \(its sources: "):
        crossval.leave_source_out(x, table, settings, hold_out=("b", "d"))


@pytest.mark.slow
def test_cv_rows_flatten_every_block(tmp_path):
    from tumor_model.metrics import cv_rows

    table, x = _three_sources(seed=1)
    settings = tiny_settings(tmp_path, tmp_path / "out", bootstrap=20)
    result = {"loso": crossval.leave_source_out(x, table, settings)}
    rows = cv_rows(result)
    assert [r["block"] for r in rows] == [
        "loso: pooled",
        "loso",
        "loso",
        "loso: twin absent",
        "loso",
        "loso: twin absent",
    ]
    assert [r["held_out"] for r in rows[1:]] == ["a", "b", "b", "c", "c"]
    assert rows[2]["specificity"] is None and rows[2]["sensitivity"] is not None
    assert rows[0]["files"] == 240


def _head_settings(tmp_path, **kw):
    """A frozen-stage head that learns the synthetic features' class in a few epochs."""
    values = dict(bootstrap=20, head_epochs=30, patience=30, head_lr=0.01) | kw
    return tiny_settings(tmp_path, tmp_path / "out", **values)


def _institutions(seed=0):
    """_three_sources, with source a's files from institutions X, Y and Z (40 each, both classes,
    sequences t1 / flair alternating); b and c carry none."""
    table, x = _three_sources(seed)
    table["institution"] = [("X", "Y", "Z")[i // 40] for i in range(120)] + [None] * 120
    table["sequence"] = [("t1", "flair")[(i // 2) % 2] for i in range(120)] + [None] * 120
    return table, x


@pytest.mark.slow
def test_leave_one_institution_out_trains_on_everything_else(tmp_path):
    from tumor_model.metrics import cv_rows

    table, x = _institutions()
    settings = _head_settings(tmp_path)
    result = crossval.leave_institution_out(x, table, settings)
    blocks = result["sources"]
    assert list(blocks) == ["X", "Y", "Z"]
    for name, block in blocks.items():
        assert block["files"] == 40 and block["classes"] == [0, 1] and block["source"] == "a"
        assert block["trained_on"] == ["a: the other institutions", "b", "c"], name
        assert set(block["sequences"]) == {"t1", "flair"}
        assert sum(b["n"] for b in block["sequences"].values()) == 40
        assert "institutions" not in block  # the block is one institution
    assert result["pooled"]["n"] == 120  # files without an institution are never held out
    assert result["pooled"]["metrics"]["balanced_accuracy"]["value"] > 0.9  # feature 0: the class
    rows = cv_rows({"lioo": result})
    assert [r["held_out"] for r in rows if ": by " not in r["block"]] == ["every source", *"XYZ"]
    by_sequence = [r["held_out"] for r in rows if r["block"] == "lioo: by sequence"]
    assert by_sequence == [f"{i}, sequence {q}" for i in "XYZ" for q in ("flair", "t1")]
    none = table.drop(columns=["institution"])
    with pytest.raises(ValueError, match="at least two institutions"):
        crossval.leave_institution_out(x, none, settings)


@pytest.mark.slow
def test_leave_one_source_out_gives_a_held_out_source_its_sequences(tmp_path):
    table, x = _institutions(seed=2)
    settings = _head_settings(tmp_path, head_epochs=15, patience=5)
    result = crossval.leave_source_out(x, table, settings, hold_out=("a",), twin=False)
    block = result["sources"]["a"]
    assert set(block["sequences"]) == {"t1", "flair"} and set(block["institutions"]) == set("XYZ")
    assert sum(b["n"] for b in block["institutions"].values()) == block["n"] == 120
