"""AppTest of the dashboard shell and its pages, against the shipped artifacts.

The artifacts are the repo's `artifacts/` (what a user gets), or $NEUROSCAN_ARTIFACTS when set.
Expectations are computed here from the artifact files, never hard-coded.

A `pages/` folder next to the main script puts Streamlit in its old multipage mode, where a page
can run without streamlit_app.py; the pages call `dashboard.places.page()` against that, and
`test_every_page_renders` checks that the sidebar is there on every page.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tumor_model.artifacts import PROTOCOLS, REBUILD
from tumor_model.dashboard import card as model_card
from tumor_model.dashboard import dataset, evaluation, places, tables

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "app" / "streamlit_app.py"
SHARED_DATA = REPO.parent / "shared" / "data" / "brain-tumor-dataset"
CELLS = {
    "tp": "True positives (TP)",
    "fn": "False negatives (FN)",
    "tn": "True negatives (TN)",
    "fp": "False positives (FP)",
}
PAGES = ["overview", "dataset", "training", "evaluation", "predict"]


def _artifacts() -> Path:
    env = os.environ.get("NEUROSCAN_ARTIFACTS", "").strip()
    return Path(env) if env else REPO / "artifacts"


ART = _artifacts()


@pytest.fixture(scope="module")
def art() -> Path:
    if not (ART / "model_card.json").is_file():
        message = f"no artifacts at {ART}: build them with `{REBUILD} ...`"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(message)
        pytest.skip(message)
    return ART


@pytest.fixture
def app(art, monkeypatch, tmp_path):
    """The app on the shipped artifacts, without a dataset: $NEUROSCAN_DATA_DIR names a folder
    that does not exist (the dashboard would otherwise find ../shared/data by itself)."""
    monkeypatch.setenv("NEUROSCAN_ARTIFACTS", str(art))
    monkeypatch.setenv("NEUROSCAN_DATA_DIR", str(tmp_path / "no-dataset"))
    return AppTest.from_file(str(APP), default_timeout=60)


def _json(art: Path, name: str) -> dict:
    return json.loads((art / name).read_text())


def _test_predictions(art: Path) -> pd.DataFrame:
    frame = pd.read_csv(art / "predictions.csv")
    return frame[frame.split == "test"]


def _counts(labels, probs, threshold) -> dict:
    labels, pred = np.asarray(labels), np.asarray(probs) >= threshold
    return {
        "tp": int(((labels == 1) & pred).sum()),
        "fn": int(((labels == 1) & ~pred).sum()),
        "tn": int(((labels == 0) & ~pred).sum()),
        "fp": int(((labels == 0) & pred).sum()),
    }


def _shown_counts(at: AppTest) -> dict:
    shown = {m.label: m.value for m in at.metric}
    return {cell: int(shown[label]) for cell, label in CELLS.items()}


def _open(at: AppTest, page: str) -> AppTest:
    at.run()
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


# ----------------------------------------------------------------------------- shell


def test_shell_sidebar(app, art, tmp_path):
    app.run()
    assert not app.exception
    assert [t.value for t in app.title][0].startswith("NeuroScan")
    side = app.sidebar
    assert "Research tool — not for diagnosis" in [w.value for w in side.warning]
    card = _json(art, "model_card.json")
    assert any(card["backbone"] in m.value for m in side.markdown)
    assert [m.label for m in side.metric] == ["Test accuracy (group split)"]
    assert any("95% CI" in c.value for c in side.caption)
    trained = f"Trained {model_card.trained_when(card)}; threshold chosen on validation scans."
    assert trained in [c.value for c in side.caption]
    assert side.text_input(key="data_dir").value == ""
    assert "dataset not found — pages show the shipped artifacts only" in [
        i.value for i in side.info
    ]
    absent = places.shown_path(tmp_path / "no-dataset")  # the fixture's $NEUROSCAN_DATA_DIR
    note = f"Looked for the dataset in `{absent}` ($NEUROSCAN_DATA_DIR): not a folder."
    assert note in [c.value for c in side.caption]


def test_sidebar_dataset_from_env(app, tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROSCAN_DATA_DIR", str(tmp_path))
    app.run()
    assert app.sidebar.text_input(key="data_dir").value == ""  # nothing typed
    assert app.session_state["data_root"] == str(tmp_path.resolve())
    assert not app.sidebar.info
    note = f"Reading images from `{places.shown_path(tmp_path)}` ($NEUROSCAN_DATA_DIR)."
    assert note in [c.value for c in app.sidebar.caption]


def test_sidebar_finds_the_dataset_by_itself(app, monkeypatch):
    """Nothing typed, no $NEUROSCAN_DATA_DIR: the dataset beside the checkout is used, and the
    galleries show its images."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"dataset not at {SHARED_DATA}")
    monkeypatch.delenv("NEUROSCAN_DATA_DIR")
    at = _open(app, "dataset")
    assert at.session_state["data_root"] == os.path.abspath(SHARED_DATA)
    note = "Reading images from `../shared/data/brain-tumor-dataset` (found automatically)."
    assert note in [c.value for c in at.sidebar.caption] and not at.sidebar.info
    assert any("Random images from the dataset" in c.value for c in at.caption)


