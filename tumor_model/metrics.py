"""Metrics with bootstrap confidence intervals, threshold choice and calibration."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from sklearn import metrics as skm

from tumor_model.artifacts import BREAKDOWNS, SEQUENCES, SOURCE_BLOCKS

POINT_METRICS = ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "precision", "f1")
SCORE_METRICS = ("roc_auc", "pr_auc", "brier", "ece")


def _check(labels, probs) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(labels, dtype=int), np.asarray(probs, dtype=float)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(
            f"labels and probabilities must be 1-D of one length, got {y.shape} {p.shape}"
        )
    if len(y) == 0:
        raise ValueError("no predictions to evaluate")
    if not set(np.unique(y)) <= {0, 1}:
        raise ValueError(f"labels must be 0/1, got {sorted(set(np.unique(y)))!r}")
    if np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
        raise ValueError("probabilities must lie in [0, 1]")
    return y, p


def confusion(labels, probs, threshold) -> dict:
    """Counts at `threshold`: a number, or one threshold per prediction (pooled CV folds)."""
    y, p = _check(labels, probs)
    pred = p >= np.asarray(threshold, dtype=float)
    return {
        "tp": int(np.sum(pred & (y == 1))),
        "fn": int(np.sum(~pred & (y == 1))),
        "tn": int(np.sum(~pred & (y == 0))),
        "fp": int(np.sum(pred & (y == 0))),
    }


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def point_metrics(c: dict) -> dict:
    tp, fn, tn, fp = c["tp"], c["fn"], c["tn"], c["fp"]
    precision, sensitivity = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    specificity = _ratio(tn, tn + fp)
    return {
        "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
        "balanced_accuracy": (sensitivity + specificity) / 2,  # nan unless both classes
        "sensitivity": sensitivity,
        "specificity": specificity,
        "precision": precision,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }


def expected_calibration_error(labels, probs, bins: int = 10) -> float:
    """Weighted mean |accuracy - confidence| over equal-width probability bins (of P(tumour))."""
    y, p = _check(labels, probs)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    err = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            err += inside.mean() * abs(y[inside].mean() - p[inside].mean())
    return float(err)


def score_metrics(y: np.ndarray, p: np.ndarray) -> dict:
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(skm.roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(skm.average_precision_score(y, p)) if both else float("nan"),
        "brier": float(np.mean((p - y) ** 2)),
        "ece": expected_calibration_error(y, p),
    }


def all_metrics(labels, probs, threshold) -> dict:
    y, p = _check(labels, probs)
    return {**point_metrics(confusion(y, p, threshold)), **score_metrics(y, p)}


def bootstrap(labels, probs, threshold, n: int = 1000, seed: int = 0) -> dict:
    """name -> {value, ci_low, ci_high}: percentile 95% intervals over n resamples."""
    y, p = _check(labels, probs)
    value = all_metrics(y, p, threshold)
    rng = np.random.default_rng(seed)
    thr = np.broadcast_to(np.asarray(threshold, dtype=float), y.shape)
    draws = {k: [] for k in value}
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        for k, v in all_metrics(y[idx], p[idx], thr[idx]).items():
            draws[k].append(v)
    return _intervals(value, draws)


def bootstrap_point_metrics(labels, probs, threshold, n: int = 1000, seed: int = 0) -> dict:
    """`bootstrap` of the point metrics only (name -> {value, ci_low, ci_high}): the resampled
    confusion counts come from one array operation, fast enough for a live threshold slider."""
    y, p = _check(labels, probs)
    pred = p >= np.asarray(threshold, dtype=float)
    cells = np.stack([pred & (y == 1), ~pred & (y == 1), ~pred & (y == 0), pred & (y == 0)])
    idx = np.random.default_rng(seed).integers(0, len(y), (n, len(y)))
    counts = cells[:, idx].sum(axis=2).T  # n x (tp, fn, tn, fp)
    resampled = [point_metrics(dict(zip(("tp", "fn", "tn", "fp"), c, strict=True))) for c in counts]
    value = point_metrics(confusion(y, p, threshold))
    return _intervals(value, {k: [m[k] for m in resampled] for k in value})


def _intervals(value: dict, draws: dict) -> dict:
    """name -> {value, ci_low, ci_high}: 2.5 and 97.5 percentiles of the defined draws."""
    out = {}
    for k, v in value.items():
        d = np.asarray(draws[k], dtype=float)
        d = d[~np.isnan(d)]
        lo, hi = np.percentile(d, [2.5, 97.5]) if d.size else (np.nan, np.nan)
        out[k] = {"value": float(v), "ci_low": float(lo), "ci_high": float(hi)}
    return out


def curves(labels, probs, points: int = 101) -> dict:
    """ROC and PR curve points (thinned) and a 10-bin reliability table."""
    y, p = _check(labels, probs)
    fpr, tpr, _ = skm.roc_curve(y, p)
    prec, rec, _ = skm.precision_recall_curve(y, p)
    keep = lambda a: np.unique(np.linspace(0, len(a) - 1, min(points, len(a))).astype(int))  # noqa: E731
    r, q = keep(fpr), keep(prec)
    return {
        "roc": {"fpr": fpr[r].tolist(), "tpr": tpr[r].tolist()},
        "pr": {"precision": prec[q].tolist(), "recall": rec[q].tolist()},
        "calibration": calibration_bins(y, p),
    }


def calibration_bins(labels, probs, bins: int = 10) -> list[dict]:
    """The reliability table: per non-empty equal-width bin of P(tumour), its edges, the number
    of predictions, their mean probability and the observed fraction of tumours."""
    y, p = _check(labels, probs)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    return [
        {
            "bin_low": float(edges[b]),
            "bin_high": float(edges[b + 1]),
            "n": int((which == b).sum()),
            "mean_probability": float(p[which == b].mean()),
            "fraction_tumor": float(y[which == b].mean()),
        }
        for b in range(bins)
        if (which == b).any()
    ]


def report(labels, probs, threshold, n_boot: int = 1000, seed: int = 0) -> dict:
    """Everything published for one set of predictions: metrics with CIs, confusion, curves."""
    y, p = _check(labels, probs)
    return {
        "n": int(len(y)),
        "n_tumor": int(y.sum()),
        "threshold": float(np.mean(threshold)),
        "metrics": bootstrap(y, p, threshold, n_boot, seed),
        "confusion": confusion(y, p, threshold),
        **curves(y, p),
    }


def group_level(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per duplicate group: mean probability, majority label (each group counted once)."""
    need = {"group", "label", "probability"}
    if not need <= set(frame.columns):
        raise ValueError(f"frame needs columns {sorted(need)}, has {sorted(frame.columns)}")
    return (
        frame.groupby("group")
        .agg(
            label=("label", lambda s: int(s.mode().iloc[0])),
            probability=("probability", "mean"),
            files=("label", "size"),
        )
        .reset_index()
    )


