"""The lesion-map head (`neuroscan lesion-head`, serving.lesion, training.lesion_fit): targets and
threshold by hand, parts that keep patients and blocks whole, the command end to end on a tiny
model (trained, measured, written, read back by the Predictor), and the refusals."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tumor_model import artifacts
from tumor_model.artifacts import ArtifactError
from tumor_model.dashboard import predict as pp
from tumor_model.evaluation import lesion_head
from tumor_model.release import report
from tumor_model.training import lesion_fit

from conftest import REPO, fake_scan, in_process, lesion_box


def box_of(mask: np.ndarray, width: int, height: int) -> dict:
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    return {
        "x_center": (x0 + x1) / 2 / width,
        "y_center": (y0 + y1) / 2 / height,
        "width": (x1 - x0) / width,
        "height": (y1 - y0) / height,
    }


def masks_source(folder, patients=10, slices=3, seed=1, size=(64, 64)):
    """tcga-lgg's layout: files.csv (label, sequence, patient_id, boxes and `mask` on tumours)
    and one mask image per tumour slice; each patient has `slices` tumour and 2 healthy slices."""
    rng = np.random.default_rng(seed)
    for sub in ("tumor", "healthy", "masks"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rows = []
    for p in range(patients):
        for k in range(slices + 2):
            tumour, seq = k < slices, ("t1", "flair")[k % 2]
            arr = fake_scan(rng, tumour, size)
            name = f"{'tumor' if tumour else 'healthy'}/P{p}_s{k}_{seq}.jpg"
            Image.fromarray(arr).save(folder / name, quality=95)
            row = {"file": name, "label": "tumor" if tumour else "healthy", "sequence": seq}
            row |= {"patient_id": f"P{p}", "mask": None}
            if tumour:
                mask = lesion_box(arr)
                row["mask"] = f"masks/P{p}_s{k}_{seq}.png"
                Image.fromarray((mask * 255).astype("uint8")).save(folder / row["mask"])
                row |= box_of(mask, size[1], size[0])
            rows.append(row)
    path = folder / "files.csv"
    pd.DataFrame(rows).round(4).to_csv(path, index=False)
    return path


def boxes_source(folder, n=150, seed=2, size=(64, 64)):
    """Figshare's layout: tumor/<type>_<number>.jpg and boxes.csv, no patients (150 files:
    7 blocks of numbers, so that every part gets one)."""
    rng = np.random.default_rng(seed)
    (folder / "tumor").mkdir(parents=True)
    rows = []
    for i in range(n):
        arr = fake_scan(rng, True, size)
        name = f"tumor/glioma_{i + 1}.jpg"
        Image.fromarray(arr).save(folder / name, quality=95)
        rows.append({"file": name, **box_of(lesion_box(arr), size[1], size[0])})
    path = folder / "boxes.csv"
    pd.DataFrame(rows).round(4).to_csv(path, index=False)
    return path


def test_grid_targets_are_the_share_of_each_cell_the_mask_covers():
    mask = np.zeros((16, 16), bool)
    mask[0:4, 0:2] = True  # half of cell (0, 0)
    mask[8:12, 8:12] = True  # all of cell (2, 2)
    grid = lesion_fit.grid_target(mask, 16)[..., 0]
    assert grid.shape == (4, 4)
    assert grid[0, 0] == pytest.approx(0.5) and grid[2, 2] == pytest.approx(1.0)
    assert grid.sum() == pytest.approx(1.5)
    assert not lesion_fit.grid_target(None, 16).any()


def test_the_threshold_is_the_one_of_best_mean_dice():
    truth = np.zeros((10, 10), bool)
    truth[2:6, 2:6] = True
    heat = np.where(truth, 0.7, 0.0)
    heat[6:8, 2:6] = 0.4  # a halo below the lesion: any threshold <= 0.4 takes it in
    assert lesion_fit.best_threshold([heat], [truth]) > 0.4
    assert lesion_fit.dice(heat >= 0.5, truth) == 1.0
    assert lesion_fit.dice(np.zeros_like(truth), np.zeros_like(truth)) == 1.0


def test_parts_keep_patients_and_numbered_blocks_whole(tmp_path):
    files = pd.DataFrame(
        {
            "file": [f"tumor/glioma_{i}.jpg" for i in range(200)] + ["tumor/x.jpg"],
            "patient_id": [None] * 199 + ["P7", None],
        }
    )
    groups = lesion_head.groups(files)
    assert groups[0] == groups[24] != groups[25]  # blocks of 25 numbers
    assert groups[199] == "patient:P7" and groups[200] == "file:tumor/x.jpg"
    parts = lesion_head.assign_parts(files, None)
    assert set(parts) == {"train", "val", "test"}
    assert (pd.DataFrame({"g": groups, "p": parts}).groupby("g").p.nunique() == 1).all()


@pytest.mark.slow
def test_the_command_trains_measures_and_writes_a_head_the_predictor_reads(
    tiny_artifacts, tmp_path, capsys, monkeypatch
):
    folder = shutil.copytree(tiny_artifacts, tmp_path / "model")
    tcga, fig = masks_source(tmp_path / "tcga-like"), boxes_source(tmp_path / "fig-like")
    args = ("lesion-head", "--artifacts", str(folder), "--boxes", str(tcga), "--boxes", str(fig))
    done = in_process(capsys, *args, "--epochs", "3", "--save", "--out", str(tmp_path / "r.json"))
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    record = json.loads((folder / artifacts.LESION_RECORD).read_text())
    assert record == json.loads((tmp_path / "r.json").read_text()) | {
        "head_sha256": record["head_sha256"]
    }
    assert record["model_sha256"] == artifacts.read_card(folder)["model_sha256"]
    assert 0 < record["threshold"] < 1 and said["threshold"] == record["threshold"]
    test = record["test"]
    assert {"tcga-like", "tcga-like/t1", "tcga-like/flair"} <= set(test["dice"])
    assert {"tcga-like", "fig-like"} <= set(test["head"]) and set(test["default_map_same_slices"])
    assert all(0 <= v["mean"] <= 1 for v in test["dice"].values())
    assert set(record["parts"]["fig-like"]) == {"train", "val", "test"}

    from tumor_model.serving.predict import Predictor

    lesion = Predictor(folder).lesion_map()
    scan = tcga.parent / "tumor" / "P0_s0_t1.jpg"
    image = Image.open(scan)
    pixels = Predictor(folder).pixels(image)
    heat = lesion(pixels)
    assert heat.shape == pixels.shape[:2] and heat.dtype == np.float32
    assert 0.0 <= heat.min() <= heat.max() <= 1.0
    assert lesion.threshold == record["threshold"]
    kept, item = {}, {"key": "scan", "frame": 0}
    shown = [pp.lesion_image(Predictor(folder), item, pixels, (0.4, "jet"), kept, 1.0)]
    shown.append(pp.lesion_image(Predictor(folder), item, pixels, (0.9, "jet"), kept, 1.0))
    assert len(kept) == 1 and np.array_equal(next(iter(kept.values())), heat)  # one map, reused
    assert not np.array_equal(shown[0]["image"], shown[1]["image"])  # the new look applied
    shows_the_head_beside_the_evidence(folder, image, monkeypatch)
    out = str(tmp_path / "maps")  # predict --explain writes the head's raw map too
    done = in_process(capsys, "predict", "--artifacts", str(folder), "--explain", out, str(scan))
    raw = np.load(json.loads(done.stdout.strip().splitlines()[-1])["lesion_map"])
    assert raw.shape == image.size[::-1] and raw.dtype == np.float32
    assert 0 <= raw.min() <= raw.max() <= 1
    card = report.render(folder, tmp_path)[report.CARD_DOC]  # the model card renders the record
    rows = [line for line in card.splitlines() if line.startswith("| tcga-like")]
    assert len(rows) == 3 and f"{record['threshold']:.3f} (chosen on validation" in card

    # a head written for another model, or a replaced head file, is refused by name
    (folder / artifacts.LESION_RECORD).write_text(json.dumps(record | {"model_sha256": "0" * 64}))
    with pytest.raises(ArtifactError, match=artifacts.LESION_RECORD):
        Predictor(folder).lesion_map()
    (folder / artifacts.LESION_RECORD).write_text(json.dumps(record))
    (folder / artifacts.LESION_HEAD).write_bytes(b"not a keras file")
    with pytest.raises(ArtifactError, match=artifacts.LESION_HEAD):
        Predictor(folder).lesion_map()
    said = pp.lesion_image(Predictor(folder), item, pixels, (0.4, "jet"), {}, 0.0)  # says why
    assert (
        said["caption"].startswith("Lesion head unavailable") and "lesion_head" in said["caption"]
    )


def shows_the_head_beside_the_evidence(folder, image, monkeypatch) -> None:
    """The Predict page with this folder: the evidence map and, beside it, the head's map with
    the figures its record holds."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("NEUROSCAN_ARTIFACTS", str(folder))
    at = AppTest.from_file(str(REPO / "app" / "streamlit_app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/predict.py").run()
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    upload = [("scan.png", buffer.getvalue(), "application/octet-stream")]
    at.file_uploader(key="predict_upload").set_value(upload).run()
    assert not at.exception, [e.value for e in at.exception]
    captions = [c for img in at.image for c in img.captions]
    assert any("overlay: evidence for" in c for c in captions)
    (where,) = [c for c in captions if c.startswith("Where: the lesion head")]
    record = json.loads((folder / artifacts.LESION_RECORD).read_text())
    assert f"{record['threshold']:.2f}" in where and "Dice flair " in where and ", t1 " in where


def test_a_folder_without_a_head_has_no_lesion_map(tiny_artifacts):
    from tumor_model.serving.predict import Predictor

    assert Predictor(tiny_artifacts).lesion_map() is None


def test_a_missing_mask_is_named_and_nothing_is_written(tiny_artifacts, tmp_path, capsys):
    folder = shutil.copytree(tiny_artifacts, tmp_path / "model")
    tcga = masks_source(tmp_path / "tcga-like", patients=3)
    (tcga.parent / "masks" / "P1_s0_t1.png").unlink()
    before = sorted(p.name for p in folder.iterdir())
    done = in_process(capsys, "lesion-head", "--artifacts", str(folder), "--boxes", str(tcga))
    assert done.returncode == 2
    assert "files.csv" in done.stderr and "masks/P1_s0_t1.png" in done.stderr
    assert "not found" in done.stderr
    assert sorted(p.name for p in folder.iterdir()) == before


def test_bad_epochs_are_refused(tiny_artifacts, tmp_path, capsys):
    fig = boxes_source(tmp_path / "fig-like", n=4)
    args = ("lesion-head", "--artifacts", str(tiny_artifacts), "--boxes", str(fig))
    done = in_process(capsys, *args, "--epochs", "0")
    assert done.returncode == 2 and "epochs must be a positive integer, got 0" in done.stderr
