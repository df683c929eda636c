"""The localisation benchmark (evaluation.localise): boxes through the image geometry, the
pointing game and energy ratio on hand-made maps, the target-layer option on the tiny model, and
`neuroscan localise` end to end on a generated boxes.csv. Nothing here needs ../shared/data."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tumor_model import artifacts
from tumor_model.evaluation import lesion_scores, localise
from tumor_model.io.geometry import prepare_placed
from tumor_model.serving import maps
from tumor_model.serving.explain import METHOD_NAMES, METHODS

from conftest import cli, fake_scan, lesion_box


def _scan_with_lesion(width=300, height=200, lesion=(200, 60, 230, 90), head=(120, 20, 290, 190)):
    """A grey ellipse head (off centre, black margins) with a bright square lesion, as RGB."""
    yy, xx = np.mgrid[0:height, 0:width]
    (hl, ht, hr, hb), (ll, lt, lr, lb) = head, lesion
    cy, cx, ay, ax = (ht + hb) / 2, (hl + hr) / 2, (hb - ht) / 2, (hr - hl) / 2
    arr = np.zeros((height, width), np.uint8)
    arr[((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2 <= 1] = 90
    arr[lt:lb, ll:lr] = 250
    return np.repeat(arr[..., None], 3, axis=-1)


def _row(box, width, height) -> dict:
    left, top, right, bottom = box
    return {
        "x_center": (left + right) / 2 / width,
        "y_center": (top + bottom) / 2 / height,
        "width": (right - left) / width,
        "height": (bottom - top) / height,
    }


@pytest.mark.parametrize("geometry", ["crop-pad", "pad", "squash"])
@pytest.mark.parametrize("size", [224, 64])
def test_the_box_follows_the_lesion_through_the_geometry(geometry, size):
    lesion = (200, 60, 230, 90)
    img = _scan_with_lesion(lesion=lesion)
    pixels, placement = prepare_placed(img, size, geometry)
    box = lesion_scores.box_mask(placement, 300, 200, _row(lesion, 300, 200))
    bright = pixels[..., 0] >= 200
    assert bright.sum() > 0
    assert box[bright].all(), "a lesion pixel fell outside its mapped box"
    assert bright[box].mean() >= 0.5, "the mapped box is much larger than the lesion"


def test_placement_maps_the_crop_onto_the_pasted_image():
    img = _scan_with_lesion(head=(60, 40, 290, 160))  # wider than tall
    pixels, placement = prepare_placed(img, 100, "crop-pad")
    left, top, right, bottom = placement.crop
    x0, y0 = placement.point(left, top)
    x1, y1 = placement.point(right, bottom)
    # the crop fills the square's width (it is wider than tall) and is centred vertically
    assert (x0, x1) == pytest.approx((0, 100))
    assert y0 == pytest.approx(100 - y1, abs=1) and y0 > 0
    rows = np.flatnonzero(pixels.max(axis=(1, 2)) > 0)
    assert rows[0] >= int(y0) and rows[-1] < int(np.ceil(y1)) + 1
    # a box outside the kept crop is clipped to nothing
    assert placement.box(0, 0, 5, 5)[0] == placement.box(0, 0, 5, 5)[2]


def test_pointing_game_with_a_tolerance():
    box = np.zeros((64, 64), bool)
    box[20:31, 20:31] = True
    heat = np.zeros((64, 64))
    heat[25, 25] = 1.0
    assert lesion_scores.pointing(heat, box, 0)
    heat[:] = 0
    heat[10, 10] = 1.0  # 10 px up and left of the corner (20, 20): 14.1 px away
    assert not lesion_scores.pointing(heat, box, 8) and lesion_scores.pointing(heat, box, 15)
    heat[:] = 0
    heat[25, 36] = 1.0  # 6 px right of the last column
    assert not lesion_scores.pointing(heat, box, 0) and lesion_scores.pointing(heat, box, 8)
    assert not lesion_scores.pointing(np.zeros((64, 64)), box, 64)  # an empty map points nowhere


def test_energy_ratio_against_an_even_spread():
    head = np.zeros((20, 20), bool)
    head[5:15, 5:15] = True  # 100 px
    box = np.zeros((20, 20), bool)
    box[5:7, 5:10] = True  # 10 px: 10% of the head
    inside = box.astype(float)
    assert lesion_scores.energy_ratio(inside, box, head) == pytest.approx(10.0)
    assert lesion_scores.energy_ratio(head.astype(float), box, head) == pytest.approx(1.0)
    half = inside + (head & ~box) * (10 / 90)  # half the energy in the box
    assert lesion_scores.energy_ratio(half, box, head) == pytest.approx(5.0)
    assert lesion_scores.energy_ratio(np.zeros((20, 20)), box, head) == 0.0
    outside = np.zeros((20, 20), bool)
    outside[0:2, 0:2] = True
    assert np.isnan(lesion_scores.energy_ratio(inside, outside, head))


def test_head_mask_is_the_foreground_with_holes_filled():
    arr = np.zeros((40, 40, 3), np.uint8)
    arr[5:35, 5:35] = 120
    arr[15:25, 15:25] = 0  # a dark hole (a ventricle) inside the head
    mask = lesion_scores.head_mask(arr)
    assert mask[15:25, 15:25].all() and mask.sum() == 30 * 30 and not mask[:5].any()


def _boxes_csv(folder, n=8, seed=0, size=(64, 64)):
    """Tumour scans (bright blob) and their boxes, Figshare's layout: tumor/<name>.jpg."""
    rng = np.random.default_rng(seed)
    (folder / "tumor").mkdir(parents=True)
    rows = []
    for i in range(n):
        arr = fake_scan(rng, True, size)
        path = folder / "tumor" / f"glioma_{i}.jpg"
        Image.fromarray(arr).save(path, quality=95)
        ys, xs = np.nonzero(lesion_box(arr))
        box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        rows.append({"file": f"tumor/glioma_{i}.jpg", **_row(box, size[1], size[0]), "sha256": sha})
    path = folder / "boxes.csv"
    pd.DataFrame(rows).round(4).to_csv(path, index=False)
    return path