def choose_threshold(labels, probs) -> float:
    """Youden's J on validation: the threshold maximising sensitivity + specificity - 1."""
    y, p = _check(labels, probs)
    if len(np.unique(y)) < 2:
        return 0.5
    fpr, tpr, thr = skm.roc_curve(y, p)
    best = np.argmax(tpr - fpr)
    return float(np.clip(thr[best], 1e-6, 1 - 1e-6))


def fit_temperature(labels, probs) -> float:
    """Temperature T minimising validation log-loss of sigmoid(logit / T)."""
    y, p = _check(labels, probs)
    logit = np.log(np.clip(p, 1e-7, 1 - 1e-7) / np.clip(1 - p, 1e-7, 1))

    def nll(log_t):
        q = 1 / (1 + np.exp(-logit / np.exp(log_t)))
        q = np.clip(q, 1e-7, 1 - 1e-7)
        return -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))

    res = minimize_scalar(nll, bounds=(-3, 3), method="bounded")
    return float(np.exp(res.x))


def decide(labels, probs, calibrate: bool = True, threshold: float = -1.0) -> tuple[float, float]:
    """(temperature, threshold) from validation: temperature scaling if `calibrate`, then
    Youden's J on the calibrated probabilities unless a fixed threshold is given (-1: choose)."""
    temperature = fit_temperature(labels, probs) if calibrate else 1.0
    if threshold != -1.0:
        return temperature, float(threshold)
    return temperature, choose_threshold(labels, apply_temperature(probs, temperature))


def apply_temperature(probs, temperature: float) -> np.ndarray:
    p = np.clip(np.asarray(probs, dtype=float), 1e-7, 1 - 1e-7)
    return 1 / (1 + np.exp(-np.log(p / (1 - p)) / temperature))


ROW_METRICS = ("balanced_accuracy", "sensitivity", "specificity", "roc_auc", "ece")


def cv_rows(result: dict) -> list[dict]:
    """One flat row per CV block and per held-out source of `result` (cv_metrics' output or a
    metrics.json; the EXTERNAL block of `evaluate --save` too): what the CLI prints and the
    dashboard tabulates. A one-class source has only its rate (sensitivity or specificity)
    defined; the other metrics are None."""

    def row(name, block, **extra):
        values = {}
        for k in ROW_METRICS:
            v = block["metrics"].get(k, {}).get("value")
            values[k] = None if v is None or v != v else round(v, 4)
        rates = values["sensitivity"], values["specificity"]
        if values["balanced_accuracy"] is None and None not in rates:
            values["balanced_accuracy"] = round(sum(rates) / 2, 4)  # a block saved before it was
        return {"block": name, **extra, "files": block.get("n"), **values}

    out = []
    for key, block in result.items():
        if not isinstance(block, dict) or "metrics" not in block and key not in SOURCE_BLOCKS:
            continue
        if key in SOURCE_BLOCKS:
            held = ", ".join(block.get("held_out", ())) or "every source"  # or those named
            out.append(row(f"{key}: pooled", block["pooled"], held_out=held))
            for src, one in block["sources"].items():
                trained = ", ".join(one.get("trained_on") or ())
                out.append(row(key, one, held_out=src, trained_on=trained))
                for part in BREAKDOWNS:  # per sequence and institution, where files.csv gave them
                    word = "sequence" if part == SEQUENCES else "institution"
                    for value, sub in (one.get(part) or {}).items():
                        held = f"{src}, {word} {value}"
                        out.append(row(f"{key}: by {word}", sub, held_out=held, trained_on=trained))
                if "twin_absent" in one:
                    twin = one["twin_absent"]
                    out.append(
                        row(
                            f"{key}: twin absent",
                            twin,
                            held_out=src,
                            trained_on=", ".join(twin["trained_on"]),
                        )
                    )
        else:
            out.append(row(key, block, held_out=block.get("groups", "")))
            for src, one in block.get("by_source", {}).items():
                out.append(row(f"{key}: {src} rows", one, held_out=block.get("groups", "")))
    return out
