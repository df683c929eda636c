"""serving.ood, the out-of-distribution guard: the feature guard on synthetic features (no
model needed), the image checks on generated non-MRI images and on MRI-like fixture slices, and
the whole guard of the shipped model on generated non-MRI images and on its shipped MRI samples
(skipped without artifacts/) and on held-out files of every shared source (skipped without
../shared/data).

The Predictor's result fields (is_mri, verdict, --predict-anyway) are checked in test_predict.py.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tumor_model.serving import ood

from conftest import REPO, fake_scan
from test_predict import IS_SHIPPED, SHIPPED

SHARED = REPO.parent / "shared" / "data"


def _benchmark():
    spec = importlib.util.spec_from_file_location("ood_rates", REPO / "benchmarks" / "ood_rates.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def non_mri() -> list[dict]:
    items = _benchmark().non_mri_images(per_kind=12)
    assert {"blank", "noise", "text", "gradient", "colour chart", "DICOM phantom"} <= {
        i["kind"] for i in items
    }
    return items


# ----------------------------------------------------------------------------- feature guard


@pytest.fixture(scope="module")
def cloud():
    """An anisotropic Gaussian cloud in 24 dims: (train, val, test) features, and 50 test rows
    pushed off the cloud's thin directions."""
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(24, 24)) * np.linspace(3, 0.05, 24)
    train, val, test = (rng.normal(size=(n, 24)) @ mix for n in (600, 300, 2000))
    return train, val, test, test[:50] + 4 * rng.normal(size=(50, 24))


def test_in_distribution_rows_pass_and_far_rows_are_flagged(cloud):
    """~1% of fresh in-distribution rows flagged, the rows off the cloud all."""
    train, val, test, far = cloud
    params = ood.calibrate(ood.fit(train), val)
    assert np.median(ood.score(train, params)) == pytest.approx(1.0)
    assert 0.0 < np.mean(ood.score(test, params) > params["threshold"]) < 0.03
    assert (ood.score(far, params) > params["threshold"]).all()


def test_fewer_components_keep_the_far_rows_apart(cloud):
    """With only the 20 leading directions of 24 modelled one by one (the rest pooled) the guard
    is smaller and still flags the rows pushed off the cloud."""
    train, val, test, far = cloud
    params = ood.calibrate(ood.fit(train, components=20), val)
    assert params["basis"].shape == (20, 24)
    assert np.mean(ood.score(test, params) > params["threshold"]) < 0.03
    assert np.mean(ood.score(far, params) > params["threshold"]) > 0.9


def test_threshold_is_the_largest_source_quantile(cloud):
    """Two sources, one spread wider: the threshold is the wider one's 99% quantile, so both
    sources' fresh rows pass at about 1% or less."""
    train, val, test, _ = cloud
    wide_val, wide_test = val[:150] * 1.5, test[:1000] * 1.5
    params = ood.fit(np.concatenate([train, train[:300] * 1.5]))
    groups = ["a"] * 150 + ["b"] * 150
    cal = ood.calibrate(params, np.concatenate([val[150:], wide_val]), groups)
    per = dict(zip(cal["sources"], cal["source_thresholds"], strict=True))
    assert cal["threshold"] == pytest.approx(max(per.values()))
    assert per["b"] > per["a"]
    for rows in (test[1000:], wide_test):
        assert np.mean(ood.score(rows, cal) > cal["threshold"]) < 0.03


def test_fewer_rows_than_dimensions(cloud):
    """n <= d: the directions beyond the training rank share one variance; still finite."""
    train, _, test, _ = cloud
    params = ood.fit(train[:10])
    assert params["basis"].shape == (10, 24) and params["rest_scale"] > 0
    assert np.isfinite(ood.score(test, params)).all()


def test_parameters_survive_save_and_load(cloud, tmp_path):
    train, val, test, _ = cloud
    params = ood.calibrate(ood.fit(train), val, ["x"] * len(val))
    ood.save(params, tmp_path / "g.npz")
    back = ood.load(tmp_path / "g.npz")
    np.testing.assert_allclose(ood.score(test, back), ood.score(test, params), rtol=1e-5)
    assert back["threshold"] == pytest.approx(params["threshold"])
    assert list(back["sources"]) == ["x"]


def test_broken_or_old_files_are_value_errors_naming_the_refit(tmp_path):
    np.savez(tmp_path / "broken.npz", mean=np.zeros(24), version=ood.VERSION)
    with pytest.raises(ValueError, match="missing"):
        ood.load(tmp_path / "broken.npz")
    old = {"mean": np.zeros(24), "basis": np.eye(24)[:2], "scale": np.ones(2), "threshold": 3.0}
    np.savez(tmp_path / "v2.npz", rest_scale=1.0, ref=1.0, version=2, **old)
    with pytest.raises(ValueError, match="version 2.*refit-guard"):
        ood.load(tmp_path / "v2.npz")
    np.savez(tmp_path / "v1.npz", inside_ref=1.0, outside_ref=1.0, **old)  # no "version"
    with pytest.raises(ValueError, match=f"not a version-{ood.VERSION}"):
        ood.load(tmp_path / "v1.npz")


