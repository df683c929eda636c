"""In-memory feeds (tumor_model.training.feed.Batches) that work on every Keras backend."""

import numpy as np
import pytest

from tumor_model.training.feed import Batches, group_members


def _epoch(feed):
    batches = [feed[i] for i in range(len(feed))]
    feed.on_epoch_end()
    return batches


def test_training_batches_are_full_shuffled_and_seeded():
    x = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((10, 4, 4, 3), np.uint8)
    feed = Batches(x, np.arange(10) % 2, 3, training=True, seed=1)
    assert len(feed) == 3  # 10 rows, batches of 3: the remainder is dropped
    first = _epoch(feed)
    assert all(b.shape == (3, 4, 4, 3) and b.dtype == np.float32 for b, _ in first)
    second = _epoch(feed)
    order = [b[:, 0, 0, 0].tolist() for b, _ in first]
    assert order != [b[:, 0, 0, 0].tolist() for b, _ in second]  # a new order each epoch
    again = Batches(x, np.arange(10) % 2, 3, training=True, seed=1)
    assert [b[:, 0, 0, 0].tolist() for b, _ in _epoch(again)] == order  # seeded
    for b, y in first:  # labels travel with their rows
        np.testing.assert_array_equal(b[:, 0, 0, 0] % 2, y)


def test_evaluation_batches_keep_every_row_in_order():
    feed = Batches(np.arange(7)[:, None], np.zeros(7), 3, training=False)
    assert len(feed) == 3
    rows = np.concatenate([feed[i][0] for i in range(len(feed))]).ravel()
    np.testing.assert_array_equal(rows, np.arange(7))
    small = Batches(np.arange(2)[:, None], np.zeros(2), 5, training=True)
    assert len(small) == 1 and len(small[0][0]) == 2  # one short batch rather than none


def test_group_sampling_shows_one_member_of_every_group_each_epoch():
    groups = np.array(["a", "b", "a", "c", "a", "b"])
    feed = Batches(np.arange(6)[:, None], np.zeros(6), 1, training=True, groups=groups, seed=3)
    counts = np.zeros(6)
    for _ in range(300):
        shown = np.concatenate([b.ravel() for b, _ in _epoch(feed)]).astype(int)
        assert sorted(groups[shown]) == ["a", "b", "c"]  # each group once per epoch
        counts[shown] += 1
    assert counts[3] == 300  # a group of one is always shown
    # members of a group take turns: about 100 of 300 epochs each for "a", 150 for "b"
    assert all(60 < counts[i] < 140 for i in (0, 2, 4)), counts
    assert all(110 < counts[i] < 190 for i in (1, 5)), counts
    assert [m.tolist() for m in group_members(groups)] == [[0, 2, 4], [1, 5], [3]]


def test_bad_feeds_name_the_problem():
    x = np.zeros((10, 2))
    with pytest.raises(ValueError, match="3 groups for 10 images"):
        Batches(x, np.zeros(10), 2, training=True, groups=[0, 1, 2])
    with pytest.raises(ValueError, match="groups sample training epochs"):
        Batches(x, np.zeros(10), 2, training=False, groups=np.arange(10))
    with pytest.raises(ValueError, match="10 inputs for 9 labels"):
        Batches(x, np.zeros(9), 2, training=True)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        Batches(x, np.zeros(10), 0, training=True)
    with pytest.raises(ValueError, match="empty group list"):
        group_members([])


def test_source_strata_draw_as_many_rows_of_every_source_each_epoch():
    strata = np.array(["kaggle"] * 12 + ["oasis"] * 4 + ["figshare"] * 2)
    feed = Batches(np.arange(18)[:, None], np.zeros(18), 6, training=True, seed=2, strata=strata)
    counts = np.zeros(18)
    for _ in range(50):
        shown = np.concatenate([b.ravel() for b, _ in _epoch(feed)]).astype(int)
        assert len(shown) == 18  # an epoch is as long as without strata
        assert {s: int((strata[shown] == s).sum()) for s in set(strata)} == {
            "kaggle": 6, "oasis": 6, "figshare": 6
        }  # fmt: skip
        np.add.at(counts, shown, 1)
        assert len(set(shown[shown < 12])) == 6  # kaggle: half its rows, none twice
        assert set(shown[(shown >= 12) & (shown < 16)]) == {12, 13, 14, 15}  # oasis: all, 2 twice
    assert (counts[16:] == 150).all()  # figshare's 2 rows are each shown three times an epoch
    assert (counts[:12] > 0).all()  # over the epochs every kaggle row gets its turn


def test_strata_apply_to_the_one_file_each_group_shows():
    groups = np.array(["a", "a", "a", "b", "c", "d"])
    strata = np.array(["k", "k", "k", "k", "o", "o"])
    feed = Batches(np.arange(6)[:, None], np.zeros(6), 1, training=True, groups=groups,
                   seed=4, strata=strata)  # fmt: skip
    for _ in range(20):
        shown = np.concatenate([b.ravel() for b, _ in _epoch(feed)]).astype(int)
        assert len(shown) == 4 and (strata[shown] == "k").sum() == 2  # 4 groups, 2 per source
        assert (groups[shown[strata[shown] == "k"]] == "a").sum() <= 1  # still one file a group


def test_mixup_mixes_inputs_and_labels_by_one_weight_per_row():
    x = np.repeat(np.array([0.0, 10.0]), 20)[:, None] * np.ones((40, 3))
    y = np.repeat(np.array([0, 1]), 20)
    feed = Batches(x, y, 40, training=True, seed=5, mixup=0.4)
    xb, yb = feed[0]
    np.testing.assert_allclose(xb[:, 0], 10.0 * yb, rtol=1e-5)  # the same mix for both
    assert ((yb > 0.01) & (yb < 0.99)).mean() > 0.2  # many rows really are mixed
    assert np.all(xb[:, 0] == xb[:, 2])  # one weight per row, across its features
    again = Batches(x, y, 40, training=True, seed=5, mixup=0.4)
    np.testing.assert_array_equal(again[0][1], yb)  # seeded
    assert set(Batches(x, y, 40, training=True, seed=5)[0][1]) == {0.0, 1.0}  # off by default


def test_strata_and_mixup_are_for_training_only_and_checked():
    x = np.zeros((10, 2))
    with pytest.raises(ValueError, match="strata and mixup shape training epochs"):
        Batches(x, np.zeros(10), 2, training=False, mixup=0.2)
    with pytest.raises(ValueError, match="3 strata for 10 images"):
        Batches(x, np.zeros(10), 2, training=True, strata=["a", "b", "c"])
    with pytest.raises(ValueError, match="must be >= 0, got -0.1"):
        Batches(x, np.zeros(10), 2, training=True, mixup=-0.1)
