"""The localisation benchmark's input (evaluation.localise): the box sources read and checked,
their unseen rows, the two halves (by patient where a source marks patients), the sample each
half measures, and its slices loaded into the map's frame."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from tumor_model import artifacts
from tumor_model.config import CLASS_NAMES
from tumor_model.evaluation.lesion_scores import box_mask, head_mask
from tumor_model.evaluation.localise_plan import BOX_COLUMNS, SEED

TUMOUR_LABELS = frozenset({CLASS_NAMES[1], "tumour", "1", "1.0"})  # a `label` column's tumours


class Slice(NamedTuple):
    """One measured slice: its file, prepared pixels, box and head masks (S x S), and group."""

    file: str
    pixels: np.ndarray
    box: np.ndarray
    head: np.ndarray
    source: str
    sequence: str


def tumour_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a labelled CSV (a `label` column, e.g. tcga-lgg's files.csv) that are tumours
    with a box (any box column filled); the original index is kept for error messages."""
    label = frame["label"].astype(str).str.strip().str.lower()
    boxed = frame[list(BOX_COLUMNS[1:])].notna().any(axis=1)
    return frame[label.isin(TUMOUR_LABELS) & boxed]


def read_boxes(path: str | Path) -> pd.DataFrame:
    """One box source, checked: the columns, numbers, fractions in 0..1, boxes of positive size.
    A CSV with a `label` column gives only its tumour rows with a box. Each row gains `source`
    (the CSV's folder name), `sequence` (its `sequence` column, else "") and `folder` (where its
    `file` is); `patient_id` and `sha256` are kept when present."""
    path = Path(path)
    name = str(path)
    if not path.is_file():
        raise ValueError(f"boxes file {name!r} not found")
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise ValueError(f"boxes file {name!r} is unreadable ({err})") from err
    missing = [c for c in BOX_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"boxes file {name!r} lacks the columns {missing}")
    labelled = "label" in frame.columns
    frame = tumour_rows(frame).copy() if labelled else frame
    if frame.empty:
        raise ValueError(
            f"boxes file {name!r} has no {'tumour row with a box' if labelled else 'rows'}"
        )
    for col in BOX_COLUMNS[1:]:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = frame.index[~values.between(0.0, 1.0) | (values.le(0) & (col in ("width", "height")))]
        if len(bad):
            row = bad[0]
            raise ValueError(
                f"boxes file {name!r}, row {int(row) + 2} ({frame.file[row]!r}): {col} "
                f"{str(frame[col][row])!r} is not a fraction of the image in (0, 1]"
            )
        frame[col] = values.astype(float)
    if frame.file.duplicated().any():
        raise ValueError(
            f"boxes file {name!r} lists {frame.file[frame.file.duplicated()].iloc[0]!r} twice"
        )
    sequence = frame["sequence"].fillna("").astype(str) if "sequence" in frame.columns else ""
    return frame.assign(
        source=path.resolve().parent.name, sequence=sequence, folder=str(path.parent)
    ).reset_index(drop=True)


def read_sources(paths) -> list[pd.DataFrame]:
    """`read_boxes` of every path; two CSVs of one folder (one source name) are refused."""
    frames, seen = [], {}
    for path in paths:
        frame = read_boxes(path)
        source = frame.source.iloc[0]
        if source in seen:
            raise ValueError(
                f"boxes files {seen[source]!r} and {str(path)!r} are both source {source!r} "
                "(named by their folder): give one boxes file per source"
            )
        seen[source] = str(path)
        frames.append(frame)
    if not frames:
        raise ValueError("no boxes file given")
    return frames


