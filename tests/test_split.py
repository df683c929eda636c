import numpy as np
import pandas as pd
import pytest

from tumor_model.training import split

from conftest import tiny_settings


def _thumbs(n, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, 8, 8)).astype(np.float32)


def test_near_pairs_match_brute_force():
    t = _thumbs(150)
    t[10] = t[3] + 0.01
    t[20] = np.clip(t[3] - 0.015, 0, 1)
    thr = 0.02
    found = {tuple(sorted(p)) for p in split.near_pairs(t, thr, block=16)}
    flat = t.reshape(len(t), -1)
    brute = {
        (i, j)
        for i in range(len(t))
        for j in range(i + 1, len(t))
        if np.abs(flat[i] - flat[j]).mean() <= thr
    }
    assert found == brute
    assert (3, 10) in found


def test_groups_join_exact_and_near_copies_transitively():
    t = _thumbs(6)
    t[1] = t[0] + 0.01  # near copy of 0
    t[2] = t[1] + 0.01  # near copy of 1, not of 0 (0.02 away, just inside)... chain
    sha = ["a", "b", "c", "d", "d", "e"]  # 3 and 4 are exact copies
    g = split.duplicate_groups(sha, t, 0.015)
    assert g[0] == g[1] == g[2]
    assert g[3] == g[4]
    assert len(set(g)) == 3


def test_merge_groups_joins_items_sharing_any_key():
    groups = np.array([0, 0, 1, 2, 3, 4])
    dims = np.array(["512x512", "225x225", "225x225", "630x630", "630x630", "300x240"])
    merged = split.merge_groups(groups, dims)
    # 0-1 share a group, 1-2 share a size, 3-4 share a size, 5 stands alone
    assert merged.tolist() == [0, 0, 0, 1, 1, 2]
    assert split.merge_groups(groups).tolist() == [0, 0, 1, 2, 3, 4]


def test_merge_groups_rejects_bad_keys():
    with pytest.raises(ValueError, match="at least one"):
        split.merge_groups()
    with pytest.raises(ValueError, match="differ in length"):
        split.merge_groups([0, 1], [0, 1, 2])


def test_group_split_never_leaks_and_is_stratified():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(300), rng.integers(1, 5, 300))
    labels = (groups % 3 == 0).astype(int)
    s = split.group_split(labels, groups, 0.1, 0.1, seed=314)
    frame = pd.DataFrame({"group": groups, "split": s, "label": labels})
    split.check_no_leak(frame)
    for name, frac in (("test", 0.1), ("val", 0.1), ("train", 0.8)):
        assert abs((s == name).mean() - frac) < 0.04
        assert abs(labels[s == name].mean() - labels.mean()) < 0.06
    again = split.group_split(labels, groups, 0.1, 0.1, seed=314)
    assert (again == s).all()
    other = split.group_split(labels, groups, 0.1, 0.1, seed=1)
    assert (other != s).any()


def test_check_no_leak_detects_a_leak():
    frame = pd.DataFrame({"group": [0, 0, 1], "split": ["train", "test", "val"]})
    with pytest.raises(ValueError, match="span"):
        split.check_no_leak(frame)


def test_random_split_reproduces_report_protocol():
    from sklearn.model_selection import train_test_split

    s = split.random_split(4600, seed=314)
    assert (s == "train").sum() == 3680 and (s == "val").sum() == 460 and (s == "test").sum() == 460
    train, rest = train_test_split(np.arange(4600), train_size=0.8, random_state=314)
    assert set(np.nonzero(s == "train")[0]) == set(train)


def test_grouped_folds_keep_groups_whole():
    groups = np.repeat(np.arange(50), 3)
    labels = groups % 2
    for tr, te in split.grouped_folds(labels, groups, 5, 0):
        assert not set(groups[tr]) & set(groups[te])


def _sized_dataset(root, sizes=((48, 48), (64, 48), (64, 64), (80, 64), (96, 72), (72, 96))):
    """Per class, four scans at each of several image sizes (a source per size)."""
    from PIL import Image

    from conftest import fake_scan

    rng = np.random.default_rng(3)
    for label, folder in ((1, "Brain Tumor"), (0, "Healthy")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for w, h in sizes:
            for i in range(4):
                img = Image.fromarray(fake_scan(rng, bool(label), (h, w)))
                img.save(root / folder / f"{w}x{h}_{i}.png")
    return root


def test_source_split_keeps_image_sizes_out_of_train(tmp_path):
    root = _sized_dataset(tmp_path / "data")
    table, _ = split.prepare_table(tiny_settings(root, tmp_path / "out", split="source"))
    dims = table.width.astype(str) + "x" + table.height.astype(str)
    seen = set(dims[table.split == "train"])
    held = set(dims[table.split != "train"])
    assert held and seen and not held & seen
    assert set(table.split) == {"train", "val", "test"}
    split.check_no_leak(table)


def test_split_that_leaves_a_part_empty_names_the_problem(tiny_dataset, tmp_path):
    root, _ = tiny_dataset  # every generated scan is 64 x 64: one "source"
    with pytest.raises(ValueError, match=r"source split left .* 1 image sizes"):
        split.prepare_table(tiny_settings(root, tmp_path / "out", split="source"))


def test_each_source_is_split_on_its_own(tmp_path):
    """Adding a source (here one holding tumours only) leaves the split of the others as it was,
    so their test figures stay comparable; the new source gets train, val and test rows."""
    from PIL import Image

    from conftest import fake_scan

    first = _sized_dataset(tmp_path / "first")
    other = tmp_path / "other-site" / "tumor"
    other.mkdir(parents=True)
    rng = np.random.default_rng(9)
    for i in range(40):
        Image.fromarray(fake_scan(rng, True, (80, 80))).save(other / f"{i}.png")
    alone, _ = split.prepare_table(tiny_settings(first, tmp_path / "a"))
    both, _ = split.prepare_table(tiny_settings([first, other.parent], tmp_path / "b"))
    assert list(both.source.unique()) == ["first", "other-site"]
    mine = both[both.source == "first"].set_index("path").split
    assert mine.to_dict() == alone.set_index("path").split.to_dict()
    assert set(both[both.source == "other-site"].split) == {"train", "val", "test"}
    split.check_no_leak(both)
