import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tumor_model.artifacts import write_json
from tumor_model.config import HEALTHY, TUMOR
from tumor_model.training import data, split


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("Brain Tumor", TUMOR),
        ("yes", TUMOR),
        ("notumor", HEALTHY),
        ("no_tumor", HEALTHY),
        ("Tumour", TUMOR),
        ("normal", HEALTHY),
        ("Healthy", HEALTHY),
        ("Brain Tumor Data Set", None),
    ],
)
def test_class_of_folder(name, label):
    assert data.class_of_folder(name) == label


def _png(path, value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 16), value, np.uint8)).save(path, format="PNG")


@pytest.mark.parametrize(
    "layout",
    [
        (
            "Brain Tumor Data Set/Brain Tumor Data Set/Brain Tumor",
            "Brain Tumor Data Set/Brain Tumor Data Set/Healthy",
        ),
        ("yes", "no"),
        ("Training/tumor", "Training/notumor"),
        ("tumour", "normal"),
    ],
)
def test_find_images_layouts(tmp_path, layout):
    _png(tmp_path / layout[0] / "a.png")
    _png(tmp_path / layout[0] / "sub" / "b.png")
    _png(tmp_path / layout[1] / "c.png")
    (tmp_path / "metadata.csv").write_text("x\n")
    found = data.find_images(tmp_path)
    assert sorted(found.label) == [0, 1, 1]
    assert all(not p.endswith(".csv") for p in found.path)


def test_find_images_errors(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        data.find_images(tmp_path / "missing")
    _png(tmp_path / "random" / "a.png")
    with pytest.raises(ValueError, match="no class folders"):
        data.find_images(tmp_path)
    _png(tmp_path / "yes" / "a.png")
    assert list(data.find_images(tmp_path).label) == [1]  # a one-class root is read...
    with pytest.raises(ValueError, match=r"no images of class \['healthy'\]"):
        data.find_all([tmp_path])  # ...but the roots together must hold both classes


def test_one_class_roots_and_sources(tmp_path):
    _png(tmp_path / "site-a" / "tumor" / "a.png")
    _png(tmp_path / "site-b" / "healthy" / "b.png")
    _png(tmp_path / "site-c" / "no" / "c.png")
    files = data.find_all(
        [tmp_path / "site-a", tmp_path / "site-b", tmp_path / "site-c" / "no"]
    )  # the last root is a class folder itself
    assert list(files.label) == [1, 0, 0]
    scanned = data.scan(files)
    assert list(scanned.images.source) == ["site-a", "site-b", "site-c"]
    per = data.summarize(scanned, np.arange(3))["sources"]
    assert per["site-a"]["classes"] == {"healthy": 0, "tumor": 1}
    assert per["site-a"]["single_class"] and per["site-b"]["duplicate_groups"] == 1


def test_scan_reads_every_mode_lists_corrupt_and_lying(tiny_dataset):
    root, facts = tiny_dataset
    scanned = data.scan(data.find_images(root))
    bad = [b["path"] for b in scanned.unreadable]
    assert bad == [facts["corrupt"]]
    assert "corrupt.jpg" in scanned.unreadable[0]["error"]
    df = scanned.images.set_index("path")
    assert df.loc[facts["lying"], "format"] == "PNG"
    assert {"RGB", "L", "P", "RGBA", "LA"} <= set(df["mode"])
    assert scanned.thumbs.shape == (len(df), 32, 32)
    assert 0 <= scanned.thumbs.min() and scanned.thumbs.max() <= 1


def test_groups_find_planted_duplicates_only(tiny_dataset):
    root, facts = tiny_dataset
    scanned = data.scan(data.find_images(root))
    groups = split.duplicate_groups(list(scanned.images.sha256), scanned.thumbs, 0.02)
    where = dict(zip(scanned.images.path, groups, strict=True))
    for a, b in facts["exact_copies"] + facts["near_copies"]:
        assert where[a] == where[b]
    # every other image is its own group: 2 planted clusters of 3 files
    assert len(set(groups)) == len(groups) - 4


def test_summary_contents(tiny_dataset, tmp_path):
    root, facts = tiny_dataset
    scanned = data.scan(data.find_images(root))
    groups = split.duplicate_groups(list(scanned.images.sha256), scanned.thumbs, 0.02)
    summary = data.summarize(scanned, groups)
    write_json(summary, tmp_path / "s.json")
    back = json.loads((tmp_path / "s.json").read_text())
    assert back["classes"]["tumor"]["count"] + back["classes"]["healthy"]["count"] == back["images"]
    assert back["unreadable"][0]["path"] == facts["corrupt"]
    dup = back["duplicates"]
    assert dup["redundant_exact_copies"] == 2 and dup["exact_groups"] == 2
    assert dup["near_groups"] == 2 and dup["cross_class_groups"] == []
    assert back["classes"]["healthy"]["width"]["median"] == 64
    assert back["metadata"][0]["rows"] == 0


def test_fingerprint_changes_with_labels(tiny_dataset):
    root, _ = tiny_dataset
    df = data.scan(data.find_images(root)).images
    assert data.fingerprint(df) == data.fingerprint(df.sample(frac=1, random_state=0))
    flipped = df.assign(label=1 - df.label)
    assert data.fingerprint(flipped) != data.fingerprint(df)


def test_find_all_merges_roots(tiny_dataset, tmp_path):
    root, _ = tiny_dataset
    _png(tmp_path / "yes" / "a.png")
    _png(tmp_path / "no" / "b.png")
    both = data.find_all([root, tmp_path])
    assert set(both.root) == {str(root), str(tmp_path)}
    assert isinstance(both, pd.DataFrame)
