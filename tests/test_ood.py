"""tumor_model.ood, the out-of-distribution guard, on synthetic features (no model needed).

The guard on the shipped model (photos, noise and blank images flagged, test-split MRIs passed)
is checked in test_predict.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from tumor_model import ood


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


def test_fewer_rows_than_dimensions(cloud):
    """n <= d: the directions beyond the training rank share one variance; still finite."""
    train, _, test, _ = cloud
    params = ood.fit(train[:10])
    assert params["basis"].shape == (10, 24) and params["rest_scale"] > 0
    assert np.isfinite(ood.score(test, params)).all()


def test_parameters_survive_save_and_load(cloud, tmp_path):
    train, val, test, _ = cloud
    params = ood.calibrate(ood.fit(train), val)
    ood.save(params, tmp_path / "g.npz")
    back = ood.load(tmp_path / "g.npz")
    np.testing.assert_allclose(ood.score(test, back), ood.score(test, params), rtol=1e-5)
    assert back["threshold"] == pytest.approx(params["threshold"])


def test_broken_or_old_files_are_value_errors(tmp_path):
    np.savez(tmp_path / "broken.npz", mean=np.zeros(24), version=2)
    with pytest.raises(ValueError, match="missing"):
        ood.load(tmp_path / "broken.npz")
    old = {"mean": np.zeros(24), "basis": np.eye(24)[:2], "scale": np.ones(2), "threshold": 3.0}
    np.savez(tmp_path / "v1.npz", inside_ref=1.0, outside_ref=1.0, **old)  # no "version"
    with pytest.raises(ValueError, match="version-2"):
        ood.load(tmp_path / "v1.npz")


def test_bad_arguments_are_value_errors(cloud):
    train, val, test, _ = cloud
    with pytest.raises(ValueError, match="training features"):
        ood.fit(train[:2])
    with pytest.raises(ValueError, match="shrinkage"):
        ood.fit(train, shrinkage=1.5)
    with pytest.raises(ValueError, match="quantile"):
        ood.calibrate(ood.fit(train), val, quantile=0.3)
    with pytest.raises(ValueError, match="23 dims"):
        ood.score(test[:, :23], ood.fit(train))
