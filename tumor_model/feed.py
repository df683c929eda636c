"""Input feeding that works on every Keras backend: in-memory arrays as `keras.utils.PyDataset`.

Training batches are shuffled each epoch (seeded); with duplicate groups an epoch shows one
random member of every group, groups in a new order each epoch. Training batches are full (the
remainder is dropped when there is more than one batch), so each device of a data-parallel run
gets an equal share. Augmentation is not done here: it runs inside the compiled training step
(`augment.training_model`).
"""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd


def group_members(groups) -> list[np.ndarray]:
    """Row indices of each group, groups in order of first appearance."""
    codes = pd.factorize(np.asarray(groups))[0]
    if len(codes) == 0:
        raise ValueError("group sampling needs at least one row, got an empty group list")
    order = np.argsort(codes, kind="stable")
    return np.split(order, np.cumsum(np.bincount(codes))[:-1])


class Batches(keras.utils.PyDataset):
    """Batches of (float32 features or pixels, float32 labels) from arrays held in memory.

    training=True: a new seeded order every epoch (with `groups`: one file per group per epoch)
    and full batches only; training=False: every row once, in order.
    """

    def __init__(self, x, y, batch_size: int, training: bool, groups=None, seed: int = 0):
        super().__init__()
        self.x, self.y = np.asarray(x), np.asarray(y).astype("float32")
        if len(self.x) != len(self.y):
            raise ValueError(f"{len(self.x)} inputs for {len(self.y)} labels")
        if len(self.y) == 0:
            raise ValueError("no rows to feed")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        if groups is not None:
            if not training:
                raise ValueError("groups sample training epochs; pass groups=None for evaluation")
            if len(groups) != len(self.y):
                raise ValueError(f"{len(groups)} groups for {len(self.y)} images")
            self.members = group_members(groups)
        else:
            self.members = None
        self.batch_size, self.training = int(batch_size), training
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    @property
    def per_epoch(self) -> int:
        """Rows one epoch draws from: groups when sampling by group, else rows."""
        return len(self.members) if self.members is not None else len(self.y)

    def on_epoch_end(self):
        if not self.training:
            self.order = np.arange(len(self.y))
        elif self.members is None:
            self.order = self.rng.permutation(len(self.y))
        else:
            picks = np.array([m[self.rng.integers(len(m))] for m in self.members])
            self.order = picks[self.rng.permutation(len(picks))]

    def __len__(self) -> int:
        n = len(self.order)
        if self.training and n > self.batch_size:
            return n // self.batch_size
        return -(-n // self.batch_size)

    def __getitem__(self, i: int):
        idx = self.order[i * self.batch_size : (i + 1) * self.batch_size]
        return self.x[idx].astype("float32"), self.y[idx]
