"""The command line as a user meets it: fast help without TensorFlow, the model found from any
folder, folders as input, raw maps beside the overlays, and the JSON spelt as users read it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tumor_model import artifacts
from tumor_model.commands import main
from tumor_model.commands.predict import inputs, shown
from tumor_model.io.imageio import ImageLoadError, load_image

from conftest import REPO, fake_scan


def run_cli(*args, cwd, env=None):
    return subprocess.run(
        [sys.executable, "-m", "tumor_model", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", **(env or {})},
    )


def test_help_answers_without_importing_tensorflow(tmp_path):
    code = (
        "import sys\nfrom tumor_model.commands import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('LOADED', sorted(m for m in ('tensorflow', 'keras', 'pandas') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout and "predict" in done.stdout


def test_argument_error_names_the_problem_without_a_traceback(tmp_path):
    done = run_cli("predict", cwd=tmp_path)
    assert done.returncode == 2 and "the following arguments are required" in done.stderr
    assert "Traceback" not in done.stderr


def test_locate_prefers_the_flag_then_the_environment_then_the_shipped_model(tmp_path):
    assert artifacts.locate(tmp_path, env={artifacts.ENV: "/elsewhere"}) == tmp_path
    assert str(artifacts.locate(None, env={artifacts.ENV: "/elsewhere"})) == "/elsewhere"
    shipped = artifacts.locate(None, env={})
    assert shipped == artifacts.shipped_dir() and (shipped / artifacts.CARD).is_file()


def test_a_missing_model_folder_names_it_and_how_to_point_elsewhere(tmp_path, capsys):
    scan = tmp_path / "scan.png"
    Image.fromarray(fake_scan(np.random.default_rng(0), True)).save(scan)
    assert main(["predict", str(scan), "--artifacts", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "none") in err and "--artifacts" in err and artifacts.ENV in err


def test_the_shipped_model_is_found_from_another_folder(tmp_path):
    sample = sorted((REPO / "artifacts" / "samples").glob("*.png"))[0]
    done = run_cli("predict", str(sample), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    line = json.loads(done.stdout.splitlines()[0])
    assert line["label"] in ("tumour", "no tumour") and 0 <= line["probability"] <= 1
    assert "tensorflow" not in done.stderr.lower()  # no framework log lines without --verbose


def test_folders_are_read_recursively_and_hidden_files_skipped(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "2.png").write_bytes(b"x")
    (tmp_path / "a" / "1.png").write_bytes(b"x")
    (tmp_path / "a" / ".hidden.png").write_bytes(b"x")
    found = inputs([str(tmp_path / "a"), "missing.png"])
    assert [p.name for p in found] == ["1.png", "2.png", "missing.png"]
    (tmp_path / "a" / "labels.csv").write_text("file,label\n")  # metadata, not a scan
    assert [p.name for p in inputs([str(tmp_path / "a")])] == ["1.png", "2.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no files"):
        inputs([str(tmp_path / "empty")])


def test_predict_a_folder_writes_overlays_and_raw_maps_on_the_scan_grid(tiny_artifacts, tmp_path):
    rng = np.random.default_rng(3)
    scans = tmp_path / "scans" / "deeper"
    scans.mkdir(parents=True)
    for i, size in enumerate(((64, 64), (80, 96))):
        Image.fromarray(fake_scan(rng, True, size)).save(scans / f"s{i}.png")
    out = tmp_path / "maps"
    done = run_cli(
        "predict",
        str(tmp_path / "scans"),
        "--artifacts",
        str(tiny_artifacts),
        "--explain",
        str(out),
        "--predict-anyway",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(x) for x in done.stdout.splitlines()]
    assert [line["file"].rsplit("/", 1)[1] for line in lines] == ["s0.png", "s1.png"]
    for line, size in zip(lines, ((64, 64), (80, 96)), strict=True):
        raw = np.load(line["map"])
        assert raw.dtype == np.float32 and raw.shape == size
        assert 0.0 <= raw.min() and raw.max() <= 1.0
        assert line["overlay"].endswith(".png") and line["threshold"] == round(line["threshold"], 4)


def test_shown_spells_labels_rounds_the_threshold_and_hides_a_withheld_probability():
    line = {
        "file": "v.nii",
        "label": "tumor",
        "threshold": 0.123456789,
        "slices": [
            {
                "slice": 1,
                "label": "healthy",
                "threshold": 0.123456789,
                "probability": 0.2,
                "is_mri": True,
            },
            {
                "slice": 2,
                "label": None,
                "threshold": 0.123456789,
                "probability": 0.9,
                "is_mri": False,
                "predicted_anyway": False,
            },
        ],
    }
    out = shown(line)
    assert out["label"] == "tumour" and out["threshold"] == 0.1235
    assert out["slices"][0]["label"] == "no tumour" and out["slices"][0]["probability"] == 0.2
    assert out["slices"][1]["probability"] is None
    anyway = shown(
        {"label": "tumor", "is_mri": False, "predicted_anyway": True, "probability": 0.9}
    )
    assert anyway["probability"] == 0.9


def test_a_truncated_image_is_named_in_plain_words(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(fake_scan(np.random.default_rng(1), False)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError) as err:
        load_image(path)
    message = str(err.value)
    assert "cut.png" in message and "truncated PNG image" in message
    assert "bytes not processed" not in message and "image file is truncated" not in message
