"""The Evaluation page's tables (no Streamlit here): the test rows, threshold metrics with
bootstrap CIs (computed by `tumor_model.metrics`), the reliability table and the gallery rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tumor_model import artifacts
from tumor_model.config import CLASS_NAMES
from tumor_model.dashboard.tables import SHOWN, metric_items
from tumor_model.metrics import (
    POINT_METRICS,
    SCORE_METRICS,
    bootstrap_point_metrics,
    calibration_bins,
    group_level,
    score_metrics,
)


def default_threshold(card: dict | None, metrics: dict | None) -> float:
    """The model's decision threshold: the card's, else the test block's, else 0.5."""
    for source in (card or {}, (metrics or {}).get(artifacts.TEST) or {}):
        if isinstance(source.get("threshold"), (int, float)):
            return float(source["threshold"])
    return 0.5


def test_rows(predictions: pd.DataFrame) -> pd.DataFrame:
    return predictions[predictions.split == "test"].reset_index(drop=True)


def level(test: pd.DataFrame, groups: bool) -> pd.DataFrame:
    """File level as is, or one row per duplicate group (mean probability, majority label)."""
    return group_level(test) if groups else test


def threshold_metrics(frame: pd.DataFrame, threshold: float, n_boot: int = 1000, seed: int = 0):
    """Point metrics at `threshold` with 95% percentile bootstrap CIs (rows resampled)."""
    return bootstrap_point_metrics(frame.label, frame.probability, threshold, n_boot, seed)


def stored_point_items(block: dict | None, threshold: float, model_threshold: float):
    """metrics.json's point metrics with their 95% CIs when `threshold` is the model's and the
    block was measured there (one source for every page), else None: the page then recomputes
    them for the threshold the user moved (`threshold_metrics`)."""
    items = metric_items(block)
    stored = {n: items[n] for n in POINT_METRICS if n in items}
    measured_at = (block or {}).get("threshold", model_threshold)
    same = abs(float(threshold) - float(model_threshold)) < 1e-9
    if same and stored and abs(float(measured_at) - float(model_threshold)) < 1e-9:
        return stored
    return None


def score_items(block: dict | None, frame: pd.DataFrame) -> dict:
    """Threshold-free metrics: metrics.json values with CIs, else computed without CI."""
    items = metric_items(block)
    names = [n for n in SCORE_METRICS if n in items]
    if names:
        return {n: items[n] for n in names}
    scores = score_metrics(frame.label.to_numpy(int), frame.probability.to_numpy(float))
    return {n: {"value": v} for n, v in scores.items()}


def calibration_table(frame: pd.DataFrame, z: float = 1.96) -> pd.DataFrame:
    """The reliability table of `frame` (metrics.calibration_bins: the 10 equal-width bins the
    ECE uses) with each bin's size `n` and a 95% Wilson interval of its observed fraction
    (`low`, `high`), so a bin of three images reads as the guess it is."""
    bins = calibration_bins(frame.label, frame.probability)
    columns = ["bin_low", "bin_high", "n", "mean_probability", "fraction_tumor"]
    table = pd.DataFrame(bins, columns=columns)
    n, f = table.n.to_numpy(float), table.fraction_tumor.to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = (f + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(f * (1 - f) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return table.assign(low=np.clip(centre - half, 0, 1), high=np.clip(centre + half, 0, 1))


def gallery_rows(test: pd.DataFrame, threshold: float, k: int = 8) -> dict:
    """Every misclassified test file (most confident error first) and the k least-confident
    test files (one per duplicate group), each with 'file', 'truth', 'predicted' and 'caption'."""
    predicted = (test.probability >= threshold).astype(int)
    frame = test.assign(
        margin=(test.probability - threshold).abs(),
        file=[Path(str(p)).name for p in test.path],
        truth=[SHOWN[CLASS_NAMES[int(v)]] for v in test.label],
        predicted=[SHOWN[CLASS_NAMES[int(v)]] for v in predicted],
        predicted_label=predicted,
    )
    frame["caption"] = [
        f"{f} · truth {t} / predicted {q} · p={v:.3f}"
        for f, t, q, v in zip(
            frame.file, frame.truth, frame.predicted, frame.probability, strict=True
        )
    ]
    wrong = frame[predicted != test.label].sort_values(["margin", "path"], ascending=[False, True])
    least = frame.sort_values(["margin", "path"]).drop_duplicates("group").head(k)
    return {"misclassified": wrong.reset_index(drop=True), "least confident": least}
