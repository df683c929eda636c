"""Duplicate groups and train/val/test splits.

A group is a connected component of exact copies (same sha256) and near copies (greyscale
thumbnails whose mean absolute difference is <= a threshold). The default split keeps every group
in one split, so no test image has a copy in train; where a source's files.csv names patients,
every split and CV keeps each patient whole too (`fold_groups`). `random_split` reproduces the
report (and, like it, keeps nothing whole).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from tumor_model.artifacts import CV_GROUPS, PATIENT
from tumor_model.config import Settings
from tumor_model.progress import log
from tumor_model.training import data, metadata

SPLIT_NAMES = ("train", "val", "test")


class _UnionFind:
    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def union_equal(self, values) -> None:
        """Join every item with the first item that has the same value."""
        first = {}
        for i, value in enumerate(values):
            self.union(first.setdefault(value, i), i)

    def ids(self) -> np.ndarray:
        """Component id per item, 0..k-1 in order of first appearance (stable, readable)."""
        remap = {}
        return np.array(
            [remap.setdefault(self.find(i), len(remap)) for i in range(len(self.parent))],
            dtype=np.int64,
        )


def near_pairs(thumbs: np.ndarray, threshold: float, block: int = 64):
    """Yield (i, j) with mean |thumbs[i] - thumbs[j]| <= threshold.

    |mean(a) - mean(b)| <= mean|a - b|, so only images of close mean brightness are compared.
    """
    if thumbs.ndim != 3:
        raise ValueError(f"thumbs must be (n, t, t), got shape {thumbs.shape!r}")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
    flat = thumbs.reshape(len(thumbs), -1).astype(np.float32)
    means = flat.mean(axis=1)
    order = np.argsort(means, kind="stable")
    flat, means = flat[order], means[order]
    for start in range(0, len(flat), block):
        stop = min(start + block, len(flat))
        end = np.searchsorted(means, means[stop - 1] + threshold, side="right")
        a = flat[start:stop]
        for lo in range(start, end, 512):  # chunks keep the distance block near 100 MB
            b = flat[lo : min(lo + 512, end)]
            dist = np.abs(a[:, None, :] - b[None, :, :]).mean(axis=2)
            for i, j in zip(*np.nonzero(dist <= threshold), strict=True):
                if start + i < lo + j:
                    yield int(order[start + i]), int(order[lo + j])


def duplicate_groups(sha256: list, thumbs: np.ndarray, threshold: float) -> np.ndarray:
    """Group id per image (0..k-1, in order of first appearance): exact + near-copy components."""
    if len(sha256) != len(thumbs):
        raise ValueError(f"{len(sha256)} hashes but {len(thumbs)} thumbnails")
    uf = _UnionFind(len(sha256))
    uf.union_equal(sha256)
    for i, j in near_pairs(thumbs, threshold):
        uf.union(i, j)
    return uf.ids()


def merge_groups(*keys) -> np.ndarray:
    """Component id per item (0..k-1, in order of first appearance): items sharing a value in
    any of `keys` end up together. merge_groups(groups, dims) keeps each duplicate group and
    each image size whole, a proxy for "source" in cross-source validation."""
    if not keys:
        raise ValueError("merge_groups needs at least one key array")
    keys = [np.asarray(k) for k in keys]
    if len({len(k) for k in keys}) != 1:
        raise ValueError(f"key arrays differ in length: {[len(k) for k in keys]!r}")
    uf = _UnionFind(len(keys[0]))
    for key in keys:
        uf.union_equal(key.tolist())
    return uf.ids()


def group_split(labels, groups, val_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """Stratified split by group: per class, shuffled groups fill test, then val, rest is train."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    rng = np.random.default_rng(seed)
    split = np.full(len(labels), "train", dtype=object)
    group_label = pd.Series(labels).groupby(groups).agg(lambda s: s.mode().iloc[0])
    sizes = pd.Series(groups).value_counts()
    for label in sorted(group_label.unique()):
        ids = group_label.index[group_label == label].to_numpy()
        ids = ids[rng.permutation(len(ids))]
        total = int(sizes[ids].sum())
        targets = {"test": test_fraction * total, "val": val_fraction * total}
        filled = {"test": 0, "val": 0}
        for g in ids:
            name = next((n for n in ("test", "val") if filled[n] < targets[n]), None)
            if name is None:
                break
            split[groups == g] = name
            filled[name] += int(sizes[g])
    return split


