"""Cross-validation of a recipe: duplicate-grouped and cross-source, of the frozen-feature stage
(a head per fold on cached features: seconds) or of the whole recipe (`train.fit` per fold).

Every fold holds its test part out; its validation part (early stopping, temperature,
threshold) is the first of 9 inner grouped folds of the rest, so nothing is chosen on test.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from tumor_model import metrics
from tumor_model.artifacts import (
    CV_GROUPS,
    INSTITUTION,
    INSTITUTIONS,
    LOSO,
    SETTINGS,
    cv_key,
    update_metrics,
)
from tumor_model.config import Settings
from tumor_model.evaluation import breakdown
from tumor_model.model import make_head
from tumor_model.progress import log
from tumor_model.training import data, features, split, train

INNER_FOLDS = 9


def cv_splits(y, groups, folds: int, seed: int):
    """(k, train_idx, val_idx, test_idx) per outer fold."""
    for k, (rest, test) in enumerate(split.grouped_folds(y, groups, folds, seed)):
        inner = split.grouped_folds(y[rest], groups[rest], INNER_FOLDS, seed + k)[0]
        yield k, rest[inner[0]], rest[inner[1]], test


def enough_groups(groups, folds: int) -> bool:
    """One group per outer fold plus one per inner validation fold."""
    return len(set(np.asarray(groups).tolist())) >= folds + INNER_FOLDS


def _mask(idx, n) -> np.ndarray:
    m = np.zeros(n, bool)
    m[idx] = True
    return m


def frozen_head(x, table, tr, va, settings):
    """A head trained on cached features of rows `tr` (early stopping on `va`), with its
    temperature and threshold chosen on `va`: (head, temperature, threshold)."""
    y = table.label.to_numpy()
    head = make_head(settings, x.shape[1])
    sources = train.row_sources(table, settings)
    train.train_head(head, x, y, _mask(tr, len(y)), _mask(va, len(y)), settings, 0, sources)
    raw_val = head.predict(x[va], verbose=0).ravel()
    temperature, thr = metrics.decide(y[va], raw_val, settings.calibrate, settings.threshold)
    return head, temperature, thr


def _frozen_fold(x, table, tr, va, test, settings) -> tuple[np.ndarray, float]:
    """Head on cached features: (calibrated test probabilities, threshold)."""
    head, temperature, thr = frozen_head(x, table, tr, va, settings)
    return metrics.apply_temperature(head.predict(x[test], verbose=0).ravel(), temperature), thr


def _full_fold(x, table, tr, va, test, settings) -> tuple[np.ndarray, float]:
    """The whole recipe (head, then fine-tuning on augmented pixels) as `train.fit` runs it."""
    parts = np.full(len(table), "test", dtype=object)
    parts[tr], parts[va] = "train", "val"
    model, _, _, _, thr = train.fit(settings, table.assign(split=parts), x)
    return train.predict_pixels(model, table.iloc[test], settings), thr


def cross_validate(x, table, settings, folds: int, by: str = "duplicate", full=False) -> dict:
    """Grouped, stratified K-fold CV on all images: of the frozen-feature recipe, or with
    full=True of the whole recipe, fine-tuning included (a training run per fold)."""
    y, groups = table.label.to_numpy(), split.fold_groups(table, by)
    if not enough_groups(groups, folds):
        raise ValueError(
            f"{by}-grouped {folds}-fold CV needs at least {folds + INNER_FOLDS} groups (each "
            f"fold holds one out, then {INNER_FOLDS} inner folds pick the validation part); "
            f"got {len(set(groups))}"
        )
    if full and not settings.fine_tune_layers:
        raise ValueError("this recipe does not fine-tune: its frozen-stage CV is the full one")
    one_fold = _full_fold if full else _frozen_fold
    probs, thresholds, fold_of = np.zeros(len(y)), np.zeros(len(y)), np.zeros(len(y), int)
    fold_acc = []
    for k, tr, va, test in cv_splits(y, groups, folds, settings.seed):
        if full:
            keras.utils.set_random_seed(settings.seed + k)
        probs[test], thr = one_fold(x, table, tr, va, test, settings)
        thresholds[test], fold_of[test] = thr, k
        fold_acc.append(float(np.mean((probs[test] >= thr) == y[test])))
        recipe = ", full recipe" if full else ""
        log(f"CV ({by}{recipe}) fold {k + 1}/{folds}: accuracy {fold_acc[-1]:.4f}")
    result = metrics.report(y, probs, thresholds, settings.bootstrap, settings.seed)
    result.update(
        by_source=breakdown.per_source(table, probs, thresholds, settings),
        folds=folds,
        fold_accuracy=fold_acc,
        fold_size=np.bincount(fold_of, minlength=folds).tolist(),
        groups=f"{by}: {CV_GROUPS[by]}",
        recipe=_recipe(settings, full),
        backend=keras.backend.backend(),
    )
    return result


def _held_out_fold(x, table, settings, train_rows, test_rows, full=False):
    """A recipe trained on `train_rows` (validation: the first of INNER_FOLDS grouped folds of
    them): the frozen stage, or with full=True the whole recipe. (Calibrated test probabilities
    of `test_rows`, threshold.)"""
    y, groups = table.label.to_numpy(), split.fold_groups(table, "duplicate")  # patients whole
    rest = np.flatnonzero(train_rows)
    inner = split.grouped_folds(y[rest], groups[rest], INNER_FOLDS, settings.seed)[0]
    if full:
        keras.utils.set_random_seed(settings.seed)
    one_fold = _full_fold if full else _frozen_fold
    return one_fold(x, table, rest[inner[0]], rest[inner[1]], np.flatnonzero(test_rows), settings)


def held_out_names(table, hold_out=()) -> tuple[list, list]:
    """(every source of `table`, the sources a leave-one-source-out CV holds out: those named in
    `hold_out`, or all). A name that is no source is an error that lists the sources."""
    everyone = list(dict.fromkeys(data.sources(table)))
    if len(everyone) < 2:
        raise ValueError(f"leave-one-source-out CV needs at least two sources, got {everyone!r}")
    unknown = [name for name in hold_out if name not in everyone]
    if unknown:
        raise ValueError(
            f"hold_out names no source of the data: {unknown!r} (its sources: {everyone!r})"
        )
    return everyone, [name for name in everyone if name in hold_out] if hold_out else everyone


def leave_source_out(x, table, settings, full=False, hold_out=(), twin=True) -> dict:
    """Leave-one-source-out CV of the frozen stage (or with full=True of the whole recipe): for
    each source (or each one named in `hold_out`), a recipe trained on the others and tested on
    it. A held-out one-class source is also tested (unless twin=False) with a recipe trained on
    the two-class sources alone ("twin_absent"): if the other one-class source (its twin of the
    opposite label) is what made its rate, the two rates differ. That recipe is trained once and
    tests every such source. "pooled" joins every held-out prediction (each at its own
    threshold)."""
    src, y = data.sources(table).to_numpy(), table.label.to_numpy()
    everyone, names = held_out_names(table, hold_out)
    two_class = [n for n in everyone if len(set(y[src == n])) == 2]
    one_class = [n for n in everyone if n not in two_class]
    probs, thresholds, tested = np.zeros(len(y)), np.zeros(len(y)), np.zeros(len(y), bool)
    boot = settings.bootstrap, settings.seed
    alone = None  # twin absent: (probabilities, with every one-class source's rows, threshold)
    out = {}
    for name in names:
        held, rest = src == name, src != name
        if len(set(y[rest])) < 2:
            log(f"leave-one-source-out: {name} skipped, the other sources hold one class")
            continue
        probs[held], thr = _held_out_fold(x, table, settings, rest, held, full)
        thresholds[held], tested[held] = thr, True
        block = metrics.report(y[held], probs[held], thr, *boot)
        block.update(
            files=int(held.sum()),
            classes=sorted(int(c) for c in set(y[held])),
            trained_on=[n for n in everyone if n != name],
        )
        if twin and name in one_class and two_class and set(two_class) != set(block["trained_on"]):
            if alone is None:
                ones, p_alone = np.isin(src, one_class), np.zeros(len(y))
                p_alone[ones], t_alone = _held_out_fold(
                    x, table, settings, np.isin(src, two_class), ones, full
                )
                alone = p_alone, t_alone
            p_alone, t_alone = alone
            absent = metrics.report(y[held], p_alone[held], t_alone, *boot)
            block["twin_absent"] = {**absent, "trained_on": two_class}
            rate = absent["metrics"]["accuracy"]["value"]
            log(f"leave-one-source-out: {name}, trained on {two_class} alone: {rate:.4f}")
        out[name] = block | by_metadata(table, held, probs, thr, settings).get(name, {})
        rate = block["metrics"]["balanced_accuracy" if len(block["classes"]) == 2 else "accuracy"]
        log(f"leave-one-source-out: {name} ({block['files']} files): {rate['value']:.4f}")
    pooled = metrics.report(y[tested], probs[tested], thresholds[tested], *boot)
    narrowed = {"held_out": names} if names != everyone else {}  # `hold_out` named them
    return {
        "sources": out,
        "pooled": pooled,
        "recipe": _recipe(settings, full),
        "groups": "source: each source held out in turn"
        + (f" (of {everyone}, only {names})" if narrowed else ""),
        **narrowed,
        "backend": keras.backend.backend(),
    }


def by_metadata(table, rows, probs, threshold, settings) -> dict:
    """breakdown.per_metadata of the held-out `rows` (bool): {source: {sequences, institutions}}."""
    part = table[rows].reset_index(drop=True)
    return breakdown.per_metadata(part, probs[rows], threshold, settings)


def leave_institution_out(x, table, settings, full=False) -> dict:
    """Leave-one-institution-out CV of the frozen stage (or with full=True of the whole recipe):
    for each institution a source's files.csv names, a recipe trained on every other file (the
    other institutions and the other sources) and tested on that institution's files, with its
    figures per sequence. "pooled" joins every held-out prediction (each at its own threshold)."""
    inst, y = breakdown.values_of(table, INSTITUTION), table.label.to_numpy()
    names = sorted(set(inst) - {""})
    if len(names) < 2:
        raise ValueError(
            "leave-one-institution-out CV needs files of at least two institutions (an "
            f"'institution' column in a source's files.csv), got {names!r}"
        )
    src = data.sources(table).to_numpy()
    probs, thresholds, tested = np.zeros(len(y)), np.zeros(len(y)), np.zeros(len(y), bool)
    out = {}
    for name in names:
        held = inst == name
        probs[held], thr = _held_out_fold(x, table, settings, ~held, held, full)
        thresholds[held], tested[held] = thr, True
        block = metrics.report(y[held], probs[held], thr, settings.bootstrap, settings.seed)
        source = str(src[held][0])
        block.update(
            files=int(held.sum()),
            classes=sorted(int(c) for c in set(y[held])),
            source=source,
            trained_on=[f"{source}: the other institutions"]
            + [n for n in dict.fromkeys(src) if n != source],
        )
        parts = by_metadata(table, held, probs, thr, settings).get(source, {})
        out[name] = block | {k: v for k, v in parts.items() if k != INSTITUTIONS}  # it is one
        rate = block["metrics"]["balanced_accuracy"]["value"]
        log(f"leave-one-institution-out: {name} ({block['files']} files): {rate:.4f}")
    pooled = metrics.report(y[tested], probs[tested], thresholds[tested], settings.bootstrap,
                            settings.seed)  # fmt: skip
    return {
        "sources": out,
        "pooled": pooled,
        "recipe": _recipe(settings, full),
        "groups": "institution: each institution held out in turn (its patients whole)",
        "backend": keras.backend.backend(),
    }


def _recipe(settings, full) -> str:
    if full:
        return f"full recipe: head + fine-tuning of the top {settings.fine_tune_layers} layers"
    return "frozen features + head"


def cv_metrics(x, table, settings, folds: int, full: bool = False, by=tuple(CV_GROUPS)) -> dict:
    """{cv_key(by): CV} for each grouping in `by`, and with "source" and several sources the
    leave-one-source-out CV of the frozen stage ("loso"; the whole recipe's costs a training run
    per source and runs only when asked for, `cv_artifacts(by=("loso",), full=True)`).
    Cross-source CV is left out (and logged) when the data has too few distinct image sizes."""
    out = {}
    for one in by:
        if one == "source" and not enough_groups(split.fold_groups(table, "source"), folds):
            log(f"cross-source CV skipped: too few distinct image sizes for {folds} folds")
            continue
        out[cv_key(one, full)] = cross_validate(x, table, settings, folds, one, full)
    known = {"source", "root"} & set(table.columns)
    if "source" in by and not full and known and data.sources(table).nunique() > 1:
        out[LOSO] = leave_source_out(x, table, settings)
    return out


def recorded_settings(folder, cache_dir: str | None = None) -> Settings:
    """The settings a model in `folder` was trained with, to rerun its recipe here. Its
    settings.json records the cache folder of the machine that trained it (a /tmp path for the
    shipped model): kept when that folder is here (the training run's features are reused),
    else this machine's default; `cache_dir` replaces either."""
    settings = Settings.from_json(Path(folder) / SETTINGS)
    if cache_dir is None:
        if Path(settings.cache_dir).is_dir():
            return settings
        return dataclasses.replace(settings, cache_dir=Settings.cache_dir)
    if not isinstance(cache_dir, str | Path) or not str(cache_dir):
        raise ValueError(f"cache_dir must be a folder path, got {cache_dir!r}")
    return dataclasses.replace(settings, cache_dir=str(cache_dir))


def recipe_features(settings: Settings) -> tuple[pd.DataFrame, np.ndarray]:
    """(split table, frozen-base features) of a recipe's data, as `train_and_write` starts."""
    table, _ = split.prepare_table(settings)
    return table, features.extract_for(settings, table)


def cv_artifacts(
    folder,
    data_dirs=None,
    folds: int = 10,
    save: bool = False,
    full=False,
    by=tuple(CV_GROUPS),
    cache_dir: str | None = None,
    hold_out=(),
    twin=True,
) -> dict:
    """The CVs (`by`) of the recipe in `folder`/settings.json, of its frozen-feature stage or
    with full=True of the whole recipe, on its data or on `data_dirs`, with features cached in
    `cache_dir` (default: the recorded one). `hold_out` and `twin` narrow the
    leave-one-source-out CV (`leave_source_out`; "loso" must be in `by`). With save=True they
    replace their keys in `folder`/metrics.json."""
    folder = Path(folder)
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds!r}")
    choices = (*CV_GROUPS, LOSO, "institution")
    unknown = [one for one in by if one not in choices]
    if unknown or not by:
        raise ValueError(f"CV groupings must be among {choices}, got {list(by)!r}")
    if (hold_out or not twin) and LOSO not in by:
        raise ValueError(f"hold_out and twin narrow the {LOSO!r} CV, not in by={list(by)!r}")
    settings = recorded_settings(folder, cache_dir)
    if data_dirs:
        settings = dataclasses.replace(settings, data_dirs=tuple(data_dirs))
    if full and not settings.fine_tune_layers:
        raise ValueError(f"{folder} holds a recipe without fine-tuning: its frozen-stage CV is it")
    table, _ = split.prepare_table(settings)
    if hold_out:
        held_out_names(table, hold_out)  # a misspelt source fails before the features' minutes
    x = features.extract_for(settings, table)
    groupings = tuple(one for one in by if one not in (LOSO, "institution"))
    result = cv_metrics(x, table, settings, folds, full, groupings) if groupings else {}
    loso = cv_key(LOSO, full)
    if LOSO in by and loso not in result:
        result[loso] = leave_source_out(x, table, settings, full, hold_out, twin)
    if "institution" in by:
        result[cv_key("institution", full)] = leave_institution_out(x, table, settings, full)
    if save:  # a skipped cross-source CV must not leave an old one
        drop = [cv_key(one, full) for one in groupings]
        drop += [key for key in (loso, cv_key("institution", full)) if key in result]
        update_metrics(folder, result, drop=drop)
    return result
