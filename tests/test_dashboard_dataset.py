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
    assert shown.image.iloc[0] == str(tmp_path / "samples/a.png") and shown.caption[0] == "tumor"


def test_duplicate_audit_helpers(summary, tmp_path):
    numbers = dataset.duplicate_numbers(summary)
    assert numbers["Cross-class groups"] == 1 and numbers["Near-duplicate groups"] == 5
    examples = dataset.duplicate_examples(summary)
    assert len(examples) == 2  # the cross-class group is listed twice in the summary
    rows = dataset.group_images(examples[0], tmp_path)
    assert rows.image.iloc[0] == str(tmp_path / "a.jpg")
    assert rows.caption.iloc[1] == "tumor · b.jpg"
    assert dataset.group_images(examples[0], None).image.iloc[0] == "r/a.jpg"
    assert dataset.duplicate_numbers({}) == {} and dataset.duplicate_examples({}) == []
