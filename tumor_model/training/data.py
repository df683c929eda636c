"""Find, scan and summarise a folder of labelled brain-MRI images.

Layouts understood (under each root, at any depth): a folder whose name is a class alias, e.g.
`Brain Tumor/` + `Healthy/` (the flat shared copy), `Brain Tumor Data Set/Brain Tumor Data Set/...`
(the Kaggle download), `yes/` + `no/`, `tumor/` + `notumor/`, `tumour/` + `normal/`.
Every file under a class folder is a candidate image; unreadable ones are listed, never fatal.
A root's `files.csv` adds per-file metadata (patient, sequence, institution: `metadata`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from tumor_model.config import CLASS_NAMES, HEALTHY, SKIP_SUFFIXES, TUMOR
from tumor_model.io.imageio import ImageLoadError, load_image, sniff_format
from tumor_model.training import metadata

TUMOR_ALIASES = {
    "braintumor",
    "tumor",
    "tumour",
    "yes",
    "cancer",
    "glioma",
    "meningioma",
    "pituitary",
    "tumorous",
}
HEALTHY_ALIASES = {
    "healthy",
    "no",
    "notumor",
    "notumour",
    "normal",
    "notcancer",
    "nontumor",
    "nontumorous",
}
SCAN_COLUMNS = [
    "path",
    "root",
    "label",
    "sha256",
    "bytes",
    "format",
    "mode",
    "width",
    "height",
    "source",
]


def class_of_folder(name: str) -> int | None:
    """Label a folder name (1 tumour, 0 healthy) or None when it is not a class folder."""
    key = re.sub(r"[^a-z]", "", name.lower())
    if key in TUMOR_ALIASES:
        return TUMOR
    if key in HEALTHY_ALIASES:
        return HEALTHY
    return None


# A packed root (`neuroscan pack`): the model's input pixels as JPEG, plus what scanning the
# original files found, so that duplicate groups, image sizes and the fingerprint stay theirs.
PACK_TABLE, PACK_THUMBS, PACK_INFO = "pack.csv", "thumbs.npz", "pack.json"


def is_pack(root: str | Path) -> bool:
    return (Path(root) / PACK_TABLE).is_file()


def pack_info(root: str | Path) -> dict:
    """pack.json of a packed root: the input size and geometry its pixels were prepared with."""
    try:
        return json.loads((Path(root) / PACK_INFO).read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"packed data root {str(root)!r} has no readable {PACK_INFO}") from err


def read_pack(root: str | Path) -> tuple[pd.DataFrame, np.ndarray]:
    """(table with SCAN_COLUMNS and metadata.TABLE_COLUMNS, empty unless the pack recorded them;
    thumbnails 0-1) of a packed root, rows in the table's order."""
    root = Path(root)
    try:
        table = pd.read_csv(root / PACK_TABLE)
        with np.load(root / PACK_THUMBS) as z:
            thumbs = z["thumbs"].astype(np.float32) / 255.0
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"packed data root {str(root)!r} is unreadable: {err}") from err
    if "source" not in table.columns:  # packs older than multi-source training
        table = table.assign(source=source_of(root))
    missing = [c for c in SCAN_COLUMNS if c not in table.columns and c != "root"]
    if missing or len(thumbs) != len(table):
        raise ValueError(
            f"packed data root {str(root)!r} is incomplete: columns missing {missing}, "
            f"{len(thumbs)} thumbnails for {len(table)} rows; pack it again"
        )
    table = metadata.blank(table.assign(root=str(root)))
    return table[[*SCAN_COLUMNS, *metadata.TABLE_COLUMNS]], thumbs


def source_of(root: str | Path) -> str:
    """The source a root holds: its folder name (``../shared/data/oasis-healthy`` ->
    ``oasis-healthy``; a root that is a class folder, ``site/healthy``, is ``site``), the unit
    that leave-one-source-out CV holds out."""
    root = Path(root).resolve()
    return root.parent.name if class_of_folder(root.name) is not None else root.name


