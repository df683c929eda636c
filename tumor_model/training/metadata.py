"""Per-file metadata from a source's `files.csv`: patient, MRI sequence and institution.

A root may hold `files.csv` (tcga-lgg does) with a `file` column (paths relative to the root, e.g.
`tumor/x.jpg`) and any of `label`, `patient_id`, `sequence`, `institution`. What it gives travels
with each file into the scanned table, split.csv and the per-source reports; `patient_id` makes
every split and CV keep a patient whole (merged with duplicate groups, `split.fold_groups`). A root
without it reads as before. Bad metadata (a malformed row, a row naming a file that is not an
image of the root, a label that disagrees with the file's class folder) is a ValueError naming the
files.csv and the row, raised while the files are found: before anything is scanned or written.
A file without a row is read without metadata and counted (`source_counts`).
"""

from __future__ import annotations

import csv
import posixpath
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from tumor_model.artifacts import (
    COLUMNS,
    FILE_METADATA,
    INSTITUTION,
    INSTITUTIONS,
    OPTIONAL_COLUMNS,
    PATIENT,
    SEQUENCE,
    SEQUENCES,
)
from tumor_model.config import CLASS_NAMES

METADATA_FILE = "files.csv"
FILE, LABEL = "file", "label"  # files.csv's path column and its optional class column
# Per scanned file: 1 when its root's files.csv has a row for it, 0 when it has none, NaN when
# the root holds no files.csv.
LISTED = "in_files_csv"
TABLE_COLUMNS = (*FILE_METADATA, LISTED)  # what find_images and scan add to every row
PATIENTS, UNLISTED = "patients", "files_without_metadata"
SUMMARY_KEYS = (PATIENTS, SEQUENCES, INSTITUTIONS, UNLISTED)  # a source's counts, when present


