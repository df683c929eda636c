import json
import os
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from tumor_model import evaluate, split, train
from tumor_model.predict import Predictor

from conftest import REPO, tiny_settings

EXPECTED = [
    "model.keras",
    "model_card.json",
    "settings.json",
    "history.csv",
    "metrics.json",
    "predictions.csv",
    "split.csv",
    "dataset_summary.json",
    "ood.npz",
    "samples",
]


def cli(*args: str) -> subprocess.CompletedProcess:
    """Run `python -m tumor_model ARGS` from the repo, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "tumor_model", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_artifacts_complete(tiny_artifacts):
    for name in EXPECTED:
        assert (tiny_artifacts / name).exists(), name
    card = json.loads((tiny_artifacts / "model_card.json").read_text())
    assert card["class_names"] == ["healthy", "tumor"]
    assert card["input_size"] == 32 and card["backbone"] == "mobilenetv2"
    assert 0 < card["threshold"] < 1 and card["temperature"] > 0
    assert card["last_conv"] == "out_relu"
    assert len(card["model_sha256"]) == 64
    hist = pd.read_csv(tiny_artifacts / "history.csv")
    assert list(hist.columns) == train.HISTORY_COLUMNS
    assert (hist.phase == "head").all() and hist.seconds.gt(0).all()
    samples = pd.read_csv(tiny_artifacts / "samples" / "samples.csv")
    assert set(samples.class_name) == {"healthy", "tumor"}


def test_split_csv_has_no_leak_and_skips_corrupt(tiny_artifacts, tiny_dataset):
    _, facts = tiny_dataset
    table = pd.read_csv(tiny_artifacts / "split.csv")
    split.check_no_leak(table)
    assert facts["corrupt"] not in set(table.path)
    assert set(table.split) == {"train", "val", "test"}
    summary = json.loads((tiny_artifacts / "dataset_summary.json").read_text())
    assert [u["path"] for u in summary["unreadable"]] == [facts["corrupt"]]


def test_metrics_agree_with_predictions_and_sklearn(tiny_artifacts):
    metrics = json.loads((tiny_artifacts / "metrics.json").read_text())
    preds = pd.read_csv(tiny_artifacts / "predictions.csv")
    test = preds[preds.split == "test"]
    thr = metrics["test"]["threshold"]
    m = metrics["test"]["metrics"]
    pred = test.probability >= thr
    assert m["accuracy"]["value"] == pytest.approx(skm.accuracy_score(test.label, pred))
    assert m["roc_auc"]["value"] == pytest.approx(skm.roc_auc_score(test.label, test.probability))
    assert metrics["test"]["n"] == len(test)
    grouped = evaluate.group_level(test)
    assert metrics["test_groups"]["n"] == len(grouped)
    assert metrics["cv"]["folds"] == 3 and len(metrics["cv"]["fold_accuracy"]) == 3
    assert sum(metrics["cv"]["fold_size"]) == len(preds)
    # every generated image is 64 x 64: one "source", so cross-source CV is left out
    assert "cv_source" not in metrics
    assert "accuracy_reencoded" in metrics["shortcut"]


def _sized_table(n=160, sizes=40, seed=0):
    """Labels, duplicate groups (a few near-copy pairs) and image sizes for a CV on synthetic
    features."""
    rng = np.random.default_rng(seed)
    label = np.arange(n) % 2
    group = np.arange(n)
    group[1:20:2] = group[0:19:2]  # ten pairs of copies, each may join two sizes
    dims = rng.integers(0, sizes, n)
    table = pd.DataFrame({"label": label, "group": group, "width": 100 + dims, "height": 90})
    x = rng.normal(0, 1, (n, 8)).astype("float32")
    x[:, 0] += 6.0 * label  # a strong, source-independent signal
    return table, x


def test_cross_source_folds_keep_each_image_size_whole():
    table, _ = _sized_table()
    groups = train.cv_groups(table, "source")
    dims = table.width.astype(str) + "x" + table.height.astype(str)
    seen = {}
    for k, (_, test) in enumerate(split.grouped_folds(table.label, groups, 3, 314)):
        for d in set(dims.iloc[test]):
            assert seen.setdefault(d, k) == k, f"size {d} in folds {seen[d]} and {k}"
        for g in set(table.group.iloc[test]):
            assert seen.setdefault(("group", g), k) == k
    assert len(set(groups)) < table.group.nunique()  # sizes really merged groups
    with pytest.raises(ValueError, match="'sizes'"):
        train.cv_groups(table, "sizes")


def test_cross_validate_by_source(tmp_path):
    table, x = _sized_table()
    settings = tiny_settings(tmp_path, tmp_path / "out", head_epochs=30, patience=30, head_lr=0.01)
    result = train.cross_validate(x, table, settings, 3, "source")
    assert result["groups"].startswith("source:")
    assert sum(result["fold_size"]) == len(table) and result["folds"] == 3
    assert result["metrics"]["accuracy"]["value"] > 0.9  # the signal does not depend on size
    few = table.assign(width=100)  # one size: every row merges into a handful of groups
    with pytest.raises(ValueError, match="needs at least 12 groups"):
        train.cross_validate(x, few, settings, 3, "source")
    assert set(train.cv_metrics(x, few, settings, 3)) == {"cv"}


def test_cv_command_recomputes_and_saves(tiny_artifacts, tmp_path):
    import shutil

    art = tmp_path / "art"
    shutil.copytree(tiny_artifacts, art)
    before = json.loads((art / "metrics.json").read_text())
    del before["cv"]
    before["cv_source"] = {"stale": True}
    (art / "metrics.json").write_text(json.dumps(before))
    proc = cli("cv", "--artifacts", str(art), "--folds", "3")
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert printed["cv"]["folds"] == 3 and 0 <= printed["cv"]["accuracy"] <= 1
    assert printed["saved"] is False
    assert "cv" not in json.loads((art / "metrics.json").read_text())  # not saved
    proc = cli("cv", "--artifacts", str(art), "--folds", "3", "--save")
    assert proc.returncode == 0, proc.stderr
    after = json.loads((art / "metrics.json").read_text())
    assert after["cv"]["folds"] == 3 and after["test"] == before["test"]
    assert "cv_source" not in after  # one image size here: skipped, and the old one dropped
    bad = cli("cv", "--artifacts", str(art), "--folds", "1")
    assert bad.returncode == 2 and "folds must be >= 2, got 1" in bad.stderr


def test_cv_command_fine_tuned_recipe(tiny_dataset, tmp_path):
    root, _ = tiny_dataset
    settings = tiny_settings(
        root, tmp_path / "ft", fine_tune_layers=5, fine_tune_epochs=1, head_epochs=2
    )
    out = train.run(settings, cv_folds=3, shortcut=False, samples=False)
    before = json.loads((out / "metrics.json").read_text())
    proc = cli(
        "cv", "--artifacts", str(out), "--folds", "3", "--by", "duplicate", "--fine-tune", "--save"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("full recipe) fold") == 3
    assert proc.stderr.count("(chosen on validation)") == 3  # a whole `fit` in each fold
    printed = json.loads(proc.stdout)
    assert set(printed) == {"cv_fine_tuned", "saved"}
    assert printed["cv_fine_tuned"]["recipe"].endswith("fine-tuning of the top 5 layers")
    after = json.loads((out / "metrics.json").read_text())
    full = after["cv_fine_tuned"]
    assert full["fold_size"] == before["cv"]["fold_size"]  # the same folds as the frozen CV
    assert sum(full["fold_size"]) == full["n"] and len(full["fold_accuracy"]) == 3
    assert after["cv"] == before["cv"] and after["test"] == before["test"]
    bad = cli("cv", "--artifacts", str(out), "--by", "sizes")
    assert bad.returncode == 2 and "invalid choice: 'sizes'" in bad.stderr


def test_cv_reruns_with_this_machines_feature_cache(tiny_artifacts, tmp_path):
    """settings.json records the training machine's cache folder (the shipped model's is a /tmp
    path); `cv --cache-dir` caches elsewhere and gets the same CV as the recorded cache."""
    here = tmp_path / "cache_here"
    recorded = train.recorded_settings(tiny_artifacts)
    assert recorded.cache_dir != str(here)
    assert train.recorded_settings(tiny_artifacts, str(here)).cache_dir == str(here)
    proc = cli(
        "cv", "--artifacts", str(tiny_artifacts), "--folds", "3", "--by", "duplicate",
        "--cache-dir", str(here),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert [p.suffix for p in here.iterdir()] == [".npz"]  # features extracted into it
    saved = json.loads((tiny_artifacts / "metrics.json").read_text())["cv"]["metrics"]
    assert json.loads(proc.stdout)["cv"]["accuracy"] == round(saved["accuracy"]["value"], 4)
    with pytest.raises(ValueError, match="cache_dir must be a folder path, got ''"):
        train.recorded_settings(tiny_artifacts, "")


def test_fine_tuned_cv_refuses_a_frozen_recipe(tiny_artifacts):
    with pytest.raises(ValueError, match="recipe without fine-tuning"):
        train.cv_artifacts(tiny_artifacts, folds=3, full=True)
    with pytest.raises(ValueError, match=r"got \['size'\]"):
        train.cv_artifacts(tiny_artifacts, folds=3, by=("size",))


def test_saved_model_reproduces_predictions(tiny_artifacts):
    predictor = Predictor(tiny_artifacts)
    preds = pd.read_csv(tiny_artifacts / "predictions.csv")
    test = preds[preds.split == "test"].head(5)
    out = predictor.predict_files(
        [os.path.join(r, p) for r, p in zip(test.root, test.path, strict=True)]
    )
    np.testing.assert_allclose([o["probability"] for o in out], test.probability, atol=1e-4)


def test_threshold_setting_is_used(tiny_dataset, tmp_path):
    root, _ = tiny_dataset
    out = train.run(
        tiny_settings(root, tmp_path / "a", threshold=0.5, calibrate=False, head_epochs=2),
        shortcut=False,
        samples=False,
    )
    card = json.loads((out / "model_card.json").read_text())
    assert card["threshold"] == 0.5 and card["temperature"] == 1.0


def test_fine_tune_phase_and_random_split(tiny_dataset, tmp_path):
    root, _ = tiny_dataset
    out = train.run(
        tiny_settings(
            root,
            tmp_path / "ft",
            fine_tune_layers=5,
            fine_tune_epochs=2,
            head_epochs=2,
            split="random",
        ),
        shortcut=False,
        samples=False,
    )
    hist = pd.read_csv(out / "history.csv")
    assert list(hist.phase.unique()) == ["head", "fine_tune"]
    table = pd.read_csv(out / "split.csv")
    assert (table.split == "test").sum() == len(table) - int(0.8 * len(table)) - (
        (table.split == "val").sum()
    )


def test_killed_run_leaves_previous_artifacts(tiny_dataset, tmp_path):
    """A real training run killed mid-way (SIGKILL) must not touch the finished artifacts."""
    root, _ = tiny_dataset
    settings = tiny_settings(root, tmp_path / "art", head_epochs=2)
    first = train.run(settings, shortcut=False, samples=False)
    before = {p.name: p.read_bytes() for p in first.iterdir() if p.is_file()}
    again = tiny_settings(root, tmp_path / "art", head_epochs=200, patience=200)
    again.to_json(tmp_path / "again.json")
    code = (
        "from tumor_model import train\nfrom tumor_model.config import Settings\n"
        f"train.run(Settings.from_json({str(tmp_path / 'again.json')!r}))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in proc.stdout:  # kill it in the middle of head training
        if "Epoch 20/" in line:
            break
    proc.kill()
    proc.wait()
    after = {p.name: p.read_bytes() for p in first.iterdir() if p.is_file()}
    assert after == before
    keras.saving.load_model(first / "model.keras", safe_mode=True)
    assert Predictor(first).threshold > 0


def test_mirrored_strategy_on_two_logical_cpus(tiny_dataset, tmp_path):
    root, _ = tiny_dataset
    settings = tiny_settings(
        root, tmp_path / "mirrored", strategy="mirrored", head_epochs=2, batch_size=8
    )
    settings.to_json(tmp_path / "s.json")
    code = (
        "import tensorflow as tf\n"
        "cpu = tf.config.list_physical_devices('CPU')[0]\n"
        "two = [tf.config.LogicalDeviceConfiguration()] * 2\n"
        "tf.config.set_logical_device_configuration(cpu, two)\n"
        "from tumor_model import train\nfrom tumor_model.config import Settings\n"
        "orig = tf.distribute.MirroredStrategy\n"
        "two_cpus = lambda: orig(['/cpu:0', '/cpu:1'])\n"
        "train.tf.distribute.MirroredStrategy = two_cpus\n"
        f"s = Settings.from_json({str(tmp_path / 's.json')!r})\n"
        "train.run(s, shortcut=False, samples=False)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "MirroredStrategy over 2 devices" in done.stdout
    assert (tmp_path / "mirrored" / "model.keras").is_file()


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
    table, _ = train.prepare_table(tiny_settings(root, tmp_path / "out", split="source"))
    dims = table.width.astype(str) + "x" + table.height.astype(str)
    seen = set(dims[table.split == "train"])
    held = set(dims[table.split != "train"])
    assert held and seen and not held & seen
    assert set(table.split) == {"train", "val", "test"}
    split.check_no_leak(table)


def test_split_that_leaves_a_part_empty_names_the_problem(tiny_dataset, tmp_path):
    root, _ = tiny_dataset  # every generated scan is 64 x 64: one "source"
    with pytest.raises(ValueError, match=r"source split left .* 1 image sizes"):
        train.prepare_table(tiny_settings(root, tmp_path / "out", split="source"))


def test_the_augmentations_the_dashboard_names_are_the_augmenters():
    from tumor_model.config import AUGMENTATIONS

    layers = [
        type(layer).__name__.removeprefix("Random").lower() for layer in train.augmenter(0).layers
    ]
    assert (*layers, "gamma", "noise") == AUGMENTATIONS


def test_resample_blurs_but_keeps_shape_and_range():
    import tensorflow as tf

    checker = (np.indices((32, 32)).sum(axis=0) % 2 * 255.0).astype("float32")
    x = tf.constant(np.repeat(checker[None, :, :, None], 8, axis=0).repeat(3, axis=3))
    out = train.resample(x, 0.5).numpy()
    assert out.shape == x.shape
    assert out.min() >= -1e-3 and out.max() <= 255 + 1e-3
    assert out.std() < 0.8 * checker.std()  # the finest detail is gone
    same = train.resample(x, 1e-3).numpy()  # a factor of ~1 leaves the image as it was
    np.testing.assert_allclose(same, x.numpy(), atol=1e-3)


def test_pixel_dataset_applies_resample(tmp_path):
    pixels = np.full((12, 32, 32, 3), 200, np.uint8)
    pixels[:, (np.arange(32) // 2) % 2 == 0] = 40  # stripes 2 px wide

    def edge_energy(resample: float) -> float:
        settings = tiny_settings(tmp_path, tmp_path / "out", resample=resample, batch_size=4)
        ds = train.pixel_dataset(pixels, np.zeros(12), settings, training=True)
        return float(np.mean([np.abs(np.diff(b.numpy(), axis=1)).mean() for b, _ in ds]))

    assert edge_energy(0.7) < 0.8 * edge_energy(0.0)


@pytest.mark.parametrize("resample", [0.0, 0.5])
def test_training_batches_keep_a_static_image_shape(tmp_path, resample):
    # An unknown height/width makes Keras trace a shape-generic training step, which ran at
    # half the speed on CPU (docs/experiments.md, "A static image shape for the fine-tuning step").
    settings = tiny_settings(tmp_path, tmp_path / "out", resample=resample, batch_size=4)
    pixels = np.zeros((12, 32, 32, 3), np.uint8)
    ds = train.pixel_dataset(pixels, np.zeros(12), settings, training=True)
    assert tuple(ds.element_spec[0].shape) == (4, 32, 32, 3)


def test_group_sampler_draws_one_member_of_every_group_each_pass():
    groups = np.array(["a", "b", "a", "c", "a", "b"])
    sampler = train.group_sampler(groups, seed=3)
    counts = np.zeros(len(groups))
    for _ in range(300):
        picked = np.array([int(i) for i in sampler])
        assert sorted(groups[picked]) == ["a", "b", "c"]  # each group once per pass
        counts[picked] += 1
    assert counts[3] == 300  # a group of one is always shown
    # members of a group take turns: about 100 of 300 passes each for "a", 150 for "b"
    assert all(60 < counts[i] < 140 for i in (0, 2, 4)), counts
    assert all(110 < counts[i] < 190 for i in (1, 5)), counts
    again = [int(i) for i in train.group_sampler(groups, seed=3)]
    assert again == [int(i) for i in train.group_sampler(groups, seed=3)]  # seeded
    with pytest.raises(ValueError, match="empty group list"):
        train.group_sampler([], seed=3)


def test_pixel_dataset_by_group_shows_one_file_per_group(tmp_path):
    pixels = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((10, 4, 4, 3), np.uint8)
    groups = np.array([0, 0, 0, 0, 1, 1, 2, 3, 4, 5])  # 6 groups
    settings = tiny_settings(tmp_path, tmp_path / "out", batch_size=3, augment=False)
    ds = train.pixel_dataset(pixels, np.arange(10) % 2, settings, training=True, groups=groups)
    for _ in range(5):
        shown = np.concatenate([b.numpy()[:, 0, 0, 0] for b, _ in ds]).astype(int)
        assert len(shown) == 6 and sorted(groups[shown]) == [0, 1, 2, 3, 4, 5]
    labels = np.concatenate([y.numpy() for _, y in ds])
    assert set(labels) <= {0.0, 1.0} and len(labels) == 6
    with pytest.raises(ValueError, match="3 groups for 10 images"):
        train.pixel_dataset(pixels, np.zeros(10), settings, training=True, groups=[0, 1, 2])
    with pytest.raises(ValueError, match="groups sample training epochs"):
        train.pixel_dataset(pixels, np.zeros(10), settings, training=False, groups=groups)


def test_class_weights_follow_the_counts_and_need_both_classes():
    assert train.class_weights(np.array([0, 1, 1, 1]), True) == {0: 2.0, 1: 4 / 6}
    assert train.class_weights(np.array([0, 1]), False) is None
    with pytest.raises(ValueError, match=r"both classes in train, got counts \[0, 3\]"):
        train.class_weights(np.array([1, 1, 1]), True)


def test_fine_tune_by_group_then_report_protocol_command(tiny_dataset, tmp_path, capfd):
    root, _ = tiny_dataset
    settings = tiny_settings(
        root,
        tmp_path / "grp",
        fine_tune_layers=5,
        fine_tune_epochs=2,
        head_epochs=2,
        sample_groups=True,
        class_weights=True,
    )
    out = train.run(settings, shortcut=False, samples=False)
    hist = pd.read_csv(out / "history.csv")
    assert (hist.phase == "fine_tune").sum() == 2
    assert "one file of each of" in capfd.readouterr().out
    assert json.loads((out / "settings.json").read_text())["sample_groups"] is True
    before = json.loads((out / "metrics.json").read_text())
    assert "random_split" not in before
    proc = cli("report-protocol", "--artifacts", str(out), "--save")
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert printed["split"] == "random" and printed["saved"] is True
    assert 0 <= printed["accuracy"] <= 1
    after = json.loads((out / "metrics.json").read_text())
    saved = after["random_split"]["metrics"]["accuracy"]["value"]
    assert abs(saved - printed["accuracy"]) < 1e-4  # printed rounded to 4 places
    assert after["test"] == before["test"]  # the shipped model's figures are untouched


def test_report_protocol_refuses_a_random_split_model(tiny_artifacts, tmp_path):
    settings = json.loads((tiny_artifacts / "settings.json").read_text())
    (tmp_path / "settings.json").write_text(json.dumps({**settings, "split": "random"}))
    with pytest.raises(ValueError, match="already holds a random-split model"):
        train.protocol_artifacts(tmp_path)
