"""The Dataset page's tables: class counts, image rows to show, the duplicate audit."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import artifacts
from ..config import CLASS_NAMES


def class_counts(split: pd.DataFrame) -> pd.DataFrame:
    """Image counts per split and class, plus an 'all' split."""
    frame = pd.concat([split.assign(split="all"), split])
    counts = frame.groupby(["split", "label"]).size().reset_index(name="count")
    counts["class"] = counts.label.map(dict(enumerate(CLASS_NAMES)))
    order = ["all", "train", "val", "test"]
    order += sorted(set(counts.split) - set(order))
    counts["split"] = pd.Categorical(counts.split, categories=order, ordered=True)
    counts = counts.sort_values(["split", "label"])
    counts["split"] = counts.split.astype(str)
    return counts[["split", "class", "count"]].reset_index(drop=True)


def sample_rows(frame: pd.DataFrame, n: int, seed: int, class_name: str | None = None):
    """n random rows (all if fewer), optionally of one class."""
    if class_name in CLASS_NAMES:
        frame = frame[frame.label == CLASS_NAMES.index(class_name)]
    return frame.sample(min(n, len(frame)), random_state=seed).reset_index(drop=True)


def split_images(split: pd.DataFrame, root: str | Path) -> pd.DataFrame:
    """split.csv rows with 'image' (a path under the dataset root) and 'caption'."""
    return split.assign(
        image=[str(Path(root) / p) for p in split.path],
        caption=[
            f"{CLASS_NAMES[lab]} · {s}" for lab, s in zip(split.label, split.split, strict=True)
        ],
    )


def sample_images(samples: pd.DataFrame, directory: str | Path) -> pd.DataFrame:
    """samples.csv rows with 'image' (the shipped thumbnail) and 'caption'."""
    folder = Path(directory) / artifacts.SAMPLES
    return samples.assign(
        image=[str(folder / f) for f in samples.file],
        caption=[CLASS_NAMES[int(lab)] for lab in samples.label],
    )


def duplicate_numbers(summary: dict) -> dict:
    """Headline numbers of the duplicate audit (only those present)."""
    dup = summary.get("duplicates") or {}
    cross = dup.get("cross_class_groups")
    numbers = {
        "Exact duplicate groups": dup.get("exact_groups"),
        "Redundant exact copies": dup.get("redundant_exact_copies"),
        "Exact cross-class groups": dup.get("exact_cross_class"),
        "Near-duplicate groups": dup.get("near_groups"),
        "Images in near groups": dup.get("images_in_near_groups"),
        "Largest group": dup.get("largest_group"),
        "Cross-class groups": len(cross) if isinstance(cross, list) else None,
    }
    return {k: int(v) for k, v in numbers.items() if v is not None}


def duplicate_examples(summary: dict, k: int = 4) -> list:
    """Up to k example groups, cross-class ones first: lists of {path, root, label}."""
    dup = summary.get("duplicates") or {}
    kinds = ("cross_class_groups", "near_examples", "exact_examples")
    seen, out = set(), []
    for group in (g for kind in kinds for g in dup.get(kind) or []):
        key = tuple(sorted(item["path"] for item in group))
        if key not in seen and len(group) > 1:
            seen.add(key)
            out.append(group)
    return out[:k]


def group_images(group: list, root: str | Path | None) -> pd.DataFrame:
    """A duplicate group ([{path, root, label}]) as rows with 'image', 'path' and 'caption'."""
    frame = pd.DataFrame(group, columns=["path", "root", "label"])
    base = [root or r for r in frame.root]
    return frame.assign(
        image=[str(Path(b) / p) for b, p in zip(base, frame.path, strict=True)],
        caption=[
            f"{CLASS_NAMES[int(lab)]} · {p}" for lab, p in zip(frame.label, frame.path, strict=True)
        ],
    )
