"""The arithmetic of the class-activation maps (tf-keras-vis 0.8.7's formulas): Grad-CAM,
Grad-CAM++ and Layer-CAM from activations and gradients, fusing maps of several layers,
resampling, and scaling to 0..1. NumPy only; `serving.explain` runs the model."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np


def gradcam_map(acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """ReLU(sum_k mean_hw(G_k) * A_k) as (1, h, w)."""
    weights = grads.mean(axis=(1, 2), keepdims=True)
    return np.maximum((acts * weights).sum(axis=-1), 0.0)


def gradcam_plus_plus_map(acts: np.ndarray, grads: np.ndarray, score: float) -> np.ndarray:
    """Grad-CAM++ with exp(score) as the class score, as tf-keras-vis computes it; (1, h, w)."""
    first = np.exp(score) * grads
    second, third = first * grads, first * grads * grads
    denom = 2.0 * second + third * acts.sum(axis=(1, 2), keepdims=True)
    alphas = second / (denom + (second == 0.0))
    norm = alphas.sum(axis=(1, 2), keepdims=True)
    alphas = alphas / (norm + (norm == 0.0))
    weights = (np.maximum(first, 0.0) * alphas).sum(axis=(1, 2), keepdims=True)
    return np.maximum((weights * acts).sum(axis=-1), 0.0)


def layercam_map(acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """Layer-CAM: ReLU(sum_k ReLU(G_k) * A_k), elementwise, as (1, h, w)."""
    return np.maximum((acts * np.maximum(grads, 0.0)).sum(axis=-1), 0.0)


def fuse_maps(maps: list[np.ndarray], resolutions: list[int]) -> np.ndarray:
    """One (S, S) map from one per layer: a single map as it is; several as Layer-CAM fuses them
    (each divided by its maximum, tanh(2 m) on all but the coarsest, elementwise maximum)."""
    if len(maps) == 1:
        return maps[0]
    coarsest = int(np.argmin(resolutions))
    scaled = []
    for i, m in enumerate(maps):
        m = np.maximum(np.nan_to_num(m), 0.0)
        top = float(m.max())
        m = m / top if top > 0 else m
        scaled.append(m if i == coarsest else np.tanh(2.0 * m))
    return np.max(scaled, axis=0)


def expand_map(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(1, h, w) map -> (S, S) by linear interpolation (scipy's zoom, order 1, as tf-keras-vis).
    zoom itself, not the product of `interpolation_matrix` matrices it equals: on a loaded 2-core
    machine OpenBLAS threads made that product ~25 ms instead of 0.1 ms."""
    from scipy.ndimage import zoom

    factors = [s / n for n, s in zip(cam.shape[1:3], size, strict=True)]
    return zoom(cam[0], factors, order=1, mode="nearest")


def interpolation_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix of scipy's order-1 zoom along one axis (zoom is linear, so zooming
    the identity gives its weights): M @ v == zoom(v, n_out / n_in, order=1, mode="nearest")."""
    from scipy.ndimage import zoom

    return zoom(np.eye(n_in), (n_out / n_in, 1.0), order=1, mode="nearest")


def sigmoid(z: float) -> float:
    return float(1.0 / (1.0 + np.exp(-z)))


@contextlib.contextmanager
def quiet_warnings():
    """Silence the warnings tf-keras-vis triggers on every call: Keras 3 warns that it passes a
    list to a single-input model, scipy that tf-keras-vis imports a deprecated module."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"The structure of `inputs`", UserWarning)
        warnings.filterwarnings("ignore", message=r".*scipy\.ndimage\.interpolation.*")
        yield


def to_unit(values: np.ndarray) -> np.ndarray:
    """Min-max scale to 0..1 as float32 (NaN -> 0; a constant map -> zeros)."""
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(values.min()), float(values.max())
    if not hi > lo:
        return np.zeros(values.shape, dtype="float32")
    return np.clip((values - lo) / (hi - lo), 0.0, 1.0).astype("float32")
