"""The `cv` command on the whole recipe (`--fine-tune`): a training run per fold, and
leave-one-source-out of the whole recipe. A file of its own, the suite's longest test, so that
`pytest -n auto --dist loadfile` can run it beside the rest of the CV tests."""

import json

import pytest

from tumor_model.dashboard import tables
from tumor_model.release import pipeline

from conftest import in_process, make_site, tiny_settings


@pytest.mark.slow
def test_cv_command_fine_tuned_recipe(tiny_dataset, tmp_path, capsys):
    root, _ = tiny_dataset
    settings = tiny_settings(
        root, tmp_path / "ft", fine_tune_layers=5, fine_tune_epochs=1, head_epochs=2
    )
    out = pipeline.train_and_write(settings, cv_folds=2, shortcut=False, samples=False)
    before = json.loads((out / "metrics.json").read_text())
    folds = ("--folds", "2", "--by", "duplicate", "--fine-tune", "--save")
    proc = in_process(capsys, "cv", "--artifacts", str(out), *folds)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("full recipe) fold") == 2
    assert proc.stderr.count("(chosen on validation)") == 2  # a whole `fit` in each fold
    printed = json.loads(proc.stdout)
    assert set(printed) == {"cv_fine_tuned", "rows", "saved"}
    assert printed["cv_fine_tuned"]["recipe"].endswith("fine-tuning of the top 5 layers")
    after = json.loads((out / "metrics.json").read_text())
    full = after["cv_fine_tuned"]
    assert full["fold_size"] == before["cv"]["fold_size"]  # the same folds as the frozen CV
    assert sum(full["fold_size"]) == full["n"] and len(full["fold_accuracy"]) == 2
    assert after["cv"] == before["cv"] and after["test"] == before["test"]
    bad = in_process(capsys, "cv", "--artifacts", str(out), "--by", "sizes")
    assert bad.returncode == 2 and "invalid choice: 'sizes'" in bad.stderr

    # leave-one-source-out of the whole recipe, with two one-class sources beside the first; the
    # tumour-only one held out (each source in turn: test_leave_one_source_out_holds_each_...)
    tumours = make_site(tmp_path / "site_t", tumours=12, healthy=0)
    healthy = make_site(tmp_path / "site_h", tumours=0, healthy=12, seed=6)
    roots = [a for r in (root, tumours, healthy) for a in ("--data-dir", str(r))]
    loso = ("--by", "loso", "--hold-out", "site_t", "--fine-tune", "--no-twin", "--save")
    proc = in_process(capsys, "cv", "--artifacts", str(out), *loso, *roots)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("(chosen on validation)") == 1  # one training: site_t held out
    printed = json.loads(proc.stdout)
    assert set(printed) == {"loso_fine_tuned", "rows", "saved"}
    saved = json.loads((out / "metrics.json").read_text())["loso_fine_tuned"]
    assert saved["recipe"].endswith("fine-tuning of the top 5 layers")
    blocks = saved["sources"]
    assert list(blocks) == ["site_t"] and saved["held_out"] == ["site_t"]
    assert blocks["site_t"]["trained_on"] == [root.name, "site_h"]
    assert "twin_absent" not in blocks["site_t"] and saved["pooled"]["n"] == 12

    # the held-out tumour source also tested by a head trained on the two-class source alone
    # (its twin, the healthy-only source, absent); the same code as the fine-tuned stage's
    twin = ("--by", "loso", "--hold-out", "site_t", "--save")
    proc = in_process(capsys, "cv", "--artifacts", str(out), *twin, *roots)
    assert proc.returncode == 0, proc.stderr
    twin = json.loads((out / "metrics.json").read_text())["loso"]["sources"]["site_t"]
    assert twin["twin_absent"]["trained_on"] == [root.name] and twin["twin_absent"]["n"] == 12
    shown = tables.travel_rows(json.loads((out / "metrics.json").read_text()))
    assert "Leave-one-source-out, twin absent" in set(shown["evaluation"])

    # only the named source held out, without the twin-absent training (frozen stage: seconds)
    named = ("--by", "loso", "--hold-out", "site_t", "--no-twin")
    proc = in_process(capsys, "cv", "--artifacts", str(out), *named, *roots)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["rows"]
    assert [(r["block"], r["held_out"]) for r in rows] == [("loso: pooled", "site_t"),
                                                            ("loso", "site_t")]  # fmt: skip
    assert rows[1]["trained_on"] == f"{root.name}, site_h" and rows[1]["files"] == 12
    for bad, message in [
        (("--by", "loso", "--hold-out", "site_x"), "no source of the data: ['site_x']"),
        (("--by", "duplicate", "--hold-out", "site_t"), "narrow the 'loso' CV, not in by="),
    ]:
        proc = in_process(capsys, "cv", "--artifacts", str(out), *bad, *roots)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
