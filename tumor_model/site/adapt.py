"""Check and adapt a trained model at a site, on the site's own labelled scans.

`neuroscan adapt --data-dir LOCAL --out DIR` (and the dashboard's "Your scans" page) does, in order:

1. **Check**: the model as it is on the local scans: metrics with bootstrap CIs, ROC, reliability.
2. **Recalibrate**: temperature and threshold refitted on the local scans.
3. **Retrain the head**: the head (Dense -> Dropout -> Dense), warm-started from the model's own, on
   the anchor set (pool-layer features of the model's training rows, shipped in `anchor.npz`) plus
   the local scans, which together weigh `local_share` of the loss; then temperature and threshold
   from cross-validated local predictions.

Every local figure of steps 2-3 comes from cross-validation inside the local scans (grouped by
duplicate group, `FOLDS` folds; the retrained head's threshold from inner folds), never from scans
the refit saw. The adapted folder is a complete artifacts folder: the model with the new head and
temperature folded in, a card recording what was adapted, on how many scans and their
fingerprint, and the before/after figures (`metrics.json` "adapted").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from tumor_model import artifacts, metrics
from tumor_model.artifacts import ADAPTED, ANCHOR
from tumor_model.config import CLASS_NAMES, LOCAL_SHARE, SKIP_SUFFIXES, Settings
from tumor_model.model import fold_temperature, make_head
from tumor_model.progress import log
from tumor_model.serving.export import export
from tumor_model.site.anchor import anchor_rows, load_anchor, save_anchor
from tumor_model.training import data, split

MIN_SCANS, MIN_PER_CLASS = 10, 3  # fewer cannot be cross-validated with both classes per fold
FOLDS, INNER_FOLDS = 5, 3
HEAD_EPOCHS, HEAD_BATCH, HEAD_LR = 30, 256, 5e-4
HEAD_LAYERS = ("head_dense", "tumor_probability")


# ----------------------------------------------------------------------------- the anchor set


def write_anchor(folder) -> dict:
    """Compute and write `folder`/anchor.npz for a trained model that has none (trained before
    `adapt` existed): pool-layer features of `anchor_rows` of its split.csv, read from the roots
    split.csv names. Returns what was written."""
    model = Model.load(folder)
    table = artifacts.read_csv(folder, artifacts.SPLIT)
    rows = table.loc[anchor_rows(table, seed=model.settings.seed)]
    log(f"anchor: pool-layer features of {len(rows)} training rows")
    _, pooled = model.pooled(rows)
    save_anchor(Path(folder) / ANCHOR, pooled, rows)
    return {"rows": int(len(rows)), "dims": int(pooled.shape[1]), "file": ANCHOR}


# ----------------------------------------------------------------------------- local scans


def read_local(data_dirs) -> pd.DataFrame:
    """The local scans (path, root, source, label, sha256, group, ...), checked: ValueError
    naming the problem when a file is unreadable, a class is missing or there are too few."""
    roots = [data_dirs] if isinstance(data_dirs, str | Path) else list(data_dirs)
    files = data.find_all(roots, both_classes=False)
    scanned = data.scan(files)
    if scanned.unreadable:
        bad = scanned.unreadable
        listed = "; ".join(f"{b['path']}: {b['error']}" for b in bad[:5])
        raise ValueError(
            f"{len(bad)} of the local scans could not be read ({listed}"
            f"{'; ...' if len(bad) > 5 else ''}): fix or remove them, nothing was written"
        )
    _check_counts(scanned.images, [str(r) for r in roots])
    groups = split.duplicate_groups(list(scanned.images.sha256), scanned.thumbs, 0.02)
    return scanned.images.assign(group=groups).reset_index(drop=True)


def _check_counts(table: pd.DataFrame, where) -> None:
    counts = {name: int((table.label == i).sum()) for i, name in enumerate(CLASS_NAMES)}
    if min(counts.values()) == 0:
        missing = [name for name, n in counts.items() if n == 0]
        raise ValueError(
            f"the local scans in {where} hold one class only ({counts}): "
            f"add {missing[0]} scans in a class folder beside the others"
        )
    if len(table) < MIN_SCANS or min(counts.values()) < MIN_PER_CLASS:
        raise ValueError(
            f"{len(table)} local scans ({counts}) in {where}: adapting needs at least "
            f"{MIN_SCANS}, with {MIN_PER_CLASS} of each class, to be checked by cross-validation"
        )


def read_local_zip(blob: bytes, name: str, size: int, geometry: str):
    """(table, model-input pixels) of a zip of labelled scans in class folders (the layouts
    `train` reads), read in memory only: an upload is patient data and is never written."""
    from tumor_model.io.archive import members
    from tumor_model.io.geometry import prepare
    from tumor_model.io.imageio import ImageLoadError, load_image

    rows, pixels, thumbs, bad = [], [], [], []
    for path, data_ in members(blob, name):
        parts = [data.class_of_folder(p) for p in path.split("/")[:-1]]
        label = next((c for c in parts if c is not None), None)
        if label is None or Path(path).suffix.lower() in SKIP_SUFFIXES:
            continue
        try:
            img = load_image(data_, name=f"{name}/{path}")
        except ImageLoadError as err:
            bad.append(str(err))
            continue
        sha = hashlib.sha256(data_).hexdigest()
        rows.append((path, name, Path(name).stem, label, sha, img.width, img.height))
        pixels.append(prepare(img, size, geometry))
        thumbs.append(data.thumbnail(img, 32))
    if bad:
        raise ValueError(
            f"{len(bad)} of the scans in {name!r} could not be read ({'; '.join(bad[:5])}): "
            "fix or remove them"
        )
    if not rows:
        raise ValueError(
            f"no scans in class folders in {name!r}: expected e.g. 'tumor/' and 'healthy/' "
            "(or 'yes/' and 'no/') inside the zip"
        )
    table = pd.DataFrame(
        rows, columns=["path", "root", "source", "label", "sha256", "width", "height"]
    )
    _check_counts(table, repr(name))
    groups = split.duplicate_groups(list(table.sha256), np.stack(thumbs), 0.02)
    return table.assign(group=groups), np.stack(pixels)


# ----------------------------------------------------------------------------- the methods


@dataclass
class Model:
    """What adapting needs of a trained model: its settings, card, temperature-folded
    probabilities are read through `head` on pool-layer features."""

    folder: Path
    keras_model: keras.Model
    settings: Settings
    card: dict

    @classmethod
    def load(cls, folder) -> Model:
        from tumor_model.serving.predict import load_checked_model

        folder = Path(folder)
        card = artifacts.read_card(folder)
        model = load_checked_model(folder, card["model_sha256"])
        return cls(folder, model, Settings.from_json(folder / artifacts.SETTINGS), card)

    def pooled(self, table: pd.DataFrame, pixels=None) -> tuple[np.ndarray, np.ndarray]:
        """(the model's probabilities, pool-layer features) of the rows of `table`, read from
        their files, or of the model-input `pixels` given for them."""
        from tumor_model.training.train import predict_pixels

        if pixels is None:
            return predict_pixels(self.keras_model, table, self.settings, pooled=True)
        both = keras.Model(
            self.keras_model.input,
            [self.keras_model.output, self.keras_model.get_layer("pool").output],
        )
        p, f = both.predict(np.asarray(pixels, np.float32), batch_size=64, verbose=0)
        return p.ravel(), f

    def head_weights(self) -> list:
        return [self.keras_model.get_layer(n).get_weights() for n in HEAD_LAYERS]


def _logit(p):
    p = np.clip(np.asarray(p, float), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def _folds(y, groups, k, seed):
    k = min(k, int(np.bincount(y).min()))
    return split.grouped_folds(y, groups, max(k, 2), seed)


def recalibrate_cv(y, p, groups, seed=0, folds=None) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold (probabilities, thresholds) of temperature + threshold refitted on the other
    folds' local scans (the model's probabilities `p` do not depend on the local labels).
    `folds`: (fit, test) index pairs; default grouped, stratified FOLDS folds."""
    probs, thr = np.zeros(len(y)), np.zeros(len(y))
    for fit_idx, test_idx in folds or _folds(y, groups, FOLDS, seed):
        t, th = metrics.decide(y[fit_idx], p[fit_idx], True, -1.0)
        probs[test_idx], thr[test_idx] = metrics.apply_temperature(p[test_idx], t), th
    return probs, thr


class HeadTrainer:
    """Retrains the model's head (warm-started from `start`, its head weights) on the anchor set
    plus local features, as often as `adapt` asks (21 times: 5 outer folds of 3 inner folds and
    one more, then the shipped head). One head is compiled once and every call
    starts it from the same state: `start`'s weights, a freshly built optimizer, the same dropout
    stream. Its steps go through `train_on_batch` on batches of one size, so the step is traced
    once; a Keras `fit` per retrain spent most of its time tracing and building `tf.data`
    iterators (`benchmarks/bench_adapt.py` times both)."""

    def __init__(self, settings: Settings, start, dim: int):
        self.head = make_head(settings, dim)
        for name, weights in zip(HEAD_LAYERS, start, strict=True):
            self.head.get_layer(name).set_weights(weights)
        self.head.compile(optimizer=keras.optimizers.Adam(HEAD_LR), loss="binary_crossentropy")
        self.head.optimizer.build(self.head.trainable_variables)
        self._state = self.head.variables + self.head.optimizer.variables
        self._fresh = [keras.ops.convert_to_numpy(v) for v in self._state]

    def __call__(self, anchor_x, anchor_y, x, y, local_share=LOCAL_SHARE, seed=0):
        """Train on the anchor rows plus the local rows (`x`, `y`), the local rows weighing
        `local_share` of the loss, HEAD_EPOCHS epochs in a random order drawn from `seed` (the
        last batch of an epoch filled from the epoch's first rows). Returns a function
        features -> uncalibrated probabilities and the head's weights."""
        if not 0.0 < local_share < 1.0:
            raise ValueError(f"local_share must be in (0, 1), got {local_share!r}")
        for variable, value in zip(self._state, self._fresh, strict=True):
            variable.assign(value)
        w_local = local_share * len(anchor_x) / ((1 - local_share) * len(x))
        xs = np.concatenate([anchor_x, x]).astype(np.float32)
        ys = np.concatenate([anchor_y, y]).astype(np.float32)
        ws = np.concatenate([np.ones(len(anchor_x)), np.full(len(x), w_local)]).astype(np.float32)
        ws /= ws.mean()
        batch = min(HEAD_BATCH, len(xs))
        steps = -(-len(xs) // batch)
        rng = np.random.default_rng(seed)
        for _ in range(HEAD_EPOCHS):
            for rows in np.resize(rng.permutation(len(xs)), (steps, batch)):
                self.head.train_on_batch(xs[rows], ys[rows], sample_weight=ws[rows])
        trained = [keras.ops.convert_to_numpy(v) for v in self.head.trainable_variables]
        fixed = [keras.ops.convert_to_numpy(v) for v in self.head.non_trainable_variables]
        head = self.head

        def predict(features):
            out, _ = head.stateless_call(trained, fixed, np.asarray(features, np.float32))
            return keras.ops.convert_to_numpy(out).ravel()

        return predict, [head.get_layer(n).get_weights() for n in HEAD_LAYERS]


def retrain_cv(trainer, anchor_x, anchor_y, x, y, groups, local_share=LOCAL_SHARE, seed=0):
    """Out-of-fold (probabilities, thresholds, uncalibrated probabilities) of the retrained
    head (`trainer`: a HeadTrainer): per outer fold a head on the anchor set + the other folds,
    its temperature and threshold from inner folds of those."""
    probs, thr, raw = np.zeros(len(y)), np.zeros(len(y)), np.zeros(len(y))
    for k, (fit_idx, test_idx) in enumerate(_folds(y, groups, FOLDS, seed)):
        inner_p = np.zeros(len(fit_idx))
        for a, b in _folds(y[fit_idx], groups[fit_idx], INNER_FOLDS, seed + k):
            f, _ = trainer(anchor_x, anchor_y, x[fit_idx][a], y[fit_idx][a], local_share, k)
            inner_p[b] = f(x[fit_idx][b])
        t, th = metrics.decide(y[fit_idx], inner_p, True, -1.0)
        f, _ = trainer(anchor_x, anchor_y, x[fit_idx], y[fit_idx], local_share, k)
        raw[test_idx] = f(x[test_idx])
        probs[test_idx], thr[test_idx] = metrics.apply_temperature(raw[test_idx], t), th
        log(f"adapt: fold {k + 1}/{FOLDS} done")
    return probs, thr, raw


def _block(y, p, thr, n_boot, seed, how) -> dict:
    """metrics.report (metrics with CIs, ROC, reliability table) plus how it was obtained."""
    return {**metrics.report(y, p, thr, n_boot, seed), "how": how}


# ----------------------------------------------------------------------------- the command


def adapt(
    artifacts_dir="artifacts",
    data_dirs=None,
    out=None,
    local_share: float = LOCAL_SHARE,
    n_boot: int = 1000,
    seed: int = 0,
    local: pd.DataFrame | None = None,
    pixels: np.ndarray | None = None,
) -> dict:
    """Check, recalibrate and retrain the head of the model in `artifacts_dir` on the labelled
    local scans under `data_dirs` (or the table `local`, with its model-input `pixels` when
    they are not files: `read_local_zip`); with `out`, write the adapted
    artifacts folder there (atomically; refused if it exists). Returns the "adapted" record."""
    if out is not None and Path(out).exists():
        raise ValueError(f"{str(out)!r} exists: give a new folder for the adapted model")
    if out is not None and Path(out).resolve() == Path(artifacts_dir).resolve():
        raise ValueError("the adapted model needs its own folder, not the model's")
    if local is None:
        if not data_dirs:
            raise ValueError("adapt needs --data-dir: a folder of labelled local scans")
        local = read_local(data_dirs)
    model = Model.load(artifacts_dir)
    anchor_x, anchor_y = load_anchor(artifacts_dir)
    y, groups = local.label.to_numpy(), local.group.to_numpy()
    log(f"adapt: {len(local)} local scans, model from {artifacts_dir}")
    p_now, x = model.pooled(local, pixels)
    thr_now = float(model.card["threshold"])
    before = _block(y, p_now, thr_now, n_boot, seed, "the model as it is")
    p_cal, t_cal = recalibrate_cv(y, p_now, groups, seed)
    recal = _block(y, p_cal, t_cal, n_boot, seed, f"temperature + threshold, {FOLDS}-fold CV")
    trainer = HeadTrainer(model.settings, model.head_weights(), x.shape[1])
    p_new, t_new, raw = retrain_cv(trainer, anchor_x, anchor_y, x, y, groups, local_share, seed)
    retrained = _block(
        y, p_new, t_new, n_boot, seed, f"head retrained, {FOLDS}-fold CV (inner {INNER_FOLDS})"
    )
    record = {
        "from_model_sha256": model.card["model_sha256"],
        "local_scans": int(len(local)),
        "local_classes": {n: int((y == i).sum()) for i, n in enumerate(CLASS_NAMES)},
        "local_fingerprint": data.fingerprint(local),
        "local_sources": sorted(set(data.sources(local))),
        "anchor_rows": int(len(anchor_x)),
        "local_share": local_share,
        "method": "head retrained on anchor + local features, then temperature and threshold",
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "before": before,
        "recalibrated": recal,
        "retrained": retrained,
    }
    if out is not None:
        record["written_to"] = Path(out).name
        _write(model, trainer, x, y, raw, anchor_x, anchor_y, record, Path(out))
    return record


def adapted_head(
    trainer, anchor_x, anchor_y, x, y, local_share=LOCAL_SHARE, oof=None, groups=None, seed=0
):
    """The head `adapt` ships (`trainer`: a HeadTrainer): retrained on the anchor set + every
    local scan, with temperature and threshold fitted on out-of-fold local predictions (`oof`,
    or computed here from FOLDS grouped folds). Returns (features -> calibrated probabilities,
    head weights, temperature, threshold)."""
    if oof is None:
        groups = np.arange(len(y)) if groups is None else groups
        oof = np.zeros(len(y))
        for a, b in _folds(y, groups, FOLDS, seed):
            f, _ = trainer(anchor_x, anchor_y, x[a], y[a], local_share)
            oof[b] = f(x[b])
    predict, weights = trainer(anchor_x, anchor_y, x, y, local_share)
    temperature, threshold = metrics.decide(y, oof, True, -1.0)

    def calibrated(features):
        return metrics.apply_temperature(predict(features), temperature)

    return calibrated, weights, temperature, threshold


def _write(model, trainer, x, y, oof, anchor_x, anchor_y, record, out) -> None:
    """The adapted folder: a copy of the model's, with the head retrained on every local scan,
    and temperature and threshold fitted on the out-of-fold predictions `oof`."""
    _, weights, temperature, threshold = adapted_head(
        trainer, anchor_x, anchor_y, x, y, record["local_share"], oof=oof
    )
    tmp = artifacts.temp_dir(out)
    try:
        for item in model.folder.iterdir():
            if item.name.startswith("."):
                continue
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
        keras_model = model.keras_model
        for name, w in zip(HEAD_LAYERS, weights, strict=True):
            keras_model.get_layer(name).set_weights(w)
        fold_temperature(keras_model, temperature)
        keras_model.save(tmp / artifacts.MODEL)
        card = {k: v for k, v in model.card.items() if k != "export"}  # the old network's
        (tmp / artifacts.EXPORT).unlink(missing_ok=True)
        card.update(
            threshold=float(threshold),
            temperature=float(temperature),  # the local one, folded in like the original
            model_sha256=hashlib.sha256((tmp / artifacts.MODEL).read_bytes()).hexdigest(),
            adapted={
                k: v for k, v in record.items() if k not in ("before", "recalibrated", "retrained")
            }
            | {
                "figures": {k: _summary(record[k]) for k in ("before", "recalibrated", "retrained")}
            },
        )
        artifacts.write_json(card, tmp / artifacts.CARD)
        metrics = artifacts.read_json(tmp, artifacts.METRICS)
        metrics[ADAPTED] = record
        metrics.pop(artifacts.EXTERNAL, None)  # the unadapted model's figures on other sources
        artifacts.write_json(metrics, tmp / artifacts.METRICS)
        export(tmp)  # the adapted network for ONNX Runtime, its sha256 on the card
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    artifacts.replace_dir(tmp, out)
    log(f"adapted model written to {out}")


def _summary(block: dict) -> dict:
    keys = ("balanced_accuracy", "sensitivity", "specificity", "roc_auc", "ece")
    return {k: block["metrics"][k] for k in keys}
