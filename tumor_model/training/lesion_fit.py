"""Training the lesion-map head (`serving.lesion.build_head`) on cached backbone features:
targets, loss and the fit. `evaluation.lesion_head` reads the slices, caches the features and
measures the result."""

from __future__ import annotations

import numpy as np

from tumor_model.serving.lesion import STRIDE, build_head


def mask_in_frame(mask: np.ndarray, placement) -> np.ndarray:
    """bool (S, S): a mask on the original image's grid seen in the prepared square (nearest
    neighbour through the image's `geometry.Placement`; what was cropped away is empty)."""
    size = placement.size
    centres = np.arange(size) + 0.5
    xs = (centres - placement.offset[0]) / placement.scale[0]
    ys = (centres - placement.offset[1]) / placement.scale[1]
    left, top, right, bottom = placement.crop
    ok_x, ok_y = (xs >= left) & (xs < right), (ys >= top) & (ys < bottom)
    ix = np.clip(np.floor(xs).astype(int), 0, mask.shape[1] - 1)
    iy = np.clip(np.floor(ys).astype(int), 0, mask.shape[0] - 1)
    return mask[np.ix_(iy, ix)] & np.outer(ok_y, ok_x)


def grid_target(mask: np.ndarray | None, size: int) -> np.ndarray:
    """float32 (size / STRIDE, size / STRIDE, 1): the share of each grid cell the (S, S) lesion
    mask covers (a soft target); zeros for None (a slice without a lesion)."""
    grid = size // STRIDE
    if mask is None:
        return np.zeros((grid, grid, 1), "float32")
    cells = mask[: grid * STRIDE, : grid * STRIDE].reshape(grid, STRIDE, grid, STRIDE)
    return cells.mean(axis=(1, 3))[..., None].astype("float32")


def dice_bce(y_true, y_pred):
    """Binary cross-entropy plus one minus the batch's soft Dice."""
    from keras import ops

    bce = ops.mean(ops.binary_crossentropy(y_true, y_pred))
    inter = ops.sum(y_true * y_pred)
    dice = (2.0 * inter + 1.0) / (ops.sum(y_true) + ops.sum(y_pred) + 1.0)
    return bce + 1.0 - dice


def fit(features: list[np.ndarray], targets: np.ndarray, epochs: int, seed: int, batch: int = 32):
    """(head, loss per epoch): a new head trained with Adam (1e-3) on `features` (one array per
    layer, float16 or float32) against `targets` (n, grid, grid, 1), in shuffled batches."""
    import keras

    n = len(targets)
    if n < 2 or any(len(f) != n for f in features):
        raise ValueError(f"need matching features and targets for >= 2 slices, got {n}")
    keras.utils.set_random_seed(seed)
    head = build_head([f.shape[1:] for f in features])
    head.compile(optimizer=keras.optimizers.Adam(1e-3), loss=dice_bce)
    size = min(batch, n)
    rng = np.random.default_rng(seed)

    def batches():
        while True:
            order = rng.permutation(n)
            for start in range(0, n - size + 1, size):
                rows = np.sort(order[start : start + size])
                yield tuple(f[rows].astype("float32") for f in features), targets[rows]

    history = head.fit(batches(), steps_per_epoch=n // size, epochs=epochs, verbose=0)
    return head, [round(float(v), 4) for v in history.history["loss"]]


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two boolean masks (1.0 when both are empty)."""
    total = int(pred.sum()) + int(truth.sum())
    return 1.0 if total == 0 else 2.0 * float((pred & truth).sum()) / total


def best_threshold(maps: list[np.ndarray], masks: list[np.ndarray], grid=None) -> float:
    """The pixel threshold (0.1..0.9) with the highest mean Dice over (map, mask) pairs: chosen
    on validation slices, never on the slices it is reported on."""
    grid = grid if grid is not None else np.round(np.arange(0.1, 0.91, 0.05), 2)
    if not maps:
        return 0.5
    means = [np.mean([dice(m >= t, k) for m, k in zip(maps, masks, strict=True)]) for t in grid]
    return float(grid[int(np.argmax(means))])
