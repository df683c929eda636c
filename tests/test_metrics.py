import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from tumor_model import metrics


@pytest.fixture()
def preds():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, 300), 0, 1)
    return y, p


def test_metrics_match_sklearn(preds):
    y, p = preds
    m = metrics.all_metrics(y, p, 0.5)
    pred = (p >= 0.5).astype(int)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["sensitivity"] == pytest.approx(skm.recall_score(y, pred))
    assert m["specificity"] == pytest.approx(skm.recall_score(1 - y, 1 - pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert m["pr_auc"] == pytest.approx(skm.average_precision_score(y, p))
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, p))


def test_confusion_counts_and_per_sample_thresholds(preds):
    y, p = preds
    c = metrics.confusion(y, p, 0.5)
    tn, fp, fn, tp = skm.confusion_matrix(y, p >= 0.5).ravel()
    assert (c["tn"], c["fp"], c["fn"], c["tp"]) == (tn, fp, fn, tp)
    thr = np.where(np.arange(len(y)) % 2 == 0, 0.2, 0.8)
    c2 = metrics.confusion(y, p, thr)
    assert c2["tp"] == int(np.sum((p >= thr) & (y == 1)))


def test_bootstrap_ci_brackets_value(preds):
    y, p = preds
    out = metrics.bootstrap(y, p, 0.5, n=200)
    for name, v in out.items():
        assert v["ci_low"] <= v["value"] <= v["ci_high"], name
    assert out["accuracy"]["ci_high"] - out["accuracy"]["ci_low"] < 0.2


def test_ece_zero_for_perfect_calibration_and_large_for_bad():
    y = np.array([0, 1] * 50)
    assert metrics.expected_calibration_error(y, np.full(100, 0.5)) == pytest.approx(0.0)
    assert metrics.expected_calibration_error(y, np.where(y == 1, 0.0, 1.0)) == pytest.approx(1.0)


def test_temperature_fixes_overconfidence():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    true_p = np.where(y == 1, 0.7, 0.3)  # honest probability 0.7 / 0.3...
    logit = np.log(true_p / (1 - true_p)) * 4  # ...reported 4x too confident
    p = 1 / (1 + np.exp(-logit))
    flip = rng.uniform(size=2000) < 0.3
    y = np.where(flip, 1 - y, y)
    t = metrics.fit_temperature(y, p)
    assert t == pytest.approx(4, rel=0.15)
    fixed = metrics.apply_temperature(p, t)
    assert metrics.expected_calibration_error(y, fixed) < metrics.expected_calibration_error(y, p)


def test_threshold_youden_separates():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.35, 0.8, 0.9])
    t = metrics.choose_threshold(y, p)
    assert 0.3 < t <= 0.35
    assert metrics.all_metrics(y, p, t)["accuracy"] == 1.0


def test_decide_calibrates_then_picks_the_threshold_on_calibrated_probabilities():
    y = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    p = np.array([0.02, 0.1, 0.3, 0.35, 0.97, 0.99, 0.9, 0.2])  # overconfident, 2 mistakes
    t, thr = metrics.decide(y, p)
    assert t == pytest.approx(metrics.fit_temperature(y, p)) and t > 1
    assert thr == pytest.approx(metrics.choose_threshold(y, metrics.apply_temperature(p, t)))
    assert metrics.decide(y, p, calibrate=False) == pytest.approx(
        (1.0, metrics.choose_threshold(y, p))
    )
    assert metrics.decide(y, p, threshold=0.4) == (pytest.approx(t), 0.4)


def test_group_level_counts_each_group_once():
    frame = pd.DataFrame(
        {"group": [0, 0, 0, 1], "label": [1, 1, 1, 0], "probability": [0.9, 0.7, 0.8, 0.2]}
    )
    g = metrics.group_level(frame)
    assert len(g) == 2
    assert g.set_index("group").loc[0, "probability"] == pytest.approx(0.8)
    assert g.set_index("group").loc[0, "files"] == 3


@pytest.mark.parametrize(
    "bad", [([0, 1], [0.5]), ([0, 2], [0.1, 0.2]), ([0, 1], [0.1, 1.5]), ([], [])]
)
def test_bad_input_raises(bad):
    with pytest.raises(ValueError):
        metrics.all_metrics(*bad, 0.5)
