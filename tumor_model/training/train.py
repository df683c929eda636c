"""The training recipe: head on cached frozen features, then optional fine-tuning, then the
temperature and threshold chosen on validation.

Written against `keras` alone, so it runs on TensorFlow or JAX (`KERAS_BACKEND=jax`) and on one
or several devices (`distribute.Devices`). Phase 1 trains the head on cached frozen-base
features (seconds). Phase 2 unfreezes the top backbone layers and fits the model behind the
augmenter on in-memory pixels. The evaluations (CVs, the report's protocol, the shortcut check)
live in `crossval` and `protocols`; `pipeline` runs the whole `train` command.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import pandas as pd

from tumor_model import metrics
from tumor_model.artifacts import HISTORY_COLUMNS
from tumor_model.config import Settings
from tumor_model.model import build_model, fold_temperature, input_size, set_fine_tune
from tumor_model.progress import log
from tumor_model.training import data, features
from tumor_model.training.augment import training_model
from tumor_model.training.distribute import Devices
from tumor_model.training.feed import Batches


class EpochTimer(keras.callbacks.Callback):
    """Adds each epoch's wall time and learning rate to the logs (history.csv columns)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs["seconds"] = time.perf_counter() - self.start
        logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def compile_model(model: keras.Model, lr: float, label_smoothing: float = 0.0) -> None:
    loss = "binary_crossentropy"  # the recipe's; an object only when smoothing is asked for
    if label_smoothing:
        loss = keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=loss,
        metrics=["accuracy", keras.metrics.AUC(name="auc")],
    )


def class_weights(labels: np.ndarray, enabled: bool) -> dict | None:
    if not enabled:
        return None
    counts = np.bincount(labels, minlength=2)
    if not counts.all():
        raise ValueError(f"class weights need both classes in train, got counts {counts.tolist()}")
    return {i: len(labels) / (2.0 * c) for i, c in enumerate(counts)}


def fit_epochs(model, train: Batches, val: Batches, epochs, settings, weights, phase, verbose=2):
    """`model.fit` with early stopping on validation loss (best epoch restored): history rows."""
    stop = keras.callbacks.EarlyStopping(
        "val_loss", patience=settings.patience, restore_best_weights=True
    )
    hist = model.fit(
        train,
        validation_data=val,
        epochs=epochs,
        class_weight=weights,
        callbacks=[EpochTimer(), stop],
        verbose=verbose,
        shuffle=False,  # Batches orders the rows itself (seeded); Keras would also permute batches
    )
    frame = pd.DataFrame(hist.history)
    frame.insert(0, "epoch", np.arange(1, len(frame) + 1))
    frame.insert(1, "phase", phase)
    return frame.reindex(columns=HISTORY_COLUMNS)


def train_head(head, x, y, is_train, is_val, settings, verbose=2, sources=None) -> pd.DataFrame:
    """Phase 1: the head alone on cached features. `sources`: each row's source, which
    `settings.balance_sources` needs."""
    compile_model(head, settings.head_lr, settings.label_smoothing)
    batch = settings.batch_size
    strata = None
    if settings.balance_sources:
        if sources is None:
            raise ValueError("balance_sources needs each row's source; none were given")
        strata = np.asarray(sources)[is_train]
    return fit_epochs(
        head,
        Batches(
            x[is_train],
            y[is_train],
            batch,
            training=True,
            seed=settings.seed,
            strata=strata,
            mixup=settings.mixup,
        ),
        Batches(x[is_val], y[is_val], batch, training=False),
        settings.head_epochs,
        settings,
        class_weights(y[is_train], settings.class_weights),
        "head",
        verbose=verbose,
    )


def row_sources(table: pd.DataFrame, settings: Settings):
    """Each row's source when the recipe balances sources (what `Batches` strata need), else
    None: tables without a source or root column train as they always did."""
    return data.sources(table).to_numpy() if settings.balance_sources else None


def fine_tune(model, table: pd.DataFrame, settings: Settings, verbose=2) -> pd.DataFrame:
    """Phase 2: unfreeze the top N backbone layers; low learning rate; augmented pixels (with
    sample_groups one file per duplicate group per epoch)."""
    size = input_size(settings)
    train, val = table[table.split == "train"], table[table.split == "val"]
    groups = train.group.to_numpy() if settings.sample_groups else None
    feed = Batches(
        features.load_pixels(train, size, settings.geometry),
        train.label.to_numpy(),
        settings.batch_size,
        training=True,
        groups=groups,
        seed=settings.seed,
        strata=row_sources(train, settings),
        mixup=settings.mixup,
    )
    val_feed = Batches(
        features.load_pixels(val, size, settings.geometry),
        val.label.to_numpy(),
        settings.batch_size,
        training=False,
    )
    set_fine_tune(model, settings.fine_tune_layers)
    trainer = training_model(model, settings)
    compile_model(trainer, settings.fine_tune_lr, settings.label_smoothing)
    shown = train.drop_duplicates("group") if settings.sample_groups else train
    if settings.sample_groups:  # the weights follow what an epoch shows: one file per group
        log(f"fine-tuning epochs: one file of each of {len(shown)} train duplicate groups")
    return fit_epochs(
        trainer,
        feed,
        val_feed,
        settings.fine_tune_epochs,
        settings,
        class_weights(shown.label.to_numpy(), settings.class_weights),
        "fine_tune",
        verbose=verbose,
    )


def predict_pixels(model, table, settings, batch: int = 64, pooled: bool = False):
    """Full-model probabilities for every row of `table` (what the shipped model says);
    with pooled=True also the pool-layer features the OOD guard uses: (probs, pooled)."""
    both = keras.Model(model.input, [model.output, model.get_layer("pool").output])
    probs, pools = [], []
    for start in range(0, len(table), batch * 4):
        chunk = table.iloc[start : start + batch * 4]
        pix = features.load_pixels(chunk, input_size(settings), settings.geometry)
        p, f = both.predict(pix.astype("float32"), batch_size=batch, verbose=0)
        probs.append(p.ravel())
        pools.append(f)
    if not probs:
        return (np.zeros(0), np.zeros((0, 0))) if pooled else np.zeros(0)
    return (np.concatenate(probs), np.concatenate(pools)) if pooled else np.concatenate(probs)


def fit(settings: Settings, table: pd.DataFrame, x: np.ndarray, devices: Devices | None = None):
    """Build a fresh model, train the head (and fine-tune), pick temperature and threshold on
    validation, fold the temperature into the model. `x`: frozen features of `table`'s rows.
    Returns (model, head, history, temperature, threshold)."""
    devices = devices or Devices(settings)
    with devices.scope():
        model, _, head = build_model(settings)
    y = table.label.to_numpy()
    is_train, is_val = (table.split == "train").to_numpy(), (table.split == "val").to_numpy()
    with devices.scope():
        sources = row_sources(table, settings)
        history = [train_head(head, x, y, is_train, is_val, settings, sources=sources)]
        if settings.fine_tune_layers:
            history.append(fine_tune(model, table, settings))
    val = table[is_val]
    val_p = predict_pixels(model, val, settings)
    temperature, threshold = metrics.decide(
        val.label.to_numpy(), val_p, settings.calibrate, settings.threshold
    )
    fold_temperature(model, temperature)
    log(f"temperature {temperature:.3f}, threshold {threshold:.3f} (chosen on validation)")
    return model, head, pd.concat(history, ignore_index=True), temperature, threshold
