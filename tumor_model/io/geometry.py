"""Image geometry: the only place it happens (training, CLI and app all call `prepare`): crop to
the head, pad to a square with black, resize; `prepare_placed` also returns the `Placement` that
maps original-image coordinates into the model's square (and `Placement.back` maps a map back)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from tumor_model.config import GEOMETRIES
from tumor_model.io.imageio import to_rgb


def foreground_box(img) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the head region: the bounding box of non-background pixels.

    Background = greyscale <= max(12, 0.08 * 99th percentile). Rows/columns with only a stray
    pixel or two (< 0.2% of their length) are ignored; a margin of 2% of the box (at least
    1 px) is added. When nothing is
    foreground the whole image is returned.
    """
    img = as_pil(img)
    width, height = img.size
    mask = foreground_mask(img)
    rows = np.count_nonzero(mask, axis=1)  # counting: much faster than summing booleans
    cols = np.count_nonzero(mask, axis=0)
    row_idx = np.flatnonzero(rows >= max(1, int(np.ceil(0.002 * width))))
    col_idx = np.flatnonzero(cols >= max(1, int(np.ceil(0.002 * height))))
    if row_idx.size == 0 or col_idx.size == 0:
        return (0, 0, width, height)
    box_side = max(int(col_idx[-1] - col_idx[0]), int(row_idx[-1] - row_idx[0])) + 1
    margin = max(1, int(round(0.02 * box_side)))  # 2% of the head's size
    left = max(0, int(col_idx[0]) - margin)
    top = max(0, int(row_idx[0]) - margin)
    right = min(width, int(col_idx[-1]) + 1 + margin)
    bottom = min(height, int(row_idx[-1]) + 1 + margin)
    return (left, top, right, bottom)


def foreground_mask(img) -> np.ndarray:
    """bool (H, W): the non-background pixels, greyscale > max(12, 0.08 * 99th percentile)."""
    grey = np.asarray(as_pil(img).convert("L"))
    return grey > max(12.0, 0.08 * percentile_99(grey))


def percentile_99(grey: np.ndarray) -> float:
    """`np.percentile(grey, 99)` of a uint8 image, read off its histogram (a fraction of the time)
    where the order statistics around the 99th percentile's rank are one grey level, and so the
    answer is that level exactly; otherwise np.percentile itself."""
    n = grey.size
    cum = np.cumsum(np.bincount(grey.ravel(), minlength=256))
    rank = int(0.99 * (n - 1))
    ranks = np.clip([rank - 1, rank + 2], 0, n - 1)
    low, high = np.searchsorted(cum, ranks, side="right")
    return float(low) if low == high else float(np.percentile(grey, 99))


def as_pil(img) -> Image.Image:
    if isinstance(img, Image.Image):
        return img if img.mode == "RGB" else to_rgb(img, "<image>")
    if isinstance(img, np.ndarray):
        arr = img
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4):
            raise ValueError(f"expected an (H, W, 3) array, got shape {img.shape}")
        if arr.dtype != np.uint8:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        return Image.fromarray(np.ascontiguousarray(arr[:, :, :3]), "RGB")
    raise TypeError(f"expected a PIL image or a numpy array, got {type(img).__name__}")


def _resize(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    size = (max(1, size[0]), max(1, size[1]))
    if img.size == size:
        return img
    return img.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)


def _pad_resize(img: Image.Image, size: int) -> Image.Image:
    """Fit the whole image into size x size keeping its aspect ratio, centred on black."""
    new_w, new_h, left, top = _pad_layout(*img.size, size)
    canvas = Image.new("RGB", (size, size), (0, 0, 0))
    canvas.paste(_resize(img, (new_w, new_h)), (left, top))
    return canvas


