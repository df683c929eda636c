"""The Predict page's overlay download: the heat map laid back onto the scan at the scan's own
resolution, with the probability, the decision, the method and a colour bar drawn on it.

The model sees `geometry.prepare(img, size, geometry)`; `heat_at_scan` undoes that geometry (crop
to the head, pad to a square, resize) so the map lands on the pixels it was computed from.
No Streamlit here.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tumor_model.io.geometry import prepare_placed
from tumor_model.serving import overlay


def heat_at_scan(image: Image.Image, heatmap: np.ndarray, geometry: str) -> np.ndarray:
    """The model-input heat map (S, S) as a float map of the scan's size (H, W); 0 outside the
    part of the scan the model saw (the area cropped away by "crop-pad")."""
    width, height = image.size
    heat = np.asarray(heatmap, dtype="float32")
    place = prepare_placed(image, heat.shape[0], geometry)[1]  # where the scan went
    left, top, right, bottom = place.crop
    x0, y0, x1, y1 = (int(round(v)) for v in place.box(left, top, right, bottom))
    inside = _resized(heat[y0:y1, x0:x1], right - left, bottom - top)
    out = np.zeros((height, width), dtype="float32")
    out[top:bottom, left:right] = inside
    return out


def _resized(heat: np.ndarray, width: int, height: int) -> np.ndarray:
    picture = Image.fromarray(np.ascontiguousarray(heat, dtype="float32"), "F")
    return np.clip(np.asarray(picture.resize((width, height), Image.Resampling.BILINEAR)), 0, 1)


def annotated_overlay(
    image: Image.Image,
    heatmap: np.ndarray,
    geometry: str,
    caption: str,
    alpha: float = 0.4,
    colormap: str = "jet",
) -> np.ndarray:
    """uint8 RGB (H + band, W, 3): the scan with its heat map blended at its own resolution and
    a band below with `caption` (probability, decision, method) and a low-high colour bar."""
    rgb = np.asarray(image.convert("RGB"))
    blended = overlay.overlay(rgb, heat_at_scan(image, heatmap, geometry), alpha, colormap)
    height, width = blended.shape[:2]
    pad = max(3, width // 100)
    font = _fitting_font(caption, width - 2 * pad, max(10, min(28, width // 24)))
    line = int(font.size * 1.4)
    bar_h = max(6, line // 2)
    band = pad + line + bar_h + line + pad
    canvas = Image.new("RGB", (width, height + band), (255, 255, 255))
    canvas.paste(Image.fromarray(blended), (0, 0))
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, height + pad), caption, fill=(0, 0, 0), font=font)
    bar_w, bar_y = width - 2 * pad, height + pad + line
    ramp = np.tile(np.linspace(0, 1, bar_w, dtype="float32"), (bar_h, 1))
    canvas.paste(Image.fromarray(overlay.colorize(ramp, colormap)), (pad, bar_y))
    below = bar_y + bar_h + 2
    draw.text((pad, below), "low", fill=(0, 0, 0), font=font)
    draw.text((width - pad, below), "high", fill=(0, 0, 0), font=font, anchor="ra")
    draw.text((width // 2, below), "evidence", fill=(0, 0, 0), font=font, anchor="ma")
    return np.asarray(canvas)


def _fitting_font(text: str, width: int, size: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled font at the largest size <= `size` (at least 6) at which `text` fits."""
    while True:
        font = ImageFont.load_default(size=size)
        if size <= 6 or font.getlength(text) <= width:
            return font
        size -= 1
