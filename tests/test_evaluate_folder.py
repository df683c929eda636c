"""evaluate --all: figures per source; --save records the model on sources it never saw
(metrics.json "external", shown with the travel rows) and refuses scans it was trained on.
An adapted folder drops the block: test_adapt."""

from __future__ import annotations

import json
import shutil

import pytest
from metadata_roots import make_patients, write_csv

from tumor_model import artifacts, metrics
from tumor_model.commands import main
from tumor_model.dashboard import tables
from tumor_model.release import pipeline, report
from tumor_model.serving.predict import Predictor

from conftest import make_site, tiny_settings


@pytest.fixture()
def model_copy(tiny_artifacts, tmp_path):
    """A copy of the tiny model that --save may write into."""
    return shutil.copytree(tiny_artifacts, tmp_path / "model")


@pytest.fixture()
def unseen_sources(tmp_path):
    """Two one-class sources none of whose scans the tiny model saw (other seeds and sizes)."""
    tumours = make_site(tmp_path / "tumour-site", tumours=9, healthy=0, seed=21, size=(80, 80))
    healthy = make_site(tmp_path / "healthy-site", tumours=0, healthy=7, seed=22, size=(60, 70))
    return tumours, healthy


def _evaluate(model, *dirs, save=True):
    args = ["evaluate", "--artifacts", str(model), "--all", "--bootstrap", "20"]
    for d in dirs:
        args += ["--data-dir", str(d)]
    return main(args + (["--save"] if save else []))


def test_save_records_each_unseen_source(model_copy, unseen_sources, capsys):
    tumours, healthy = unseen_sources
    assert _evaluate(model_copy, tumours, healthy) == 0
    printed = json.loads(capsys.readouterr().out)
    block = artifacts.read_json(model_copy, artifacts.METRICS)[artifacts.EXTERNAL]
    assert set(block["sources"]) == {"tumour-site", "healthy-site"}
    assert block["pooled"]["n"] == 16 and block["data_dirs"] == [str(tumours), str(healthy)]
    assert block["model_sha256"] == artifacts.read_card(model_copy)["model_sha256"]
    for one in block["sources"].values():
        assert one["trained_on"] == ["brain-tumor-dataset"]
    # the saved rates are the model's own decisions on those files, at its threshold
    predictor = Predictor(model_copy)
    for root, key in ((tumours, "sensitivity"), (healthy, "specificity")):
        files = sorted(root.rglob("*.png"))
        said = [r["probability"] >= predictor.threshold for r in predictor.predict_files(files)]
        rate = sum(said) / len(said) if key == "sensitivity" else 1 - sum(said) / len(said)
        saved = block["sources"][root.name]["metrics"][key]["value"]
        assert saved == pytest.approx(rate)
        assert printed["summary"]["sources"][root.name][key] == pytest.approx(rate, abs=1e-4)
        assert printed["summary"]["sources"][root.name]["images"] == len(files)
    # the CLI's rows and the Overview's travel table show them beside the CVs
    rows = [r for r in metrics.cv_rows({artifacts.EXTERNAL: block})]
    assert [(r["block"], r["held_out"]) for r in rows] == [
        ("external: pooled", "every source"),
        ("external", "tumour-site"),
        ("external", "healthy-site"),
    ]
    assert rows[1]["specificity"] is None and rows[2]["sensitivity"] is None
    shown = tables.travel_rows(artifacts.read_json(model_copy, artifacts.METRICS))
    mine = shown[shown["evaluation"] == "This model on a source it never saw"]
    assert list(mine["held out"]) == ["tumour-site", "healthy-site"]