def test_sidebar_says_where_it_looked_when_nothing_is_found(app, monkeypatch, tmp_path):
    """An app folder with no dataset beside or in it: every place looked in is named."""
    monkeypatch.delenv("NEUROSCAN_DATA_DIR")
    (tmp_path / "app").mkdir()
    monkeypatch.setattr(places, "APP_DIR", tmp_path / "app")  # the app's own module, in-process
    at = _open(app, "dataset")
    assert at.session_state["data_root"] is None
    assert at.sidebar.info[0].value.startswith("dataset not found")
    assert (
        "Looked for the dataset in `../shared/data/brain-tumor-dataset`, "
        "`data/brain-tumor-dataset`: none is a folder. Type its folder above or set "
        "$NEUROSCAN_DATA_DIR."
    ) in [c.value for c in at.sidebar.caption]
    assert any("Shipped thumbnails" in c.value for c in at.caption)


def test_sidebar_text_input_sets_dataset(app, tmp_path):
    at = _open(app, "training")
    at.sidebar.text_input(key="data_dir").set_value(str(tmp_path)).run()
    assert at.session_state["data_root"] == str(tmp_path.resolve())
    assert any("Reading images from" in c.value for c in at.sidebar.caption)
    at.sidebar.text_input(key="data_dir").set_value(str(tmp_path / "absent")).run()
    assert at.session_state["data_root"] is None
    assert at.sidebar.info[0].value.startswith("dataset not found")
    assert at.title[0].value == "Training"


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(app, page):
    at = _open(app, page)
    assert at.title, f"{page} has no title"
    if page == "predict":  # owned by the prediction issue (needs model.keras): no crash is enough
        return
    assert "Research tool — not for diagnosis" in [w.value for w in at.sidebar.warning]
    assert not at.error, [e.value for e in at.error]


# ----------------------------------------------------------------------------- pages


def _results_table(at: AppTest) -> pd.DataFrame:
    (table,) = [t.value for t in at.table if "protocol" in t.value.columns]
    return table


def test_overview(app, art):
    at = _open(app, "overview")
    metrics = _json(art, "metrics.json")
    head = [(m.label, m.value) for m in at.main.metric if m.label.startswith(("Test", "Cross"))]
    test = metrics["test"]["metrics"]
    expected = [
        ("Test accuracy", f"{100 * test['accuracy']['value']:.1f}%"),
        ("Test ROC AUC", f"{test['roc_auc']['value']:.3f}"),
        ("Test ECE (calibration)", f"{test['ece']['value']:.3f}"),
    ]
    if "cv_source" in metrics:
        source = metrics["cv_source"]["metrics"]["accuracy"]["value"]
        expected.append(("Cross-source CV accuracy", f"{100 * source:.1f}%"))
    assert head == expected  # one headline block ...
    assert len(at.main.metric) <= len(expected) + 2  # ... (+ the shortcut check), no tile wall
    assert len(at.get("page_link")) == 4
    facts = dict(at.table[0].value.values.tolist())
    card = _json(art, "model_card.json")
    assert facts["Backbone"] == card["backbone"]
    assert float(facts["Decision threshold"]) == pytest.approx(card["threshold"], abs=1e-4)
    minutes, seconds = divmod(round(card["train_seconds"]), 60)
    assert facts["Training time"] == f"{minutes} min {seconds} s"
    assert facts["Weights"] == Path(card["weights_origin"]).name
    assert not any(str(v).startswith("/") for v in facts.values())
    protocols = _results_table(at)
    assert protocols.protocol.iloc[0] == "Group split"
    ece = test["ece"]
    assert protocols.ECE.iloc[0] == f"{ece['value']:.3f} ({ece['ci_low']:.3f}–{ece['ci_high']:.3f})"
    cvs = [k for k in metrics if k.startswith("cv") and metrics[k].get("fold_accuracy")]
    assert ("Cross-validation folds" in [h.value for h in at.subheader]) == bool(cvs)
    if "cv" in metrics:
        row = protocols[protocols.protocol == "Grouped CV"].iloc[0]
        assert row.folds == str(metrics["cv"]["folds"])
    shown = [k for k in PROTOCOLS if k in metrics and "metrics" in metrics[k]]
    assert len(protocols) == len(shown)  # only the contract's protocols, whatever else is stored
    assert not any("GPU" in m.value for m in [*at.markdown, *at.caption])


