"""Out-of-distribution guard: is this upload a brain-MRI slice at all?

Two parts, each named in the verdict's reason when it fires:

1. Image checks (`image_checks`), cheap and explainable, on the loaded image: brain-MRI slices
   are grey (`colour`), have hundreds of grey levels (`grey levels`: drawings, charts, blank
   images and flat phantoms have a few) and no single grey level covers most of the picture
   (`one level`: blank images, text pages). Their limits (`LIMITS`) sit well outside what the
   shared MRI sources show (docs/reliability.md, "Not a brain-MRI slice").
2. The feature guard (`fit` / `calibrate` / `score`): the Mahalanobis distance of the model's
   pooled backbone features from the training features, with the covariance shrunk towards its
   mean eigenvalue (Ledoit-Wolf style: the thin directions of the training cloud are where
   photos, noise and blank images land, and shrinkage keeps noise from dominating them). The
   `components` leading directions are modelled one by one, the rest share their mean variance
   (so ood.npz stays small). Scores are divided by the median training distance (a typical
   training scan scores about 1). The threshold is, per source, a high quantile of that source's
   VALIDATION scores, and the largest of them is used: nearly all in-distribution scans of every
   source the guard was fitted on pass. `source_of` names a table row's source.

A scan is treated as a brain-MRI slice when no image check fires and its feature score is at or
below the threshold (`assess`). What it costs and catches per source and per kind of non-MRI
image: benchmarks/ood_rates.py.

Parameter files of other versions (earlier ones had no "components" / per-source thresholds)
are refused by `load` with the command that rebuilds them.

API: image_checks(image) -> {check: reason}; fit(train) -> params; calibrate(params, val,
groups) -> params with "threshold"; score(features, params) -> distances; assess(checks, score,
params) -> Assessment; save(params, path) / load(path) (an .npz of arrays, no pickle);
held_out(artifacts, data_root, params) -> {source: [files]} the guard was not fitted on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

VERSION = 3
REFIT = "neuroscan refit-guard --artifacts DIR --data-dir ROOT ..."
_KEYS = ("mean", "basis", "scale", "rest_scale", "ref", "threshold", "version", "sources")

# Image checks: (limit, what it means). Measured on the shared sources (docs/reliability.md).
LIMITS = {
    "colour": 0.05,  # share of pixels whose channels differ by > CHROMA: MRI slices are grey
    "grey levels": 32,  # fewer distinct grey levels than this: drawing, chart, blank, phantom
    "one level": 0.85,  # share of the image in its most common grey level: blank, text page
}
CHROMA = 30  # channel spread (0-255) of a "coloured" pixel; JPEG tints of grey stay below
CHECK_SIDE = 256  # the checks look at the image shrunk (nearest neighbour) to this side
NOT_MRI = "does not look like a brain-MRI slice"


def image_checks(image: Image.Image) -> dict[str, str]:
    """{check name: reason} of every image check that fires on `image` (empty: all pass)."""
    img = image if image.mode == "RGB" else image.convert("RGB")
    if max(img.size) > CHECK_SIDE:  # nearest neighbour: no new grey levels or colours
        scale = CHECK_SIDE / max(img.size)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.NEAREST)
    rgb = np.asarray(img)  # uint8; channel by channel, much faster than max/min over axis 2
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    spread = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)
    grey = np.asarray(img.convert("L"))
    fired = {}
    coloured = float(np.mean(spread > CHROMA))
    if coloured > LIMITS["colour"]:
        fired["colour"] = f"a colour image ({coloured:.0%} of its pixels are coloured)"
    counts = np.bincount(grey.ravel(), minlength=256)
    levels = int(np.count_nonzero(counts))
    if levels < LIMITS["grey levels"]:
        fired["grey levels"] = (
            f"only {levels} grey level{'s' * (levels != 1)} (a slice has hundreds)"
        )
    top = float(counts.max() / counts.sum())
    if top > LIMITS["one level"]:
        fired["one level"] = f"{top:.0%} of the image is one grey level"
    return fired


# ----------------------------------------------------------------------------- feature guard


def fit(train_features: np.ndarray, shrinkage: float = 0.01, components: int = 256) -> dict:
    """Parameters of the feature guard from training features (n, d).

    The `components` leading principal directions of the training cloud are modelled one by
    one; the other directions share their mean (shrunk) variance. shrinkage: 0..1, weight of the
    mean eigenvalue mixed into every eigenvalue.
    """
    x = np.asarray(train_features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 3:
        raise ValueError(f"need (n >= 3, d) training features, got shape {x.shape!r}")
    if not 0.0 < shrinkage < 1.0:
        raise ValueError(f"shrinkage must be in (0, 1), got {shrinkage!r}")
    if isinstance(components, bool) or not isinstance(components, int) or components < 1:
        raise ValueError(f"components must be a positive integer, got {components!r}")
    n, d = x.shape
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    eig = np.zeros(d)
    eig[: len(s)] = s**2 / (n - 1)  # directions beyond the rank have zero training variance
    eig = (1.0 - shrinkage) * eig + shrinkage * max(float(eig.mean()), 1e-12)
    k = min(components, len(s))
    params = {
        "version": VERSION,
        "mean": mean.astype(np.float32),
        "basis": vt[:k].astype(np.float32),
        "scale": np.sqrt(eig[:k]),
        "rest_scale": float(np.sqrt(eig[k:].mean())) if k < d else 1.0,
        "ref": 1.0,
        "threshold": np.inf,
        "sources": np.array([], dtype=str),
    }
    params["ref"] = float(np.median(_distance(x, params))) or 1.0
    return params


def _distance(x: np.ndarray, params: dict) -> np.ndarray:
    centred = np.asarray(x, dtype=np.float64) - np.asarray(params["mean"], dtype=np.float64)
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


def calibrate(params: dict, val_features: np.ndarray, groups=None, quantile: float = 0.99) -> dict:
    """Set the threshold: the largest, over `groups` (e.g. the rows' sources; None: one group),
    of the `quantile` of that group's validation scores (in-distribution scans)."""
    if not 0.5 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0.5, 1), got {quantile!r}")
    scores = score(val_features, params)
    groups = np.full(len(scores), "all") if groups is None else np.asarray(groups, dtype=str)
    if len(groups) != len(scores):
        raise ValueError(f"{len(scores)} validation rows but {len(groups)} groups")
    names = sorted(set(groups.tolist()))
    per = np.array([np.quantile(scores[groups == g], quantile) for g in names])
    return {
        **params,
        "threshold": float(per.max()),
        "quantile": quantile,
        "sources": np.array(names, dtype=str),
        "source_thresholds": per,
    }


