"""adapt: check a model on a site's labelled scans, refit, retrain the head, write a folder that
predict / evaluate / the dashboard use like artifacts/; bad local folders write nothing."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tumor_model import artifacts
from tumor_model.evaluation import evaluate_folder
from tumor_model.serving.predict import Predictor
from tumor_model.site import adapt
from tumor_model.site.anchor import anchor_rows, load_anchor

from conftest import in_process, make_site


def test_anchor_rows_one_per_group_and_balanced():
    import pandas as pd

    table = pd.DataFrame(
        {
            "split": ["train"] * 8 + ["test"] * 2,
            "group": [0, 0, 1, 2, 3, 4, 5, 6, 7, 8],
            "label": [1, 1, 1, 1, 0, 0, 0, 0, 1, 0],
            "source": ["a"] * 10,
        }
    )
    rows = anchor_rows(table, n=100)
    assert list(rows) == [0, 2, 3, 4, 5, 6, 7]  # one file of group 0, no test rows
    few = anchor_rows(table, n=4)
    assert len(few) == 4 and set(table.label[few]) == {0, 1}


def test_recalibration_cv_never_uses_a_scans_own_label():
    """Out-of-fold: flipping the labels of one fold leaves that fold's figures unchanged."""
    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 30)
    p = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, len(y)), 0.01, 0.99)
    groups = np.arange(len(y))
    folds = adapt._folds(y, groups, adapt.FOLDS, 0)
    probs, thr = adapt.recalibrate_cv(y, p, groups, folds=folds)
    fit_idx, test_idx = folds[0]
    flipped = y.copy()
    flipped[test_idx] = 1 - flipped[test_idx]
    probs2, thr2 = adapt.recalibrate_cv(flipped, p, groups, folds=folds)
    assert np.allclose(probs[test_idx], probs2[test_idx])
    assert np.allclose(thr[test_idx], thr2[test_idx])
    assert not np.allclose(thr[fit_idx], thr2[fit_idx])  # the others did see the flip


def test_retrained_head_learns_the_local_scans(tiny_artifacts):
    """On features where the anchor set says one thing and the site another, the retrained
    head follows the site where the anchor alone would not."""
    model = adapt.Model.load(tiny_artifacts)
    settings = model.settings
    rng = np.random.default_rng(1)
    dim = load_anchor(tiny_artifacts)[0].shape[1]
    anchor_x = rng.normal(0, 1, (200, dim)).astype(np.float32)
    anchor_y = (anchor_x[:, 0] > 0).astype(int)  # the training sources: feature 0 tells
    x = rng.normal(0, 1, (40, dim)).astype(np.float32)
    y = (x[:, 1] > 0).astype(int)  # the site: feature 1 tells
    trainer = adapt.HeadTrainer(settings, model.head_weights(), dim)
    predict, weights = trainer(anchor_x, anchor_y, x, y)
    acc = np.mean((predict(x) >= 0.5) == y)
    assert acc >= 0.85
    assert [w.shape for w in weights[0]] == [w.shape for w in model.head_weights()[0]]


def test_every_retrain_starts_from_the_models_head(tiny_artifacts):
    """One compiled head serves every retrain: a retrain gives the same head whatever was
    retrained before it, and a predictor it returned keeps its weights when the head is
    retrained again."""
    model = adapt.Model.load(tiny_artifacts)
    anchor_x, anchor_y = load_anchor(tiny_artifacts)
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (30, anchor_x.shape[1])).astype(np.float32)
    y = np.tile([0, 1], 15)
    trainer = adapt.HeadTrainer(model.settings, model.head_weights(), anchor_x.shape[1])
    first, weights = trainer(anchor_x, anchor_y, x, y, seed=3)
    seen = first(x)
    trainer(anchor_x, anchor_y, x[::-1] * 3, 1 - y, seed=4)  # something else in between
    again, weights_again = trainer(anchor_x, anchor_y, x, y, seed=3)
    assert np.allclose(again(x), seen, atol=1e-6)
    assert np.array_equal(first(x), seen)
    for layer, layer_again in zip(weights, weights_again, strict=True):
        assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(layer, layer_again, strict=True))
    assert not np.allclose(seen, trainer(anchor_x, anchor_y, x, y, seed=5)[0](x))  # order matters