def find_images(root: str | Path) -> pd.DataFrame:
    """Candidate image files under `root`: columns path (relative to root), root, label and
    metadata.TABLE_COLUMNS (from the root's files.csv, checked: ValueError on bad metadata).

    A root may hold one class only (``figshare-cheng-t1ce/tumor/``), or be a class folder itself
    (``--data-dir scans/healthy``); `find_all` checks that the roots together hold both."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"data root {str(root)!r} is not a folder")
    if is_pack(root):
        return read_pack(root)[0][["path", "root", "label", *metadata.TABLE_COLUMNS]]
    own = class_of_folder(root.name)
    rows = []
    for folder, dirs, _ in os.walk(root):
        dirs.sort()
        label = own if folder == str(root) else class_of_folder(Path(folder).name)
        if label is None:
            continue
        dirs.clear()  # the topmost class folder owns everything below it
        for sub, _, subfiles in os.walk(folder):
            for f in sorted(subfiles):
                p = Path(sub) / f
                if f.startswith(".") or p.suffix.lower() in SKIP_SUFFIXES:
                    continue
                rows.append((p.relative_to(root).as_posix(), str(root), label))
    if not rows:
        raise ValueError(
            f"no class folders under {str(root)!r}: expected e.g. 'Brain Tumor/' and 'Healthy/', "
            "'yes/' and 'no/', 'tumor/' and 'notumor/', or one of them alone"
        )
    frame = pd.DataFrame(rows, columns=["path", "root", "label"])
    frame = frame.sort_values(["label", "path"], ascending=[False, True], ignore_index=True)
    return metadata.attach(frame, root, class_of_folder)


def find_all(roots, both_classes: bool = True) -> pd.DataFrame:
    """find_images over several roots, merged; with `both_classes`, ValueError unless the roots
    together hold images of both classes (each root may hold one)."""
    if isinstance(roots, (str, Path)):
        roots = [roots]
    frame = pd.concat([find_images(r) for r in roots], ignore_index=True)
    missing = set(CLASS_NAMES) - {CLASS_NAMES[i] for i in frame.label.unique()}
    if both_classes and missing:
        raise ValueError(
            f"data roots {[str(r) for r in roots]!r} hold no images of class {sorted(missing)}: "
            "add a root with them (a one-class root needs a partner)"
        )
    return frame


@dataclass(frozen=True)
class Scanned:
    """What scanning a dataset found: readable images and the files that could not be read."""

    images: pd.DataFrame  # SCAN_COLUMNS + metadata.TABLE_COLUMNS, one row per readable image
    thumbs: np.ndarray  # (n, t, t) float32 greyscale thumbnails in 0-1, rows match `images`
    unreadable: list  # [{"path", "root", "error"}]


def thumbnail(img: Image.Image, side: int) -> np.ndarray:
    """Greyscale side x side thumbnail in 0-1: the near-duplicate fingerprint."""
    small = img.convert("L").resize((side, side), Image.Resampling.BILINEAR)
    return np.asarray(small, dtype=np.float32) / 255.0


def _scan_one(root: str, rel: str, thumb_side: int):
    path = Path(root) / rel
    try:
        data = path.read_bytes()
        img = load_image(data, name=str(path))
        fmt, mode = sniff_format(data), "DICOM"
        if fmt != "DICOM":
            with Image.open(io.BytesIO(data)) as raw:
                mode = raw.mode
    except (ImageLoadError, OSError, ValueError) as err:
        return None, str(err)
    info = (hashlib.sha256(data).hexdigest(), len(data), fmt, mode, img.width, img.height)
    return (info + (source_of(root),), thumbnail(img, thumb_side)), None


def _packed(files: pd.DataFrame, thumb_side: int) -> dict:
    """{(root, path): (info, thumbnail)} for the rows of `files` that lie in packed roots."""
    found = {}
    for root in files.root.unique():
        if not is_pack(root):
            continue
        table, thumbs = read_pack(root)
        if thumbs.shape[1:] != (thumb_side, thumb_side):
            raise ValueError(
                f"packed data root {root!r} holds {thumbs.shape[1]}-pixel duplicate thumbnails, "
                f"the run asks for {thumb_side}: pack it again with --dup-thumb {thumb_side}"
            )
        for row, thumb in zip(table.itertuples(index=False), thumbs, strict=True):
            info = (row.sha256, row.bytes, row.format, row.mode, row.width, row.height, row.source)
            found[(root, row.path)] = (info, thumb)
    return found


def scan(files: pd.DataFrame, thumb_side: int = 32, workers: int = 4) -> Scanned:
    """Read every listed file once: sha256, size, format, mode, dimensions and thumbnail (for a
    packed root, what its pack recorded of the original files); the files' metadata go along."""
    packed = _packed(files, thumb_side)

    def one(r):
        if (r.root, r.path) in packed:
            return packed[(r.root, r.path)], None
        return _scan_one(r.root, r.path, thumb_side)

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(one, files.itertuples(index=False)))
    rows, thumbs, bad = [], [], []
    for rec, (ok, error) in zip(files.itertuples(index=False), results, strict=True):
        if ok is None:
            bad.append({"path": rec.path, "root": rec.root, "error": error})
            continue
        rows.append((rec.path, rec.root, rec.label, *ok[0]))
        thumbs.append(ok[1])
    read = np.array([ok is not None for ok, _ in results], dtype=bool)
    meta = metadata.blank(files)[list(metadata.TABLE_COLUMNS)][read].reset_index(drop=True)
    images = pd.concat([pd.DataFrame(rows, columns=SCAN_COLUMNS), meta], axis=1)
    shape = (0, thumb_side, thumb_side)
    return Scanned(images, np.stack(thumbs) if thumbs else np.zeros(shape, np.float32), bad)


def sources(table: pd.DataFrame) -> pd.Series:
    """Source of each row: its `source` column, or for tables written before multi-source
    training (no such column) the source of its root."""
    if "source" in table.columns:
        return table.source.astype(str)
    return table.root.map(source_of)