def _pad_layout(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """(new_w, new_h, left, top): the resized image's size and place on the size x size canvas."""
    scale = size / max(width, height)
    new_w = min(size, max(1, round(width * scale)))
    new_h = min(size, max(1, round(height * scale)))
    return new_w, new_h, (size - new_w) // 2, (size - new_h) // 2


@dataclass(frozen=True)
class Placement:
    """Where an original image lands in `prepare`'s square: prepared = original * scale + offset,
    in continuous pixel coordinates (x to the right, y down; a pixel's centre is at +0.5)."""

    size: int  # side of the prepared square
    crop: tuple[int, int, int, int]  # (left, top, right, bottom) of the original that is kept
    scale: tuple[float, float]  # (x, y)
    offset: tuple[float, float]  # (x, y)

    def point(self, x: float, y: float) -> tuple[float, float]:
        """An original-image point in the prepared square's coordinates."""
        return x * self.scale[0] + self.offset[0], y * self.scale[1] + self.offset[1]

    def box(self, left: float, top: float, right: float, bottom: float) -> tuple[float, ...]:
        """An original-image box (pixels) in the prepared square, clipped to it (and to the crop:
        what was cropped away is not in the model's view)."""
        left, top = max(left, self.crop[0]), max(top, self.crop[1])
        right, bottom = min(right, self.crop[2]), min(bottom, self.crop[3])
        x0, y0 = self.point(left, top)
        x1, y1 = self.point(max(left, right), max(top, bottom))
        return tuple(float(np.clip(v, 0, self.size)) for v in (x0, y0, x1, y1))

    def back(self, heat: np.ndarray, width: int, height: int) -> np.ndarray:
        """A map on the prepared square (size x size) resampled onto the original image's pixel
        grid (height x width, nearest neighbour); what was cropped away is 0."""
        xs = (np.arange(width) + 0.5) * self.scale[0] + self.offset[0]
        ys = (np.arange(height) + 0.5) * self.scale[1] + self.offset[1]
        ix = np.clip(np.floor(xs).astype(int), 0, heat.shape[1] - 1)
        iy = np.clip(np.floor(ys).astype(int), 0, heat.shape[0] - 1)
        out = heat[np.ix_(iy, ix)].astype(np.float32)
        keep_x = (np.arange(width) >= self.crop[0]) & (np.arange(width) < self.crop[2])
        keep_y = (np.arange(height) >= self.crop[1]) & (np.arange(height) < self.crop[3])
        return out * np.outer(keep_y, keep_x)


def _placement(size: int, crop: tuple[int, int, int, int], squash: bool) -> Placement:
    width, height = crop[2] - crop[0], crop[3] - crop[1]
    if squash:
        return Placement(size, crop, (size / width, size / height), (0.0, 0.0))
    new_w, new_h, left, top = _pad_layout(width, height, size)
    sx, sy = new_w / width, new_h / height
    return Placement(size, crop, (sx, sy), (left - crop[0] * sx, top - crop[1] * sy))


def prepare(img, size: int, geometry: str = "crop-pad") -> np.ndarray:
    """The model's view of an image: uint8 array (size, size, 3).

    geometry: "crop-pad" crops to `foreground_box` then pads to a centred black square and
    resizes; "pad" pads the whole image to a square and resizes; "squash" resizes directly
    (distorts the aspect ratio).
    """
    return prepare_placed(img, size, geometry)[0]


def prepare_placed(img, size: int, geometry: str = "crop-pad") -> tuple[np.ndarray, Placement]:
    """`prepare`'s array and the `Placement` that maps original-image coordinates into it."""
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry must be one of {GEOMETRIES}, got {geometry!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    size = int(size)
    pil = as_pil(img)
    box = (0, 0, *pil.size)
    if geometry == "squash":
        out = _resize(pil, (size, size))
    elif geometry == "pad":
        out = _pad_resize(pil, size)
    else:
        box = foreground_box(pil)
        cropped = pil if box == (0, 0, *pil.size) else pil.crop(box)
        out = _pad_resize(cropped, size)
    arr = np.array(out, dtype=np.uint8)
    assert arr.shape == (size, size, 3), arr.shape
    return arr, _placement(size, box, geometry == "squash")