@dataclass(frozen=True)
class Assessment:
    """The guard's verdict on one scan: is_mri, the checks that fired (feature guard:
    "features") and a readable reason (None when it is a brain-MRI slice)."""

    is_mri: bool
    checks: tuple[str, ...]
    reason: str | None


def assess(checks: dict[str, str], feature_score: float, params: dict | None) -> Assessment:
    """Combine the image checks that fired (`image_checks`) and the feature score."""
    fired = dict(checks)
    limit = float(params["threshold"]) if params is not None else np.inf
    if feature_score > limit:
        fired["features"] = (
            f"its features are unlike the brain MRIs the guard was fitted on "
            f"(distance {feature_score:.2f} > {limit:.2f})"
        )
    if not fired:
        return Assessment(True, (), None)
    return Assessment(False, tuple(fired), f"{NOT_MRI}: " + "; ".join(fired.values()))


# ----------------------------------------------------------------------------- files


def save(params: dict, path: str | Path) -> None:
    """Write the guard atomically (a temporary file renamed over `path`)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.npz")
    np.savez(tmp, **{k: np.asarray(v) for k, v in params.items()})
    os.replace(tmp, path)


def load(path: str | Path) -> dict:
    """Parameters saved by `save`; ValueError when a required array is missing or the file is
    of another version (with the command that rebuilds it)."""
    with np.load(path) as z:
        params = {k: (z[k].item() if z[k].ndim == 0 else z[k]) for k in z.files}
    missing = [k for k in _KEYS if k not in params]
    version = params.get("version")
    if missing or version is None or int(version) != VERSION:
        raise ValueError(
            f"{path} is not a version-{VERSION} OOD guard (version {version}, missing "
            f"{missing}): refit it with `{REFIT}`"
        )
    return params
