"""How well a map finds a lesion: the box as a mask in the map's frame, the head mask, the
pointing game and the energy ratio (evaluation.localise measures every method with them)."""

from __future__ import annotations

import numpy as np


def box_mask(placement, width: int, height: int, row) -> np.ndarray:
    """bool (S, S): the map's pixels that overlap the box of `row` (fractions of an original
    image width x height px), mapped through `placement` (from `geometry.prepare_placed`)."""
    x, y, w, h = (float(row[k]) for k in ("x_center", "y_center", "width", "height"))
    x0, y0, x1, y1 = placement.box(
        (x - w / 2) * width, (y - h / 2) * height, (x + w / 2) * width, (y + h / 2) * height
    )
    size = placement.size
    mask = np.zeros((size, size), dtype=bool)
    c0, r0 = int(np.floor(x0)), int(np.floor(y0))
    c1, r1 = max(int(np.ceil(x1)), c0 + 1), max(int(np.ceil(y1)), r0 + 1)
    mask[min(r0, size - 1) : min(r1, size), min(c0, size - 1) : min(c1, size)] = True
    return mask


def head_mask(pixels: np.ndarray) -> np.ndarray:
    """bool (S, S): the prepared image's non-background pixels, holes filled."""
    from scipy.ndimage import binary_fill_holes

    from tumor_model.io.geometry import foreground_mask

    return binary_fill_holes(foreground_mask(pixels))


def pointing(heat: np.ndarray, box: np.ndarray, tolerance: float = 0) -> bool:
    """The map's peak (first maximum) lies within `tolerance` px of the box; an empty map
    (no positive value) points nowhere."""
    if not box.any() or float(heat.max()) <= 0:
        return False
    r, c = np.unravel_index(int(np.argmax(heat)), heat.shape)
    rows, cols = np.flatnonzero(box.any(axis=1)), np.flatnonzero(box.any(axis=0))
    dy = max(int(rows[0]) - r, 0, r - int(rows[-1]))
    dx = max(int(cols[0]) - c, 0, c - int(cols[-1]))
    return bool(np.hypot(dx, dy) <= tolerance)


def energy_ratio(heat: np.ndarray, box: np.ndarray, head: np.ndarray) -> float:
    """(map energy inside the box / all map energy) / (|box & head| / |head|); 0 for an empty
    map, NaN when the box misses the head."""
    heat = np.maximum(np.asarray(heat, dtype="float64"), 0.0)
    share = float((box & head).sum()) / max(float(head.sum()), 1.0)
    if share <= 0:
        return float("nan")
    total = float(heat.sum())
    return 0.0 if total <= 0 else float(heat[box].sum()) / total / share
