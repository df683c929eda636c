"""serving.overlay: colormaps, the heatmap overlay and PNG encoding (no model needed)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tumor_model.serving.overlay import COLORMAPS, colorize, overlay, to_png


def test_overlay_blends_and_validates():
    pixels = np.full((32, 48, 3), 100, np.uint8)
    heat = np.linspace(0, 1, 32 * 48, dtype=np.float32).reshape(32, 48)
    assert np.array_equal(overlay(pixels, heat, alpha=0.0), pixels)
    full = overlay(pixels, heat, alpha=1.0, colormap="viridis")
    assert np.array_equal(full, colorize(heat, "viridis"))
    half = overlay(pixels, heat, alpha=0.5, colormap="jet")
    assert half.shape == (32, 48, 3) and half.dtype == np.uint8
    assert not np.array_equal(half, pixels)
    # jet: low values blue, high values red
    assert colorize(np.array([[0.0, 1.0]]), "jet")[0, 0, 2] > 100
    assert colorize(np.array([[0.0, 1.0]]), "jet")[0, 1, 0] > 100
    small = overlay(pixels, heat[::4, ::4], alpha=0.4)  # a smaller map is resized
    assert small.shape == (32, 48, 3)
    for cmap in COLORMAPS:
        assert colorize(heat, cmap).shape == (32, 48, 3)
    with pytest.raises(ValueError, match=r"1\.5"):
        overlay(pixels, heat, alpha=1.5)
    with pytest.raises(ValueError, match="'rainbow'"):
        overlay(pixels, heat, colormap="rainbow")


def test_to_png_round_trips():
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    back = np.asarray(Image.open(io.BytesIO(to_png(rgb))))
    assert np.array_equal(back, rgb)
    heat = np.linspace(0, 1, 600, dtype=np.float32).reshape(20, 30)
    grey = np.asarray(Image.open(io.BytesIO(to_png(heat))))
    assert grey.shape == (20, 30) and grey.min() == 0 and grey.max() == 255