def test_overview_shows_how_the_model_travels(app, art):
    """The cross-source and leave-one-source-out rows of metrics.json, one per held-out source."""
    at = _open(app, "overview")
    metrics = _json(art, "metrics.json")
    found = [t.value for t in at.table if "held out" in t.value.columns]
    if "loso" not in metrics and "cv_source" not in metrics:
        assert not found
        return
    (travel,) = found
    if "loso" in metrics:
        loso = travel[travel.evaluation == "Leave-one-source-out"]
        assert list(loso["held out"]) == list(metrics["loso"]["sources"])
        for _, row in loso.iterrows():
            block = metrics["loso"]["sources"][row["held out"]]
            rate = "Sensitivity" if block["classes"] == [1] else "Specificity"
            if len(block["classes"]) == 1:
                value = block["metrics"][rate.lower()]["value"]
                assert row[rate] == f"{value:.1%}"
                assert row["Balanced accuracy"] == tables.NOT_DEFINED  # undefined for one class
    assert "Does it travel?" in " ".join(h.value for h in at.subheader)


def test_dataset_with_shipped_samples(app, art):
    at = _open(app, "dataset")
    assert {h.value for h in at.header} >= {"Class balance", "Sample images", "Duplicate audit"}
    assert len(at.get("plotly_chart")) >= 4
    samples = pd.read_csv(art / "samples" / "samples.csv")
    assert len(at.image) == min(16, len(samples))
    at.radio(key="dataset_class").set_value("tumor").run()
    assert at.image and all(c == "tumour" for img in at.image for c in img.captions)
    before = [img.value for img in at.image]
    at.radio(key="dataset_class").set_value("all").run()
    at.button(key="dataset_reshuffle").click().run()
    assert at.session_state["dataset_seed"] == 1 and not at.exception
    assert [img.value for img in at.image] != before


def test_training(app, art):
    at = _open(app, "training")
    history = pd.read_csv(art / "history.csv")
    shown = {m.label: m.value for m in at.metric}
    assert shown["Validation loss"] == f"{history.val_loss.min():.4f}"
    assert shown["Epochs trained"] == str(len(history))
    assert len(at.get("plotly_chart")) == 1


def test_evaluation_defaults_to_model_threshold(app, art):
    at = _open(app, "evaluation")
    threshold = _json(art, "model_card.json")["threshold"]
    assert at.slider(key="eval_threshold").value == pytest.approx(threshold)
    test = _test_predictions(art)
    assert _shown_counts(at) == _counts(test.label, test.probability, threshold)
    assert len(at.get("plotly_chart")) == 4
    table = at.dataframe[0].value
    assert {"Accuracy", "Sensitivity", "Specificity", "ROC AUC"} <= set(table.metric)


@pytest.mark.parametrize("threshold", [0.1, 0.35, 0.5, 0.8])
def test_threshold_slider_recomputes_confusion(app, art, threshold):
    at = _open(app, "evaluation")
    at.slider(key="eval_threshold").set_value(threshold).run()
    assert not at.exception
    test = _test_predictions(art)
    expected = _counts(test.label, test.probability, threshold)
    assert _shown_counts(at) == expected
    accuracy = (expected["tp"] + expected["tn"]) / len(test)
    table = at.dataframe[0].value.set_index("metric")
    assert table.loc["Accuracy", "value"] == pytest.approx(accuracy)