@pytest.mark.slow
def test_adapt_writes_a_complete_folder_that_everything_reads(tiny_artifacts, tmp_path):
    site = make_site(tmp_path / "site")
    out = tmp_path / "adapted"
    model = shutil.copytree(tiny_artifacts, tmp_path / "model")
    external = {"pooled": {}, "sources": {}}  # figures of this model on other sources
    artifacts.update_metrics(model, {artifacts.EXTERNAL: external})
    record = adapt.adapt(model, [site], out, n_boot=20)
    assert record["local_scans"] == 24 and record["local_classes"] == {"healthy": 12, "tumor": 12}
    for step in ("before", "recalibrated", "retrained"):
        block = record[step]
        assert block["n"] == 24 and "roc" in block and "calibration" in block
        assert 0 <= block["metrics"]["balanced_accuracy"]["value"] <= 1
    assert sorted(p.name for p in out.iterdir()) == sorted(
        p.name for p in tiny_artifacts.iterdir() if not p.name.startswith(".")
    )
    card = artifacts.read_card(out)
    assert card["adapted"]["local_scans"] == 24
    assert card["adapted"]["local_fingerprint"] == record["local_fingerprint"]
    assert (
        card["adapted"]["from_model_sha256"] == artifacts.read_card(tiny_artifacts)["model_sha256"]
    )
    assert set(card["adapted"]["figures"]) == {"before", "recalibrated", "retrained"}
    assert artifacts.read_json(out, artifacts.METRICS)[artifacts.ADAPTED]["local_scans"] == 24
    # the unadapted model's figures on other sources are not the adapted one's
    assert artifacts.EXTERNAL not in artifacts.read_json(out, artifacts.METRICS)
    predictor = Predictor(out)  # checks the new model's sha256 against the card
    assert predictor.threshold == pytest.approx(card["threshold"])
    result = predictor.predict_files([site / "yes" / "0.png"])[0]
    assert 0.0 <= result["probability"] <= 1.0
    again = evaluate_folder.run(out, [site], use_all=True, n_boot=20)
    assert again["summary"]["images"] == 24


@pytest.mark.slow
def test_adapt_cli_prints_before_and_after(tiny_artifacts, tmp_path, capsys):
    site = make_site(tmp_path / "site", seed=8)
    out = tmp_path / "adapted"
    where = ("--artifacts", str(tiny_artifacts), "--data-dir", str(site), "--out", str(out))
    done = in_process(capsys, "adapt", *where)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["local_scans"] == 24 and printed["out"] == str(out)
    assert set(printed["retrained"]) >= {"how", "balanced_accuracy", "sensitivity", "roc_auc"}
    assert (out / artifacts.MODEL).is_file()


@pytest.mark.slow
@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda r: make_site(r, healthy=0), "one class only"),
        (lambda r: make_site(r, tumours=4, healthy=4), "at least 10"),
        (
            lambda r: (make_site(r), (r / "yes" / "bad.png").write_bytes(b"not an image")),
            "could not",
        ),
        (lambda r: (r / "scans").mkdir(parents=True), "no class folders"),
    ],
    ids=["one-class", "too-few", "unreadable", "no-layout"],
)
def test_bad_local_folders_write_nothing(tiny_artifacts, tmp_path, make, problem, capsys):
    site = tmp_path / "site"
    make(site)
    out = tmp_path / "adapted"
    where = ("--artifacts", str(tiny_artifacts), "--data-dir", str(site), "--out", str(out))
    done = in_process(capsys, "adapt", *where)
    assert done.returncode != 0
    assert problem in done.stderr
    assert not out.exists() and not list(tmp_path.glob(".adapted*"))


def test_adapt_refuses_an_existing_folder(tiny_artifacts, tmp_path):
    site = make_site(tmp_path / "site")
    with pytest.raises(ValueError, match="exists"):
        adapt.adapt(tiny_artifacts, [site], tiny_artifacts)


@pytest.mark.slow
def test_missing_anchor_names_the_file_and_anchor_rebuilds_it(tiny_artifacts, tmp_path, capsys):
    import shutil

    folder = tmp_path / "old"
    shutil.copytree(tiny_artifacts, folder)
    (folder / artifacts.ANCHOR).unlink()
    with pytest.raises(artifacts.ArtifactError, match="anchor.npz"):
        load_anchor(folder)
    done = in_process(capsys, "anchor", "--artifacts", str(folder))
    assert done.returncode == 0, done.stderr
    x, y = load_anchor(folder)
    assert len(x) == json.loads(done.stdout)["rows"] and set(y) == {0, 1}
