"""Out-of-distribution guard on the model's pooled backbone features.

Features are projected on the top principal directions of the training features; the score adds
the whitened distance inside that subspace to the distance from it (what PCA cannot explain),
each scaled to 1 on typical training images. The warning threshold is a high quantile of the
validation scores, so nearly all in-distribution scans pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def fit(train_features: np.ndarray, components: int = 32) -> dict:
    """Parameters of the guard, from training features (n, d)."""
    x = np.asarray(train_features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 3:
        raise ValueError(f"need (n >= 3, d) training features, got shape {x.shape!r}")
    k = int(min(components, x.shape[1], len(x) - 1))
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    scale = s[:k] / np.sqrt(len(x) - 1) + 1e-8
    params = {
        "mean": mean,
        "basis": vt[:k],
        "scale": scale,
        "inside_ref": 1.0,
        "outside_ref": 1.0,
        "threshold": np.inf,
    }
    inside, outside = _parts(x, params)
    params["inside_ref"] = float(np.median(inside)) + 1e-8
    params["outside_ref"] = float(np.median(outside)) + 1e-8
    return params


def _parts(x: np.ndarray, params: dict):
    centred = np.asarray(x, dtype=np.float64) - params["mean"]
    coords = centred @ params["basis"].T
    inside = np.sqrt(np.mean((coords / params["scale"]) ** 2, axis=1))
    outside = np.linalg.norm(centred - coords @ params["basis"], axis=1)
    return inside, outside


def score(features: np.ndarray, params: dict) -> np.ndarray:
    """Distance of each feature row from the training distribution (about 2 on typical scans)."""
    x = np.atleast_2d(np.asarray(features, dtype=np.float64))
    if x.shape[1] != params["mean"].shape[0]:
        raise ValueError(
            f"features have {x.shape[1]} dims, the guard expects {params['mean'].shape[0]}"
        )
    inside, outside = _parts(x, params)
    return inside / params["inside_ref"] + outside / params["outside_ref"]


def calibrate(params: dict, val_features: np.ndarray, quantile: float = 0.99) -> dict:
    """Set the warning threshold to a quantile of validation scores (in-distribution scans)."""
    if not 0.5 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0.5, 1), got {quantile!r}")
    return {
        **params,
        "threshold": float(np.quantile(score(val_features, params), quantile)),
        "quantile": quantile,
    }


def save(params: dict, path: str | Path) -> None:
    np.savez(path, **{k: np.asarray(v) for k, v in params.items()})


def load(path: str | Path) -> dict:
    with np.load(path) as z:
        return {k: (z[k].item() if z[k].ndim == 0 else z[k]) for k in z.files}
