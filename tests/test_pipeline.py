"""The `train` command end to end (tumor_model.release.pipeline) on the tiny generated dataset."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from tumor_model import artifacts
from tumor_model.artifacts import HISTORY_COLUMNS
from tumor_model.metrics import group_level
from tumor_model.release import pipeline
from tumor_model.serving.predict import Predictor
from tumor_model.training import split

from conftest import REPO, cli, tiny_settings

EXPECTED = list(artifacts.FILES)


def test_artifacts_complete(tiny_artifacts):
    for name in EXPECTED:
        assert (tiny_artifacts / name).exists(), name
    card = json.loads((tiny_artifacts / "model_card.json").read_text())
    assert card["class_names"] == ["healthy", "tumor"]
    assert card["input_size"] == 32 and card["backbone"] == "mobilenetv2"
    assert 0 < card["threshold"] < 1 and card["temperature"] > 0
    assert card["last_conv"] == "out_relu"
    assert len(card["model_sha256"]) == 64
    hist = pd.read_csv(tiny_artifacts / "history.csv")
    assert list(hist.columns) == HISTORY_COLUMNS
    assert (hist.phase == "head").all() and hist.seconds.gt(0).all()
    samples = pd.read_csv(tiny_artifacts / "samples" / "samples.csv")
    assert set(samples.class_name) == {"healthy", "tumor"}


def test_split_csv_has_no_leak_and_skips_corrupt(tiny_artifacts, tiny_dataset):
    _, facts = tiny_dataset
    table = pd.read_csv(tiny_artifacts / "split.csv")
    split.check_no_leak(table)
    assert facts["corrupt"] not in set(table.path)
    assert set(table.split) == {"train", "val", "test"}
    summary = json.loads((tiny_artifacts / "dataset_summary.json").read_text())
    assert [u["path"] for u in summary["unreadable"]] == [facts["corrupt"]]


def test_metrics_agree_with_predictions_and_sklearn(tiny_artifacts):
    metrics = json.loads((tiny_artifacts / "metrics.json").read_text())
    preds = pd.read_csv(tiny_artifacts / "predictions.csv")
    test = preds[preds.split == "test"]
    thr = metrics["test"]["threshold"]
    m = metrics["test"]["metrics"]
    pred = test.probability >= thr
    assert m["accuracy"]["value"] == pytest.approx(skm.accuracy_score(test.label, pred))
    assert m["roc_auc"]["value"] == pytest.approx(skm.roc_auc_score(test.label, test.probability))
    assert metrics["test"]["n"] == len(test)
    grouped = group_level(test)
    assert metrics["test_groups"]["n"] == len(grouped)
    assert metrics["cv"]["folds"] == 3 and len(metrics["cv"]["fold_accuracy"]) == 3
    assert sum(metrics["cv"]["fold_size"]) == len(preds)
    # every generated image is 64 x 64: one "source", so cross-source CV is left out
    assert "cv_source" not in metrics
    assert "accuracy_reencoded" in metrics["shortcut"]


def test_saved_model_reproduces_predictions(tiny_artifacts):
    predictor = Predictor(tiny_artifacts)
    preds = pd.read_csv(tiny_artifacts / "predictions.csv")
    test = preds[preds.split == "test"].head(5)
    out = predictor.predict_files(
        [os.path.join(r, p) for r, p in zip(test.root, test.path, strict=True)]
    )
    np.testing.assert_allclose([o["probability"] for o in out], test.probability, atol=1e-4)


@pytest.mark.slow
def test_threshold_setting_is_used(tiny_dataset, tmp_path):
    root, _ = tiny_dataset
    out = pipeline.train_and_write(
        tiny_settings(root, tmp_path / "a", threshold=0.5, calibrate=False, head_epochs=2),
        shortcut=False,
        samples=False,
    )
    card = json.loads((out / "model_card.json").read_text())
    assert card["threshold"] == 0.5 and card["temperature"] == 1.0


@pytest.mark.slow
def test_fine_tune_phase_and_random_split(tiny_dataset, tmp_path):
    root, _ = tiny_dataset
    out = pipeline.train_and_write(
        tiny_settings(
            root,
            tmp_path / "ft",
            fine_tune_layers=5,
            fine_tune_epochs=2,
            head_epochs=2,
            split="random",
        ),
        shortcut=False,
        samples=False,
    )
    hist = pd.read_csv(out / "history.csv")
    assert list(hist.phase.unique()) == ["head", "fine_tune"]
    table = pd.read_csv(out / "split.csv")
    assert (table.split == "test").sum() == len(table) - int(0.8 * len(table)) - (
        (table.split == "val").sum()
    )


@pytest.mark.slow
def test_killed_run_leaves_previous_artifacts(tiny_dataset, tmp_path):
    """A real training run killed mid-way (SIGKILL) must not touch the finished artifacts."""
    root, _ = tiny_dataset
    settings = tiny_settings(root, tmp_path / "art", head_epochs=2)
    first = pipeline.train_and_write(settings, shortcut=False, samples=False)
    before = {p.name: p.read_bytes() for p in first.iterdir() if p.is_file()}
    again = tiny_settings(root, tmp_path / "art", head_epochs=200, patience=200)
    again.to_json(tmp_path / "again.json")
    code = (
        "from tumor_model import train\nfrom tumor_model.config import Settings\n"
        f"pipeline.train_and_write(Settings.from_json({str(tmp_path / 'again.json')!r}))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in proc.stdout:  # kill it in the middle of head training
        if "Epoch 20/" in line:
            break
    proc.kill()
    proc.wait()
    after = {p.name: p.read_bytes() for p in first.iterdir() if p.is_file()}
    assert after == before
    keras.saving.load_model(first / "model.keras", safe_mode=True)
    assert Predictor(first).threshold > 0


@pytest.mark.slow
def test_fine_tune_by_group_then_report_protocol_command(tiny_dataset, tmp_path, capfd):
    root, _ = tiny_dataset
    settings = tiny_settings(
        root,
        tmp_path / "grp",
        fine_tune_layers=5,
        fine_tune_epochs=2,
        head_epochs=2,
        sample_groups=True,
        class_weights=True,
    )
    out = pipeline.train_and_write(settings, shortcut=False, samples=False)
    hist = pd.read_csv(out / "history.csv")
    assert (hist.phase == "fine_tune").sum() == 2
    assert "one file of each of" in capfd.readouterr().out
    assert json.loads((out / "settings.json").read_text())["sample_groups"] is True
    before = json.loads((out / "metrics.json").read_text())
    assert "random_split" not in before
    proc = cli("report-protocol", "--artifacts", str(out), "--save")
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert printed["split"] == "random" and printed["saved"] is True
    assert 0 <= printed["accuracy"] <= 1
    after = json.loads((out / "metrics.json").read_text())
    saved = after["random_split"]["metrics"]["accuracy"]["value"]
    assert abs(saved - printed["accuracy"]) < 1e-4  # printed rounded to 4 places
    assert after["test"] == before["test"]  # the shipped model's figures are untouched
