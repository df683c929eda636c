"""The anchor set `adapt` retrains on: pool features of a sample of the training rows, shipped
as anchor.npz beside the model (`neuroscan anchor` writes it for an older model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tumor_model.artifacts import ANCHOR, ArtifactError
from tumor_model.training import data

ANCHOR_ROWS = 3000  # training rows kept as anchor features (float16: about 8 MB at 1280 dims)


def anchor_rows(table: pd.DataFrame, n: int = ANCHOR_ROWS, seed: int = 0) -> np.ndarray:
    """Indices of up to `n` training rows: one file per duplicate group first, then shares of
    (source, class) kept as they are in the training split."""
    train = table[table.split == "train"].drop_duplicates("group")
    if len(train) > n:
        keys = data.sources(train) + ":" + train.label.astype(str)
        train = train.groupby(keys, group_keys=False).sample(frac=n / len(train), random_state=seed)
    return np.sort(train.index.to_numpy())


def save_anchor(path, features: np.ndarray, table: pd.DataFrame) -> None:
    """The anchor set (features float16, labels, sources) as an .npz, written atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez_compressed(
        tmp,
        features=np.asarray(features, np.float16),
        labels=table.label.to_numpy(np.int8),
        sources=data.sources(table).to_numpy(str),
    )
    tmp.replace(path)


def load_anchor(folder) -> tuple[np.ndarray, np.ndarray]:
    """(features float32, labels) of `folder`/anchor.npz; ArtifactError when missing or bad."""
    path = Path(folder) / ANCHOR
    if not path.is_file():
        raise ArtifactError(folder, ANCHOR, "is missing (the model was trained before `adapt`)")
    try:
        with np.load(path) as z:
            x, y = z["features"].astype(np.float32), z["labels"].astype(int)
    except (OSError, ValueError, KeyError) as err:
        raise ArtifactError(folder, ANCHOR, f"is unreadable ({err})") from err
    if x.ndim != 2 or len(x) != len(y) or set(np.unique(y)) != {0, 1}:
        raise ArtifactError(
            folder, ANCHOR, f"is inconsistent (features {x.shape}, {len(y)} labels)"
        )
    return x, y
