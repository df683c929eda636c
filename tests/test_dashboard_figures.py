"""Unit tests of tumor_model.dashboard.figures: each figure draws what it is given."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
from sklearn.metrics import roc_curve
from test_dashboard_dataset import summary  # noqa: F401 - fixtures
from test_dashboard_tables import block, history, test_frame  # noqa: F401

from tumor_model import metrics
from tumor_model.dashboard import dataset, evaluation, figures, tables


def test_confusion_figure_counts_and_rates():
    fig = figures.confusion_figure({"tp": 8, "fn": 2, "tn": 5, "fp": 5})
    heat = fig.data[0]
    np.testing.assert_allclose(heat.z, [[0.5, 0.5], [0.2, 0.8]])
    assert heat.text[1][1] == "8<br>80.0%"
    assert list(heat.x) == ["predicted no tumour", "predicted tumour"]


def test_curve_figures_mark_the_threshold(test_frame):  # noqa: F811
    rates = metrics.point_metrics(metrics.confusion(test_frame.label, test_frame.probability, 0.5))
    roc = figures.roc_figure(test_frame, 0.5, 0.9)
    assert isinstance(roc, go.Figure) and "AUC = 0.900" in roc.layout.title.text
    assert (roc.data[2].x[0], roc.data[2].y[0]) == pytest.approx(
        (1 - rates["specificity"], rates["sensitivity"])
    )
    fpr, tpr, _ = roc_curve(test_frame.label, test_frame.probability)
    np.testing.assert_allclose(roc.data[1].x, fpr)  # every point of the curve, none thinned out
    np.testing.assert_allclose(roc.data[1].y, tpr)
    pr = figures.pr_figure(test_frame, 0.5, None)
    assert "AP = n/a" in pr.layout.title.text
    assert pr.data[2].y[0] == pytest.approx(rates["precision"])
    assert pr.data[0].y[0] == pytest.approx(test_frame.label.mean())


def test_calibration_figure(test_frame):  # noqa: F811
    table = evaluation.calibration_table(test_frame)
    fig = figures.calibration_figure(table)
    assert len(fig.data) == 2 and list(fig.data[1].x) == list(table.mean_probability)
    model = fig.data[1]
    assert list(model.text) == [f"n={n}" for n in table.n]  # every bin says its size
    np.testing.assert_allclose(model.error_y.array, table.high - table.fraction_tumor)
    assert model.cliponaxis is False  # a marker at 0 or 1 is drawn whole
    assert fig.layout.xaxis.range[0] < 0 and fig.layout.xaxis.range[1] > 1
    assert fig.layout.yaxis.range[0] < 0 and fig.layout.yaxis.range[1] > 1


def test_fold_figure_in_percent():
    metrics = {"cv": {**block(accuracy=0.9), "fold_accuracy": [0.8, 1.0], "fold_size": [5, 7]}}
    fig = figures.fold_figure(tables.fold_table(metrics))
    assert list(fig.data[0].y) == pytest.approx([80, 100])


def test_history_figure_marks_the_chosen_epoch(history):  # noqa: F811
    fig = figures.history_figure(history)
    stars = [t for t in fig.data if t.name == "chosen (best val_loss)"]
    assert len(stars) == 3 and all(t.x[0] == 6 for t in stars)


def test_dataset_figures(summary, test_frame):  # noqa: F811
    assert len(figures.class_balance_figure(dataset.class_counts(test_frame)).data) == 2
    sizes = figures.size_figure(summary)
    assert len([t for t in sizes.data if isinstance(t, go.Box)]) == 6
    assert {t.name for t in sizes.data} == {"no tumour", "tumour"}
    formats = figures.category_figure(summary, "formats")
    png = next(t for t in formats.data if t.name == "PNG")
    assert list(png.y) == [0.0, 0.4]
    assert len(figures.category_figure({}, "modes").data) == 0
