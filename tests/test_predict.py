"""Predictor, the `predict` CLI with --explain, and the out-of-distribution guard.

Everything runs on the tiny model of `conftest.tiny_artifacts` (trained once per session), except
the OOD guard checks and one smoke test, which need the shipped model (`artifacts/`, or
$NEUROSCAN_ARTIFACTS; for the test split also the dataset) and are skipped with the reason
otherwise. The guard itself (`serving.ood`) is unit-tested in test_ood.py, `load_scan` in
test_imageio.py.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from tumor_model import commands as cli
from tumor_model.artifacts import CARD, MODEL, REBUILD, ArtifactError, read_card
from tumor_model.config import CLASS_NAMES, DISPLAY_NAMES
from tumor_model.io.imageio import load_scan
from tumor_model.serving import ood
from tumor_model.serving.predict import NO_VERDICT, Predictor, confidence_band

from badfiles import bad_files, odd_files, valid_image_bytes
from conftest import REPO, SHARED_DATA

SHIPPED = Path(os.environ.get("NEUROSCAN_ARTIFACTS", "").strip() or REPO / "artifacts")
IS_SHIPPED = (SHIPPED / CARD).is_file()


@pytest.fixture(scope="module")
def artifacts(tiny_artifacts) -> Path:
    return tiny_artifacts


@pytest.fixture(scope="module")
def predictor(artifacts) -> Predictor:
    return Predictor(artifacts)


@pytest.fixture(scope="module")
def samples(artifacts) -> pd.DataFrame:
    frame = pd.read_csv(artifacts / "samples" / "samples.csv")
    assert {"file", "label", "class_name"} <= set(frame.columns)
    return frame.assign(path=[artifacts / "samples" / f for f in frame.file])


def _is_prediction(result: dict, predictor: Predictor, shown: bool = False) -> None:
    """`shown`: a line of the CLI, whose label is the user-facing config.DISPLAY_NAMES one, its
    threshold rounded and no probability where the guard withheld the verdict."""
    p = result["probability"]
    withheld = not (result["is_mri"] or result["predicted_anyway"])
    assert p is None if shown and withheld else 0.0 <= p <= 1.0
    assert result["threshold"] == (round(predictor.threshold, 4) if shown else predictor.threshold)
    assert isinstance(result["out_of_distribution"], bool) and np.isfinite(result["ood_score"])
    assert result["is_mri"] is not result["out_of_distribution"]
    if withheld:
        assert result["label"] is None and result["band"] is None
        assert result["verdict"] == NO_VERDICT and result["ood_reason"].startswith(ood.NOT_MRI)
        return
    name = CLASS_NAMES[int(p >= predictor.threshold)]
    assert result["label"] == (DISPLAY_NAMES[name] if shown else name)
    assert result["band"] == confidence_band(p, predictor.threshold)
    assert result["verdict"].startswith(result["band"])
    assert (result["ood_reason"] is None) is result["is_mri"]


# ----------------------------------------------------------------------------- predictions


def test_sample_thumbnails_get_a_prediction(predictor, samples):
    one_each = samples.groupby("label").head(1)
    results = predictor.predict_files(list(one_each.path), list(one_each.file))
    assert [r["file"] for r in results] == list(one_each.file)
    for result in results:
        _is_prediction(result, predictor)


def test_predict_one_matches_the_batch_path(predictor, samples):
    path = samples.path.iloc[0]
    image, scan = load_scan(path)
    assert scan is None
    single = predictor.predict_one(image, "x.png")
    batch = predictor.predict_files([path], ["x.png"])[0]
    assert single["label"] == batch["label"]
    assert single["probability"] == pytest.approx(batch["probability"], abs=1e-5)


def test_bad_files_give_errors_and_the_good_file_is_still_predicted(predictor, samples):
    bad = bad_files()
    good_name = "good scan.png"
    names = list(bad)
    names.insert(len(names) // 2, good_name)
    data = {**bad, good_name: samples.path.iloc[0].read_bytes()}
    results = predictor.predict_files([data[n] for n in names], names)
    assert [r["file"] for r in results] == names
    for name, result in zip(names, results, strict=True):
        if name == good_name:
            _is_prediction(result, predictor)
        else:
            assert set(result) == {"file", "error"}, name
            assert repr(name) in result["error"]
            assert "Traceback" not in result["error"]


def test_odd_but_valid_files_are_predicted(predictor):
    odd = odd_files()
    names = ["mr_no_preamble", "mr_multiframe.dcm", "i16.tif", "cmyk.jpg", "plain.bmp"]
    results = predictor.predict_files([odd[n] for n in names], names)
    for result in results:
        _is_prediction(result, predictor)


def test_explaining_leaves_the_predictor_unchanged(predictor, samples):
    paths = list(samples.path.iloc[:3])
    before = predictor.predict_files(paths)
    image, _ = load_scan(paths[0])
    for method in ("gradcam", "scorecam"):
        pixels, expl = predictor.explain(image, method)
        assert pixels.shape == (predictor.size, predictor.size, 3)
        assert expl.heatmap.shape == (predictor.size, predictor.size)
        assert 0.0 <= expl.heatmap.min() <= expl.heatmap.max() <= 1.0
        assert expl.target == int(before[0]["label"] == "tumor")
    assert predictor.explainer() is predictor.explainer()
    assert predictor.model.get_layer("tumor_probability").activation.__name__ == "sigmoid"
    assert predictor.predict_files(paths) == before


def test_missing_and_corrupt_artifacts_say_how_to_rebuild(tmp_path, artifacts):
    with pytest.raises(ArtifactError, match=f"Artifact '{CARD}' .* is missing") as err:
        Predictor(tmp_path)
    assert err.value.name == CARD and REBUILD in str(err.value)
    (tmp_path / CARD).write_text((artifacts / CARD).read_text())
    with pytest.raises(ArtifactError, match=f"'{MODEL}' .* is missing"):
        Predictor(tmp_path)
    (tmp_path / MODEL).write_bytes((artifacts / MODEL).read_bytes()[:1000])
    with pytest.raises(ArtifactError, match=f"'{MODEL}' .* sha256"):
        Predictor(tmp_path)
    card = json.loads((artifacts / CARD).read_text())
    (tmp_path / CARD).write_text(json.dumps({**card, "geometry": "stretch"}))
    with pytest.raises(ArtifactError, match="unknown geometry 'stretch'"):
        Predictor(tmp_path)
    (tmp_path / CARD).write_text("{not json")
    with pytest.raises(ArtifactError, match="unreadable"):
        read_card(tmp_path)


# ----------------------------------------------------------------------------- the CLI


def test_cli_predict_explain_mixed_batch(artifacts, predictor, samples, tmp_path, capsys):
    good = tmp_path / "a" / "scan.png"
    twin = tmp_path / "b" / "scan.png"  # same stem: gets its own overlay file
    for path in (good, twin):
        path.parent.mkdir()
        path.write_bytes(samples.path.iloc[0].read_bytes())
    bad = tmp_path / "notes.png"
    bad.write_bytes(bad_files()["text.png"])
    out = tmp_path / "maps"
    code = cli.main(
        [
            "predict",
            str(good),
            str(bad),
            str(twin),
            "--artifacts",
            str(artifacts),
            "--explain",
            str(out),
            "--method",
            "gradcam",
        ]
    )
    assert code == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["file"] for line in lines] == [str(good), str(bad), str(twin)]
    assert set(lines[1]) == {"file", "error"} and "'" + str(bad) + "'" in lines[1]["error"]
    overlays = [Path(lines[i]["overlay"]) for i in (0, 2)]
    assert overlays[0] == out / "scan_gradcam.png" and overlays[0] != overlays[1]
    for i, path in zip((0, 2), overlays, strict=True):
        _is_prediction(
            {k: v for k, v in lines[i].items() if k not in ("overlay", "explained")},
            predictor,
            shown=True,
        )
        assert lines[i]["explained"] == lines[i]["label"]
        with Image.open(path) as img:
            assert img.format == "PNG" and img.size == (predictor.size, predictor.size)
            assert img.mode == "RGB"


def test_cli_predict_all_good_exits_zero(artifacts, samples, tmp_path, capsys):
    path = tmp_path / "x.dcm"
    path.write_bytes(valid_image_bytes("DICOM"))
    code = cli.main(
        [
            "predict",
            str(path),
            "--artifacts",
            str(artifacts),
            "--explain",
            str(tmp_path / "o"),
            "--method",
            "gradcam++",
            "--colormap",
            "viridis",
        ]
    )
    assert code == 0
    line = json.loads(capsys.readouterr().out)
    assert Path(line["overlay"]).name == "x_gradcam++.png" and Path(line["overlay"]).is_file()


def test_cli_rejects_bad_explain_options(artifacts, samples):
    with pytest.raises(SystemExit):
        cli.main(["predict", str(samples.path.iloc[0]), "--explain", "d", "--method", "lime"])
    assert (
        cli.main(
            ["predict", str(samples.path.iloc[0]), "--artifacts", str(artifacts), "--alpha", "2"]
        )
        == 2
    )


# ----------------------------------------------------------------------------- OOD guard


def _scene(seed: int, size: int = 320) -> Image.Image:
    """A colourful synthetic outdoor-like scene: sky gradient, ground, sun, houses, trees."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, size)[:, None, None]
    top, bottom = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    sky = (top * (1 - y) + bottom * y) * np.ones((1, size, 1))
    img = Image.fromarray(sky.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    horizon = int(size * rng.uniform(0.5, 0.75))
    draw.rectangle([0, horizon, size, size], fill=tuple(int(v) for v in rng.integers(0, 200, 3)))
    r = int(rng.integers(15, 40))
    cx, cy = int(rng.integers(r, size - r)), int(rng.integers(r, horizon - r))
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(255, 220, 60))
    for _ in range(int(rng.integers(3, 8))):
        w, h = int(rng.integers(20, 70)), int(rng.integers(20, 90))
        x0 = int(rng.integers(0, size - w))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.rectangle([x0, horizon - h, x0 + w, horizon], fill=colour)
        draw.polygon(
            [(x0, horizon - h), (x0 + w, horizon - h), (x0 + w // 2, horizon - h - 25)],
            fill=tuple(int(v) for v in rng.integers(0, 256, 3)),
        )
    for _ in range(int(rng.integers(2, 6))):
        x0 = int(rng.integers(0, size - 30))
        draw.rectangle([x0 + 12, horizon - 30, x0 + 18, horizon + 5], fill=(90, 60, 30))
        draw.ellipse([x0, horizon - 70, x0 + 30, horizon - 25], fill=(30, 140, 40))
    return img


def _photos() -> dict[str, Image.Image]:
    import sklearn.datasets

    folder = Path(sklearn.datasets.__file__).parent / "images"  # real photos, shipped offline
    return {p.name: Image.open(p).convert("RGB") for p in sorted(folder.glob("*.jpg"))}


def _unusual_inputs() -> dict[str, Image.Image]:
    rng = np.random.default_rng(0)
    images = {**_photos(), **{f"scene_{i}": _scene(i) for i in range(6)}}
    images["noise_rgb"] = Image.fromarray(rng.integers(0, 256, (224, 224, 3), np.uint8), "RGB")
    images["noise_grey"] = Image.fromarray(rng.integers(0, 256, (224, 224), np.uint8)).convert(
        "RGB"
    )
    images["blank_black"] = Image.new("RGB", (224, 224), (0, 0, 0))
    images["blank_grey"] = Image.new("RGB", (224, 224), (128, 128, 128))
    images["blank_white"] = Image.new("RGB", (224, 224), (255, 255, 255))
    return images


@pytest.fixture(scope="module")
def shipped() -> Predictor:
    if not IS_SHIPPED:
        pytest.skip(f"the OOD guard is checked on the shipped model; none at {SHIPPED}")
    predictor = Predictor(SHIPPED)
    assert predictor.guard is not None, "the shipped artifacts have no ood.npz"
    return predictor


def test_the_shipped_model_predicts_its_samples(shipped):
    samples = pd.read_csv(SHIPPED / "samples" / "samples.csv").groupby("label").head(2)
    results = shipped.predict_files([SHIPPED / "samples" / f for f in samples.file])
    for result in results:
        _is_prediction(result, shipped)


def test_ood_guard_flags_photos_noise_and_blank_images(shipped):
    images = _unusual_inputs()
    assert len([n for n in images if n.endswith(".jpg")]) >= 2
    results = {name: shipped.predict_one(img, name) for name, img in images.items()}
    missed = {n: r["ood_score"] for n, r in results.items() if not r["out_of_distribution"]}
    limit = float(shipped.guard["threshold"])
    assert not missed, f"not flagged (threshold {limit:.3f}): {missed}"


@pytest.mark.slow
def test_ood_guard_passes_the_test_split_mris(shipped):
    split = pd.read_csv(SHIPPED / "split.csv")
    test = split[split.split == "test"]
    roots = {r: (Path(r) if Path(r).is_absolute() else REPO / r) for r in test.root.unique()}
    if not all(p.is_dir() for p in roots.values()) and not SHARED_DATA.is_dir():
        pytest.skip(f"the dataset is not here ({SHARED_DATA}); cannot check the test split")
    paths = [
        roots[r] / p if roots[r].is_dir() else SHARED_DATA / p
        for r, p in zip(test.root, test.path, strict=True)
    ]
    results = shipped.predict_files(paths, [str(p) for p in paths])
    scored = [r for r in results if "error" not in r]
    assert len(scored) >= 0.99 * len(paths)
    flagged = np.mean([r["out_of_distribution"] for r in scored])
    assert flagged <= 0.05, f"{flagged:.1%} of {len(scored)} test-split MRIs flagged"


def test_blank_array_input_is_safe(predictor):
    blank = Image.fromarray(np.zeros((40, 40, 3), np.uint8))
    result = predictor.predict_one(blank, "blank")
    _is_prediction(result, predictor)
    buf = io.BytesIO()
    blank.save(buf, "PNG")
    assert predictor.predict_files([buf.getvalue()], ["blank.png"])[0]["file"] == "blank.png"


# ----------------------------------------------------------------------------- no verdict


def _chart() -> bytes:
    """A colour chart: not a brain-MRI slice (the image checks fire whatever the model)."""
    img = Image.new("RGB", (120, 80), (250, 250, 250))
    draw = ImageDraw.Draw(img)
    for i, colour in enumerate([(255, 0, 0), (0, 200, 0), (0, 0, 255), (250, 200, 0)]):
        draw.rectangle([i * 30, 0, i * 30 + 29, 79], fill=colour)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_what_is_not_a_brain_mri_gets_no_verdict(predictor, samples):
    """The chart is flagged with the checks named, no label and no band; asked to predict
    anyway, it gets the label and band and keeps the warning. A sample scan is unaffected."""
    chart, scan = _chart(), samples.path.iloc[0].read_bytes()
    withheld, sample = predictor.predict_files([chart, scan], ["chart.png", "scan.png"])
    assert withheld["is_mri"] is False and withheld["out_of_distribution"] is True
    assert withheld["label"] is None and withheld["band"] is None
    assert withheld["verdict"] == NO_VERDICT == "no verdict: does not look like a brain-MRI slice"
    assert "colour" in withheld["ood_checks"] and "colour image" in withheld["ood_reason"]
    anyway = predictor.predict_files([chart], ["chart.png"], predict_anyway=True)[0]
    assert anyway["predicted_anyway"] is True and anyway["is_mri"] is False
    assert anyway["label"] in CLASS_NAMES and anyway["band"]
    assert anyway["ood_reason"] == withheld["ood_reason"]
    assert "predicted anyway" in anyway["verdict"]
    assert predictor.predict_anyway(withheld) == anyway
    _is_prediction(withheld, predictor)
    _is_prediction(anyway, predictor)
    again = predictor.predict_files([scan], ["scan.png"], predict_anyway=True)[0]
    assert again == sample  # predicting anyway changes nothing for a scan that passes


def test_cli_predict_anyway_flag(artifacts, tmp_path, capsys):
    """The JSON line of a flagged file: is_mri false and label null, or with --predict-anyway
    the label and the warning; --explain draws no map for a withheld verdict."""
    path = tmp_path / "chart.png"
    path.write_bytes(_chart())
    assert cli.main(["predict", str(path), "--artifacts", str(artifacts), "--explain",
                     str(tmp_path / "maps")]) == 0  # fmt: skip
    line = json.loads(capsys.readouterr().out)
    assert line["is_mri"] is False and line["label"] is None and "overlay" not in line
    assert cli.main(["predict", str(path), "--artifacts", str(artifacts), "--predict-anyway"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["is_mri"] is False and line["predicted_anyway"] is True
    assert line["label"] in DISPLAY_NAMES.values() and line["ood_reason"].startswith(ood.NOT_MRI)