def unseen(boxes: pd.DataFrame, artifacts_dir: str | Path) -> tuple[pd.DataFrame, str]:
    """The rows of one source the model did not train on, and a sentence saying how they were
    picked: the TEST split's rows when some of its sha256 are in the model's split.csv (a
    training source), else every row."""
    path = Path(artifacts_dir) / artifacts.SPLIT
    if "sha256" not in boxes.columns or not path.is_file():
        return boxes, "every row (no sha256 column or no split.csv to compare with)"
    split = artifacts.read_csv(artifacts_dir, artifacts.SPLIT)
    known = boxes.sha256.isin(split.sha256)
    if not known.any():
        return boxes, "every row: none of these images is in the model's split.csv"
    test = set(split.sha256[split.split == "test"]) - set(split.sha256[split.split != "test"])
    keep = boxes[boxes.sha256.isin(test)].reset_index(drop=True)
    return keep, f"the {len(keep)} rows in the test split of the model's split.csv"


def groups_of(rows: pd.DataFrame) -> pd.Series:
    """Each row's unit of the halves: its `patient_id`, else (no column or an empty one) its
    file."""
    files = "file:" + rows.file.astype(str)
    if "patient_id" not in rows.columns:
        return files
    patient = rows.patient_id.astype("string").str.strip()
    return ("patient:" + patient).where(patient.notna() & patient.ne(""), files).astype(str)


def count_units(rows: pd.DataFrame) -> int:
    return int(groups_of(rows).nunique())


def split_source(rows: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One source's (selection, report): its units (`groups_of`) shuffled with `seed` and cut
    where half its rows are reached. Cut by file, each half keeps the shuffled file order; by
    patient, a half's rows are shuffled again so that its first rows come from many patients."""
    rows = rows.sort_values("file", kind="stable").reset_index(drop=True)
    units = groups_of(rows)
    rng = np.random.default_rng(seed)
    order = rng.permutation(np.sort(units.unique()))
    sizes = units.value_counts().reindex(order).to_numpy()
    cut = int(np.searchsorted(np.cumsum(sizes), (len(rows) + 1) // 2)) + 1
    cut = min(cut, max(len(order) - 1, 1))
    rank = pd.Series(np.arange(len(order)), index=order)
    position = rank.loc[units.to_numpy()].to_numpy()
    out = []
    for part in (position < cut, position >= cut):
        half = rows[part].iloc[np.argsort(position[part], kind="stable")]
        if not units.is_unique:
            half = half.iloc[rng.permutation(len(half))]
        out.append(half.reset_index(drop=True))
    return out[0], out[1]


def halves(boxes: pd.DataFrame, seed: int = SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(selection, report): each source (`source` column; none: one source) cut in two by
    `split_source`, so that every source is in both halves and a patient in one."""
    if "source" not in boxes.columns:
        return split_source(boxes, seed)
    parts = [split_source(rows, seed) for _, rows in boxes.groupby("source")]  # by name
    return tuple(pd.concat(p, ignore_index=True) for p in zip(*parts, strict=True))


def sample(half: pd.DataFrame, per_source: int) -> pd.DataFrame:
    """The first `per_source` rows of each source in a half, interleaved (one of each source in
    turn), so that any first n of the sample hold every source."""
    if "source" not in half.columns:
        return half.head(per_source).reset_index(drop=True)
    taken = half.groupby("source", sort=False).head(per_source)
    rank = taken.groupby("source", sort=False).cumcount().to_numpy()
    return taken.iloc[np.argsort(rank, kind="stable")].reset_index(drop=True)


def load_slices(rows: pd.DataFrame, size: int, geometry: str, log):
    """([Slice] of the rows, [why each unreadable file was skipped])."""
    from tumor_model.io.geometry import prepare_placed
    from tumor_model.io.imageio import ImageLoadError, load_image

    done, failed = [], []
    for row in rows.to_dict("records"):
        try:
            img = load_image(Path(row["folder"]) / row["file"], row["file"])
        except ImageLoadError as err:
            failed.append(str(err))
            log(f"skipped: {err}")
            continue
        pixels, placement = prepare_placed(img, size, geometry)
        box = box_mask(placement, img.size[0], img.size[1], row)
        done.append(
            Slice(row["file"], pixels, box, head_mask(pixels), row["source"], row["sequence"] or "")
        )
    return done, failed