def test_threshold_moves_the_numbers(app, art):
    at = _open(app, "evaluation")
    seen = set()
    for threshold in (0.05, 0.5, 0.95):
        at.slider(key="eval_threshold").set_value(threshold).run()
        seen.add(tuple(_shown_counts(at).values()))
    assert len(seen) == 3


def test_group_level_toggle(app, art):
    at = _open(app, "evaluation")
    at.slider(key="eval_threshold").set_value(0.5).run()
    at.toggle(key="eval_group_level").set_value(True).run()
    test = _test_predictions(art)
    groups = test.groupby("group")
    majority = groups.label.agg(lambda s: s.value_counts().sort_index().idxmax())
    expected = _counts(majority, groups.probability.mean(), 0.5)
    assert _shown_counts(at) == expected
    assert {m.label: m.value for m in at.metric}["Evaluated"] == str(test.group.nunique())


PROBE = """
import json, sys, time
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=60)
at.run()
seconds = {}
for page in ["dataset", "training", "evaluation", "overview"]:
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        at.switch_page(f"pages/{page}.py").run()
        best = min(best, time.perf_counter() - start)
    seconds[page] = best
heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
print(json.dumps({"seconds": seconds, "heavy": heavy}))
"""


def test_pages_are_light_and_fast(art, monkeypatch):
    """The four pages never import TensorFlow/Keras and render in under a second."""
    monkeypatch.setenv("NEUROSCAN_ARTIFACTS", str(art))
    monkeypatch.delenv("NEUROSCAN_DATA_DIR", raising=False)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(APP)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    slow = {page: s for page, s in result["seconds"].items() if s >= 1.0}
    assert not slow, f"pages slower than 1 s: {slow}"


# ----------------------------------------------------------------------------- broken artifacts


