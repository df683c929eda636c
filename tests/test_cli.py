import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from tumor_model.cli import build_parser, main

from conftest import REPO, cli


def test_help_lists_subcommands():
    done = cli("--help")
    assert done.returncode == 0
    for sub in ("summarize", "train", "cv", "report-protocol", "evaluate", "predict", "pack",
                "refit-guard"):  # fmt: skip
        assert sub in done.stdout


@pytest.mark.parametrize(("given", "expected"), [(None, "true"), ("false", "false")])
def test_package_turns_on_the_bfc_cpu_allocator_unless_told_otherwise(given, expected):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
    if given is not None:
        env["TF_CPU_ALLOCATOR_USE_BFC"] = given
    code = "import os, tumor_model; print(os.environ['TF_CPU_ALLOCATOR_USE_BFC'])"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected


def test_train_flags_cover_every_setting():
    args = build_parser().parse_args(
        [
            "train",
            "--data-dir",
            "a",
            "--data-dir",
            "b",
            "--fine-tune-layers",
            "30",
            "--no-augment",
            "--split",
            "random",
            "--threshold",
            "0.5",
        ]
    )
    from tumor_model.cli import _settings

    s = _settings(args)
    assert s.data_dirs == ("a", "b") and s.fine_tune_layers == 30 and s.augment is False
    assert s.split == "random" and s.threshold == 0.5


def test_summarize_writes_summary(tiny_dataset, tmp_path):
    root, facts = tiny_dataset
    out = tmp_path / "summary.json"
    done = cli("summarize", "--data-dir", str(root), "--out", str(out))
    assert done.returncode == 0, done.stderr[-1500:]
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert line["unreadable"] == 1
    summary = json.loads(out.read_text())
    assert summary["unreadable"][0]["path"] == facts["corrupt"]


def test_evaluate_test_split_and_folder(tiny_artifacts, tiny_dataset, tmp_path):
    root, _ = tiny_dataset
    out = tmp_path / "eval.json"
    assert (
        main(
            ["evaluate", "--artifacts", str(tiny_artifacts), "--bootstrap", "20", "--out", str(out)]
        )
        == 0
    )
    result = json.loads(out.read_text())
    preds = pd.read_csv(tiny_artifacts / "predictions.csv")
    test = preds[preds.split == "test"]
    assert result["summary"]["images"] == len(test)
    acc = ((test.probability >= result["summary"]["threshold"]) == test.label).mean()
    assert result["files"]["metrics"]["accuracy"]["value"] == pytest.approx(acc, abs=1e-3)
    assert (
        main(
            [
                "evaluate",
                "--artifacts",
                str(tiny_artifacts),
                "--data-dir",
                str(root),
                "--all",
                "--bootstrap",
                "20",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    everything = json.loads(out.read_text())
    assert everything["summary"]["images"] == len(preds)  # all readable images of the folder
    assert everything["groups"]["n"] < everything["files"]["n"]
    # the threshold that suits these scans separates them at least as well as the model's
    local, m = everything["summary"]["local_threshold"], everything["files"]["metrics"]
    assert 0 < local["threshold"] < 1
    j_model = m["sensitivity"]["value"] + m["specificity"]["value"]
    assert local["sensitivity"] + local["specificity"] >= j_model - 1e-3


def test_bad_arguments_give_clear_errors(tmp_path, capsys):
    assert main(["summarize", "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert "not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--geometry"])
    assert main(["train", "--data-dir", str(tmp_path), "--geometry", "zoom"]) == 2
    assert "geometry" in capsys.readouterr().err
