"""The Dataset page's tables: class counts, image rows to show, the duplicate audit."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tumor_model import artifacts
from tumor_model.artifacts import INSTITUTIONS, SEQUENCES
from tumor_model.config import CLASS_NAMES, DISPLAY_NAMES
from tumor_model.dashboard.places import image_paths
from tumor_model.training.data import source_of
from tumor_model.training.metadata import PATIENTS


def class_counts(split: pd.DataFrame) -> pd.DataFrame:
    """Image counts per split and class, plus an 'all' split."""
    frame = pd.concat([split.assign(split="all"), split])
    counts = frame.groupby(["split", "label"]).size().reset_index(name="count")
    counts["class"] = counts.label.map({i: DISPLAY_NAMES[n] for i, n in enumerate(CLASS_NAMES)})
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
    """split.csv rows with 'image' (under the dataset root, or its source's folder for a model
    of several sources: `places.image_paths`) and 'caption'."""
    return split.assign(
        image=image_paths(split, root),
        caption=[f"{_shown(lab)} · {s}" for lab, s in zip(split.label, split.split, strict=True)],
    )


def sample_images(samples: pd.DataFrame, directory: str | Path) -> pd.DataFrame:
    """samples.csv rows with 'image' (the shipped thumbnail) and 'caption'."""
    folder = Path(directory) / artifacts.SAMPLES
    return samples.assign(
        image=[str(folder / f) for f in samples.file],
        caption=[_shown(lab) for lab in samples.label],
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
        caption=[f"{_shown(lab)} · {p}" for lab, p in zip(frame.label, frame.path, strict=True)],
    )


def _shown(label) -> str:
    """A label (0/1) as users read it (config.DISPLAY_NAMES)."""
    return DISPLAY_NAMES[CLASS_NAMES[int(label)]]


# ----------------------------------------------------------------------------- statements

ALIKE = 0.05  # two classes "look alike" in a property when its shares differ by < 5% (TVD)


def _shares(summary: dict, key: str) -> dict[str, dict[str, float]]:
    """class name -> {value: share of that class} of a categorical property of the summary."""
    out = {}
    for name in CLASS_NAMES:
        counts = ((summary.get("classes") or {}).get(name) or {}).get(key) or {}
        total = sum(counts.values())
        if total:
            out[name] = {v: c / total for v, c in counts.items()}
    return out


def property_statements(summary: dict, split: pd.DataFrame | None = None) -> list[str]:
    """What the data say about shortcuts, computed from dataset_summary.json (and split.csv's
    roots when given): per property, whether the classes differ and by what. One sentence each."""
    out = []
    for key, word in (("formats", "file format"), ("modes", "colour mode")):
        shares = _shares(summary, key)
        if len(shares) < 2:
            continue
        a, b = (shares[n] for n in CLASS_NAMES)
        values = sorted(set(a) | set(b), key=lambda v: (-abs(a.get(v, 0) - b.get(v, 0)), v))
        distance = 0.5 * sum(abs(a.get(v, 0) - b.get(v, 0)) for v in values)
        top = values[0]
        detail = ", ".join(
            f"{_pct(shares[n].get(top, 0))} of {DISPLAY_NAMES[n]}" for n in CLASS_NAMES
        )
        if distance < ALIKE:
            out.append(
                f"**{word.capitalize()}: alike** (the shares differ by {_pct(distance)} in all; "
                f"the largest gap is {top}: {detail})."
            )
        else:
            out.append(f"**{word.capitalize()}: differs** by {_pct(distance)}; {top} is {detail}.")
    sizes = _medians(summary, ("width", "height"))
    if len(sizes) == 2:
        (w0, h0), (w1, h1) = (sizes[n] for n in CLASS_NAMES)
        ratio = max(w0 * h0, w1 * h1) / max(min(w0 * h0, w1 * h1), 1)
        verdict = "differs" if ratio >= 1.2 else "alike"
        shown = ", ".join(f"{DISPLAY_NAMES[n]} {w:.0f}x{h:.0f} px" for n, (w, h) in sizes.items())
        out.append(f"**Image size: {verdict}** (median {shown}).")
    files = _medians(summary, ("file_bytes",))
    if len(files) == 2:
        k0, k1 = (files[n][0] / 1024 for n in CLASS_NAMES)
        verdict = "differs" if max(k0, k1) / max(min(k0, k1), 1e-9) >= 1.2 else "alike"
        out.append(
            f"**File size: {verdict}** (median {DISPLAY_NAMES[CLASS_NAMES[0]]} {k0:.0f} KB, "
            f"{DISPLAY_NAMES[CLASS_NAMES[1]]} {k1:.0f} KB)."
        )
    out += root_statements(split)
    return out


def root_statements(split: pd.DataFrame | None) -> list[str]:
    """With several sources (split.csv's `source` column, else `data.source_of` of each root):
    what each holds, and which hold one class only (the source then predicts the label)."""
    if split is None or not {"root", "source"} & set(split.columns):
        return []
    if "source" in split:
        sources = split.source.astype(str)
    else:
        sources = split.root.map(lambda r: source_of(r))
    if sources.nunique() < 2:
        return []
    out = []
    for source, part in split.groupby(sources, sort=True):
        counts = part.label.value_counts()
        held = ", ".join(
            f"{int(counts.get(i, 0))} {DISPLAY_NAMES[n]}" for i, n in enumerate(CLASS_NAMES)
        )
        only = [DISPLAY_NAMES[CLASS_NAMES[int(i)]] for i in counts.index]
        note = (
            f": only {only[0]} images, so the source alone tells the label"
            if len(only) == 1
            else ""
        )
        out.append(f"**Source `{source}`**: {held}{note}.")
    return out


def _medians(summary: dict, keys) -> dict:
    out = {}
    for name in CLASS_NAMES:
        c = (summary.get("classes") or {}).get(name) or {}
        values = [(c.get(k) or {}).get("median") for k in keys]
        if all(isinstance(v, (int, float)) for v in values):
            out[name] = values
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


# ----------------------------------------------------------------------------- duplicate groups

GROUP_KINDS = {
    "exact": "every file is a byte-identical copy (one sha256)",
    "near": "no two files identical; nearly the same 32 px greyscale thumbnail",
    "exact + near": "byte-identical copies and near copies together",
}


def duplicate_groups(split: pd.DataFrame) -> pd.DataFrame:
    """Every duplicate group of split.csv with more than one file, largest first: group, files,
    kind (GROUP_KINDS), classes, cross_class (both labels in the group) and exact_cross_class
    (one byte-identical file under both labels), splits."""
    columns = ["group", "files", "kind", "classes", "cross_class", "exact_cross_class", "splits"]
    multi = split[split.group.duplicated(keep=False)]
    if multi.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for group, part in multi.groupby("group", sort=False):
        distinct = part.sha256.nunique() if "sha256" in part else len(part)
        kind = "exact" if distinct == 1 else "near" if distinct == len(part) else "exact + near"
        exact_cross = (
            bool((part.groupby("sha256").label.nunique() > 1).any()) if "sha256" in part else False
        )
        rows.append(
            {
                "group": int(group),
                "files": len(part),
                "kind": kind,
                "classes": ", ".join(_shown(v) for v in sorted(part.label.unique())),
                "cross_class": part.label.nunique() > 1,
                "exact_cross_class": exact_cross,
                "splits": ", ".join(sorted(part.split.astype(str).unique())),
            }
        )
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["files", "group"], ascending=[False, True], ignore_index=True)


def group_files(split: pd.DataFrame, group: int, root: str | Path | None) -> pd.DataFrame:
    """The files of one duplicate group: path, label, split, 'image' (under `root`, else the
    file's own root) and 'caption' (file name, class, split)."""
    part = split[split.group == group].sort_values("path")
    if root:
        images = image_paths(part, root)
    else:
        images = [str(Path(str(r)) / p) for r, p in zip(part.root, part.path, strict=True)]
    return part.assign(
        image=images,
        caption=[
            f"{Path(p).name} · {_shown(lab)} · {s}"
            for p, lab, s in zip(part.path, part.label, part.split, strict=True)
        ],
    ).reset_index(drop=True)


def source_table(summary: dict | None) -> pd.DataFrame | None:
    """One row per source of dataset_summary.json ("sources"): files, files per class, image
    sizes, duplicate groups, and whether it holds one class only; and, when a source's files.csv
    gave them, its patients and its files per MRI sequence and per institution. None without
    that block."""
    sources = (summary or {}).get("sources")
    if not sources:
        return None
    rows = []
    for name, s in sources.items():
        rows.append(
            {
                "source": name,
                "files": s["files"],
                **{DISPLAY_NAMES[c]: s["classes"].get(c, 0) for c in CLASS_NAMES},
                "one class only": "yes" if s["single_class"] else "no",
                "image sizes": s["image_sizes"],
                "commonest sizes": ", ".join(f"{k} ({v})" for k, v in s["common_sizes"].items()),
                "duplicate groups": s.get("duplicate_groups"),
                "formats": ", ".join(f"{k} {v}" for k, v in s["formats"].items()),
                "patients": f"{s[PATIENTS]:,}" if s.get(PATIENTS) else None,
                **{
                    word: ", ".join(f"{k} {v:,}" for k, v in (s.get(key) or {}).items()) or None
                    for word, key in (("sequences", SEQUENCES), ("institutions", INSTITUTIONS))
                },
            }
        )
    frame = pd.DataFrame(rows)
    unused = [c for c in ("patients", "sequences", "institutions") if frame[c].isna().all()]
    return frame.drop(columns=unused).fillna("")
