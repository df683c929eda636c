"""The localisation benchmark (evaluation.localise): boxes through the image geometry, the
pointing game, energy ratio and top-10% share on hand-made maps, reading box sources (Figshare's
boxes.csv and tcga-lgg's files.csv layouts), halves by patient, the per-group scores, the
target-layer option on the tiny model, `neuroscan localise` end to end on two generated box
sources, and the shipped file rendered with and without groups. Nothing here needs
../shared/data."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tumor_model import artifacts
from tumor_model.evaluation import lesion_scores, localise, localise_data
from tumor_model.evaluation.localise_data import Slice
from tumor_model.io.geometry import prepare_placed
from tumor_model.serving import maps
from tumor_model.serving.explain import METHOD_NAMES, METHODS

from conftest import fake_scan, in_process, lesion_box


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


def _top_share(heat, box, head):
    """top10_in_box from its definition, written out pixel by pixel."""
    values = sorted(float(heat[r, c]) for r, c in zip(*np.nonzero(head), strict=True))
    q = np.percentile(values, 90)
    top = [(r, c) for r, c in zip(*np.nonzero(head), strict=True) if heat[r, c] >= q]
    return sum(bool(box[r, c]) for r, c in top) / len(top)


def test_top10_in_box_on_hand_made_maps():
    head = np.zeros((20, 20), bool)
    head[0:10, 0:10] = True  # 100 px
    box = np.zeros((20, 20), bool)
    box[0:2, 0:5] = True  # 10 px of the head
    heat = np.zeros((20, 20))
    heat[head] = np.arange(100) / 100  # distinct values: the top 10% is exactly 10 px
    heat[box] = 1.0  # ... the box's: all of them
    heat[15:20, 15:20] = 5.0  # outside the head: not counted however high
    assert lesion_scores.top10_in_box(heat, box, head) == pytest.approx(1.0)
    assert lesion_scores.top10_in_box(heat, box, head) == pytest.approx(_top_share(heat, box, head))
    half = heat.copy()
    half[0:2, 3:5] = 0.0  # 4 box pixels leave the top: the next 4 head pixels join it
    expected = _top_share(half, box, head)
    assert expected == pytest.approx(6 / 10)
    assert lesion_scores.top10_in_box(half, box, head) == pytest.approx(expected)
    flat = head.astype(float)  # every head pixel ties: the top is the whole head, chance level
    assert lesion_scores.top10_in_box(flat, box, head) == pytest.approx(box.sum() / head.sum())
    assert lesion_scores.top10_in_box(np.zeros((20, 20)), box, head) == pytest.approx(0.1)
    rng = np.random.default_rng(3)
    for _ in range(5):
        noisy = np.round(rng.random((20, 20)), 1)  # many ties
        got = lesion_scores.top10_in_box(noisy, box, head)
        assert got == pytest.approx(_top_share(noisy, box, head))
    assert np.isnan(lesion_scores.top10_in_box(heat, box, np.zeros((20, 20), bool)))


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
        localise_data.read_boxes(tmp_path / "nope.csv")
    frame.drop(columns="height").to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(ValueError, match=r"a\.csv.*\['height'\]"):
        localise_data.read_boxes(tmp_path / "a.csv")
    frame.assign(width=[0.2, 1.5]).to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(ValueError, match=r"b\.csv.*row 3.*glioma_1.*width '1\.5'"):
        localise_data.read_boxes(tmp_path / "b.csv")
    frame.assign(x_center=["0.5", "left"]).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(ValueError, match="'left'"):
        localise_data.read_boxes(tmp_path / "c.csv")


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
    rows, note = localise_data.unseen(boxes, folder)
    assert list(rows.file) == ["f1"] and "test split" in note
    split.assign(sha256=["x", "y", "z", "w"]).to_csv(folder / artifacts.SPLIT, index=False)
    rows, note = localise_data.unseen(boxes, folder)
    assert len(rows) == 6 and "none" in note
    first, second = localise_data.halves(boxes, seed=1)
    assert len(first) == 3 and len(second) == 3
    assert set(first.file) | set(second.file) == set(boxes.file)
    assert not set(first.file) & set(second.file)
    again, _ = localise_data.halves(boxes.iloc[::-1], seed=1)  # by file, not by row order
    assert list(again.file) == list(first.file)


def _files_csv(folder, patients=4, slices=2, sequences=("t1", "flair"), seed=1, size=(64, 64)):
    """tcga-lgg's layout: files.csv with label, sequence, patient_id and boxes only on tumours;
    each patient has `slices` tumour slices per sequence and one healthy slice."""
    rng = np.random.default_rng(seed)
    for sub in ("tumor", "healthy"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rows = []
    for p in range(patients):
        for k in range(slices + 1):
            tumour = k < slices
            for seq in sequences:
                arr = fake_scan(rng, tumour, size)
                name = f"{'tumor' if tumour else 'healthy'}/P{p}_s{k}_{seq}.jpg"
                Image.fromarray(arr).save(folder / name, quality=95)
                box = {c: None for c in ("x_center", "y_center", "width", "height")}
                if tumour:
                    ys, xs = np.nonzero(lesion_box(arr))
                    box = _row((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), *size[::-1])
                label = "tumor" if tumour else "healthy"
                rows.append(
                    {"file": name, "label": label, "sequence": seq, "patient_id": f"P{p}", **box}
                )
    path = folder / "files.csv"
    pd.DataFrame(rows).round(4).to_csv(path, index=False)
    return path


def test_a_labelled_csv_gives_its_tumour_rows_with_a_box(tmp_path):
    path = _files_csv(tmp_path / "tcga-like", patients=3, slices=2)
    raw = pd.read_csv(path)
    rows = localise_data.read_boxes(path)
    want = raw[(raw.label == "tumor") & raw.x_center.notna()]
    assert sorted(rows.file) == sorted(want.file) and len(rows) < len(raw)
    assert set(rows.source) == {"tcga-like"} and set(rows.sequence) == {"t1", "flair"}
    assert set(rows.patient_id) == {"P0", "P1", "P2"}
    assert (rows.folder == str(path.parent)).all()
    figshare = localise_data.read_boxes(_boxes_csv(tmp_path / "fig", n=2))
    assert set(figshare.sequence) == {""} and set(figshare.source) == {"fig"}
    assert "patient_id" not in figshare.columns
    # a tumour row without a box is left out; a bad box names the CSV's own row number
    raw.loc[0, "label"] = "tumor"  # a healthy slice called tumour, no box: skipped
    raw.loc[raw.index[raw.label == "tumor"][3], "width"] = 1.7
    bad = raw.index[raw.label == "tumor"][3]
    raw.to_csv(tmp_path / "tcga-like" / "bad.csv", index=False)
    with pytest.raises(ValueError, match=rf"bad\.csv.*row {bad + 2} .*width '1\.7'"):
        localise_data.read_boxes(tmp_path / "tcga-like" / "bad.csv")
    raw.assign(label="healthy").to_csv(tmp_path / "tcga-like" / "none.csv", index=False)
    with pytest.raises(ValueError, match="no tumour row with a box"):
        localise_data.read_boxes(tmp_path / "tcga-like" / "none.csv")
    shutil.copy(path, tmp_path / "tcga-like" / "again.csv")
    with pytest.raises(ValueError, match="both source 'tcga-like'"):
        localise_data.read_sources([path, tmp_path / "tcga-like" / "again.csv"])


def test_halves_keep_each_patient_whole_and_every_source_in_both(tmp_path):
    tcga = localise_data.read_boxes(_files_csv(tmp_path / "tcga-like", patients=7, slices=3))
    fig = localise_data.read_boxes(_boxes_csv(tmp_path / "fig", n=9))
    rows = pd.concat([fig, tcga], ignore_index=True)
    first, second = localise_data.halves(rows, seed=4)
    assert len(first) + len(second) == len(rows)
    keys = [set(part.source + "/" + part.file) for part in (first, second)]
    assert not keys[0] & keys[1]
    for part in (first, second):
        assert set(part.source) == {"fig", "tcga-like"}
    assert not set(first.patient_id.dropna()) & set(second.patient_id.dropna())
    by_file, _ = localise_data.halves(fig, seed=4)  # no patients: by file, as before
    before = np.random.default_rng(4).permutation(np.sort(fig.file.to_numpy()))[:5]
    assert list(by_file.file) == list(before) == list(first.file[first.source == "fig"])
    again, _ = localise_data.halves(rows.iloc[::-1], seed=4)
    assert list(again.file) == list(first.file)  # by the files and patients, not row order
    other, _ = localise_data.halves(rows, seed=5)
    assert list(other.file) != list(first.file)
    # N per source per half, interleaved so that any first rows hold both sources
    taken = localise_data.sample(first, 2)
    assert taken.source.value_counts().to_dict() == {"fig": 2, "tcga-like": 2}
    assert set(taken.source[:2]) == {"fig", "tcga-like"}
    # the first rows of a half come from several patients, not one patient's slices
    tcga_first = first[first.source == "tcga-like"]
    assert tcga_first.patient_id.head(4).nunique() > 1


def test_scores_per_group_from_per_slice_values():
    def one(source, sequence):
        return Slice("f", None, None, None, source, sequence)

    slices = [one("fig", ""), one("tcga", "t1"), one("tcga", "flair"), one("tcga", "t1")]
    values = [(1, 1, 4.0, 0.5), (0, 1, 2.0, 0.25), (0, 0, 1.0, 0.0), (1, 1, np.nan, 1.0)]
    groups = lesion_scores.group_scores(([0, 1, 2, 3], values), slices)
    assert list(groups) == ["fig", "tcga", "tcga/flair", "tcga/t1"]
    t1 = groups["tcga/t1"]
    assert t1["n"] == 2 and t1["pointing_0px"] == pytest.approx(np.mean([0, 1]))
    assert t1["energy_ratio"] == pytest.approx(2.0)  # NaN left out
    assert t1["top10_in_box"] == pytest.approx(np.mean([0.25, 1.0]))
    assert groups["tcga"]["n"] == 3 and groups["fig"]["meets"]["energy_ratio"]
    assert groups["fig"]["meets"]["pointing"] == (1 >= maps.TARGETS["pointing"])
    assert not groups["tcga/flair"]["meets"]["top10_in_box"]
    pooled = lesion_scores.summarise(values)
    assert pooled["n"] == 4 and pooled["pointing_8px"] == pytest.approx(0.75)


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


def _shipped_entry(groups: bool) -> dict:
    """A shipped localisation.json: as written before groups (no top-10% share), or now."""
    report = {"n": 40, "pointing_0px": 0.2, "pointing_8px": 0.35, "energy_ratio": 1.6}
    entry = {
        "method": "layercam",
        "layers": ["block_6_expand_relu"],
        "name": "layercam:block_6_expand_relu",
        "report": {**report, "energy_ratio_median": 1.5, "latency_ms": 29.4},
        "meets": {"pointing": False, "energy_ratio": False, "latency_ms": True},
        "model_sha256": "a" * 64,
        "measured_on": "../shared/data/fig/boxes.csv (every row)",
        "targets": {k: v for k, v in maps.TARGETS.items() if k != "top10_in_box"},
        "ran": {"cpu": "CPU", "cores": 2, "date": "2026-12-01"},
        "benchmark": "docs/localisation.json",
    }
    if not groups:
        return entry
    group = {"fig": 0.5, "tcga": 0.2, "tcga/flair": 0.25, "tcga/t1": 0.15}
    entry["groups"] = {
        g: {**report, "pointing_8px": v, "top10_in_box": v / 2, "meets": {"pointing": False}}
        for g, v in group.items()
    }
    entry["report"]["top10_in_box"] = 0.3
    entry["meets"]["top10_in_box"] = False
    entry["targets"] = maps.TARGETS
    entry["sources"] = ["fig", "tcga"]
    return entry


@pytest.mark.parametrize("groups", [False, True])
def test_the_shipped_file_renders_with_and_without_groups(tmp_path, groups):
    from tumor_model.release.report_checks import localisation
    from tumor_model.release.report_format import Facts

    entry = _shipped_entry(groups)
    facts = Facts("artifacts", {"model_sha256": "a" * 64}, {}, localisation=entry)
    text = localisation(facts)
    assert text.startswith("## Explanation maps") and "earlier model" not in text
    assert f"| {100 * entry['report']['pointing_8px']:.1f}% |" in text
    assert ("top-10% share" in text) == groups and ("| source / sequence |" in text) == groups
    for name, g in entry.get("groups", {}).items():
        assert f"| {name} | {g['n']} | {100 * g['pointing_8px']:.1f}% |" in text
    (tmp_path / artifacts.LOCALISATION).write_text(json.dumps(entry))
    line = maps.benchmark_line(tmp_path, "a" * 64)
    pooled = f"on {entry['report']['pointing_8px']:.0%} of {entry['report']['n']} unseen slices"
    assert line.startswith("Default map: Layer-CAM") and pooled in line
    if groups:
        assert "the tumour boxes of fig and tcga, pooled" in line and "tcga/t1" not in line
        assert f"fig {entry['groups']['fig']['pointing_8px']:.0%}" in line
        assert "top-10% share in the box" in line  # a target not met
    else:
        assert entry["measured_on"] in line and "top-10%" not in line


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
def test_localise_command_end_to_end(tiny_artifacts, tmp_path, capsys):
    folder = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts, folder)
    boxes = _boxes_csv(tmp_path / "figshare", n=6)
    files = _files_csv(tmp_path / "tcga", patients=4, slices=2)
    out = tmp_path / "docs" / "localisation.json"
    args = ["--artifacts", str(folder), "--boxes", str(boxes), "--boxes", str(files)]
    args += ["--per-half", "3", "--scorecam-per-half", "1", "--smoothgrad-per-half", "1"]
    done = in_process(capsys, "localise", *args, "--latency-n", "2", "--out", str(out), "--save")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    result = json.loads(out.read_text())
    tumours = len(localise_data.read_boxes(files))
    assert result["boxes"] == [str(boxes), str(files)] and result["rows"] == 6 + tumours
    assert list(result["sources"]) == ["figshare", "tcga"]
    assert "none of these images" in result["sources"]["figshare"]["unseen"]
    assert result["sources"]["tcga"]["patients"] == 4 and "per box source" in result["samples_are"]
    sel, rep = result["halves"]["selection"], result["halves"]["report"]
    assert sel["measured"] == rep["measured"] == 6  # 3 per source and half
    for half in (sel, rep):
        assert {s: v["measured"] for s, v in half["by_source"].items()} == {
            "figshare": 3,
            "tcga": 3,
        }
    names = [*result["layers"], "smoothgrad"]  # every configuration: its layers' map sizes
    assert set(sel["scores"]) == set(names)
    assert sel["scores"]["scorecam:out_relu"]["n"] == 2  # 1 per source
    for scores in sel["scores"].values():
        assert 0.0 <= scores["pointing_0px"] <= scores["pointing_8px"] <= 1.0
        assert 0.0 <= scores["top10_in_box"] <= 1.0
        assert scores["latency_ms"] > 0
    default = result["default"]
    assert printed["default"]["name"] == default["name"] == localise.choose(sel["scores"])
    assert default["report"]["n"] == 6 and set(default["meets"]) == set(maps.TARGETS)
    groups = default["report_groups"]
    assert {"figshare", "tcga", "tcga/flair", "tcga/t1"} == set(groups)
    assert groups["figshare"]["n"] == groups["tcga"]["n"] == 3
    assert groups["tcga/flair"]["n"] + groups["tcga/t1"]["n"] == 3
    table = out.with_suffix(".md").read_text()
    assert table.count("\n| ") == len(names) + 1 + len(groups) + 1
    assert f"**{default['name']}**" in table and "| tcga/t1 |" in table
    shipped = json.loads((folder / artifacts.LOCALISATION).read_text())
    assert shipped["method"] == default["method"] and shipped["layers"] == default["layers"]
    assert shipped["groups"] == groups and shipped["sources"] == ["figshare", "tcga"]
    assert maps.summary_line(shipped).startswith(METHOD_NAMES[default["method"]])
    assert "figshare and tcga" in maps.benchmark_line(folder, shipped["model_sha256"])

    # predict --explain now explains with the shipped choice by default
    scan = boxes.parent / "tumor" / "glioma_0.jpg"
    explain = ("--artifacts", str(folder), "--explain", str(tmp_path / "o"))
    done = in_process(capsys, "predict", str(scan), *explain)
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout.splitlines()[0])
    assert line["method"] == default["method"] and line["method"] in METHODS
    assert line["layers"] == default["layers"]


def test_localise_refuses_a_bad_boxes_file_and_writes_nothing(tiny_artifacts, tmp_path, capsys):
    bad = tmp_path / "boxes.csv"
    bad.write_text("file,x_center\ntumor/a.jpg,0.5\n")
    out = tmp_path / "loc.json"
    where = ("--artifacts", str(tiny_artifacts), "--boxes", str(bad), "--out", str(out))
    done = in_process(capsys, "localise", *where)
    assert done.returncode == 2
    assert str(bad) in done.stderr and "lacks the columns" in done.stderr
    assert not out.exists() and not out.with_suffix(".md").exists()
