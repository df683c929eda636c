"""Out-of-distribution guard on the model's pooled backbone features.

The score is the Mahalanobis distance of a feature vector from the training features, with the
covariance shrunk towards its mean eigenvalue (`shrinkage`, Ledoit-Wolf style: the smallest
directions of the training cloud are where photos, noise and blank images land, and shrinkage
keeps them from dominating through noise), divided by the median training distance so that a
typical training scan scores about 1. The warning threshold is a high quantile of the VALIDATION
scores (`calibrate`), so nearly all in-distribution scans pass.

Why not the earlier "whitened distance in the top-32 PCA subspace + residual" score: on the
shipped MobileNetV2 features it let blank images (2.67 < threshold 2.85) and a synthetic outdoor
scene through, and natural photos cleared the threshold by only ~5%; the shrunk full Mahalanobis
distance separates them by 40% or more with ~1% of test-split scans flagged. Parameter files of the
earlier kind (no "version" key) are refused by `load`: rebuild the artifacts.

API: fit(train) -> params; calibrate(params, val) -> params with "threshold"; score(features,
params) -> distances; save(params, path) / load(path) (an .npz of arrays, no pickle).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

VERSION = 2
_KEYS = ("mean", "basis", "scale", "rest_scale", "ref", "threshold", "version")


def fit(train_features: np.ndarray, shrinkage: float = 0.01) -> dict:
    """Parameters of the guard from training features (n, d).

    The principal directions of the training cloud are modelled one by one; the directions
    beyond its rank (n <= d) share their mean (shrunk) variance. shrinkage: 0..1, weight of the
    mean eigenvalue mixed into every eigenvalue.
    """
    x = np.asarray(train_features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 3:
        raise ValueError(f"need (n >= 3, d) training features, got shape {x.shape!r}")
    if not 0.0 < shrinkage < 1.0:
        raise ValueError(f"shrinkage must be in (0, 1), got {shrinkage!r}")
    n, d = x.shape
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    eig = np.zeros(d)
    eig[: len(s)] = s**2 / (n - 1)  # directions beyond the rank have zero training variance
    eig = (1.0 - shrinkage) * eig + shrinkage * max(float(eig.mean()), 1e-12)
    k = len(s)
    params = {
        "version": VERSION,
        "mean": mean,
        "basis": vt[:k].astype(np.float32),
        "scale": np.sqrt(eig[:k]),
        "rest_scale": float(np.sqrt(eig[k:].mean())) if k < d else 1.0,
        "ref": 1.0,
        "threshold": np.inf,
    }
    params["ref"] = float(np.median(_distance(x, params))) or 1.0
    return params


def _distance(x: np.ndarray, params: dict) -> np.ndarray:
    centred = np.asarray(x, dtype=np.float64) - params["mean"]
    basis = np.asarray(params["basis"], dtype=np.float64)
    coords = centred @ basis.T
    inside = np.sum((coords / params["scale"]) ** 2, axis=1)
    rest = np.sum(centred**2, axis=1) - np.sum(coords**2, axis=1)  # what the basis misses
    outside = np.maximum(rest, 0.0) / float(params["rest_scale"]) ** 2
    return np.sqrt((inside + outside) / len(params["mean"]))


def score(features: np.ndarray, params: dict) -> np.ndarray:
    """Distance of each feature row from the training distribution (about 1 on typical scans)."""
    x = np.atleast_2d(np.asarray(features, dtype=np.float64))
    if x.shape[1] != params["mean"].shape[0]:
        raise ValueError(
            f"features have {x.shape[1]} dims, the guard expects {params['mean'].shape[0]}"
        )
    return _distance(x, params) / params["ref"]


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
    """Write the guard atomically (a temporary file renamed over `path`)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.npz")
    np.savez(tmp, **{k: np.asarray(v) for k, v in params.items()})
    os.replace(tmp, path)


def load(path: str | Path) -> dict:
    """Parameters saved by `save`; ValueError when a required array is missing or the file is
    of another version."""
    with np.load(path) as z:
        params = {k: (z[k].item() if z[k].ndim == 0 else z[k]) for k in z.files}
    missing = [k for k in _KEYS if k not in params]
    if missing or int(params["version"]) != VERSION:
        raise ValueError(f"{path} is not a version-{VERSION} OOD guard (missing {missing})")
    return params