def fingerprint(images: pd.DataFrame) -> str:
    """sha256 over the sorted (sha256, label) pairs: identifies the data a model saw."""
    h = hashlib.sha256()
    for sha, label in sorted(zip(images.sha256, images.label, strict=True)):
        h.update(f"{sha}:{label}\n".encode())
    return h.hexdigest()


def _describe(values) -> dict:
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return {}
    q = np.percentile(v, [0, 5, 25, 50, 75, 95, 100])
    keys = ["min", "p5", "p25", "median", "p75", "p95", "max"]
    return {"n": int(v.size), "mean": float(v.mean()), **dict(zip(keys, q.tolist(), strict=True))}


def summarize(scanned: Scanned, groups: np.ndarray | None = None) -> dict:
    """Counts, formats, modes, size distributions per class, unreadable files, duplicate audit."""
    df = scanned.images
    per_class = {}
    for label, name in enumerate(CLASS_NAMES):
        part = df[df.label == label]
        per_class[name] = {
            "count": int(len(part)),
            "formats": dict(Counter(part.format)),
            "modes": dict(Counter(part["mode"])),
            "width": _describe(part.width),
            "height": _describe(part.height),
            "file_bytes": _describe(part.bytes),
            "aspect": _describe(part.width / part.height) if len(part) else {},
        }
    summary = {
        "images": int(len(df)),
        "roots": sorted(set(df.root)),
        "classes": per_class,
        "sources": per_source(df, groups),
        "unreadable": scanned.unreadable,
        "fingerprint": fingerprint(df),
        "duplicates": duplicate_audit(df, groups),
    }
    summary["metadata"] = [m for r in summary["roots"] if (m := _metadata_check(r, df)) is not None]
    return summary


def per_source(df: pd.DataFrame, groups: np.ndarray | None = None) -> dict:
    """{source: files, files per class, formats, image sizes, duplicate groups} in the order the
    sources were given. A single-class source is marked: its look alone tells its label."""
    out = {}
    frame = df.assign(group=groups if groups is not None else -1)
    for name, part in frame.groupby("source", sort=False):
        counts = {c: int((part.label == i).sum()) for i, c in enumerate(CLASS_NAMES)}
        sizes = Counter(zip(part.width, part.height, strict=True))
        out[str(name)] = {
            "files": int(len(part)),
            "classes": counts,
            "single_class": sum(v > 0 for v in counts.values()) == 1,
            "formats": dict(Counter(part.format)),
            "image_sizes": len(sizes),
            "common_sizes": {f"{w}x{h}": n for (w, h), n in sizes.most_common(3)},
            "median_width": float(part.width.median()),
            "median_height": float(part.height.median()),
            "duplicate_groups": int(part.group.nunique()) if groups is not None else None,
            "roots": sorted(set(part.root)),
            **metadata.source_counts(part),
        }
    return out


def duplicate_audit(df: pd.DataFrame, groups: np.ndarray | None) -> dict:
    """Exact sha256 groups and near-duplicate groups, with examples and cross-class groups."""
    exact = df.groupby("sha256")
    exact_multi = [g for _, g in exact if len(g) > 1]
    audit = {
        "distinct_sha256": int(exact.ngroups),
        "redundant_exact_copies": int(len(df) - exact.ngroups),
        "exact_groups": len(exact_multi),
        "exact_cross_class": sum(g.label.nunique() > 1 for g in exact_multi),
        "exact_examples": [_paths(g) for g in exact_multi[:10]],
    }
    if groups is not None:
        frame = df.assign(group=groups)
        by_group = list(frame.groupby("group"))
        multi = sorted((g for _, g in by_group if len(g) > 1), key=len, reverse=True)
        audit.update(
            {
                "groups": len(by_group),
                "groups_per_class": {
                    name: int(frame[frame.label == i].group.nunique())
                    for i, name in enumerate(CLASS_NAMES)
                },
                "near_groups": len(multi),
                "images_in_near_groups": int(sum(len(g) for g in multi)),
                "largest_group": int(len(multi[0])) if multi else 1,
                "cross_class_groups": [_paths(g) for g in multi if g.label.nunique() > 1],
                "near_examples": [_paths(g) for g in multi[:12]],
            }
        )
    return audit


def _paths(g: pd.DataFrame) -> list:
    return [
        {"path": p, "root": r, "label": int(lab)}
        for p, r, lab in zip(g.path, g.root, g.label, strict=True)
    ][:8]


def _metadata_check(root: str, df: pd.DataFrame) -> dict | None:
    """Read metadata.csv when present (never required) and compare its format column."""
    path = Path(root) / "metadata.csv"
    if not path.is_file():
        return None
    meta = pd.read_csv(path)
    if not {"image", "format"} <= set(meta.columns):
        return {"root": root, "rows": int(len(meta)), "note": "no image/format columns"}
    ours = df[df.root == root].assign(image=lambda d: d.path.map(lambda p: Path(p).name))
    both = ours.merge(meta[["image", "format"]], on="image", suffixes=("", "_meta"))
    return {
        "root": root,
        "rows": int(len(meta)),
        "matched": int(len(both)),
        "format_disagreements": int((both.format != both.format_meta).sum()),
    }