@pytest.mark.parametrize("page", PAGES)
def test_missing_artifacts_explained(page, tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROSCAN_ARTIFACTS", str(tmp_path))
    monkeypatch.delenv("NEUROSCAN_DATA_DIR", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception
    assert at.sidebar.error, "the sidebar does not say the model card is missing"
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    if page != "predict":
        errors = " ".join(e.value for e in at.error)
        assert REBUILD in errors and "is missing" in errors


def test_corrupt_artifact_named(art, tmp_path, monkeypatch):
    broken = tmp_path / "artifacts"
    shutil.copytree(art, broken, ignore=shutil.ignore_patterns("model.keras", "*.npz"))
    (broken / "metrics.json").write_text("{truncated")
    (broken / "history.csv").write_text("epoch,loss\n1,0.5\n")
    monkeypatch.setenv("NEUROSCAN_ARTIFACTS", str(broken))
    monkeypatch.delenv("NEUROSCAN_DATA_DIR", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception
    assert any("metrics.json" in e.value and "unreadable" in e.value for e in at.error)
    at.switch_page("pages/training.py").run()
    assert any("history.csv" in e.value and "lacks the columns" in e.value for e in at.error)


# ----------------------------------------------------------------------------- with the dataset


@pytest.fixture
def app_with_data(app, monkeypatch):
    if not SHARED_DATA.is_dir():
        pytest.skip(f"dataset not at {SHARED_DATA}")
    monkeypatch.setenv("NEUROSCAN_DATA_DIR", str(SHARED_DATA))
    return app


def test_dataset_page_samples_the_dataset(app_with_data):
    at = _open(app_with_data, "dataset")
    grid = at.image[:16]
    assert len(grid) == 16
    assert all(" · " in c for img in grid for c in img.captions)
    assert any("Random images from the dataset" in c.value for c in at.caption)


def test_evaluation_gallery_with_dataset(app_with_data, art):
    at = _open(app_with_data, "evaluation")
    assert len(at.image) >= 8
    assert not any("cannot load" in c.value for c in at.caption)


# ----------------------------------------------------------------------------- polish (issue 20)

# the artifacts' class name as a word (not inside a path or file name such as brain-tumor-dataset)
MACHINE_SPELLING = re.compile(r"(?<![-/_.\w])tumor(?![-/_.\w])")


def _texts(at: AppTest) -> list[str]:
    """Everything a user reads on the page: headings, text, metrics, widgets, table cells
    (file paths of the dataset aside: they are the files' own names), chart labels."""
    out = [
        e.value
        for kind in ("title", "header", "subheader", "markdown", "caption")
        for e in at.get(kind)
    ]
    out += [e.value for kind in ("info", "warning", "error", "success") for e in at.get(kind)]
    out += [f"{m.label} {m.value}" for m in at.metric]
    for kind in ("radio", "selectbox", "toggle", "slider", "button", "number_input"):
        for widget in at.get(kind):
            out.append(str(widget.label))
            out += [str(o) for o in getattr(widget, "options", [])]
    for frame in [*(t.value for t in at.table), *(d.value for d in at.dataframe)]:
        keep = [c for c in frame.columns if c not in ("path", "file", "root", "image")]
        out += [str(c) for c in frame.columns] + frame[keep].astype(str).values.ravel().tolist()
    out += [c for img in at.image for c in img.captions]
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        names = [t.get("name") for t in spec.get("data", [])]
        names += [
            str(t.get("x", ""))
            for t in spec.get("data", [])
            if t.get("type") in ("bar", "box", "heatmap")
        ]
        names += [str(t.get("y", "")) for t in spec.get("data", []) if t.get("type") == "heatmap"]
        out += [str(n) for n in names] + [json.dumps(spec.get("layout", {}))]
    return out


@pytest.mark.parametrize("with_data", [False, True])
def test_every_page_spells_tumour(app, monkeypatch, with_data):
    if with_data:
        if not SHARED_DATA.is_dir():
            pytest.skip(f"dataset not at {SHARED_DATA}")
        monkeypatch.setenv("NEUROSCAN_DATA_DIR", str(SHARED_DATA))
    at = app
    at.run()
    for page in ["overview", "dataset", "training", "evaluation"]:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception
        texts = _texts(at)
        assert page == "training" or any("tumour" in t for t in texts), page
        wrong = [t for t in texts if MACHINE_SPELLING.search(t)]
        assert not wrong, f"{page}: {wrong[:3]}"


def test_sidebar_shows_no_machine_paths(app, monkeypatch):
    if not SHARED_DATA.is_dir():
        pytest.skip(f"dataset not at {SHARED_DATA}")
    monkeypatch.setenv("NEUROSCAN_DATA_DIR", os.path.abspath(SHARED_DATA))  # absolute
    at = _open(app, "dataset")
    sidebar = [c.value for c in at.sidebar.caption]
    assert any("Reading images from `../shared/data/brain-tumor-dataset`" in c for c in sidebar)
    shown = " ".join([*sidebar, *_texts(at)])
    assert str(REPO.parent) not in shown


def _metrics_table(at: AppTest) -> pd.DataFrame:
    return at.dataframe[0].value.set_index("metric")


def _eval_caption(at: AppTest) -> str:
    return next(c.value for c in at.caption if c.value.startswith("Threshold metrics:"))


def test_evaluation_cis_are_metrics_json_until_the_threshold_moves(app, art):
    at = _open(app, "evaluation")
    stored = _json(art, "metrics.json")["test"]["metrics"]
    table = _metrics_table(at)
    for name, label in (("accuracy", "Accuracy"), ("sensitivity", "Sensitivity"), ("ece", "ECE")):
        row = table.loc[label]
        assert (row.value, row.ci_low, row.ci_high) == pytest.approx(
            (stored[name]["value"], stored[name]["ci_low"], stored[name]["ci_high"])
        )
    assert "from metrics.json" in _eval_caption(at)
    assert at.button(key="eval_reset").disabled
    at.slider(key="eval_threshold").set_value(0.3).run()
    assert "recomputed here for threshold 0.300" in _eval_caption(at)
    test = _test_predictions(art)
    live = evaluation.threshold_metrics(test, 0.3)
    assert _metrics_table(at).loc["Accuracy", "ci_low"] == pytest.approx(live["accuracy"]["ci_low"])
    assert not at.button(key="eval_reset").disabled
    at.button(key="eval_reset").click().run()
    threshold = _json(art, "model_card.json")["threshold"]
    assert at.slider(key="eval_threshold").value == pytest.approx(threshold)
    assert _shown_counts(at) == _counts(test.label, test.probability, threshold)
    assert _metrics_table(at).loc["Accuracy", "ci_low"] == pytest.approx(
        stored["accuracy"]["ci_low"]
    )


def test_reliability_diagram_shows_bin_sizes(app, art):
    at = _open(app, "evaluation")
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    (spec,) = [c for c in charts if "Reliability" in json.dumps(c["layout"].get("title", ""))]
    model = spec["data"][1]
    table = evaluation.calibration_table(_test_predictions(art))
    assert model["text"] == [f"n={n}" for n in table.n] and model["cliponaxis"] is False
    assert spec["layout"]["xaxis"]["range"][1] > 1 and spec["layout"]["yaxis"]["range"][0] < 0


@pytest.mark.slow
def test_evaluation_gallery_pages_through_every_error(app_with_data, art):
    at = _open(app_with_data, "evaluation")
    test = _test_predictions(art)
    threshold = _json(art, "model_card.json")["threshold"]
    wrong = test[(test.probability >= threshold).astype(int) != test.label]
    assert any(
        f"Misclassified ({len(wrong)} of {len(test)} test files)" in m.value for m in at.markdown
    )
    seen = []
    pages = [w for w in at.number_input if w.key.startswith("eval_error_page")]
    count = int(pages[0].max) if pages else 1
    for page in range(1, count + 1):
        if pages:
            at.number_input(key=pages[0].key).set_value(page).run()
        seen += [
            b.key.removeprefix("eval_open_wrong_")
            for b in at.button
            if b.key.startswith("eval_open_wrong_")
        ]
    assert sorted(seen) == sorted(wrong.path)  # every error, each once
    caption = next(c for img in at.image for c in img.captions if " / predicted " in c)
    assert " · truth " in caption and ("tumour" in caption)
    if pages:
        at.number_input(key=pages[0].key).set_value(1).run()
    button = next(b for b in at.button if b.key.startswith("eval_open_wrong_"))
    first = button.key.removeprefix("eval_open_wrong_")
    margin = (wrong.probability - threshold).abs()
    assert margin[wrong.path == first].iloc[0] == margin.max()  # the most confident error first
    button.click().run()
    assert not at.exception, [e.value for e in at.exception]
    captions = [c for img in at.image for c in img.captions]
    assert any(c.startswith(f"{Path(first).name} (fitted to 512 px)") for c in captions)
    assert any(c.startswith("Grad-CAM: evidence for") for c in captions)
    at.button(key="eval_close").click().run()
    assert not any(c.startswith("Grad-CAM") for img in at.image for c in img.captions)


def test_dataset_statements_are_computed(app, art):
    at = _open(app, "dataset")
    summary = _json(art, "dataset_summary.json")
    split = pd.read_csv(art / "split.csv")
    text = " ".join(m.value for m in at.markdown)
    for line in dataset.property_statements(summary, split):
        assert line in text
    assert "**Cross-class group**" in text and "**Exact cross-class group**" in text


def test_dataset_group_browser_lists_a_whole_group(app, art):
    at = _open(app, "dataset")
    groups = dataset.duplicate_groups(pd.read_csv(art / "split.csv"))
    picker = at.selectbox(key="dataset_group")
    assert len(picker.options) == len(groups)
    biggest = groups.iloc[0]
    shown = at.dataframe[-1].value
    assert len(shown) == biggest.files  # the whole group, not 4 examples
    other = groups.iloc[-1]
    picker.set_value(int(other.group)).run()
    assert len(at.dataframe[-1].value) == other.files
    at.selectbox(key="dataset_kind").set_value("exact cross-class").run()
    if not groups.exact_cross_class.any():
        assert any("No exact cross-class group" in i.value for i in at.info)


@pytest.mark.slow
def test_dataset_group_browser_pages_the_images(app_with_data, art):
    at = _open(app_with_data, "dataset")
    split = pd.read_csv(art / "split.csv")
    biggest = dataset.duplicate_groups(split).iloc[0]
    expected = dataset.group_files(split, int(biggest.group), None).caption.tolist()
    key = f"dataset_group_page_{biggest.group}"
    seen = []
    pages = int(at.number_input(key=key).max) if biggest.files > 16 else 1
    for page in range(1, pages + 1):
        if pages > 1:
            at.number_input(key=key).set_value(page).run()
        seen += [c for img in at.image for c in img.captions if c in expected]
    assert sorted(set(seen)) == sorted(expected)