def by_source(table: pd.DataFrame, keep: np.ndarray, split_one) -> np.ndarray:
    """Split every source on its own: `split_one(rows_mask)` -> split names of those rows. A
    group kept whole that spans sources goes with the source of its first row. So a source's
    rows get the split they would get with that source alone, and adding sources does not move
    the test files of the others (their figures stay comparable)."""
    src = data.sources(table).to_numpy()
    owner = pd.Series(src).groupby(np.asarray(keep)).transform("first").to_numpy()
    out = np.empty(len(table), dtype=object)
    for name in dict.fromkeys(owner):
        rows = owner == name
        out[rows] = split_one(rows)
    return out


def random_split(n: int, seed: int = 314) -> np.ndarray:
    """The report's protocol: train_test_split(train_size=0.8), then the rest halved (val, test)."""
    idx = np.arange(n)
    train, rest = train_test_split(idx, train_size=0.8, random_state=seed)
    val, test = train_test_split(rest, test_size=0.5, random_state=seed)
    split = np.empty(n, dtype=object)
    split[train], split[val], split[test] = "train", "val", "test"
    return split


def grouped_folds(labels, groups, n_splits: int, seed: int):
    """Grouped, stratified K-fold indices (train_idx, test_idx) for cross-validation."""
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(folds.split(np.zeros(len(labels)), labels, groups))


def check_no_leak(split_frame: pd.DataFrame) -> None:
    """Raise ValueError when a duplicate group, or a patient of a source, spans two splits."""
    spans = split_frame.groupby("group").split.nunique()
    leaking = spans[spans > 1]
    if len(leaking):
        raise ValueError(
            f"{len(leaking)} duplicate groups span splits, e.g. group {leaking.index[0]}"
        )
    if not metadata.has_patients(split_frame):
        return
    named = split_frame[split_frame[PATIENT].map(metadata.known)]
    by = [data.sources(named).to_numpy(), named[PATIENT].astype(str).to_numpy()]
    spans = named.groupby(by).split.nunique()
    leaking = spans[spans > 1]
    if len(leaking):
        source, patient = leaking.index[0]
        raise ValueError(
            f"{len(leaking)} patients span splits, e.g. patient {patient!r} of {source}"
        )


def fold_groups(table: pd.DataFrame, by: str) -> np.ndarray:
    """Groups kept whole by a split or CV: duplicate groups, or for "source" duplicate groups
    merged with image size (width x height), so no image size is on two sides: cross-source
    rather than cross-slice. Where files carry a patient (a source's files.csv), each patient
    of a source is merged in too, so no patient is on two sides."""
    if by not in CV_GROUPS:
        raise ValueError(f"CV groups must be one of {tuple(CV_GROUPS)}, got {by!r}")
    keys = [table.group]
    if metadata.has_patients(table):
        keys.append(metadata.patient_keys(table, data.sources(table)))
    if by == "source":
        keys.append(table.width.astype(str) + "x" + table.height.astype(str))
    return table.group.to_numpy() if len(keys) == 1 else merge_groups(*keys)


def prepare_table(settings: Settings) -> tuple[pd.DataFrame, dict]:
    """Scan the roots, group duplicates, split as `settings` say: (table, dataset summary)."""
    files = data.find_all(settings.data_dirs)
    log(f"scanning {len(files)} files under {list(settings.data_dirs)}")
    scanned = data.scan(files, settings.dup_thumb)
    for bad in scanned.unreadable:
        log(f"skipped unreadable file: {bad['error']}")
    groups = duplicate_groups(list(scanned.images.sha256), scanned.thumbs, settings.dup_threshold)
    table = scanned.images.assign(group=groups)
    labels = table.label.to_numpy()
    if settings.split in ("group", "source"):
        keep = fold_groups(table, "duplicate" if settings.split == "group" else "source")
        fractions = (settings.val_fraction, settings.test_fraction, settings.seed)
        table["split"] = by_source(
            table, keep, lambda rows: group_split(labels[rows], keep[rows], *fractions)
        )
        check_no_leak(table)
    else:
        table["split"] = by_source(
            table, table.group, lambda rows: random_split(int(rows.sum()), settings.seed)
        )
    empty = [name for name in SPLIT_NAMES if not (table.split == name).any()]
    if empty:
        sizes = table.groupby(["width", "height"]).ngroups
        raise ValueError(
            f"the {settings.split} split left {empty} empty: {len(table)} images, "
            f"{table.group.nunique()} duplicate groups, {sizes} image sizes; add images "
            f"(a source split needs many image sizes) or use another split"
        )
    summary = data.summarize(scanned, groups)
    counts = table.groupby(["source", "split", "label"]).size().unstack(fill_value=0)
    whole = f"{table.group.nunique()} duplicate groups"
    if metadata.has_patients(table):
        patients = sum(s.get(metadata.PATIENTS, 0) for s in summary["sources"].values())
        whole += f" merged with {patients} patients"
    log(f"{whole}; split ({settings.split}):\n{counts}")
    return table, summary
