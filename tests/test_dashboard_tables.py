"""Unit tests of the dashboard's tables: metric formatting and protocols (`tables`), the model
(`card`), the threshold metrics computed by tumor_model.metrics (`evaluation`), the training
history (`history`) and the Predict page's batch table (`predict`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tumor_model import artifacts, metrics
from tumor_model.dashboard import card as model_card
from tumor_model.dashboard import evaluation, places, predict, tables
from tumor_model.dashboard import history as runs

from conftest import REPO


@pytest.fixture
def test_frame() -> pd.DataFrame:
    """Test-split predictions with duplicate groups (some groups hold several files)."""
    rng = np.random.default_rng(7)
    n = 120
    label = rng.integers(0, 2, n)
    group = np.arange(n)
    group[100:] = group[:20]  # 20 groups with two files each
    label[100:] = label[:20]
    p = np.clip(0.35 * label + rng.uniform(0, 0.65, n), 0, 1)
    return pd.DataFrame(
        {
            "path": [f"f{i}.jpg" for i in range(n)],
            "root": "r",
            "split": "test",
            "group": group,
            "label": label,
            "probability": p,
        }
    )


@pytest.fixture
def history() -> pd.DataFrame:
    rows = []
    for phase, losses in (("head", [0.7, 0.5, 0.4, 0.45]), ("fine_tune", [0.42, 0.35, 0.38])):
        for epoch, v in enumerate(losses, start=1):
            rows.append(
                {
                    "epoch": epoch,
                    "phase": phase,
                    "loss": v,
                    "accuracy": 1 - v,
                    "auc": 1 - v / 2,
                    "val_loss": v + 0.01,
                    "val_accuracy": 0.9 - v / 4,
                    "val_auc": 0.95 - v / 5,
                    "lr": 1e-3,
                    "seconds": 2.0,
                }
            )
    return pd.DataFrame(rows, columns=artifacts.HISTORY_COLUMNS)


def block(**values) -> dict:
    """A metrics.json evaluation block holding `values` with made-up intervals."""
    return {
        "n": 10,
        "metrics": {
            k: {"value": v, "ci_low": v - 0.1, "ci_high": v + 0.05} for k, v in values.items()
        },
    }


# ----------------------------------------------------------------------------- formatting


def test_metric_items_flat_or_nested():
    assert set(tables.metric_items(block(accuracy=0.9, roc_auc=0.95))) == {"accuracy", "roc_auc"}
    flat = {"accuracy": {"value": 0.8}, "threshold": 0.5, "confusion": {"tp": 1}}
    assert set(tables.metric_items(flat)) == {"accuracy"}
    assert tables.metric_items(None) == {} and tables.metric_items([1]) == {}


def test_formatting():
    m = {"value": 0.931, "ci_low": 0.902, "ci_high": 0.954}
    assert tables.fmt_ci("accuracy", m) == "93.1% (95% CI 90.2%–95.4%)"
    assert tables.fmt_ci("roc_auc", m) == "0.931 (95% CI 0.902–0.954)"
    assert tables.fmt_ci("accuracy", {"value": 0.5}) == "50.0%"
    assert tables.fmt_cell("accuracy", m) == "93.1% (90.2–95.4)"
    assert tables.fmt_value("f1", float("nan")) == "n/a" and tables.fmt_value("f1", None) == "n/a"
    frame = tables.metrics_frame({"accuracy": m, "roc_auc": {"value": 0.9}})
    assert list(frame.metric) == ["Accuracy", "ROC AUC"] and frame.reported[1] == "0.900"


def test_every_reported_metric_has_a_label():
    assert set(metrics.POINT_METRICS + metrics.SCORE_METRICS) == set(tables.LABELS)


# ----------------------------------------------------------------------------- protocols


def test_results_table_skips_missing_and_retired_blocks():
    metrics = {
        "test": block(accuracy=0.9, roc_auc=0.95),
        "cv": {**block(accuracy=0.88), "folds": 10},
        "cv_source_fine_tuned": {**block(accuracy=0.8), "folds": 3},
        "cv_fine_tuned_gpu": {**block(accuracy=0.96), "folds": 10},  # not in the contract
        "shortcut": {"accuracy_original": 0.9},
    }
    table = tables.results_table(metrics)
    assert list(table.protocol) == ["Group split", "Grouped CV", "Cross-source CV, fine-tuned"]
    assert list(table.columns)[-1] == "ECE" and (table.ECE == "n/a").all()
    assert list(table.folds) == [tables.NOT_DEFINED, "10", "3"]
    assert table.loc[0, "Accuracy"] == "90.0% (80.0–95.0)"
    assert table.loc[0, "ROC AUC"] == "0.950 (0.850–1.000)"
    assert table.loc[1, "ROC AUC"] == "n/a"
    assert tables.results_table({}).empty
    with_ece = tables.results_table({"test": block(accuracy=0.9, ece=0.04)})
    assert with_ece.loc[0, "ECE"] == "0.040 (-0.060–0.090)"
    absent = tables.absent_protocols(metrics)
    assert "Per group" in absent and "Grouped CV" not in absent
    assert not any("GPU" in name for name in absent)


def test_headline_block_is_the_test_split_and_the_cross_source_cv():
    metrics = {
        "test": {**block(accuracy=0.95, roc_auc=0.98, ece=0.04), "n": 464},
        "cv_source": {**block(accuracy=0.86), "n": 4600, "folds": 10},
    }
    head = model_card.headline_block(None, metrics)
    assert [h["label"] for h in head.values()] == [
        "Test accuracy",
        "Test ROC AUC",
        "Test ECE (calibration)",
        "Cross-source CV accuracy",
    ]
    assert head["accuracy"]["value"] == "95.0%" and head["accuracy"]["ci"] == "95% CI 85.0%–100.0%"
    assert head["ece"]["value"] == "0.040"
    text = model_card.headline_text(metrics)
    assert "464 test files" in text and "4600 files, 10 folds" in text
    assert list(model_card.headline_block(None, {"test": block(accuracy=0.9)})) == ["accuracy"]


def test_test_split_is_named_after_the_models_split():
    test = {"test": block(accuracy=0.8), "test_groups": block(accuracy=0.8)}
    group = tables.results_table(test)
    source = tables.results_table({**test, "protocol": {"split": "source", "seed": 314}})
    assert list(group.protocol) == ["Group split", "Per group"]
    assert list(source.protocol) == ["Source split", "Per group"]
    caption = tables.protocol_caption({**test, "protocol": {"split": "random"}})
    assert caption.startswith("Cells: value (95% CI). Random split = Random split, test files")
    assert "per group = Random split, test groups" in caption
    assert "Group split = Duplicate-group split" in tables.protocol_caption({})
    site = tables.results_table({**test, "protocol": {"split": "site"}})
    assert site.protocol[0] == "site split"


def test_fold_table_lists_every_fold_of_every_cv():
    metrics = {
        "test": block(accuracy=0.9),
        "cv": {**block(accuracy=0.9), "fold_accuracy": [0.8, 1.0], "fold_size": [5, 7]},
        "cv_source_fine_tuned": {**block(accuracy=0.7), "fold_accuracy": [0.6, 0.7, 0.8]},
        "cv_source": {**block(accuracy=0.8), "fold_accuracy": []},
        "cv_fine_tuned_gpu": {**block(accuracy=0.9), "fold_accuracy": [0.9]},
    }
    folds = tables.fold_table(metrics)
    assert list(folds.protocol) == ["Grouped CV"] * 2 + ["Cross-source CV, fine-tuned"] * 3
    assert list(folds.fold) == [1, 2, 1, 2, 3] and list(folds.files[:2]) == [5, 7]
    assert folds.files[2:].isna().all()  # fold sizes not stored: unknown, not invented
    assert tables.fold_table({"test": block(accuracy=0.9)}).empty
    assert tables.fold_table(None).empty


# ----------------------------------------------------------------------------- the model


def test_headline_prefers_model_card():
    card = {"test_metrics": {"accuracy": {"value": 0.91, "ci_low": 0.88, "ci_high": 0.93}}}
    metrics = {"test": block(accuracy=0.5)}
    assert model_card.headline(card, metrics)["value"] == 0.91
    assert model_card.headline({}, metrics)["value"] == 0.5
    assert model_card.headline(None, None) is None


def test_trained_when():
    when = model_card.trained_when({"trained_at": "2025-11-28T10:40:00+00:00"})
    assert when == "2025-11-28 10:40 UTC"
    assert model_card.trained_when({"trained_at": "yesterday"}) == "yesterday"
    assert model_card.trained_when({}) == "unknown"


def test_model_facts_and_counts():
    card = {
        "backbone": "mobilenetv2",
        "input_size": 224,
        "geometry": "crop-pad",
        "settings": {"dense_units": 250, "dropout": 0.3, "data_dirs": ["d"]},
        "data_counts": {"0": {"test": 5, "train": 40}, "1": {"test": 6, "train": 50}},
    }
    facts = dict(model_card.model_facts(card).values.tolist())
    assert facts["Backbone"] == "mobilenetv2" and "224 px" in facts["Input"]
    assert "Fine-tuning augmentation" not in facts  # frozen model: nothing to say
    counts = model_card.data_counts(card)
    assert counts["count"].sum() == 101 and set(counts["class"]) == {"no tumour", "tumour"}


def test_model_facts_minutes_and_no_machine_paths(tmp_path):
    card = {
        "train_seconds": 1257.2,
        "weights_origin": "/home/someone/weights/mobilenet_v2_no_top.h5",
        "settings": {"data_dirs": [str(tables_app_dir().parent / "shared" / "data" / "kaggle")]},
    }
    facts = dict(model_card.model_facts(card).values.tolist())
    assert facts["Training time"] == "20 min 57 s" and "Training time (s)" not in facts
    assert facts["Weights"] == "mobilenet_v2_no_top.h5"
    assert facts["Training data"] == "../shared/data/kaggle"
    assert model_card.minutes(59.6) == "1 min 0 s" and model_card.minutes(None) is None


def tables_app_dir():
    from tumor_model.dashboard.places import APP_DIR

    return APP_DIR


def test_shown_path_is_never_absolute(tmp_path):
    app = tables_app_dir()
    assert places.shown_path(app / "artifacts") == "artifacts"
    assert places.shown_path(app.parent / "shared" / "data") == "../shared/data"
    assert places.shown_path("../relative/as/typed") == "../relative/as/typed"
    far = Path("/", *[f"d{i}" for i in range(6)], "set", "images")
    assert places.shown_path(far, base=app) == "set/images"


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {"fine_tune_layers": 60, "augment": True, "resample": 0.5},
            "resolution (shrunk by up to 50%)",
        ),
        ({"fine_tune_layers": 60, "augment": True, "resample": 0.0}, "noise"),
        ({"fine_tune_layers": 60, "augment": False, "resample": 0.5}, "none"),
    ],
)
def test_model_facts_name_the_fine_tuning_augmentation(settings, expected):
    facts = dict(model_card.model_facts({"settings": settings}).values.tolist())
    assert facts["Fine-tuning augmentation"].endswith(expected)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {"fine_tune_layers": 60, "sample_groups": True, "class_weights": True},
            "one random file of each duplicate group, loss weighted by class",
        ),
        ({"fine_tune_layers": 60, "sample_groups": False}, "every training file"),
        ({"fine_tune_layers": 0, "sample_groups": True}, None),  # frozen: no fine-tuning epochs
        ({"fine_tune_layers": 60}, "every training file"),  # a card from before the setting
        (
            {"fine_tune_layers": 60, "balance_sources": True, "mixup": 0.2, "label_smoothing": 0.1},
            "as many of every source (its files), mixed in pairs (mixup 0.2), targets smoothed "
            "by 0.1",
        ),
        (
            {"fine_tune_layers": 60, "balance_sources": True, "sample_groups": True},
            "as many of every source (one random file of each duplicate group)",
        ),
    ],
)
def test_model_facts_say_what_a_fine_tuning_epoch_shows(settings, expected):
    facts = dict(model_card.model_facts({"settings": settings}).values.tolist())
    assert facts.get("Fine-tuning epoch") == expected


def test_the_shipped_model_card_states_its_epochs_and_augmentation():
    card = json.loads((REPO / "artifacts" / artifacts.CARD).read_text())
    facts = dict(model_card.model_facts(card).values.tolist())
    by_group = card["settings"].get("sample_groups", False)
    assert facts["Fine-tuning epoch"].startswith("one random file" if by_group else "every")
    strength = card["settings"]["resample"]
    said = facts["Fine-tuning augmentation"]
    assert (f"up to {strength:.0%}" in said) if strength else ("resolution" not in said)


# ----------------------------------------------------------------------------- evaluation


def test_threshold_metrics_are_the_reports_point_metrics(test_frame):
    """The live slider shows what `metrics.report` publishes: same values, same intervals."""
    live = evaluation.threshold_metrics(test_frame, 0.4, n_boot=200, seed=3)
    published = metrics.bootstrap(test_frame.label, test_frame.probability, 0.4, n=200, seed=3)
    assert set(live) == set(metrics.POINT_METRICS)
    for name, m in live.items():
        assert m == pytest.approx(published[name])
        assert 0 <= m["ci_low"] <= m["value"] <= m["ci_high"] <= 1


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_threshold_metrics_at_the_extremes(test_frame, threshold):
    live = evaluation.threshold_metrics(test_frame, threshold, n_boot=50)
    tumours = test_frame.label.mean()
    assert live["accuracy"]["value"] == pytest.approx(tumours if threshold == 0 else 1 - tumours)
    assert np.isnan(live["precision"]["value"]) == (threshold == 1.0)


def test_default_threshold_card_then_metrics_then_half():
    assert evaluation.default_threshold({"threshold": 0.3}, {"test": {"threshold": 0.6}}) == 0.3
    assert evaluation.default_threshold({}, {"test": {"threshold": 0.6}}) == 0.6
    assert evaluation.default_threshold(None, None) == 0.5


def test_group_level_counts_each_group_once(test_frame):
    grouped = evaluation.level(test_frame, groups=True)
    assert len(grouped) == test_frame.group.nunique()
    expected = test_frame.groupby("group").probability.mean()
    np.testing.assert_allclose(grouped.set_index("group").probability, expected)
    assert evaluation.level(test_frame, groups=False) is test_frame


def test_test_rows_filters_split(test_frame):
    both = pd.concat([test_frame, test_frame.assign(split="train")])
    assert len(evaluation.test_rows(both)) == len(test_frame)


def test_score_items_from_block_or_computed(test_frame):
    stored = evaluation.score_items(block(accuracy=0.9, roc_auc=0.95, brier=0.1), test_frame)
    assert set(stored) == {"roc_auc", "brier"}
    computed = evaluation.score_items(None, test_frame)
    assert set(computed) == set(metrics.SCORE_METRICS)
    assert "ci_low" not in computed["roc_auc"]


def test_calibration_table(test_frame):
    table = evaluation.calibration_table(test_frame)
    assert table.n.sum() == len(test_frame)
    assert table.bin_low.is_monotonic_increasing and (table.bin_high - table.bin_low).gt(0).all()
    assert table.mean_probability.between(table.bin_low, table.bin_high).all()
    assert (table.low <= table.fraction_tumor).all() and (table.fraction_tumor <= table.high).all()
    sure = evaluation.calibration_table(test_frame.assign(probability=0.97, label=1))
    assert sure.n.tolist() == [len(test_frame)] and sure.high[0] == 1.0
    n = len(test_frame)  # Wilson's lower bound for n out of n: n / (n + z^2)
    assert sure.low[0] == pytest.approx(n / (n + 1.96**2))


def test_stored_point_items_only_at_the_models_threshold():
    stored = {**block(accuracy=0.95, sensitivity=0.9, roc_auc=0.98), "threshold": 0.56}
    items = evaluation.stored_point_items(stored, 0.56, 0.56)
    assert set(items) == {"accuracy", "sensitivity"}
    assert items["accuracy"] == stored["metrics"]["accuracy"]  # metrics.json's CI, as is
    assert evaluation.stored_point_items(stored, 0.6, 0.56) is None  # the user moved it
    assert evaluation.stored_point_items(None, 0.56, 0.56) is None
    elsewhere = {**stored, "threshold": 0.5}  # a block measured at another threshold
    assert evaluation.stored_point_items(elsewhere, 0.56, 0.56) is None


def test_gallery_rows(test_frame):
    rows = evaluation.gallery_rows(test_frame, 0.5, k=5)
    wrong = rows["misclassified"]
    errors = ((test_frame.probability >= 0.5).astype(int) != test_frame.label).sum()
    assert len(wrong) == errors > 5  # every error, copies of a group included
    assert ((wrong.probability >= 0.5).astype(int) != wrong.label).all()
    assert wrong.margin.is_monotonic_decreasing
    first = wrong.iloc[0]
    assert first.file == first.path and first.truth != first.predicted
    assert first.caption.startswith(f"{first.file} · truth {first.truth} / predicted ")
    assert {*wrong.truth, *wrong.predicted} <= {"tumour", "no tumour"}
    unsure = rows["least confident"]
    assert len(unsure) == 5 and unsure.margin.is_monotonic_increasing
    assert unsure.margin.max() <= (test_frame.probability - 0.5).abs().nsmallest(6).max()
    assert unsure.group.is_unique


def test_page_of_covers_every_row_once(test_frame):
    pages = [tables.page_of(test_frame, k, 50) for k in (1, 2, 3)]
    assert [len(p) for p in pages] == [50, 50, 20]
    assert pd.concat(pages).path.tolist() == test_frame.path.tolist()
    assert tables.page_of(test_frame, 9, 50).path.tolist() == pages[-1].path.tolist()


def test_gallery_shows_each_group_once(test_frame):
    copies = test_frame.assign(group=0, probability=0.5)  # one group, all on the threshold
    assert len(evaluation.gallery_rows(copies, 0.5)["least confident"]) == 1


def test_results_frame_one_row_per_scan():
    result = {
        "file": "a.png",
        "probability": 0.912345678,
        "label": "tumor",
        "band": "confident: tumour",
        "out_of_distribution": False,
        "ood_score": 0.123456,
        "threshold": 0.5649720172316278,
    }
    items = [{"name": "a.png", "result": result}, {"name": "b.txt", "error": "not an image"}]
    frame = predict.results_frame(items)
    assert list(frame.file) == ["a.png", "b.txt"] and list(frame.error) == ["", "not an image"]
    assert frame.label[0] == "tumour" and np.isnan(frame.probability[1])
    assert list(frame.columns)[-2:] == ["threshold", "error"]
    assert (frame.probability[0], frame.threshold[0], frame.ood_score[0]) == (0.9123, 0.565, 0.12)
    assert frame.label[1] == "" and frame.band[1] == ""  # no None in text cells
    csv = frame.to_csv(index=False)
    assert "0.9123," in csv and "0.565," in csv and "None" not in csv and "nan" not in csv


# ----------------------------------------------------------------------------- training


def test_history_steps_chosen_epoch_and_phases(history):
    steps = runs.history_steps(history.sample(frac=1, random_state=0))
    assert list(steps.step) == list(range(1, 8))
    assert list(steps.phase) == ["head"] * 4 + ["fine_tune"] * 3
    best = runs.chosen_epoch(history)
    assert (best.phase, best.epoch, best.step) == ("fine_tune", 2, 6)
    summary = runs.phase_summary(history)
    assert list(summary.epochs) == [4, 3] and list(summary["at epoch"]) == [3, 2]


def test_travel_rows_name_each_evaluation_and_mark_undefined_rates():
    one = {"value": 0.9, "ci_low": 0.8, "ci_high": 0.95}
    nan = {"value": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")}
    block = {"n": 10, "metrics": {"sensitivity": one, "specificity": nan, "ece": one}}
    metrics = {
        "cv_source": {
            "n": 40, "groups": "sizes", "metrics": {"sensitivity": one, "specificity": one}
        },
        "loso": {
            "pooled": {"n": 50, "metrics": {"balanced_accuracy": one}},
            "sources": {
                "b": {**block, "trained_on": ["a", "c"], "classes": [1],
                      "twin_absent": {**block, "trained_on": ["a"]}},
            },
        },
        "test": {"n": 5, "metrics": {"accuracy": one}},  # not a travel row
    }  # fmt: skip
    frame = tables.travel_rows(metrics)
    assert list(frame.evaluation) == [
        "Cross-source CV",
        "Leave-one-source-out, pooled",
        "Leave-one-source-out",
        "Leave-one-source-out, twin absent",
    ]
    assert frame["Balanced accuracy"].iloc[0] == "90.0%"  # from its sensitivity and specificity
    assert list(frame["held out"]) == ["each size fold", "every source", "b", "b"]
    assert list(frame.Specificity.iloc[2:]) == [tables.NOT_DEFINED] * 2
    assert frame.ECE.iloc[2] == "0.900"
    assert list(frame["trained on"].iloc[2:]) == ["a, c", "a"]
    assert tables.travel_rows({"test": metrics["test"]}) is None


def test_training_sources_name_each_source_and_its_one_class():
    card = {
        "sources": {
            "kaggle": {"files": 4600, "classes": {"healthy": 2087, "tumor": 2513},
                       "single_class": False},
            "oasis": {"files": 3200, "classes": {"healthy": 3200, "tumor": 0},
                      "single_class": True},
        },
        "settings": {"data_dirs": ["/somewhere/kaggle", "/somewhere/oasis"]},
    }  # fmt: skip
    shown = "kaggle (4,600 files), oasis (3,200 files; one class: no tumour)"
    assert model_card.training_sources(card) == shown
    facts = dict(model_card.model_facts(card).values.tolist())
    assert facts["Training data"] == model_card.training_sources(card)
    assert model_card.training_sources({}) is None
