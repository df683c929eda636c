import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tumor_model.commands import build_parser, main

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
    from tumor_model.commands.args import settings_from_args

    s = settings_from_args(args)
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


def test_summarize_reports_each_source(tiny_dataset, tmp_path):
    """A second, one-class root (tumours only) is its own source in the summary."""
    from PIL import Image

    from conftest import fake_scan

    root, _ = tiny_dataset
    other = tmp_path / "other-site" / "tumour"
    other.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for i in range(5):
        Image.fromarray(fake_scan(rng, True, (90, 90))).save(other / f"{i}.png")
    done = cli(
        "summarize",
        "--data-dir",
        str(root),
        "--data-dir",
        str(other.parent),
        "--out",
        str(tmp_path / "s.json"),
    )
    assert done.returncode == 0, done.stderr[-1500:]
    sources = json.loads(done.stdout.strip().splitlines()[-1])["sources"]
    assert list(sources) == [root.name, "other-site"]
    assert sources["other-site"] == {
        "files": 5,
        "classes": {"healthy": 0, "tumor": 5},
        "image_sizes": 1,
        "duplicate_groups": 5,
        "single_class": True,
    }
    assert not sources[root.name]["single_class"]


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


def test_predict_lines_say_tumour_not_the_machine_name():
    """`neuroscan predict` prints the user-facing spelling (config.DISPLAY_NAMES) for the label
    and the explained class, like the band it prints beside them."""
    from tumor_model.commands.predict import shown
    from tumor_model.serving.predict import confidence_band

    line = {"file": "tumor.png", "label": "tumor", "explained": "healthy", "probability": 0.9}
    assert shown({**line, "band": confidence_band(0.9, 0.5)}) == {
        **line,
        "label": "tumour",
        "explained": "no tumour",
        "band": "confident: tumour",
    }
    assert confidence_band(0.1, 0.5) == "confident: no tumour"
    assert shown({"file": "x.png", "error": "not an image"}) == {
        "file": "x.png",
        "error": "not an image",
    }


def test_dashboard_command_runs_the_repositorys_app_with_the_chosen_model():
    from tumor_model.commands import dashboard

    script = dashboard.app_script()
    assert script == REPO / "app" / "streamlit_app.py" and script.is_file()  # a source checkout
    assert (script.parent / ".streamlit" / "config.toml").is_file()  # read beside the script
    args = build_parser().parse_args(["dashboard", "--port", "8600", "--artifacts", "m"])
    assert args.func is dashboard.cmd_dashboard and args.artifacts == "m"
    command = dashboard.command(args)
    assert command[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert command[4] == str(script)
    assert command[5:] == ["--server.port", "8600", "--server.address", "localhost"]
