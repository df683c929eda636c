"""Prediction on the light runtime (the ONNX export run by ONNX Runtime): the same
probabilities and decisions as the Keras path, no TensorFlow imported, and a refused export
when its sha256 does not match the card."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tumor_model import artifacts
from tumor_model.artifacts import ArtifactError
from tumor_model.serving.predict import Predictor
from tumor_model.serving.volume import load_volume, predict_volume
from tumor_model.training.data import find_images

from conftest import REPO, SHARED_DATA, fake_scan
from volumes import sample_volume

TOLERANCE = 1e-4


def same_answers(onnx: list[dict], keras: list[dict]) -> None:
    """Probabilities within TOLERANCE and every decision (label, guard) the same."""
    for a, b in zip(onnx, keras, strict=True):
        assert ("error" in a) == ("error" in b), (a, b)
        if "error" in a:
            continue
        assert abs(a["probability"] - b["probability"]) <= TOLERANCE, (a, b)
        assert (a["label"], a["is_mri"]) == (b["label"], b["is_mri"]), (a, b)


@pytest.fixture(scope="module")
def both(tiny_artifacts):
    return Predictor(tiny_artifacts), Predictor(tiny_artifacts, runtime="keras")


def test_train_writes_an_export_that_auto_uses(both, tiny_artifacts):
    onnx, keras = both
    card = artifacts.read_card(tiny_artifacts)
    assert (tiny_artifacts / artifacts.EXPORT).is_file() and card["export"]["sha256"]
    assert card["export"]["model_sha256"] == card["model_sha256"]
    assert (onnx.runtime, keras.runtime) == ("onnx", "keras")


def test_both_paths_agree_on_scans_and_a_volume(both, tiny_artifacts, tmp_path):
    rng = np.random.default_rng(7)
    paths = []
    for i in range(40):
        path = tmp_path / f"{i}.png"
        Image.fromarray(fake_scan(rng, i % 2 == 0, (64 + i, 64))).save(path)
        paths.append(path)
    onnx, keras = both
    same_answers(onnx.predict_files(paths), keras.predict_files(paths))
    volume = load_volume([sample_volume(tiny_artifacts)], ["v.nii.gz"])
    a, b = predict_volume(onnx, volume), predict_volume(keras, volume)
    same_answers(a["slices"], b["slices"])
    assert a["label"] == b["label"]


def test_predict_on_the_light_runtime_imports_neither_tensorflow_nor_keras(tiny_artifacts):
    sample = sorted((tiny_artifacts / "samples").glob("*.png"))[0]
    code = (
        "import sys\nfrom tumor_model.commands import main\n"
        f"code = main(['predict', {str(sample)!r}, '--artifacts', {str(tiny_artifacts)!r}])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "print('HEAVY', heavy, code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    line = json.loads(done.stdout.splitlines()[0])
    assert line["label"] in ("tumour", "no tumour")
    assert "HEAVY [] 0" in done.stdout


def test_a_mismatched_export_is_refused_naming_the_fix(tiny_artifacts, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_artifacts, folder)
    with open(folder / artifacts.EXPORT, "ab") as f:
        f.write(b"\0")
    with pytest.raises(ArtifactError, match="neuroscan export --artifacts"):
        Predictor(folder)
    assert Predictor(folder, runtime="keras").runtime == "keras"  # the Keras path still works


def test_a_folder_without_export_uses_keras_and_export_adds_one(tiny_artifacts, tmp_path):
    from tumor_model.commands import main

    folder = tmp_path / "old"
    shutil.copytree(tiny_artifacts, folder)
    (folder / artifacts.EXPORT).unlink()
    card = artifacts.read_card(folder)
    card.pop("export")
    artifacts.write_json(card, folder / artifacts.CARD)
    assert Predictor(folder).runtime == "keras"
    assert main(["export", "--artifacts", str(folder)]) == 0
    assert Predictor(folder).runtime == "onnx"


@pytest.mark.slow
def test_both_paths_agree_on_the_shipped_model_and_every_shared_source():
    """The shipped samples, a volume of them and 200 scans of every shared source."""
    shipped = artifacts.shipped_dir()
    onnx, keras = Predictor(shipped), Predictor(shipped, runtime="keras")
    assert onnx.runtime == "onnx"
    samples = sorted((shipped / "samples").glob("*.png"))
    same_answers(onnx.predict_files(samples), keras.predict_files(samples))
    volume = load_volume([sample_volume(shipped)], ["v.nii.gz"])
    same_answers(predict_volume(onnx, volume)["slices"], predict_volume(keras, volume)["slices"])
    if not SHARED_DATA.exists():
        pytest.skip("the shared data is not on this machine")
    roots = sorted(p for p in SHARED_DATA.parent.iterdir() if p.is_dir())
    if not roots:
        pytest.skip("the shared data is not on this machine")
    for root in roots:
        table = find_images(root).sample(frac=1.0, random_state=0).head(200)
        files = [root / p for p in table.path]
        same_answers(onnx.predict_files(files), keras.predict_files(files))
