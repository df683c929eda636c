"""Integration on the real dataset in ../shared (skipped with a reason when absent; CI has it)."""

import json

import numpy as np
import pytest

from tumor_model import evaluate, features, train
from tumor_model.config import Settings
from tumor_model.model import build_model

from conftest import REPO, SHARED_DATA, SHARED_WEIGHTS

pytestmark = pytest.mark.skipif(
    not (SHARED_DATA.is_dir() and SHARED_WEIGHTS.is_file()),
    reason=f"real dataset or weights not found at {SHARED_DATA} / {SHARED_WEIGHTS}",
)


@pytest.fixture(scope="module")
def table():
    settings = Settings(data_dirs=(str(SHARED_DATA),), weights=str(SHARED_WEIGHTS))
    frame, summary = train.prepare_table(settings)
    return frame, summary


def test_dataset_facts(table):
    frame, summary = table
    assert summary["images"] == 4600 and summary["unreadable"] == []
    assert summary["duplicates"]["groups_per_class"] == {"healthy": 707, "tumor": 1610}
    spans = frame.groupby("group").split.nunique()
    assert spans.max() == 1  # no duplicate group crosses splits


@pytest.mark.parametrize("geometry", ["squash"])
def test_frozen_features_head_is_leak_free_and_accurate(table, geometry, tmp_path):
    frame, _ = table
    settings = Settings(
        data_dirs=(str(SHARED_DATA),),
        weights=str(SHARED_WEIGHTS),
        geometry=geometry,
        stretch=False,
        cache_dir=str(REPO / ".cache/features"),
    )
    _, feat_model, head = build_model(settings)
    x = features.extract(feat_model, frame, settings, verbose=False)
    y = frame.label.to_numpy()
    is_train, is_val = (frame.split == "train").to_numpy(), (frame.split == "val").to_numpy()
    train.train_head(head, x, y, is_train, is_val, settings, verbose=0)
    p = head.predict(x, verbose=0).ravel()
    temperature, threshold = train.decide(y[is_val], p[is_val], settings)
    test = (frame.split == "test").to_numpy()
    q = evaluate.apply_temperature(p[test], temperature)
    m = evaluate.all_metrics(y[test], q, threshold)
    (tmp_path / "m.json").write_text(json.dumps(m))
    assert m["accuracy"] >= 0.93, m
    assert m["roc_auc"] >= 0.97, m
    assert np.isfinite(m["ece"])