def test_bad_boxes_files_are_named(tmp_path):
    path = _boxes_csv(tmp_path / "set", n=2)
    frame = pd.read_csv(path)
    with pytest.raises(ValueError, match="not found"):
        localise.read_boxes(tmp_path / "nope.csv")
    frame.drop(columns="height").to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(ValueError, match=r"a\.csv.*\['height'\]"):
        localise.read_boxes(tmp_path / "a.csv")
    frame.assign(width=[0.2, 1.5]).to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(ValueError, match=r"b\.csv.*row 3.*glioma_1.*width '1\.5'"):
        localise.read_boxes(tmp_path / "b.csv")
    frame.assign(x_center=["0.5", "left"]).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(ValueError, match="'left'"):
        localise.read_boxes(tmp_path / "c.csv")


def test_unseen_rows_and_halves(tmp_path):
    boxes = pd.DataFrame(
        {"file": [f"f{i}" for i in range(6)], "sha256": [f"s{i}" for i in range(6)]}
    )
    folder = tmp_path / "art"
    folder.mkdir()
    split = pd.DataFrame(
        {
            "path": ["a", "b", "c", "d"],
            "root": "r",
            "source": "r",
            "sha256": ["s0", "s1", "s2", "zz"],
            "group": 0,
            "label": 1,
            "split": ["train", "test", "val", "test"],
        }
    )
    split.to_csv(folder / artifacts.SPLIT, index=False)
    rows, note = localise.unseen(boxes, folder)
    assert list(rows.file) == ["f1"] and "test split" in note
    split.assign(sha256=["x", "y", "z", "w"]).to_csv(folder / artifacts.SPLIT, index=False)
    rows, note = localise.unseen(boxes, folder)
    assert len(rows) == 6 and "none" in note
    first, second = localise.halves(boxes, seed=1)
    assert len(first) == 3 and len(second) == 3
    assert set(first.file) | set(second.file) == set(boxes.file)
    assert not set(first.file) & set(second.file)
    again, _ = localise.halves(boxes.iloc[::-1], seed=1)  # by file, not by row order
    assert list(again.file) == list(first.file)


def test_the_rule_prefers_pointing_within_the_latency_budget():
    def s(point, energy, ms):
        return {"pointing_8px": point, "energy_ratio": energy, "latency_ms": ms}

    scores = {"slow": s(0.9, 5, 2000), "a": s(0.7, 2, 50), "b": s(0.7, 3, 90), "c": s(0.6, 9, 10)}
    assert localise.choose(scores) == "b"  # best pointing in budget, tie broken by energy
    scores["d"] = s(0.7, 3, 40)
    assert localise.choose(scores) == "d"  # same again: the faster
    assert localise.choose({"x": s(0.2, 1, 900), "y": s(0.3, 1, 5000)}) == "y"  # none in budget


