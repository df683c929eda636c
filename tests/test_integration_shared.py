"""Integration on the real dataset in ../shared (skipped with a reason when absent; CI has it)."""

import tempfile
from pathlib import Path

import numpy as np
import pytest

from tumor_model import metrics
from tumor_model.config import Settings
from tumor_model.evaluation import crossval
from tumor_model.model import build_model
from tumor_model.training import features, split, train

from conftest import SHARED_DATA, SHARED_WEIGHTS

pytestmark = pytest.mark.skipif(
    not (SHARED_DATA.is_dir() and SHARED_WEIGHTS.is_file()),
    reason=f"real dataset or weights not found at {SHARED_DATA} / {SHARED_WEIGHTS}",
)


@pytest.fixture(scope="module")
def table():
    settings = Settings(data_dirs=(str(SHARED_DATA),), weights=str(SHARED_WEIGHTS))
    frame, summary = split.prepare_table(settings)
    return frame, summary


@pytest.mark.slow
def test_dataset_facts(table):
    frame, summary = table
    assert summary["images"] == 4600 and summary["unreadable"] == []
    assert summary["duplicates"]["groups_per_class"] == {"healthy": 707, "tumor": 1610}
    spans = frame.groupby("group").split.nunique()
    assert spans.max() == 1  # no duplicate group crosses splits


@pytest.mark.slow
def test_frozen_features_head_is_leak_free_and_accurate(table):
    """The shipped preprocessing (crop to head, pad, stretch), frozen MobileNetV2 features, the
    Dense(250) head. Grouped 5-fold CV is the stable leak-free figure (0.940 measured); the single
    seed-314 test split is harder for this stage (0.91-0.93 measured), so it gets a lower bar."""
    frame, _ = table
    settings = Settings(
        data_dirs=(str(SHARED_DATA),),
        weights=str(SHARED_WEIGHTS),
        bootstrap=100,
        # in the system's temporary folder, never in the repository; kept between runs
        cache_dir=str(Path(tempfile.gettempdir()) / "neuroscan-tests" / "shared-features"),
    )
    _, feat_model, head = build_model(settings)
    x = features.extract(feat_model, frame, settings, verbose=False)
    cv = crossval.cross_validate(x, frame, settings, folds=5)
    assert cv["metrics"]["accuracy"]["value"] >= 0.93, cv["metrics"]["accuracy"]
    assert cv["metrics"]["roc_auc"]["value"] >= 0.97, cv["metrics"]["roc_auc"]
    y = frame.label.to_numpy()
    is_train, is_val = (frame.split == "train").to_numpy(), (frame.split == "val").to_numpy()
    train.train_head(head, x, y, is_train, is_val, settings, verbose=0)
    p = head.predict(x, verbose=0).ravel()
    temperature, threshold = metrics.decide(
        y[is_val], p[is_val], settings.calibrate, settings.threshold
    )
    test = (frame.split == "test").to_numpy()
    m = metrics.all_metrics(y[test], metrics.apply_temperature(p[test], temperature), threshold)
    assert m["accuracy"] >= 0.90, m
    assert m["roc_auc"] >= 0.97, m
    assert np.isfinite(m["ece"])
