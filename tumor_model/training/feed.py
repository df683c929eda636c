"""Input feeding that works on every Keras backend: in-memory arrays as `keras.utils.PyDataset`.

Training batches are shuffled each epoch (seeded); with duplicate groups an epoch shows one
random member of every group, groups in a new order each epoch. With `strata` (each row's
source) an epoch draws the same number of rows from every stratum: a small source is shown
more than once, a large one in part (a source-balanced sampler). With `mixup` a training batch
mixes each row with another of the same batch, inputs and labels alike (Zhang et al. 2018).
Training batches are full (the remainder is dropped when there is more than one batch), so each
device of a data-parallel run gets an equal share. Augmentation is not done here: it runs
inside the compiled training step (`augment.training_model`), after the mixing.
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

    training=True: a new seeded order every epoch (with `groups`: one file per group per epoch;
    with `strata`: as many rows of every stratum) and full batches only, mixed when `mixup` > 0
    (the mixing weight of a row drawn from Beta(mixup, mixup)); training=False: every row once,
    in order, never mixed.
    """

    def __init__(
        self, x, y, batch_size: int, training: bool, groups=None, seed: int = 0,
        strata=None, mixup: float = 0.0,
    ):  # fmt: skip
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
        if (strata is not None or mixup) and not training:
            raise ValueError(
                "strata and mixup shape training epochs; evaluation rows are fed as they are"
            )
        if strata is not None:
            strata = np.asarray(strata)
            if len(strata) != len(self.y):
                raise ValueError(f"{len(strata)} strata for {len(self.y)} images")
        if not mixup >= 0.0:
            raise ValueError(
                f"mixup (the Beta distribution's alpha; 0 = off) must be >= 0, got {mixup!r}"
            )
        self.strata, self.mixup = strata, float(mixup)
        self.batch_size, self.training = int(batch_size), training
        self.seed, self.epoch = seed, 0
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    @property
    def per_epoch(self) -> int:
        """Rows one epoch draws from: groups when sampling by group, else rows."""
        return len(self.members) if self.members is not None else len(self.y)

    def on_epoch_end(self):
        self.epoch += 1
        if not self.training:
            self.order = np.arange(len(self.y))
            return
        if self.members is None:
            picks = np.arange(len(self.y))
        else:
            picks = np.array([m[self.rng.integers(len(m))] for m in self.members])
        if self.strata is not None:
            picks = self._balanced(picks)
        self.order = picks[self.rng.permutation(len(picks))]

    def _balanced(self, picks: np.ndarray) -> np.ndarray:
        """The same number of `picks` from every stratum, as many in all as `picks`: each
        stratum's rows in a new order, repeated when it has fewer than its share."""
        names = np.unique(self.strata[picks])
        share = max(1, len(picks) // len(names))
        drawn = []
        for name in names:
            rows = picks[self.strata[picks] == name]
            laps = -(-share // len(rows))
            drawn.append(np.concatenate([self.rng.permutation(rows) for _ in range(laps)])[:share])
        return np.concatenate(drawn)

    def __len__(self) -> int:
        n = len(self.order)
        if self.training and n > self.batch_size:
            return n // self.batch_size
        return -(-n // self.batch_size)

    def __getitem__(self, i: int):
        idx = self.order[i * self.batch_size : (i + 1) * self.batch_size]
        x, y = self.x[idx].astype("float32"), self.y[idx]
        if not self.mixup:
            return x, y
        # seeded by (seed, epoch, batch), so a batch is the same whichever order it is asked for
        rng = np.random.default_rng((self.seed, self.epoch, i))
        lam = rng.beta(self.mixup, self.mixup, len(idx)).astype("float32")
        other = rng.permutation(len(idx))
        shape = (-1,) + (1,) * (x.ndim - 1)
        w = lam.reshape(shape)
        return w * x + (1 - w) * x[other], lam * y + (1 - lam) * y[other]
