"""Unit tests of tumor_model.dashboard: pure helpers, no Streamlit runtime, no artifacts needed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from PIL import Image

from tumor_model import dashboard as dash
from tumor_model import evaluate

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
    return pd.DataFrame(rows)


@pytest.fixture
def summary() -> dict:
    def describe(lo, hi):
        return {
            "n": 10,
            "mean": (lo + hi) / 2,
            "min": lo,
            "p5": lo,
            "p25": lo + 1,
            "median": (lo + hi) / 2,
            "p75": hi - 1,
            "p95": hi,
            "max": hi,
        }

    classes = {
        name: {
            "count": 10,
            "formats": {"JPEG": 10 - k, "PNG": k},
            "modes": {"RGB": 10},
            "width": describe(200, 600),
            "height": describe(200, 500),
            "file_bytes": describe(10_000, 90_000),
        }
        for name, k in (("healthy", 0), ("tumor", 4))
    }
    group = [{"path": "a.jpg", "root": "r", "label": 0}, {"path": "b.jpg", "root": "r", "label": 1}]
    near = [{"path": "c.jpg", "root": "r", "label": 1}, {"path": "d.jpg", "root": "r", "label": 1}]
    return {
        "images": 20,
        "classes": classes,
        "unreadable": [],
        "duplicates": {
            "exact_groups": 3,
            "redundant_exact_copies": 4,
            "exact_cross_class": 1,
            "near_groups": 5,
            "images_in_near_groups": 11,
            "largest_group": 3,
            "cross_class_groups": [group],
            "near_examples": [group, near],
            "exact_examples": [],
        },
    }


def _block(**values) -> dict:
    return {
        "n": 10,
        "metrics": {
            k: {"value": v, "ci_low": v - 0.1, "ci_high": v + 0.05} for k, v in values.items()
        },
    }


# ----------------------------------------------------------------------------- places and loading


def test_artifacts_dir_from_env_or_next_to_app(tmp_path):
    assert dash.artifacts_dir({dash.ARTIFACTS_ENV: str(tmp_path)}) == tmp_path
    assert dash.artifacts_dir({}) == dash.APP_DIR / "artifacts"
    assert (dash.APP_DIR / "streamlit_app.py").is_file()


def test_data_dir_only_existing_folders(tmp_path):
    assert dash.data_dir(str(tmp_path)) == tmp_path.resolve()
    assert dash.data_dir(f"  {tmp_path}  ") == tmp_path.resolve()
    assert dash.data_dir(str(tmp_path / "absent")) is None
    assert dash.data_dir("") is None and dash.data_dir(None) is None


def test_session_data_dir_prefers_sidebar_state(tmp_path):
    env = {dash.DATA_ENV: str(tmp_path)}
    assert dash.session_data_dir({"data_root": None}, env) is None
    assert dash.session_data_dir({"data_root": "/x"}, env) == "/x"
    assert dash.session_data_dir({}, env) == str(tmp_path.resolve())
    assert dash.session_data_dir({}, {}) is None


def test_missing_artifact_names_file_and_rebuild_command(tmp_path):
    with pytest.raises(dash.ArtifactError) as err:
        dash.read_artifact(tmp_path, "metrics.json")
    text = str(err.value)
    assert "metrics.json" in text and "is missing" in text
    assert "python -m tumor_model train --data-dir <dataset> --weights" in text
    assert err.value.name == "metrics.json"


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_unreadable_json_is_an_artifact_error(tmp_path, content):
    (tmp_path / "model_card.json").write_text(content)
    with pytest.raises(dash.ArtifactError, match="model_card.json"):
        dash.read_artifact(tmp_path, "model_card.json")


def test_csv_columns_are_checked(tmp_path):
    pd.DataFrame({"epoch": [1], "loss": [0.5]}).to_csv(tmp_path / "history.csv", index=False)
    with pytest.raises(dash.ArtifactError, match="lacks the columns"):
        dash.read_artifact(tmp_path, "history.csv")


def test_read_artifact_round_trip(tmp_path, test_frame):
    test_frame.to_csv(tmp_path / "predictions.csv", index=False)
    (tmp_path / "metrics.json").write_text(json.dumps({"test": _block(accuracy=0.9)}))
    loaded = dash.read_artifact(
        tmp_path, "predictions.csv", dash.stamp(tmp_path, "predictions.csv")
    )
    pd.testing.assert_frame_equal(loaded, test_frame, check_dtype=False)
    assert dash.read_artifact(tmp_path, "metrics.json")["test"]["n"] == 10
    assert dash.stamp(tmp_path, "absent.csv") == -1.0


def test_load_preview_reads_and_reports(tmp_path):
    Image.new("L", (400, 200), 128).save(tmp_path / "scan.png")
    pixels, problem = dash.load_preview(tmp_path / "scan.png", side=100)
    assert problem is None and pixels.shape == (100, 100, 3) and pixels.dtype == np.uint8
    assert pixels[0, 0].tolist() == [0, 0, 0] and pixels[50, 50].tolist() == [128] * 3
    (tmp_path / "bad.jpg").write_bytes(b"<html>not an image</html>")
    pixels, problem = dash.load_preview(tmp_path / "bad.jpg")
    assert pixels is None and "bad.jpg" in problem


# ----------------------------------------------------------------------------- metric blocks


def test_metric_items_flat_or_nested():
    nested = _block(accuracy=0.9, roc_auc=0.95)
    assert set(dash.metric_items(nested)) == {"accuracy", "roc_auc"}
    flat = {"accuracy": {"value": 0.8}, "threshold": 0.5, "confusion": {"tp": 1}}
    assert set(dash.metric_items(flat)) == {"accuracy"}
    assert dash.metric_items(None) == {} and dash.metric_items([1]) == {}


def test_formatting():
    m = {"value": 0.931, "ci_low": 0.902, "ci_high": 0.954}
    assert dash.fmt_ci("accuracy", m) == "93.1% (95% CI 90.2%–95.4%)"
    assert dash.fmt_ci("roc_auc", m) == "0.931 (95% CI 0.902–0.954)"
    assert dash.fmt_ci("accuracy", {"value": 0.5}) == "50.0%"
    assert dash.fmt_value("f1", float("nan")) == "n/a" and dash.fmt_value("f1", None) == "n/a"


def test_protocol_table_skips_missing_blocks():
    metrics = {
        "test": _block(accuracy=0.9, roc_auc=0.95),
        "cv": {**_block(accuracy=0.88), "folds": 10},
        "cv_source_fine_tuned": {**_block(accuracy=0.8), "folds": 3},
        "cv_fine_tuned_gpu": {**_block(accuracy=0.96), "folds": 10},
        "shortcut": {"accuracy_original": 0.9},
    }
    table = dash.protocol_table(metrics)
    assert list(table.protocol) == [
        dash.SHORT["test"],
        "Grouped CV",
        "Cross-source CV, fine-tuned",
        "Grouped CV, fine-tuned (GPU port)",
    ]
    assert list(table.folds) == ["-", "10", "3", "10"]
    assert table.loc[0, "Accuracy"] == "90.0% (80.0–95.0)"
    assert table.loc[0, "ROC AUC"] == "0.950 (0.850–1.000)"
    assert table.loc[1, "ROC AUC"] == "n/a"
    assert dash.protocol_table({}).empty


def test_fold_table_lists_every_fold_of_every_cv():
    metrics = {
        "test": _block(accuracy=0.9),
        "cv": {**_block(accuracy=0.9), "fold_accuracy": [0.8, 1.0], "fold_size": [5, 7]},
        "cv_source_fine_tuned": {**_block(accuracy=0.7), "fold_accuracy": [0.6, 0.7, 0.8]},
        "cv_source": {**_block(accuracy=0.8), "fold_accuracy": []},
    }
    folds = dash.fold_table(metrics)
    assert list(folds.protocol) == ["Grouped CV"] * 2 + ["Cross-source CV, fine-tuned"] * 3
    assert list(folds.fold) == [1, 2, 1, 2, 3] and list(folds.files[:2]) == [5, 7]
    assert folds.files[2:].isna().all()  # fold sizes not stored: unknown, not invented
    fig = dash.fold_figure(folds)
    assert list(fig.data[0].y) == pytest.approx([80, 100, 60, 70, 80])
    assert dash.fold_table({"test": _block(accuracy=0.9)}).empty
    assert dash.fold_table(None).empty


def test_headline_prefers_model_card():
    card = {"test_metrics": {"accuracy": {"value": 0.91, "ci_low": 0.88, "ci_high": 0.93}}}
    metrics = {"test": _block(accuracy=0.5)}
    assert dash.headline(card, metrics)["value"] == 0.91
    assert dash.headline({}, metrics)["value"] == 0.5
    assert dash.headline(None, None) is None


def test_trained_when():
    assert dash.trained_when({"trained_at": "2025-11-28T10:40:00+00:00"}) == "2025-11-28 10:40 UTC"
    assert dash.trained_when({"trained_at": "yesterday"}) == "yesterday"
    assert dash.trained_when({}) == "unknown"


def test_model_facts_and_counts():
    card = {
        "backbone": "mobilenetv2",
        "input_size": 224,
        "geometry": "crop-pad",
        "settings": {"dense_units": 250, "dropout": 0.3, "data_dirs": ["d"]},
        "data_counts": {"0": {"test": 5, "train": 40}, "1": {"test": 6, "train": 50}},
    }
    facts = dict(dash.model_facts(card).values.tolist())
    assert facts["Backbone"] == "mobilenetv2" and "224 px" in facts["Input"]
    assert "Fine-tuning augmentation" not in facts  # frozen model: nothing to say
    counts = dash.data_counts(card)
    assert counts["count"].sum() == 101 and set(counts["class"]) == {"healthy", "tumor"}


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
    facts = dict(dash.model_facts({"settings": settings}).values.tolist())
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
    ],
)
def test_model_facts_say_what_a_fine_tuning_epoch_shows(settings, expected):
    facts = dict(dash.model_facts({"settings": settings}).values.tolist())
    assert facts.get("Fine-tuning epoch") == expected


def test_the_shipped_model_card_states_what_an_epoch_showed():
    card = json.loads((REPO / "artifacts" / "model_card.json").read_text())
    said = dict(dash.model_facts(card).values.tolist())["Fine-tuning epoch"]
    by_group = card["settings"].get("sample_groups", False)
    assert said.startswith("one random file" if by_group else "every training file")


def test_the_shipped_model_card_states_its_augmentation():
    card = json.loads((REPO / "artifacts" / "model_card.json").read_text())
    said = dict(dash.model_facts(card).values.tolist())["Fine-tuning augmentation"]
    strength = card["settings"]["resample"]
    assert (f"up to {strength:.0%}" in said) if strength else ("resolution" not in said)


# ----------------------------------------------------------------------------- threshold metrics


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.77, 1.0])
def test_confusion_and_point_metrics_match_evaluate(test_frame, threshold):
    y, p = test_frame.label.to_numpy(), test_frame.probability.to_numpy()
    conf = dash.confusion(test_frame, threshold)
    pred = p >= threshold
    assert conf == {
        "tp": int(np.sum(pred & (y == 1))),
        "fn": int(np.sum(~pred & (y == 1))),
        "tn": int(np.sum(~pred & (y == 0))),
        "fp": int(np.sum(pred & (y == 0))),
    }
    items = dash.threshold_metrics(test_frame, threshold, n_boot=200)
    expected = evaluate.point_metrics(conf)
    for name, value in expected.items():
        np.testing.assert_equal(items[name]["value"], value)


def test_bootstrap_intervals_bracket_the_value(test_frame):
    items = dash.threshold_metrics(test_frame, 0.5, n_boot=500, seed=3)
    for m in items.values():
        assert m["ci_low"] <= m["value"] <= m["ci_high"]
        assert 0 <= m["ci_low"] and m["ci_high"] <= 1
    assert items == dash.threshold_metrics(test_frame, 0.5, n_boot=500, seed=3)


def test_group_level_counts_each_group_once(test_frame):
    grouped = dash.level(test_frame, groups=True)
    assert len(grouped) == test_frame.group.nunique()
    expected = test_frame.groupby("group").probability.mean()
    np.testing.assert_allclose(grouped.set_index("group").probability, expected)
    assert dash.level(test_frame, groups=False) is test_frame


def test_test_rows_filters_split(test_frame):
    both = pd.concat([test_frame, test_frame.assign(split="train")])
    assert len(dash.test_rows(both)) == len(test_frame)


def test_score_items_from_block_or_computed(test_frame):
    block = _block(accuracy=0.9, roc_auc=0.95, brier=0.1)
    assert set(dash.score_items(block, test_frame)) == {"roc_auc", "brier"}
    computed = dash.score_items(None, test_frame)
    assert set(computed) == set(evaluate.SCORE_METRICS)
    assert "ci_low" not in computed["roc_auc"]


def test_gallery_rows(test_frame):
    rows = dash.gallery_rows(test_frame, 0.5, k=5)
    wrong = rows["misclassified"]
    assert ((wrong.probability >= 0.5).astype(int) != wrong.label).all()
    assert wrong.margin.is_monotonic_decreasing
    unsure = rows["least confident"]
    assert len(unsure) == 5 and unsure.margin.is_monotonic_increasing
    assert unsure.margin.max() <= (test_frame.probability - 0.5).abs().nsmallest(6).max()
    for part in rows.values():
        assert part.group.is_unique


def test_gallery_shows_each_group_once(test_frame):
    copies = test_frame.assign(group=0, probability=0.5)  # one group, all on the threshold
    rows = dash.gallery_rows(copies, 0.5)
    assert len(rows["least confident"]) == 1


# ----------------------------------------------------------------------------- figures


def test_confusion_figure_counts_and_rates():
    fig = dash.confusion_figure({"tp": 8, "fn": 2, "tn": 5, "fp": 5})
    heat = fig.data[0]
    np.testing.assert_allclose(heat.z, [[0.5, 0.5], [0.2, 0.8]])
    assert heat.text[1][1] == "8<br>80.0%"


def test_curve_figures(test_frame):
    roc = dash.roc_figure(test_frame, 0.5, 0.9)
    assert isinstance(roc, go.Figure) and "AUC = 0.900" in roc.layout.title.text
    conf = dash.confusion(test_frame, 0.5)
    assert roc.data[2].y[0] == pytest.approx(conf["tp"] / (conf["tp"] + conf["fn"]))
    pr = dash.pr_figure(test_frame, 0.5, None)
    assert "AP = n/a" in pr.layout.title.text


def test_calibration_table_matches_evaluate(test_frame):
    table = dash.calibration_table(test_frame)
    ref = pd.DataFrame(evaluate.curves(test_frame.label, test_frame.probability)["calibration"])
    np.testing.assert_allclose(table.mean_probability, ref.mean_probability)
    np.testing.assert_allclose(table.fraction_tumor, ref.fraction_tumor)
    assert table.n.sum() == len(test_frame)
    assert len(dash.calibration_figure(table).data) == 2


def test_history_steps_and_chosen_epoch(history):
    steps = dash.history_steps(history.sample(frac=1, random_state=0))
    assert list(steps.step) == list(range(1, 8))
    assert list(steps.phase) == ["head"] * 4 + ["fine_tune"] * 3
    best = dash.chosen_epoch(history)
    assert (best.phase, best.epoch, best.step) == ("fine_tune", 2, 6)
    fig = dash.history_figure(history)
    stars = [t for t in fig.data if t.name == "chosen (best val_loss)"]
    assert len(stars) == 3 and all(t.x[0] == 6 for t in stars)
    summary = dash.phase_summary(history)
    assert list(summary.epochs) == [4, 3] and list(summary["at epoch"]) == [3, 2]


def test_class_counts(test_frame):
    split = test_frame.assign(split=np.where(np.arange(len(test_frame)) < 80, "train", "test"))
    counts = dash.class_counts(split)
    assert list(dict.fromkeys(counts.split)) == ["all", "train", "test"]
    total = counts[counts.split == "all"]["count"].sum()
    assert total == len(split) == counts[counts.split != "all"]["count"].sum()
    assert len(dash.class_balance_figure(counts).data) == 2


def test_sample_rows_filter_and_seed(test_frame):
    tumours = dash.sample_rows(test_frame, 14, seed=1, class_name="tumor")
    assert len(tumours) == 14 and (tumours.label == 1).all()
    again = dash.sample_rows(test_frame, 14, seed=1, class_name="tumor")
    pd.testing.assert_frame_equal(tumours, again)
    other = dash.sample_rows(test_frame, 14, seed=2, class_name="tumor")
    assert list(other.path) != list(tumours.path)
    assert len(dash.sample_rows(test_frame.head(3), 14, seed=0)) == 3


def test_image_tables(tmp_path, test_frame):
    split = test_frame.head(3)
    rows = dash.split_images(split, tmp_path)
    assert rows.image.iloc[0] == str(tmp_path / "f0.jpg")
    samples = pd.DataFrame({"file": ["a.png"], "label": [1], "class_name": ["tumor"]})
    assert dash.sample_images(samples, tmp_path).image.iloc[0] == str(tmp_path / "samples/a.png")


def test_summary_figures(summary):
    sizes = dash.size_figure(summary)
    assert len([t for t in sizes.data if isinstance(t, go.Box)]) == 6
    formats = dash.category_figure(summary, "formats")
    png = next(t for t in formats.data if t.name == "PNG")
    assert list(png.y) == [0.0, 0.4]
    assert len(dash.category_figure({}, "modes").data) == 0


def test_duplicate_audit_helpers(summary, tmp_path):
    numbers = dash.duplicate_numbers(summary)
    assert numbers["Cross-class groups"] == 1 and numbers["Near-duplicate groups"] == 5
    examples = dash.duplicate_examples(summary)
    assert len(examples) == 2  # the cross-class group is listed twice in the summary
    rows = dash.group_images(examples[0], tmp_path)
    assert rows.image.iloc[0] == str(tmp_path / "a.jpg")
    assert rows.caption.iloc[1] == "tumor · b.jpg"
    assert dash.group_images(examples[0], None).image.iloc[0] == "r/a.jpg"
    assert dash.duplicate_numbers({}) == {} and dash.duplicate_examples({}) == []


def _rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_release_memory_returns_freed_heap_to_the_os():
    """200 MB in 50 kB blocks (heap, not mmap); every 20th kept alive pins the heap, so freeing
    the rest lowers RSS only once release_memory (glibc malloc_trim) hands the holes back."""
    if dash._malloc_trim() is None:
        pytest.skip("no glibc malloc_trim in this C library")
    blocks = [bytes(50_000) for _ in range(4000)]
    pinned = blocks[::20]
    del blocks
    before = _rss_mib()
    assert dash.release_memory() is True
    assert before - _rss_mib() >= 100, f"RSS {before:.0f} -> {_rss_mib():.0f} MiB"
    assert len(pinned) == 200


def test_test_split_is_named_after_the_models_split():
    block = {"test": _block(accuracy=0.8)}
    group = dash.protocol_table(block)
    source = dash.protocol_table({**block, "protocol": {"split": "source", "seed": 314}})
    random = dash.protocol_names({"protocol": {"split": "random"}})
    assert list(group.protocol) == ["Group split"]
    assert list(source.protocol) == ["Source split"]
    assert random["test"][0] == "Random split" and "leaks" in random["test"][1]
    assert dash.protocol_names({"protocol": {"split": "site"}})["test"][0] == "site split"
