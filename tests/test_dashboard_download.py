"""Unit tests of tumor_model.dashboard.download: the heat map laid back onto the scan at the
scan's own resolution, with the caption and the colour bar below it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tumor_model.dashboard import download
from tumor_model.io.geometry import prepare
from tumor_model.serving import overlay


def _scan(width=300, height=200) -> tuple[Image.Image, tuple[int, int]]:
    """A grey head off-centre on a black canvas with a bright blob; returns the blob centre."""
    arr = np.zeros((height, width), np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    arr[((yy - 110) / 70) ** 2 + ((xx - 180) / 90) ** 2 <= 1] = 90
    arr[(yy - 90) ** 2 + (xx - 210) ** 2 <= 15**2] = 250
    return Image.fromarray(arr).convert("RGB"), (90, 210)


@pytest.mark.parametrize("geometry", ["crop-pad", "pad", "squash"])
def test_heat_at_scan_lands_on_the_pixels_it_was_computed_from(geometry):
    scan, (cy, cx) = _scan()
    seen = prepare(scan, 64, geometry)
    heat = (seen[:, :, 0] >= 200).astype("float32")  # a "map" of the blob as the model saw it
    back = download.heat_at_scan(scan, heat, geometry)
    assert back.shape == (scan.size[1], scan.size[0])
    ys, xs = np.nonzero(back > 0.5)
    assert abs(ys.mean() - cy) < 4 and abs(xs.mean() - cx) < 4
    if geometry == "crop-pad":  # outside the head box the model saw nothing
        assert back[:, :20].max() == 0


def test_annotated_overlay_keeps_the_scan_resolution_and_draws_the_bar():
    scan, _ = _scan(412, 300)
    heat = np.zeros((64, 64), "float32")
    heat[20:40, 30:50] = 1.0
    out = download.annotated_overlay(scan, heat, "crop-pad", "P(tumour) 0.912 · tumour · Grad-CAM")
    assert out.dtype == np.uint8 and out.shape[1] == 412 and out.shape[0] > 300
    expected = overlay.overlay(
        np.asarray(scan), download.heat_at_scan(scan, heat, "crop-pad"), 0.4, "jet"
    )
    np.testing.assert_array_equal(out[:300], expected)  # the scan itself, at its own size
    band = out[300:]
    ramp = overlay.colorize(np.linspace(0, 1, 5, dtype="float32")[None, :], "jet")[0]
    for colour in (ramp[0], ramp[-1]):  # the colour bar's two ends are in the band
        assert (np.abs(band.astype(int) - colour).sum(axis=2) < 30).any()
    assert (band.sum(axis=2) < 100).sum() > 50  # black caption text


def test_annotated_overlay_fits_the_caption_on_a_small_scan():
    scan = Image.new("RGB", (64, 64), (60, 60, 60))
    out = download.annotated_overlay(scan, np.ones((32, 32), "float32"), "pad", "x" * 80)
    assert out.shape[1] == 64 and out.shape[0] > 64