def test_bad_arguments_are_value_errors(cloud):
    train, val, test, _ = cloud
    with pytest.raises(ValueError, match="training features"):
        ood.fit(train[:2])
    with pytest.raises(ValueError, match="shrinkage"):
        ood.fit(train, shrinkage=1.5)
    with pytest.raises(ValueError, match="components"):
        ood.fit(train, components=0)
    with pytest.raises(ValueError, match="quantile"):
        ood.calibrate(ood.fit(train), val, quantile=0.3)
    with pytest.raises(ValueError, match="groups"):
        ood.calibrate(ood.fit(train), val, ["a"] * 3)
    with pytest.raises(ValueError, match="23 dims"):
        ood.score(test[:, :23], ood.fit(train))


# ----------------------------------------------------------------------------- image checks


def _mri_like() -> list[Image.Image]:
    """The fixture slices the tiny model is trained on (a noisy head on black, conftest), in
    grey and as RGB, and larger."""
    rng = np.random.default_rng(3)
    out = []
    for i in range(12):
        arr = fake_scan(rng, bool(i % 2), size=(64, 64) if i < 6 else (300, 260))
        img = Image.fromarray(arr, "L")
        out.append(img.convert("RGB") if i % 3 else img)
    return out


def test_mri_like_fixture_slices_pass_every_image_check():
    for img in _mri_like():
        assert ood.image_checks(img) == {}


def test_shipped_samples_pass_every_image_check():
    """The real held-out MRI thumbnails shipped in artifacts/samples."""
    if not IS_SHIPPED:
        pytest.skip(f"no shipped artifacts at {SHIPPED}")
    frame = pd.read_csv(SHIPPED / "samples" / "samples.csv")
    for name in frame.file:
        with Image.open(SHIPPED / "samples" / name) as img:
            assert ood.image_checks(img.convert("RGB")) == {}, name


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("blank", "grey levels"),
        ("colour chart", "colour"),
        ("DICOM phantom", "grey levels"),
        ("scene", "colour"),
    ],
)
def test_image_checks_name_what_fired(non_mri, kind, check):
    """Every instance of these kinds fails this named check, with a readable reason."""
    for item in (i for i in non_mri if i["kind"] == kind):
        fired = ood.image_checks(item["image"])
        assert check in fired, (item["name"], fired)
        assert all(isinstance(v, str) and v for v in fired.values())


def test_text_and_blank_pages_fail_the_one_level_check():
    page = Image.new("RGB", (300, 200), (255, 255, 255))
    from PIL import ImageDraw

    ImageDraw.Draw(page).text((10, 10), "NeuroScan report\nslice 12: normal", fill=(0, 0, 0))
    assert "one level" in ood.image_checks(page)
    assert {"grey levels", "one level"} <= set(ood.image_checks(Image.new("L", (50, 50), 7)))


def test_assess_combines_checks_and_feature_score():
    params = {"threshold": 2.0}
    assert ood.assess({}, 1.5, params) == ood.Assessment(True, (), None)
    flagged = ood.assess({"colour": "a colour image (40% ...)"}, 2.5, params)
    assert not flagged.is_mri and flagged.checks == ("colour", "features")
    assert flagged.reason.startswith(ood.NOT_MRI) and "2.50 > 2.00" in flagged.reason
    assert ood.assess({}, 99.0, None).is_mri  # no feature guard: the image checks alone


# ----------------------------------------------------------------------------- shipped guard


@pytest.fixture(scope="module")
def shipped():
    if not IS_SHIPPED:
        pytest.skip(f"the guard's rates are checked on the shipped model; none at {SHIPPED}")
    from tumor_model.serving.predict import Predictor

    predictor = Predictor(SHIPPED)
    assert predictor.guard is not None, "the shipped artifacts have no ood.npz"
    return predictor


def test_shipped_guard_flags_at_least_99_percent_of_non_mri_images(shipped, non_mri):
    results = [shipped.predict_one(i["image"], i["name"]) for i in non_mri]
    passed = [r["file"] for r in results if r["is_mri"]]
    assert len(passed) <= 0.01 * len(results), f"{len(passed)}/{len(results)} passed: {passed}"
    assert all(r["label"] is None and r["ood_reason"] for r in results if not r["is_mri"])


def test_shipped_guard_passes_its_shipped_mri_samples(shipped):
    frame = pd.read_csv(SHIPPED / "samples" / "samples.csv")
    results = shipped.predict_files([SHIPPED / "samples" / f for f in frame.file])
    flagged = {r["file"]: r["ood_reason"] for r in results if not r["is_mri"]}
    assert len(flagged) <= 1, flagged


@pytest.mark.slow
def test_shipped_guard_passes_held_out_files_of_every_shared_source(shipped):
    """At most 5% of 60 held-out files per source flagged (benchmarks/ood_rates.py: the full
    measurement)."""
    if not SHARED.is_dir():
        pytest.skip(f"the shared data is not here ({SHARED})")
    from tumor_model.release.pipeline import guard_table

    roots = _benchmark().ROOTS
    table = guard_table(SHIPPED, [str(REPO / r) for r in roots])
    held = table[table.split == "test"]
    for source, part in held.groupby("source"):
        part = part.sample(min(60, len(part)), random_state=0)
        files = [f"{r}/{p}" for r, p in zip(part.root, part.path, strict=True)]
        results = shipped.predict_files(files)
        rate = np.mean([not r["is_mri"] for r in results if "error" not in r])
        assert rate <= 0.05, f"{source}: {rate:.1%} of {len(part)} held-out files flagged"
