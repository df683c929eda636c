"""Unit tests of tumor_model.dashboard.dataset: class counts, image rows, the duplicate audit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_dashboard_tables import test_frame  # noqa: F401 - a fixture

from tumor_model.dashboard import dataset


@pytest.fixture
def summary() -> dict:
    """A dataset_summary.json with two classes and a duplicate audit."""

    def describe(lo, hi):
        return {
            "n": 10,
            "mean": (lo + hi) / 2,
            "min": lo,
            "p5": lo,
            "p25": lo + 1,
            "median": (lo + hi) / 2,
            "p75": hi - 1,
            "p95": hi,
            "max": hi,
        }

    classes = {
        name: {
            "count": 10,
            "formats": {"JPEG": 10 - k, "PNG": k},
            "modes": {"RGB": 10},
            "width": describe(200, 600),
            "height": describe(200, 500),
            "file_bytes": describe(10_000, 90_000),
        }
        for name, k in (("healthy", 0), ("tumor", 4))
    }
    group = [{"path": "a.jpg", "root": "r", "label": 0}, {"path": "b.jpg", "root": "r", "label": 1}]
    near = [{"path": "c.jpg", "root": "r", "label": 1}, {"path": "d.jpg", "root": "r", "label": 1}]
    return {
        "images": 20,
        "classes": classes,
        "unreadable": [],
        "duplicates": {
            "exact_groups": 3,
            "redundant_exact_copies": 4,
            "exact_cross_class": 1,
            "near_groups": 5,
            "images_in_near_groups": 11,
            "largest_group": 3,
            "cross_class_groups": [group],
            "near_examples": [group, near],
            "exact_examples": [],
        },
    }


def test_class_counts(test_frame):  # noqa: F811 - the fixture
    split = test_frame.assign(split=np.where(np.arange(len(test_frame)) < 80, "train", "test"))
    counts = dataset.class_counts(split)
    assert list(dict.fromkeys(counts.split)) == ["all", "train", "test"]
    total = counts[counts.split == "all"]["count"].sum()
    assert total == len(split) == counts[counts.split != "all"]["count"].sum()


def test_sample_rows_filter_and_seed(test_frame):  # noqa: F811
    tumours = dataset.sample_rows(test_frame, 14, seed=1, class_name="tumor")
    assert len(tumours) == 14 and (tumours.label == 1).all()
    pd.testing.assert_frame_equal(tumours, dataset.sample_rows(test_frame, 14, 1, "tumor"))
    other = dataset.sample_rows(test_frame, 14, seed=2, class_name="tumor")
    assert list(other.path) != list(tumours.path)
    assert len(dataset.sample_rows(test_frame.head(3), 14, seed=0)) == 3


def test_image_tables(tmp_path, test_frame):  # noqa: F811
    rows = dataset.split_images(test_frame.head(3), tmp_path)
    assert rows.image.iloc[0] == str(tmp_path / "f0.jpg") and rows.caption[0].endswith("· test")
    samples = pd.DataFrame({"file": ["a.png"], "label": [1], "class_name": ["tumor"]})
    shown = dataset.sample_images(samples, tmp_path)
    assert shown.image.iloc[0] == str(tmp_path / "samples/a.png") and shown.caption[0] == "tumour"


def test_duplicate_audit_helpers(summary, tmp_path):
    numbers = dataset.duplicate_numbers(summary)
    assert numbers["Cross-class groups"] == 1 and numbers["Near-duplicate groups"] == 5
    examples = dataset.duplicate_examples(summary)
    assert len(examples) == 2  # the cross-class group is listed twice in the summary
    rows = dataset.group_images(examples[0], tmp_path)
    assert rows.image.iloc[0] == str(tmp_path / "a.jpg")
    assert rows.caption.iloc[1] == "tumour · b.jpg"
    assert dataset.group_images(examples[0], None).image.iloc[0] == "r/a.jpg"
    assert dataset.duplicate_numbers({}) == {} and dataset.duplicate_examples({}) == []


# ----------------------------------------------------------------------------- statements


def test_property_statements_follow_the_data(summary):
    lines = dataset.property_statements(summary)
    assert (
        lines[0]
        == "**File format: differs** by 40.0%; JPEG is 100.0% of no tumour, 60.0% of tumour."
    )
    assert lines[1].startswith("**Colour mode: alike**")  # both classes are all RGB
    assert lines[2].startswith("**Image size: alike**") and "no tumour 400x350 px" in lines[2]
    alike = {
        **summary,
        "classes": {k: {**v, "formats": {"JPEG": 10}} for k, v in summary["classes"].items()},
    }
    assert dataset.property_statements(alike)[0].startswith("**File format: alike**")
    bigger = dict(summary["classes"]["tumor"], width={"median": 800}, height={"median": 700})
    differs = {**summary, "classes": {**summary["classes"], "tumor": bigger}}
    size = next(line for line in dataset.property_statements(differs) if "Image size" in line)
    assert size.startswith("**Image size: differs**") and "tumour 800x700 px" in size
    assert dataset.property_statements({}) == []


def test_source_statements_with_several_sources():
    split = pd.DataFrame(
        {
            "path": ["a", "b", "c", "d"],
            "root": ["/x/kaggle", "/x/kaggle", "/y/figshare/tumor", "/y/figshare/tumor"],
            "label": [0, 1, 1, 1],
        }
    )
    lines = dataset.root_statements(split)  # a class folder as root: its parent is the source
    assert lines == [
        "**Source `figshare`**: 0 no tumour, 2 tumour: only tumour images, so the source alone "
        "tells the label.",
        "**Source `kaggle`**: 1 no tumour, 1 tumour.",
    ]
    assert dataset.root_statements(split[split.root == "/x/kaggle"]) == []
    assert dataset.property_statements({}, split) == lines
    named = split.assign(source=["k", "k", "k", "f"])  # split.csv's own column wins
    assert dataset.root_statements(named)[0].startswith("**Source `f`**: 0 no tumour, 1 tumour")


@pytest.fixture
def grouped() -> pd.DataFrame:
    """split.csv rows: an exact group across classes, a near group, a mixed one, a single."""
    rows = [
        ("e1.jpg", "s1", 0, 0, "train"),
        ("e2.jpg", "s1", 0, 1, "train"),  # the same bytes labelled tumour: exact cross-class
        ("n1.jpg", "s2", 1, 1, "val"),
        ("n2.jpg", "s3", 1, 1, "val"),
        ("m1.jpg", "s4", 2, 0, "test"),
        ("m2.jpg", "s4", 2, 0, "test"),
        ("m3.jpg", "s5", 2, 1, "test"),  # near copy of the other class: cross-class, not exact
        ("alone.jpg", "s6", 3, 1, "train"),
    ]
    return pd.DataFrame(rows, columns=["path", "sha256", "group", "label", "split"]).assign(
        root="r"
    )


def test_duplicate_groups_kinds_and_cross_class(grouped):
    groups = dataset.duplicate_groups(grouped).set_index("group")
    assert list(groups.index) == [2, 0, 1]  # largest first, the single file left out
    assert groups.kind.to_dict() == {2: "exact + near", 0: "exact", 1: "near"}
    assert groups.cross_class.to_dict() == {2: True, 0: True, 1: False}
    assert groups.exact_cross_class.to_dict() == {2: False, 0: True, 1: False}
    assert groups.loc[0, "classes"] == "no tumour, tumour" and groups.loc[2, "splits"] == "test"
    assert dataset.duplicate_groups(grouped[grouped.group == 3]).empty


def test_group_files_lists_the_whole_group(grouped, tmp_path):
    files = dataset.group_files(grouped, 2, tmp_path)
    assert files.path.tolist() == ["m1.jpg", "m2.jpg", "m3.jpg"]
    assert files.image[0] == str(tmp_path / "m1.jpg")
    assert files.caption[2] == "m3.jpg · tumour · test"
    assert dataset.group_files(grouped, 2, None).image[0] == "r/m1.jpg"


def test_source_table_shows_patients_sequences_and_institutions_where_given():
    base = {
        "files": 6,
        "classes": {"tumor": 3, "healthy": 3},
        "single_class": False,
        "image_sizes": 1,
        "common_sizes": {"256x256": 6},
        "duplicate_groups": 6,
        "formats": {"JPEG": 6},
    }
    lgg = base | {"patients": 2, "sequences": {"flair": 4, "t1": 2}, "institutions": {"DU": 6}}
    table = dataset.source_table({"sources": {"kaggle": base, "lgg": lgg}})
    row = table.set_index("source").loc["lgg"]
    shown = row["patients"], row["sequences"], row["institutions"]
    assert shown == ("2", "flair 4, t1 2", "DU 6")
    assert table.set_index("source").loc["kaggle", "sequences"] == ""
    plain = dataset.source_table({"sources": {"kaggle": base}})
    assert not {"patients", "sequences", "institutions"} & set(plain.columns)  # none given
