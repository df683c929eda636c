"""Scripts in benchmarks/ and experiments/ that feed docs/: they must compute what they claim."""

import importlib.util

import numpy as np
import pandas as pd
import pytest

from tumor_model.config import LOCAL_SHARE

from conftest import REPO


def _script(name: str, folder: str = "benchmarks"):
    spec = importlib.util.spec_from_file_location(name, REPO / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _predictions(folder, probability, split=None, reverse=False):
    n = len(probability)
    folder.mkdir(parents=True)
    pd.DataFrame(
        {
            "path": [f"img{i}.png" for i in range(n)],
            "root": "data",
            "split": split if split is not None else ["val", "test"] * (n // 2),
            "group": np.arange(n),
            "label": np.arange(n) // 2 % 2,
            "probability": probability,
        }
    ).iloc[:: -1 if reverse else 1].to_csv(folder / "predictions.csv", index=False)
    return folder


def test_ensemble_averages_members_on_one_split(tmp_path, monkeypatch, capsys):
    ensemble = _script("ensemble", "experiments")
    label = np.arange(40) // 2 % 2
    a = _predictions(tmp_path / "a", np.where(label == 1, 0.8, 0.4), reverse=True)
    b = _predictions(tmp_path / "b", np.where(label == 1, 0.5, 0.1))
    table, probs = ensemble.load([a, b])
    assert len(table) == 40  # rows matched by file, whatever order each csv is in
    monkeypatch.setattr("sys.argv", ["ensemble.py", str(a), str(b)])
    ensemble.main()
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| ensemble")]
    cells = rows[0].strip("| ").split(" | ")
    assert float(cells[2]) == 1.0 and float(cells[6]) == 1.0  # val and test accuracy
    np.testing.assert_allclose(np.mean(list(probs.values()), axis=0)[table.label == 1], 0.65)


def test_ensemble_refuses_folders_with_different_splits(tmp_path):
    ensemble = _script("ensemble", "experiments")
    a = _predictions(tmp_path / "a", np.full(8, 0.5))
    b = _predictions(tmp_path / "b", np.full(8, 0.5), split=["test", "val"] * 4)
    with pytest.raises(ValueError, match="files or split differ"):
        ensemble.load([a, b])


def test_unseen_sizes_buckets_by_shorter_side():
    unseen = _script("unseen_sizes", "experiments")
    assert unseen.side_bucket("630x225") == "shorter side < 256 px"
    assert unseen.side_bucket("512x512") == ">= 512 px"
    part = pd.DataFrame({"size": ["630x225", "300x400", "512x600", "200x200"]})
    counts = {label: len(rows) for label, rows in unseen.parts(part, {"200x200"}, "side")}
    assert counts == {"shorter side < 256 px": 2, "256-511 px": 1, ">= 512 px": 1, "all": 4}
    seen = {label: len(rows) for label, rows in unseen.parts(part, {"200x200"}, "seen")}
    assert seen == {"size seen in train": 1, "size new to train": 3, "all": 4}


def test_external_misses_counts_missed_tumours_by_type_and_size():
    misses = _script("external_misses", "experiments")
    # 12 boxes: 6 small pituitary (half missed), 6 large glioma (none missed)
    boxes = pd.DataFrame(
        {
            "tumour_type": ["pituitary"] * 6 + ["glioma"] * 6,
            "width": [0.05] * 3 + [0.06] * 3 + [0.3] * 6,
            "height": [0.05] * 3 + [0.06] * 3 + [0.3] * 6,
            "probability": [0.1, 0.2, 0.3, 0.9, 0.8, 0.7] + [0.6] * 6,
        }
    )
    out = misses.breakdown(boxes, threshold=0.5)
    assert out["all"]["slices"] == 12 and out["all"]["missed"] == 3
    assert out["all"]["sensitivity"] == pytest.approx(0.75)
    assert out["by_type"]["pituitary"]["sensitivity"] == pytest.approx(0.5)
    assert out["by_type"]["glioma"]["missed"] == 0
    small = out["by_size"]["small"]  # the 4 smallest boxes: 3 missed pituitary + 1 found
    assert small["slices"] == 4 and small["missed"] == 3
    assert small["box_share_of_image"] == [0.0025, 0.0036]
    assert out["by_type"]["pituitary"]["by_size"]["small"]["missed"] == 3
    assert set(out["by_type"]["glioma"]["by_size"]) == {"medium", "large"}
    assert out["by_size"]["large"]["ci_low"] <= 1.0 == out["by_size"]["large"]["sensitivity"]


@pytest.mark.slow
def test_bench_finetune_times_every_part_of_an_epoch_with_xla():
    """Every part of a fine-tuning epoch timed, compiled with XLA (the harder path; one run:
    building the step is most of this test's time)."""
    rows = _script("bench_finetune").measure(images=4, layers=5, size=32, jit_compile=True)
    names = [what for what, _ in rows]
    assert len(rows) == 4 and any("resample" in n and "training" in n for n in names)
    assert all(np.isfinite(rate) and rate > 0 for _, rate in rows)


def test_bench_finetune_refuses_nonsense_sizes():
    with pytest.raises(ValueError, match="layers >= 1"):
        _script("bench_finetune").measure(images=8, layers=0, size=32)


def test_adapt_curve_draws_k_scans_one_per_group_half_of_each_class():

    curve = _script("adapt_curve", "experiments")
    y = np.array([0] * 10 + [1] * 10)
    groups = np.array([0, 0, 1, 1, 2, 2, 3, 4, 5, 6] + list(range(7, 17)))  # 7 healthy groups
    for seed in range(5):
        picks = curve.draw(np.random.default_rng(seed), y, groups, 10)
        assert len(picks) == 10 and (y[picks] == 1).sum() == 5
        assert len(set(groups[picks])) == 10  # never two files of one duplicate group
    few = curve.draw(np.random.default_rng(0), y, groups, 16)  # only 7 healthy groups exist
    assert (y[few] == 0).sum() == 7 and (y[few] == 1).sum() == 8
    assert curve.retrained_step(LOCAL_SHARE) == "retrained"
    assert curve.retrained_step(0.8) == "retrained, local share 0.8"


def test_adapt_curve_table_shows_each_site_and_k_with_cis():
    curve = _script("adapt_curve", "experiments")

    def m(v):
        return {"value": v, "ci_low": v - 0.01, "ci_high": v + 0.01}

    results = [
        {"site": site, "k": k, "step": step, "balanced_accuracy": m(ba), "sensitivity": m(0.8),
         "specificity": m(0.9)}
        for site in ("kaggle held out", "kaggle image-size fold")
        for k in (20, 50)
        for step, ba in (("before", 0.5), ("recalibrated", 0.55), ("retrained", 0.7 + k / 1000))
    ]  # fmt: skip
    lines = curve.markdown_table({"results": results}).splitlines()
    assert len(lines) == 2 + 4 and lines[0].startswith("| site")
    first = ["| the Kaggle set (trained on Figshare + OASIS)", "20", "0.500 [0.490, 0.510]"]
    assert lines[2].split(" | ")[:4] == [*first, "**0.720 [0.710, 0.730]**"]
    assert lines[3].startswith("|  | 50 |") and "**0.750 [0.740, 0.760]**" in lines[3]
    assert lines[4].startswith("| Kaggle image sizes (5 folds pooled) | 20 |")
    assert lines[5].endswith("| 0.800 [0.790, 0.810] | 0.900 [0.890, 0.910] |")


def test_bench_adapt_times_both_ways_of_retraining(capsys):
    import json

    bench = _script("bench_adapt")
    assert bench.main(["--anchor", "1000", "--local", "20", "--dim", "64", "--repeats", "1"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    learnt = []
    for way in ("head_trainer", "fit_per_retrain"):
        assert out[way]["median_s"] > 0 and len(out[way]["anchor_accuracy"]) == 1
        learnt.append(out[way]["anchor_accuracy"][0])
    assert min(learnt) >= 0.7  # both learn the anchor's rule (0.5 is chance)
    assert abs(learnt[0] - learnt[1]) <= 0.03  # and about as well: the same training
