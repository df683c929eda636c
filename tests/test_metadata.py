"""Per-file metadata from a root's files.csv (training.metadata): patients kept whole by every split
and CV (merged with duplicate groups), sequence and institution carried into the scanned table and
the per-source summary, bad metadata refused with the file and row named, nothing written."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest
from metadata_roots import HEADER, SEQUENCES, make_patients, write_csv

from tumor_model import artifacts
from tumor_model.commands import main
from tumor_model.config import Settings
from tumor_model.training import data, metadata, split

from conftest import REPO, make_site, tiny_settings

TCGA = REPO.parent / "shared" / "data" / "tcga-lgg"


@pytest.fixture()
def lgg(tmp_path):
    root = tmp_path / "lgg"
    rows = make_patients(root)
    write_csv(root, rows)
    return root, rows


def _table(root, **kw):
    settings = tiny_settings(root, root.parent / "out", **kw)
    return split.prepare_table(settings)


def test_metadata_travels_with_each_file_into_the_table_and_summary(lgg):
    root, rows = lgg
    table, summary = _table(root)
    by_path = table.set_index("path")
    for row in rows:
        got = by_path.loc[row["file"]]
        assert (got.patient_id, got.sequence, got.institution) == (
            row["patient_id"],
            row["sequence"],
            row["institution"],
        )
    mine = summary["sources"]["lgg"]
    assert mine[metadata.PATIENTS] == 8 and mine[metadata.UNLISTED] == 0
    assert mine[artifacts.SEQUENCES] == {"flair": 16, "t1": 16, "t1ce": 16}
    assert mine[artifacts.INSTITUTIONS] == {"A": 24, "B": 24}
    # split.csv's optional columns are written when filled, never required to read
    assert metadata.csv_columns(table, artifacts.SPLIT) == [
        *artifacts.COLUMNS[artifacts.SPLIT],
        *artifacts.FILE_METADATA,
    ]
    table[metadata.csv_columns(table, artifacts.SPLIT)].to_csv(
        root.parent / "split.csv", index=False
    )
    back = artifacts.read_csv(root.parent, artifacts.SPLIT)
    assert set(artifacts.FILE_METADATA) <= set(back.columns)


def test_every_split_and_cv_keeps_a_patient_whole_and_joins_copies(lgg):
    root, _ = lgg
    table, _ = _table(root)
    assert table.groupby("patient_id").split.nunique().max() == 1
    assert set(table.split) == {"train", "val", "test"}
    # patient 1 holds an exact copy of a slice of patient 0: one group, one side
    assert table[table.patient_id.isin(["P0", "P1"])].split.nunique() == 1
    keep = split.fold_groups(table, "duplicate")
    assert keep[table.patient_id == "P0"][0] == keep[table.patient_id == "P1"][0]  # the copy
    assert len(set(keep)) < 8 < table.group.nunique()  # duplicate groups themselves stay
    for _, test in split.grouped_folds(table.label.to_numpy(), keep, 3, 0):
        inside = set(table.patient_id.iloc[test])
        assert not inside & set(table.patient_id.drop(table.index[test]))
    by_size = table.assign(keep=split.fold_groups(table, "source"))  # one size: one group
    assert by_size.groupby("patient_id").keep.nunique().max() == 1
    leaking, first = table.copy(), table.index[table.patient_id == "P3"][0]
    leaking.loc[first, "split"] = next(s for s in split.SPLIT_NAMES if s != table.split[first])
    with pytest.raises(ValueError, match="patients span splits, e.g. patient 'P"):
        split.check_no_leak(leaking)


def test_a_root_without_files_csv_reads_as_before(tmp_path):
    root = make_site(tmp_path / "site", tumours=14, healthy=14)
    table, summary = _table(root)
    assert table[list(artifacts.FILE_METADATA)].isna().all().all()
    assert table[metadata.LISTED].isna().all()
    assert not set(metadata.SUMMARY_KEYS) & set(summary["sources"]["site"])
    for by in ("duplicate", "source"):
        expected = table.group.to_numpy() if by == "duplicate" else None
        if expected is None:
            dims = table.width.astype(str) + "x" + table.height.astype(str)
            expected = split.merge_groups(table.group, dims)
        np.testing.assert_array_equal(split.fold_groups(table, by), expected)
    assert metadata.csv_columns(table, artifacts.SPLIT) == artifacts.COLUMNS[artifacts.SPLIT]


def _malformed(root, rows):
    with open(root / metadata.METADATA_FILE, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(HEADER)
        for i, row in enumerate(rows):
            out.writerow([row[c] for c in HEADER] + (["extra"] if i == 2 else []))


@pytest.mark.parametrize(
    ("spoil", "row", "says"),
    [
        (_malformed, 3, "malformed, 7 fields where the header has 6"),
        (
            lambda root, rows: write_csv(root, rows + [rows[0] | {"file": "tumor/gone.png"}]),
            49,
            "names 'tumor/gone.png', which is no image file",
        ),
        (
            lambda root, rows: write_csv(root, [rows[0] | {"label": "healthy"}, *rows[1:]]),
            1,
            "label 'healthy' disagrees with the class folder of 'tumor/p0_s0.png' (tumor)",
        ),
        (
            lambda root, rows: write_csv(
                root, [*rows[:4], rows[4] | {"label": "maybe"}, *rows[5:]]
            ),
            5,
            "label 'maybe' is not a class",
        ),
        (lambda root, rows: write_csv(root, [*rows, rows[3]]), 49, "listed again (first at"),
        (
            lambda root, rows: write_csv(root, rows[:1] + [rows[1] | {"file": "../x.png"}]),
            2,
            "no path inside the root",
        ),
    ],
)
def test_bad_metadata_names_the_file_and_row_and_nothing_is_written(lgg, spoil, row, says, capsys):
    root, rows = lgg
    spoil(root, rows)
    out = root.parent / "summary.json"
    assert main(["summarize", "--data-dir", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{root / metadata.METADATA_FILE} row {row} (line {row + 1})" in err
    assert says in err
    assert not out.exists()
    with pytest.raises(ValueError, match="files.csv row"):
        split.prepare_table(tiny_settings(root, root.parent / "model"))
    assert not (root.parent / "model").exists()


def test_a_file_without_a_row_is_read_without_metadata_and_counted(lgg):
    root, rows = lgg
    write_csv(root, rows[1:])
    files = data.find_all([root])
    missing = files[files.path == rows[0]["file"]].iloc[0]
    assert pd.isna(missing.patient_id) and missing[metadata.LISTED] == 0
    scanned = data.scan(files)
    counts = data.summarize(scanned)["sources"]["lgg"]
    assert counts[metadata.UNLISTED] == 1 and counts[metadata.PATIENTS] == 8


def test_no_patient_id_column_falls_back_to_duplicate_groups_with_a_warning(lgg, capsys):
    root, rows = lgg
    write_csv(root, rows, [c for c in HEADER if c != "patient_id"])
    table, summary = _table(root)
    err = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(err) == 1
    assert str(root / metadata.METADATA_FILE) in err[0] and "patient_id" in err[0]
    np.testing.assert_array_equal(split.fold_groups(table, "duplicate"), table.group)
    assert metadata.PATIENTS not in summary["sources"]["lgg"]
    assert set(table.sequence) == set(SEQUENCES)


def test_a_class_folder_root_reads_its_parents_files_csv(lgg):
    root, rows = lgg
    files = data.find_images(root / "healthy")
    assert len(files) == 24 and files[metadata.LISTED].eq(1).all()
    first = files.set_index("path").loc["p0_s0.png"]
    assert (first.patient_id, first.sequence) == ("P0", "t1")


@pytest.mark.skipif(not (TCGA / metadata.METADATA_FILE).is_file(), reason=f"no {TCGA}")
def test_tcga_lgg_patients_are_never_split():
    settings = Settings(data_dirs=(str(TCGA),))
    table, summary = split.prepare_table(settings)
    assert len(table) == 2512 and set(table.split) == {"train", "val", "test"}
    assert table.groupby("patient_id").split.nunique().max() == 1
    counts = summary["sources"]["tcga-lgg"]
    assert counts[metadata.PATIENTS] == 110 and counts[metadata.UNLISTED] == 0
    assert set(counts[artifacts.SEQUENCES]) == {"t1", "t1ce", "flair"}
    assert set(counts[artifacts.INSTITUTIONS]) == {"CS", "DU", "EZ", "FG", "HT"}
    assert not (table.path.str.startswith("masks/")).any()
    keep = split.fold_groups(table, "duplicate")
    for _, test in split.grouped_folds(table.label.to_numpy(), keep, 5, 0):
        inside = set(table.patient_id.iloc[test])
        assert not inside & set(table.patient_id.drop(table.index[test]))
