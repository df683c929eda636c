"""The training recipe (tumor_model.training.train): class weights, the head phase, `fit`."""

import numpy as np
import pytest

from tumor_model.artifacts import HISTORY_COLUMNS
from tumor_model.config import Settings
from tumor_model.evaluation import crossval
from tumor_model.model import make_head
from tumor_model.training import train

from conftest import tiny_settings


def test_class_weights_follow_the_counts_and_need_both_classes():
    assert train.class_weights(np.array([0, 1, 1, 1]), True) == {0: 2.0, 1: 4 / 6}
    assert train.class_weights(np.array([0, 1]), False) is None
    with pytest.raises(ValueError, match=r"both classes in train, got counts \[0, 3\]"):
        train.class_weights(np.array([1, 1, 1]), True)


def test_the_head_learns_separable_features():
    rng = np.random.default_rng(0)
    y = np.arange(120) % 2
    x = rng.normal(0, 1, (120, 8)).astype("float32")
    x[:, 0] += 4.0 * y
    is_train, is_val = np.arange(120) < 90, np.arange(120) >= 90
    settings = Settings(dense_units=8, head_epochs=20, patience=20, head_lr=0.01)
    head = make_head(settings, 8)
    history = train.train_head(head, x, y, is_train, is_val, settings, verbose=0)
    assert list(history.columns) == HISTORY_COLUMNS and (history.phase == "head").all()
    assert history.val_loss.iloc[-1] < history.val_loss.iloc[0]
    accuracy = np.mean((head.predict(x[is_val], verbose=0).ravel() >= 0.5) == y[is_val])
    assert accuracy > 0.9


@pytest.mark.slow
def test_label_smoothing_softens_the_heads_targets():
    """With smoothing s the loss is minimal at P = 1 - s/2, not at 1: the head trained on
    separable features stops short of certainty."""
    rng = np.random.default_rng(0)
    y = np.arange(120) % 2
    x = rng.normal(0, 1, (120, 8)).astype("float32")
    x[:, 0] += 8.0 * y
    is_train, is_val = np.arange(120) < 90, np.arange(120) >= 90
    tops = {}
    for s in (0.0, 0.2):
        settings = Settings(dense_units=8, head_epochs=60, patience=60, head_lr=0.02,
                            label_smoothing=s)  # fmt: skip
        head = make_head(settings, 8)
        train.train_head(head, x, y, is_train, is_val, settings, verbose=0)
        tops[s] = float(head.predict(x[y == 1], verbose=0).ravel().mean())
    assert tops[0.0] > 0.97 and 0.8 < tops[0.2] < 0.95, tops
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 0.5\), got 0.5"):
        Settings(label_smoothing=0.5)


def test_mixup_and_source_balance_still_learn_and_need_the_sources():
    rng = np.random.default_rng(1)
    y = np.arange(200) % 2
    x = rng.normal(0, 1, (200, 8)).astype("float32")
    x[:, 0] += 4.0 * y
    sources = np.where(np.arange(200) < 160, "kaggle", "figshare")
    is_train, is_val = np.arange(200) % 5 != 0, np.arange(200) % 5 == 0
    settings = Settings(dense_units=8, head_epochs=20, patience=20, head_lr=0.01, mixup=0.4,
                        balance_sources=True)  # fmt: skip
    head = make_head(settings, 8)
    history = train.train_head(head, x, y, is_train, is_val, settings, verbose=0, sources=sources)
    assert history.val_loss.iloc[-1] < history.val_loss.iloc[0]
    assert np.mean((head.predict(x[is_val], verbose=0).ravel() >= 0.5) == y[is_val]) > 0.9
    with pytest.raises(ValueError, match="balance_sources needs each row's source"):
        train.train_head(make_head(settings, 8), x, y, is_train, is_val, settings, verbose=0)
    with pytest.raises(ValueError, match=r"mixup must be >= 0 \(0 = off\), got -1"):
        Settings(mixup=-1)


@pytest.mark.slow
def test_fit_fine_tunes_on_mixed_source_balanced_pixels(tiny_dataset, tmp_path):
    root, _ = tiny_dataset
    settings = tiny_settings(
        root, tmp_path / "out", head_epochs=2, fine_tune_layers=5, fine_tune_epochs=2,
        mixup=0.4, balance_sources=True, threshold=0.5,
    )  # fmt: skip
    table, x = crossval.recipe_features(settings)
    _, _, history, _, _ = train.fit(settings, table, x)
    assert list(history.phase.unique()) == ["head", "fine_tune"]
    assert np.isfinite(history.val_loss).all() and history.loss.gt(0).all()


@pytest.mark.slow
def test_fit_fine_tunes_then_folds_the_temperature_into_the_model(tiny_dataset, tmp_path):
    root, _ = tiny_dataset
    settings = tiny_settings(
        root, tmp_path / "out", head_epochs=2, fine_tune_layers=5, fine_tune_epochs=2,
        resample=0.5, threshold=0.5, calibrate=True,
    )  # fmt: skip
    table, x = crossval.recipe_features(settings)
    model, head, history, temperature, threshold = train.fit(settings, table, x)
    assert list(history.phase.unique()) == ["head", "fine_tune"]
    assert threshold == 0.5 and temperature > 0
    assert history.seconds.gt(0).all() and history.lr.iloc[-1] == pytest.approx(1e-5)
    assert "augment" not in [layer.name for layer in model.layers]  # what is saved: no augmenter
