"""How well a map finds a lesion: the box as a mask in the map's frame, the head mask, the
pointing game, the energy ratio and the top-10% share of one map; their `MEASURES` per slice,
averaged over slices and per group (source, source/sequence), and the `TARGETS` they meet
(evaluation.localise measures every method with them)."""

from __future__ import annotations

import numpy as np

from tumor_model.serving.maps import TARGETS, TOLERANCE, TOLERANCES

MEASURES = (*(f"pointing_{t}px" for t in TOLERANCES), "energy_ratio", "top10_in_box")


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


def top10_in_box(heat: np.ndarray, box: np.ndarray, head: np.ndarray) -> float:
    """The share of the map's top 10% pixels that fall inside the box: the head pixels whose
    value is at or above the 90th percentile of the map over the head (ties included, so the set
    can hold more than 10% of the head), counted inside the box over counted in all. A constant
    map (an empty one too) ties everywhere: its share is the box's share of the head, chance.
    NaN when the head is empty."""
    heat = np.asarray(heat, dtype="float64")
    if not head.any():
        return float("nan")
    top = head & (heat >= np.percentile(heat[head], 90))
    return float((top & box).sum()) / float(top.sum())


# ----------------------------------------------------------------------------- per slice, averaged


def slice_scores(heat: np.ndarray, one) -> tuple:
    """The `MEASURES` of one map on one `Slice`."""
    hits = (pointing(heat, one.box, t) for t in TOLERANCES)
    return (*hits, energy_ratio(heat, one.box, one.head), top10_in_box(heat, one.box, one.head))


def summarise(values) -> dict:
    """Scores averaged over slices from rows of `slice_scores` (NaN left out of the means)."""
    table = np.asarray(values, dtype="float64").reshape(-1, len(MEASURES))
    out: dict = {"n": len(table)}
    for i, key in enumerate(MEASURES):
        ok = table[:, i][np.isfinite(table[:, i])]
        digits = 4 if key != "energy_ratio" else 3
        out[key] = round(float(ok.mean()), digits) if ok.size else None
        if key == "energy_ratio":
            out["energy_ratio_median"] = round(float(np.median(ok)), 3) if ok.size else None
    return out


def groups_of_slice(one) -> list[str]:
    """The groups a slice is reported in: its source, and source/sequence when it has one."""
    return [one.source, *([f"{one.source}/{one.sequence}"] if one.sequence else [])]


def meets(scores: dict, with_latency: bool = True) -> dict:
    """Which of `TARGETS` the scores meet (a missing figure: not met)."""
    out = {
        "pointing": (scores.get(f"pointing_{TOLERANCE}px") or 0) >= TARGETS["pointing"],
        "energy_ratio": (scores.get("energy_ratio") or 0) >= TARGETS["energy_ratio"],
        "top10_in_box": (scores.get("top10_in_box") or 0) >= TARGETS["top10_in_box"],
    }
    if with_latency:
        out["latency_ms"] = (scores.get("latency_ms") or np.inf) <= TARGETS["latency_ms"]
    return out


def group_scores(found: tuple[list, list], slices) -> dict:
    """{group: scores and the targets they meet} of one configuration's (slice indices, values)
    on a half's slices, per source and per source/sequence (`groups_of_slice`)."""
    members: dict = {}
    for i, values in zip(*found, strict=True):
        for group in groups_of_slice(slices[i]):
            members.setdefault(group, []).append(values)
    out = {}
    for group in sorted(members):
        scores = summarise(members[group])
        out[group] = {**scores, "meets": meets(scores, with_latency=False)}
    return out