def test_save_refuses_scans_the_model_saw_and_writes_nothing(
    model_copy, tiny_dataset, unseen_sources, capsys
):
    before = (model_copy / artifacts.METRICS).read_bytes()
    root, _ = tiny_dataset
    assert _evaluate(model_copy, unseen_sources[0], root) == 2
    err = capsys.readouterr().err
    assert "split.csv" in err and str(root) in err
    assert (
        main(["evaluate", "--artifacts", str(model_copy), "--save", "--data-dir", str(root)]) == 2
    )
    assert "another copy of the data is not saved" in capsys.readouterr().err
    assert main(["evaluate", "--artifacts", str(model_copy), "--save", "--threshold", "0.4"]) == 2
    assert "drop --threshold" in capsys.readouterr().err
    assert main(["evaluate", "--artifacts", str(model_copy), "--all", "--save"]) == 2
    assert "--all needs --data-dir" in capsys.readouterr().err
    assert (model_copy / artifacts.METRICS).read_bytes() == before
    # without --save the same folders are evaluated, per source, and nothing is written; the
    # corrupt file is counted and named on stderr, so stdout stays one JSON document
    assert _evaluate(model_copy, unseen_sources[0], root, save=False) == 0
    out, err = capsys.readouterr()
    printed = json.loads(out)
    assert printed["summary"]["unreadable"] == 1 and "corrupt.jpg" in err
    assert printed["errors"][0]["file"].endswith("corrupt.jpg")
    assert set(printed["summary"]["sources"]) == {"tumour-site", "brain-tumor-dataset"}
    assert (model_copy / artifacts.METRICS).read_bytes() == before


def test_sequences_and_institutions_get_their_own_figures(model_copy, tmp_path, capsys):
    """A source whose files.csv gives a sequence and an institution: `evaluate --all --save`
    reports each (source, sequence) and (source, institution) with the per-source machinery, a
    one-class group with the rate that applies, and the model card and results.md show them."""
    root = tmp_path / "lgg"
    rows = make_patients(root, patients=4, per=3, seed=31)
    rows = [
        r | {"sequence": "t2"} if r["label"] == "tumor" and r["sequence"] == "t1" else r
        for r in rows
    ]  # t2: tumours only
    write_csv(root, rows)
    assert _evaluate(model_copy, root) == 0
    printed = json.loads(capsys.readouterr().out)["summary"]["sources"]["lgg"]
    assert set(printed[artifacts.SEQUENCES]) == {"t1", "t1ce", "flair", "t2"}
    assert printed[artifacts.SEQUENCES]["t2"]["images"] == 4
    assert set(printed[artifacts.SEQUENCES]["t2"]) == {"images", "sensitivity", "flagged_by_guard"}
    assert set(printed[artifacts.INSTITUTIONS]) == {"A", "B"}
    block = artifacts.read_json(model_copy, artifacts.METRICS)[artifacts.EXTERNAL]["sources"]["lgg"]
    seq, inst = block[artifacts.SEQUENCES], block[artifacts.INSTITUTIONS]
    assert sum(b["n"] for b in seq.values()) == block["n"] == sum(b["n"] for b in inst.values())
    assert seq["t1"]["n_tumor"] == 0 and seq["t2"]["n"] == seq["t2"]["n_tumor"]
    assert "ci_low" in seq["t1ce"]["metrics"]["balanced_accuracy"]
    assert seq["t1"]["trained_on"] == block["trained_on"] == ["brain-tumor-dataset"]
    docs = report.render(model_copy, tmp_path)
    card = docs[report.CARD_DOC]
    assert "\n### Per sequence\n" in card and "\n### Per institution\n" in card
    assert "| Unseen sources, lgg | t2 | 4 |" in card and "| Unseen sources, lgg | B |" in card
    assert "- lgg by sequence (balanced accuracy / specificity / sensitivity):" in card
    assert "| lgg, sequence t1ce |" in docs[report.RESULTS_DOC]
    assert "| lgg, institution A |" in docs[report.RESULTS_DOC]
    guard = block[artifacts.FLAGGED]  # what the guard flagged, per source and per sequence
    assert guard["n"] == sum(b[artifacts.FLAGGED]["n"] for b in seq.values())
    assert guard["share"] == round(guard["n"] / block["n"], 4)
    assert printed["flagged_by_guard"] == guard["share"]
    assert f"lgg {100 * guard['share']:.1f}% (flair " in card
    travel = tables.travel_rows(artifacts.read_json(model_copy, artifacts.METRICS))  # Overview
    shown = travel.set_index("held out")
    assert shown.loc["lgg, sequence t2", "evaluation"].endswith("never saw, by sequence")
    assert shown.loc["lgg, institution B", "files"] == str(inst["B"]["n"])
    assert shown.loc["lgg, sequence t2", "Specificity"] == tables.NOT_DEFINED  # tumours only