def blank(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with every TABLE_COLUMNS column, empty where it had none."""
    missing = {c: None for c in FILE_METADATA if c not in frame.columns}
    if LISTED not in frame.columns:
        missing[LISTED] = np.nan
    return frame.assign(**missing)


def locate(root: Path, is_class_folder: bool) -> tuple[Path, str] | None:
    """(files.csv describing `root`'s files, the prefix of their paths in it): the root's own, or
    for a root that is a class folder (`tcga-lgg/tumor`) its parent's, whose rows for it start
    with `tumor/`. None when there is none."""
    if (root / METADATA_FILE).is_file():
        return root / METADATA_FILE, ""
    parent = root.resolve().parent
    if is_class_folder and (parent / METADATA_FILE).is_file():
        return parent / METADATA_FILE, root.resolve().name + "/"
    return None


def read_rows(path: Path) -> tuple[list[str], list[tuple[str, dict]]]:
    """(header, [(where, {column: value})]) of a files.csv; `where` names the file and the row
    (data rows from 1, blank lines skipped) and its line. ValueError on a row whose field count
    is not the header's, or an unreadable file."""
    where = str(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            if FILE not in header or len(set(header)) != len(header):
                raise ValueError(
                    f"{where}: its header needs a {FILE!r} column and distinct names, got {header}"
                )
            rows = []
            for record in reader:
                if not any(value.strip() for value in record):
                    continue
                at = f"{where} row {len(rows) + 1} (line {reader.line_num})"
                if len(record) != len(header):
                    raise ValueError(
                        f"{at}: malformed, {len(record)} fields where the header has {len(header)}"
                    )
                rows.append((at, {k: v.strip() for k, v in zip(header, record, strict=True)}))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{where} is unreadable: {err}") from err
    return header, rows


def checked(path: Path, prefix: str, found: dict, label_of) -> tuple[list[str], dict]:
    """(header, {root-relative path: row}) of the rows of `path` for the files of one root
    (`found`: root-relative path -> label; rows outside `prefix` belong to a sibling class
    folder), each checked: a known image of the root, listed once, with a label (when given)
    that its class folder agrees with."""
    header, rows = read_rows(path)
    out, first = {}, {}
    for at, row in rows:
        name = posixpath.normpath(row[FILE].replace("\\", "/")) if row[FILE] else ""
        if not name or name.startswith("../") or name.startswith("/"):
            raise ValueError(f"{at}: malformed, {row[FILE]!r} is no path inside the root")
        if name in first:
            raise ValueError(f"{at}: {name!r} is listed again (first at {first[name]})")
        first[name] = at
        if not name.startswith(prefix):
            continue
        rel = name[len(prefix) :]
        if rel not in found:
            raise ValueError(
                f"{at}: names {name!r}, which is no image file under a class folder beside "
                f"{path.name}"
            )
        claimed = row.get(LABEL, "")
        label = int(claimed) if claimed in ("0", "1") else label_of(claimed)
        if claimed and label is None:
            raise ValueError(
                f"{at}: label {claimed!r} is not a class ({', '.join(CLASS_NAMES)}, or 0 / 1)"
            )
        if claimed and label != found[rel]:
            raise ValueError(
                f"{at}: label {claimed!r} disagrees with the class folder of {name!r} "
                f"({CLASS_NAMES[found[rel]]})"
            )
        out[rel] = row
    return header, out


def attach(found: pd.DataFrame, root: str | Path, label_of) -> pd.DataFrame:
    """`found` (find_images' rows of one root: path, root, label) with TABLE_COLUMNS from the
    root's files.csv; `label_of` maps a class name to its label (data.class_of_folder). A
    files.csv without `patient_id` leaves patients unknown, with a one-line warning on stderr."""
    root = Path(root)
    located = locate(root, label_of(root.name) is not None)
    if located is None:
        return blank(found)
    path, prefix = located
    labels = dict(zip(found.path, found.label, strict=True))
    header, rows = checked(path, prefix, labels, label_of)
    if PATIENT not in header:
        print(
            f"warning: {path} has no {PATIENT} column: splits and CVs keep its files whole by "
            "duplicate group only",
            file=sys.stderr,
        )
    values = {
        column: [(rows.get(p) or {}).get(column) or None for p in found.path]
        for column in FILE_METADATA
    }
    return found.assign(**values, **{LISTED: [float(p in rows) for p in found.path]})


def known(value) -> bool:
    """Whether a metadata value is given (not None, NaN or empty)."""
    return value is not None and not (isinstance(value, float) and np.isnan(value)) and value != ""


def patient_keys(table: pd.DataFrame, sources) -> np.ndarray:
    """A key per row that the rows of one patient of one source share; a row without a patient
    gets a key of its own, so merging on the keys joins patients and nothing else."""
    ids = table[PATIENT].tolist() if PATIENT in table.columns else [None] * len(table)
    return np.array(
        [
            f"{src}\t{pid}" if known(pid) else f"\0{i}"
            for i, (src, pid) in enumerate(zip(sources, ids, strict=True))
        ],
        dtype=object,
    )


def has_patients(table: pd.DataFrame) -> bool:
    return PATIENT in table.columns and any(known(p) for p in table[PATIENT])


def source_counts(part: pd.DataFrame) -> dict:
    """What a source's files.csv gave its files: patients, files per sequence and per
    institution, and files it has no row for; {} for a source without a files.csv."""
    if LISTED not in part.columns or part[LISTED].isna().all():
        return {}
    out = {}
    patients = {str(p) for p in part.get(PATIENT, ()) if known(p)}
    if patients:
        out[PATIENTS] = len(patients)
    for column, key in ((SEQUENCE, SEQUENCES), (INSTITUTION, INSTITUTIONS)):
        given = [str(v) for v in part.get(column, ()) if known(v)]
        if given:
            out[key] = dict(sorted(Counter(given).items()))
    out[UNLISTED] = int((part[LISTED] == 0).sum())
    return out


def csv_columns(table: pd.DataFrame, name: str) -> list[str]:
    """The columns of the artifact `name` (split.csv, predictions.csv) to write from `table`: the
    contract's required ones, then its optional ones that some row of `table` fills."""
    given = [c for c in OPTIONAL_COLUMNS.get(name, ()) if c in table.columns]
    optional = [c for c in given if table[c].map(known).any()]
    return [*COLUMNS[name], *optional]
