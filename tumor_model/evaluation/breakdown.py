"""Figures per source (`per_source`), and per (source, sequence) and per (source, institution):
the same reports (`metrics.report`, bootstrap CIs) on the files whose source's files.csv gives
them a sequence or an institution, nested in each source's block under artifacts.SEQUENCES and
artifacts.INSTITUTIONS. A one-class group has the rates that apply to it (sensitivity or
specificity), as a one-class source does."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tumor_model import metrics
from tumor_model.artifacts import BREAKDOWNS
from tumor_model.training import data, metadata


def values_of(table: pd.DataFrame, column: str) -> np.ndarray:
    """Each file's `column` (sequence, institution) as text, "" where none is known."""
    if column not in table.columns:
        return np.full(len(table), "", object)
    return np.array([str(v) if metadata.known(v) else "" for v in table[column]], object)


def per_source(table, probs, thresholds, settings, min_sources: int = 2) -> dict:
    """{source: report} of pooled predictions, when the table holds at least `min_sources`
    sources. A single-class source has sensitivity or specificity only (accuracy is that one
    rate)."""
    if "source" not in table.columns and "root" not in table.columns:
        return {}
    src = data.sources(table).to_numpy()
    if len(set(src)) < min_sources:
        return {}
    y, thr = table.label.to_numpy(), np.broadcast_to(np.asarray(thresholds, float), src.shape)
    return {
        name: metrics.report(
            y[src == name], probs[src == name], thr[src == name], settings.bootstrap, settings.seed
        )
        for name in dict.fromkeys(src)
    }


def per_metadata(table: pd.DataFrame, probs, thresholds, settings) -> dict:
    """{source: {SEQUENCES: {sequence: report}, INSTITUTIONS: {institution: report}}}, in the
    order the sources come, each value's groups in name order; a source none of whose files
    carries a sequence (or institution) has no such key, and a source with neither is left out."""
    src = data.sources(table).to_numpy()
    y, p = table.label.to_numpy(), np.asarray(probs, float)
    thr = np.broadcast_to(np.asarray(thresholds, float), src.shape)
    boot = settings.bootstrap, settings.seed
    out: dict = {}
    for name in dict.fromkeys(src):
        for key, column in BREAKDOWNS.items():
            if column not in table.columns:
                continue
            values = values_of(table, column)
            mine = (src == name) & (values != "")
            blocks = {
                value: metrics.report(y[rows], p[rows], thr[rows], *boot)
                for value in sorted(set(values[mine]))
                for rows in [mine & (values == value)]
            }
            if blocks:
                out.setdefault(name, {})[key] = blocks
    return out


def merged(sources: dict, parts: dict, extra: dict | None = None) -> dict:
    """`sources` ({source: block}) with each source's `parts` (per_metadata's) nested in its
    block, and `extra` added to every block, nested ones included."""
    extra = extra or {}
    out = {}
    for name, block in sources.items():
        block = block | (parts.get(name) or {}) | extra
        for key in BREAKDOWNS:
            if isinstance(block.get(key), dict):
                block[key] = {value: one | extra for value, one in block[key].items()}
        out[name] = block
    return out


def brief(block: dict, rates) -> dict:
    """What `evaluate` prints of a per-source block: its files and rates (`rates(block)`), and
    the same for each sequence and institution it holds."""
    out = {"images": block["n"]} | rates(block)
    for key in BREAKDOWNS:
        if isinstance(block.get(key), dict):
            out[key] = {value: brief(one, rates) for value, one in block[key].items()}
    return out


def nested(table: pd.DataFrame, probs, thresholds, settings, min_sources: int = 2) -> dict:
    """`per_source`'s blocks with each source's sequences and institutions (`per_metadata`)
    nested in them: a multi-source test split (artifacts.TEST_SOURCES), or with min_sources=1
    any scored folder."""
    by_source = per_source(table, probs, thresholds, settings, min_sources)
    if not by_source:
        return {}
    return merged(by_source, per_metadata(table, probs, thresholds, settings))