def test_test_of_compares_two_models_on_the_other_models_test_files(
    model_copy, tiny_artifacts, tmp_path, capsys
):
    """`evaluate --test-of B` scores the model on B's test split (files and roots from B's
    split.csv), per source, at the model's own threshold; bad combinations are refused."""
    table = artifacts.read_csv(model_copy, artifacts.SPLIT)
    chosen = table[table.split == "train"].head(6).index
    table["split"] = ["test" if i in chosen else "train" for i in table.index]
    table.to_csv(model_copy / artifacts.SPLIT, index=False)  # B: another model's test files
    args = ["evaluate", "--artifacts", str(tiny_artifacts), "--bootstrap", "20"]
    assert main(args + ["--test-of", str(model_copy)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["summary"]["images"] == 6
    predictor = Predictor(tiny_artifacts)
    rows = table.loc[chosen]
    files = [f"{r}/{p}" for r, p in zip(rows.root, rows.path, strict=True)]
    said = [r["probability"] >= predictor.threshold for r in predictor.predict_files(files)]
    right = sum(s == bool(y) for s, y in zip(said, rows.label, strict=True))
    assert printed["files"]["metrics"]["accuracy"]["value"] == pytest.approx(right / 6)
    assert set(printed["summary"]["sources"]) == set(rows.source)
    assert main(args + ["--test-of", str(model_copy), "--all"]) == 2
    assert "--test-of" in capsys.readouterr().err
    assert main(args + ["--test-of", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and artifacts.SPLIT in err


def test_part_val_scores_the_validation_rows(model_copy, tiny_artifacts, capsys):
    """`evaluate --part val` (own split or --test-of) reads the split.csv's validation rows, so
    that a lever is judged off the test split; an unknown part and --save are refused."""
    table = artifacts.read_csv(model_copy, artifacts.SPLIT)
    n_val = int((table.split == "val").sum())
    args = ["evaluate", "--artifacts", str(tiny_artifacts), "--bootstrap", "20"]
    assert main(args + ["--test-of", str(model_copy), "--part", "val"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["images"] == n_val
    assert main(args + ["--part", "val"]) == 0
    own = artifacts.read_csv(tiny_artifacts, artifacts.SPLIT)
    assert json.loads(capsys.readouterr().out)["summary"]["images"] == (own.split == "val").sum()
    assert main(args + ["--part", "train"]) == 2
    assert "'train'" in capsys.readouterr().err
    assert main(args + ["--part", "val", "--save"]) == 2
    assert "--save" in capsys.readouterr().err


def test_save_on_the_own_test_split_records_each_source_and_sequence(tmp_path, capsys):
    """A model trained on a source with files.csv (sequences) and a second source: `evaluate
    --save` on its own test split writes test_sources, each source's sequences nested, with the
    guard's share, and the model card shows the rows."""
    lgg = tmp_path / "lgg"
    write_csv(lgg, make_patients(lgg, patients=6, per=3, seed=41))
    other = make_site(tmp_path / "other-site", tumours=8, healthy=8, seed=42, size=(64, 64))
    out = pipeline.train_and_write(
        tiny_settings([lgg, other], tmp_path / "model", head_epochs=2), cv_folds=0,
        shortcut=False, samples=False,
    )  # fmt: skip
    trained = artifacts.read_json(out, artifacts.METRICS)[artifacts.TEST_SOURCES]
    assert set(trained) == {"lgg", "other-site"} and artifacts.SEQUENCES in trained["lgg"]
    capsys.readouterr()  # the training run's log
    assert main(["evaluate", "--artifacts", str(out), "--save", "--bootstrap", "20"]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = artifacts.read_json(out, artifacts.METRICS)[artifacts.TEST_SOURCES]
    split = artifacts.read_csv(out, artifacts.SPLIT)
    test = split[split.split == "test"]
    assert {s: b["n"] for s, b in saved.items()} == test.groupby("source").size().to_dict()
    seqs = saved["lgg"][artifacts.SEQUENCES]
    assert sum(b["n"] for b in seqs.values()) == saved["lgg"]["n"]
    assert artifacts.FLAGGED in saved["lgg"] and artifacts.FLAGGED in next(iter(seqs.values()))
    assert printed["summary"]["sources"]["lgg"]["images"] == saved["lgg"]["n"]
    card = report.render(out, tmp_path)[report.CARD_DOC]
    assert "| Test split per source, lgg | " in card.split("### Per sequence")[1]
    assert "| lgg | test split |" in card and "`neuroscan evaluate --save`" in card
    readme = report.render(out, tmp_path)[report.README]
    assert "| Same source | test split, lgg, sequence " in readme
