"""Pictures of explanation maps: colormaps, a heatmap blended over its image, PNG bytes.

`colorize(heatmap, colormap)` paints a 0..1 map; `overlay(pixels, heatmap, alpha, colormap)`
blends it over the image (a map of another size is resized); `to_png(array)` encodes an image
or a map. The colormaps are built in (no matplotlib).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

__all__ = ["COLORMAPS", "colorize", "overlay", "to_png"]


def _jet(x: np.ndarray) -> np.ndarray:
    return np.stack([np.clip(1.5 - np.abs(4 * x - k), 0, 1) for k in (3, 2, 1)], axis=-1)


def _hot(x: np.ndarray) -> np.ndarray:
    return np.stack([np.clip(3 * x - k, 0, 1) for k in (0, 1, 2)], axis=-1)


def _anchors(hexes: str):
    """A colormap from evenly spaced hex colours (sampled from matplotlib's perceptual maps)."""
    rgb = np.array([[int(h[i : i + 2], 16) for i in (0, 2, 4)] for h in hexes.split()]) / 255.0
    grid = np.linspace(0, 1, len(rgb))

    def cmap(x: np.ndarray) -> np.ndarray:
        return np.stack([np.interp(x, grid, rgb[:, c]) for c in range(3)], axis=-1)

    return cmap


COLORMAPS = {
    "jet": _jet,
    "viridis": _anchors("440154 472c7a 3b518b 2c718e 21908d 27ad81 5cc863 aadc32 fde725"),
    "inferno": _anchors("000004 1f0c48 550f6d 88226a ba3655 e35933 f98c0a f9c932 fcffa4"),
    "magma": _anchors("000004 1c1044 4f127b 812581 b5367a e55064 fb8761 fec287 fcfdbf"),
    "hot": _hot,
}


def colorize(heatmap: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """uint8 RGB (H, W, 3) picture of a 0..1 map."""
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colormap {colormap!r}; choose one of {tuple(COLORMAPS)}")
    heat = np.clip(np.nan_to_num(np.asarray(heatmap, dtype="float32")), 0.0, 1.0)
    if heat.ndim != 2:
        raise ValueError(f"heatmap must be 2-D (H, W), got shape {heat.shape}")
    return (COLORMAPS[colormap](heat) * 255.0 + 0.5).astype(np.uint8)


def overlay(pixels, heatmap, alpha: float = 0.4, colormap: str = "jet") -> np.ndarray:
    """Blend the coloured heatmap over the image: (1 - alpha) * image + alpha * colour.

    `pixels`: (H, W, 3) or (H, W) image; a heatmap of another size is resized to it.
    Returns uint8 RGB (H, W, 3).
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)):
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    img = np.asarray(pixels)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"pixels must be (H, W, 3), got shape {img.shape}")
    img = np.clip(img[:, :, :3], 0, 255).astype("float32")
    heat = np.clip(np.nan_to_num(np.asarray(heatmap, dtype="float32")), 0.0, 1.0)
    if heat.ndim != 2:
        raise ValueError(f"heatmap must be 2-D (H, W), got shape {heat.shape}")
    if heat.shape != img.shape[:2]:
        resized = Image.fromarray(heat, "F").resize(img.shape[1::-1], Image.Resampling.BILINEAR)
        heat = np.clip(np.asarray(resized), 0.0, 1.0)
    colour = colorize(heat, colormap).astype("float32")
    out = (1.0 - float(alpha)) * img + float(alpha) * colour
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def to_png(array) -> bytes:
    """PNG bytes of a uint8 RGB/grey image, or of a float 0..1 map (stored as 8-bit grey)."""
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and float(np.nanmax(arr)) <= 1.0:
            arr = np.nan_to_num(arr) * 255.0
        arr = (np.clip(np.nan_to_num(arr), 0, 255) + 0.5).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f"to_png needs an (H, W), (H, W, 3) or (H, W, 4) array, got {arr.shape}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG")
    return buf.getvalue()