def test_the_shipped_default_and_its_fallbacks(tmp_path):
    assert maps.default_explanation(tmp_path) == ("gradcam", None)
    path = tmp_path / artifacts.LOCALISATION
    path.write_text(json.dumps({"method": "layercam", "layers": ["a", "b"]}))
    assert maps.default_explanation(tmp_path) == ("layercam", ("a", "b"))
    path.write_text(json.dumps({"method": "smoothgrad", "layers": []}))
    assert maps.default_explanation(tmp_path) == ("smoothgrad", None)
    path.write_text("{not json")
    assert maps.default_explanation(tmp_path) == ("gradcam", None)


def test_the_methods_take_target_layers_on_the_tiny_model(tiny_artifacts):
    from tumor_model.serving.predict import Predictor

    predictor = Predictor(tiny_artifacts)
    explainer = predictor.explainer()
    pixels = np.asarray(_scan_with_lesion(64, 64, (30, 20, 40, 30), (5, 5, 60, 60)))
    pixels = predictor.pixels(Image.fromarray(pixels))
    fine = explainer.explain(pixels, "layercam", 1, "block_6_expand_relu")
    fused = explainer.explain(pixels, "gradcam", 1, ["block_13_expand_relu", "block_6_expand_relu"])
    assert fine.layers == ("block_6_expand_relu",)
    assert fused.layers == ("block_13_expand_relu", "block_6_expand_relu")
    for expl in (fine, fused):
        assert expl.heatmap.shape == (32, 32) and np.isfinite(expl.heatmap).all()
        assert 0.0 <= expl.heatmap.min() and expl.heatmap.max() <= 1.0
    assert explainer.explain(pixels, "gradcam", 1).layers == (predictor.card["last_conv"],)
    with pytest.raises(ValueError, match="'block_99_add'"):
        explainer.explain(pixels, "gradcam++", 1, "block_99_add")
    configs = localise.configs_for(explainer.model)
    assert ("scorecam", ("out_relu",)) in configs and configs[-1] == ("smoothgrad", ())


@pytest.mark.slow
def test_localise_command_end_to_end(tiny_artifacts, tmp_path):
    folder = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts, folder)
    boxes = _boxes_csv(tmp_path / "figshare", n=6)
    out = tmp_path / "docs" / "localisation.json"
    args = ["--artifacts", str(folder), "--boxes", str(boxes), "--per-half", "3"]
    args += ["--scorecam-per-half", "1", "--smoothgrad-per-half", "1", "--latency-n", "2"]
    done = cli("localise", *args, "--out", str(out), "--save")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    result = json.loads(out.read_text())
    assert result["rows"] == 6 and "none of these images" in result["unseen"]
    sel, rep = result["halves"]["selection"], result["halves"]["report"]
    assert sel["measured"] == rep["measured"] == 3
    names = [*result["layers"], "smoothgrad"]  # every configuration: its layers' map sizes
    assert set(sel["scores"]) == set(names)
    assert sel["scores"]["scorecam:out_relu"]["n"] == 1 and sel["scores"]["gradcam:out_relu"]["n"]
    for scores in sel["scores"].values():
        assert 0.0 <= scores["pointing_0px"] <= scores["pointing_8px"] <= 1.0
        assert scores["latency_ms"] > 0
    default = result["default"]
    assert printed["default"]["name"] == default["name"] == localise.choose(sel["scores"])
    assert default["report"]["n"] == 3
    table = out.with_suffix(".md").read_text()
    assert table.count("\n| ") == len(names) + 1 and f"**{default['name']}**" in table
    shipped = json.loads((folder / artifacts.LOCALISATION).read_text())
    assert shipped["method"] == default["method"] and shipped["layers"] == default["layers"]
    assert maps.summary_line(shipped).startswith(METHOD_NAMES[default["method"]])

    # predict --explain now explains with the shipped choice by default
    scan = boxes.parent / "tumor" / "glioma_0.jpg"
    done = cli("predict", str(scan), "--artifacts", str(folder), "--explain", str(tmp_path / "o"))
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout.splitlines()[0])
    assert line["method"] == default["method"] and line["method"] in METHODS
    assert line["layers"] == default["layers"]


def test_localise_refuses_a_bad_boxes_file_and_writes_nothing(tiny_artifacts, tmp_path):
    bad = tmp_path / "boxes.csv"
    bad.write_text("file,x_center\ntumor/a.jpg,0.5\n")
    out = tmp_path / "loc.json"
    done = cli(
        "localise", "--artifacts", str(tiny_artifacts), "--boxes", str(bad), "--out", str(out)
    )
    assert done.returncode == 2
    assert str(bad) in done.stderr and "lacks the columns" in done.stderr
    assert not out.exists() and not out.with_suffix(".md").exists()
