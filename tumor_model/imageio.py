"""Image loading and geometry: the single entry point for every image the project reads.

`load_image(source, name=None)` reads a path, raw bytes or a binary file object (e.g. a Streamlit
upload), detects the format by CONTENT (never by extension: the dataset holds PNGs named .jpg
and TIFFs), handles every PIL mode we meet (1, L, LA, P+transparency, RGBA, 16-bit/float, CMYK,
YCbCr, animated), applies EXIF orientation, reads DICOM through `tumor_model.dicom`, and returns
an RGB `PIL.Image`. `load_scan` does the same and also returns the decoded DICOM scan (frames,
non-identifying tags), and picks its frame. Anything unreadable raises `ImageLoadError` (a
ValueError) naming the file and the problem in plain words; the limits (size, shape) are those
of `tumor_model.errors`.

`prepare(img, size, geometry)` is the only place where image geometry happens (training, CLI and
app all call it): crop to the head, pad to a square with black, resize.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .config import GEOMETRIES
from .dicom import DicomScan, frame_to_image, is_dicom, read_dicom
from .errors import (
    DECODE_ERRORS,
    MAX_ASPECT,
    MAX_FILE_BYTES,
    MAX_PIXELS,
    MAX_VOLUME_SLICES,
    MAX_VOLUME_VOXELS,
    MIN_SIDE,
    MIN_VOLUME_SLICES,
    ImageLoadError,
)

__all__ = [
    "ImageLoadError",
    "MAX_PIXELS",
    "MAX_FILE_BYTES",
    "MIN_SIDE",
    "MAX_ASPECT",
    "load_image",
    "load_scan",
    "prepare",
    "prepare_placed",
    "Placement",
    "foreground_box",
    "foreground_mask",
    "sniff_format",
]

# Formats PIL may decode for us, each recognised by its magic bytes in `sniff_format`.
_PIL_FORMATS = ("JPEG", "PNG", "TIFF", "BMP", "GIF", "WEBP", "JPEG2000")

# Corrupt EXIF blocks make exif_transpose raise one of these; we then keep the image unrotated.
_EXIF_ERRORS = (*DECODE_ERRORS, AttributeError)


# --------------------------------------------------------------------------- format sniffing


def sniff_format(data: bytes) -> str | None:
    """Name the image format of `data` from its magic bytes ("JPEG", "PNG", "TIFF", "BMP", "GIF",
    "WEBP", "JPEG2000", "DICOM") or None when it is none of them."""
    head = bytes(data[:132])
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "DICOM"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head.startswith(b"BM") and len(head) >= 26:
        return "BMP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n") or head.startswith(b"\xffO\xffQ"):
        return "JPEG2000"
    if len(head) >= 8 and is_dicom(data):  # DICOM without the 128-byte preamble
        return "DICOM"
    return None


def _what_is_it(data: bytes) -> str:
    """A plain-words guess at what a non-image file is, for the error message."""
    head = bytes(data[:1024])
    low = head.lstrip().lower()
    if head.startswith(b"%PDF"):
        return "a PDF document"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return "a ZIP archive"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip archive"
    if b"<svg" in low:
        return "an SVG drawing (vector images are not supported)"
    if low.startswith((b"<!doctype html", b"<html")) or b"<html" in low[:256]:
        return "an HTML page"
    if low.startswith(b"<?xml"):
        return "an XML document"
    if low.startswith((b"{", b"[")):
        return "JSON or text"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    if text and all(c.isprintable() or c in "\r\n\t" for c in text):
        return "text"
    return ""


# --------------------------------------------------------------------------- reading the source


def _read_source(source, name: str | None) -> tuple[bytes, str]:
    """Return the input's bytes and the name to use in messages."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = name if name is not None else str(source)
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise ImageLoadError(
                    label, f"file too large ({size:,} bytes, the limit is {MAX_FILE_BYTES:,})"
                )
            return path.read_bytes(), label
        except FileNotFoundError as err:
            raise ImageLoadError(label, "file not found") from err
        except IsADirectoryError as err:
            raise ImageLoadError(label, "is a folder, not a file") from err
        except PermissionError as err:
            raise ImageLoadError(label, "permission denied") from err
        except OSError as err:
            raise ImageLoadError(label, f"cannot read the file ({err.strerror or err})") from err
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), name if name is not None else "<bytes>"
    if hasattr(source, "getvalue") or hasattr(source, "read"):
        label = name
        if label is None:
            file_name = getattr(source, "name", None)
            label = file_name if isinstance(file_name, str) and file_name else "<bytes>"
        try:
            if hasattr(source, "getvalue"):  # BytesIO, Streamlit UploadedFile: the whole content
                data = source.getvalue()
            else:
                if hasattr(source, "seek"):
                    try:
                        source.seek(0)
                    except (OSError, ValueError):
                        pass  # unseekable stream: read what is left
                data = source.read(MAX_FILE_BYTES + 1)
        except OSError as err:
            raise ImageLoadError(label, f"cannot read the stream ({err})") from err
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        if not isinstance(data, bytes):
            raise TypeError(
                f"load_image() needs a BINARY file object; {type(source).__name__} gave "
                f"{type(data).__name__}"
            )
        return data, label
    raise TypeError(
        "load_image() needs a path, bytes or a binary file object, got "
        f"{type(source).__name__} {source!r:.80}"
    )


# --------------------------------------------------------------------------- loading


def _check_shape(width: int, height: int, label: str) -> None:
    """Refuse decompression bombs and absurd shapes, from the header, before decoding."""
    if width <= 0 or height <= 0:
        raise ImageLoadError(label, f"image has no pixels ({width} x {height})")
    if width * height > MAX_PIXELS:
        raise ImageLoadError(
            label,
            f"image too large: {width} x {height} = {width * height:,} pixels, over the limit "
            f"of {MAX_PIXELS:,} (possible decompression bomb)",
        )
    check_sides(width, height, label)


def check_sides(width: int, height: int, label: str, what: str = "image") -> None:
    """Refuse sides under MIN_SIDE and an aspect ratio over MAX_ASPECT (an image or a slice)."""
    if min(width, height) < MIN_SIDE or max(width, height) / min(width, height) > MAX_ASPECT:
        raise ImageLoadError(
            label,
            f"absurd {what} shape {width} x {height} pixels (sides must be at least {MIN_SIDE} px "
            f"and the aspect ratio at most {MAX_ASPECT:g}:1)",
        )


def check_volume_size(label: str, n: int, height: int, width: int) -> None:
    """Refuse a volume of fewer than MIN_VOLUME_SLICES slices, more than MAX_VOLUME_SLICES or
    MAX_VOLUME_VOXELS, or slices of an absurd shape."""
    if n < MIN_VOLUME_SLICES:
        what = "one slice" if n == 1 else f"{n} slices"
        raise ImageLoadError(
            label,
            f"only {what}: a volume needs at least {MIN_VOLUME_SLICES} (predict single slices "
            "as images)",
        )
    voxels = n * height * width
    if voxels > MAX_VOLUME_VOXELS or n > MAX_VOLUME_SLICES:
        raise ImageLoadError(
            label,
            f"volume too large: {n} slices of {width} x {height} = {voxels:,} voxels (the limits "
            f"are {MAX_VOLUME_VOXELS:,} voxels and {MAX_VOLUME_SLICES:,} slices)",
        )
    check_sides(width, height, label, "slice")


def _scale_to_uint8(values: np.ndarray) -> np.ndarray:
    """Map the finite min..max of a 16-bit/int/float array onto 0..255 (NaN/inf -> 0)."""
    values = values.astype(np.float32, copy=False)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, dtype=np.uint8)
    lo = float(values[finite].min())
    hi = float(values[finite].max())
    out = np.zeros(values.shape, dtype=np.float32)
    if hi > lo:
        np.subtract(values, lo, out=out, where=finite)
        out *= 255.0 / (hi - lo)
    np.clip(out, 0.0, 255.0, out=out)
    return (out + 0.5).astype(np.uint8)


def _to_rgb(img: Image.Image, label: str) -> Image.Image:
    """Convert any PIL mode to RGB: transparency composited on black, high bit depth rescaled."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I") or mode.startswith("F"):  # I;16, I;16B, I;16L, I, F, F;32...
        try:
            arr = np.asarray(img)
        except DECODE_ERRORS as err:
            raise ImageLoadError(label, f"unsupported pixel mode {mode!r}") from err
        if arr.ndim != 2:
            raise ImageLoadError(label, f"unsupported pixel mode {mode!r} (shape {arr.shape})")
        grey = _scale_to_uint8(arr)
        return Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2), "RGB")
    if mode == "P" and "transparency" in img.info or mode in ("PA", "LA", "La", "RGBa", "RGBA"):
        rgba = img.convert("RGBA")
        out = Image.new("RGB", rgba.size, (0, 0, 0))
        out.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
        return out
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as err:
        raise ImageLoadError(label, f"unsupported colour mode {mode!r}") from err


def _exif_transpose(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a corrupt EXIF block leaves the image as stored."""
    try:
        rotated = ImageOps.exif_transpose(img)
    except _EXIF_ERRORS:
        return img
    return img if rotated is None else rotated


def _load_pil(data: bytes, fmt: str, label: str) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data), formats=[fmt])
    except Image.DecompressionBombError as err:
        raise ImageLoadError(
            label,
            f"image too large (possible decompression bomb): {err}",
        ) from err
    except UnidentifiedImageError as err:
        raise ImageLoadError(label, f"damaged {fmt} file: its header cannot be read") from err
    except DECODE_ERRORS as err:
        raise ImageLoadError(label, f"damaged {fmt} file ({err})") from err
    try:
        width, height = img.size
    except DECODE_ERRORS as err:
        raise ImageLoadError(label, f"damaged {fmt} file ({err})") from err
    _check_shape(width, height, label)
    try:
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)  # multi-frame / animated: the first frame
        img.load()  # force the full decode so that truncation shows up here
    except DECODE_ERRORS as err:
        raise ImageLoadError(label, f"damaged or truncated {fmt} image ({err})") from err
    _check_shape(*img.size, label)
    img = _exif_transpose(img)
    try:
        return _to_rgb(img, label)
    except ImageLoadError:
        raise
    except DECODE_ERRORS as err:
        raise ImageLoadError(label, f"damaged {fmt} image ({err})") from err


def load_scan(
    source, name: str | None = None, frame: int | None = None
) -> tuple[Image.Image, DicomScan | None]:
    """(RGB PIL image, DicomScan or None) of an image (path, bytes or binary file object).

    The format is detected from the content. A DICOM file is decoded by `tumor_model.dicom`;
    its scan (frames, non-identifying `info`) is returned with frame `frame` as the image (None:
    the default, middle frame; out-of-range values are clipped). `name` is used in error
    messages (default: the path, the file object's name, or "<bytes>"). Raises ImageLoadError
    for any unreadable input and TypeError for a source of the wrong type.
    """
    data, label = _read_source(source, name)
    if not data:
        raise ImageLoadError(label, "empty file (0 bytes)")
    if len(data) > MAX_FILE_BYTES:
        raise ImageLoadError(
            label, f"file too large ({len(data):,} bytes, the limit is {MAX_FILE_BYTES:,})"
        )
    fmt = sniff_format(data)
    if fmt == "DICOM":
        scan = read_dicom(data, label)
        index = scan.default_frame if frame is None else min(max(int(frame), 0), scan.n_frames - 1)
        img = frame_to_image(scan, index)
        _check_shape(*img.size, label)
        return img, scan
    if fmt is None:
        what = _what_is_it(data)
        kind = f": looks like {what}" if what else ""
        raise ImageLoadError(label, f"not an image{kind} (starts with {data[:8]!r})")
    return _load_pil(data, fmt, label), None


def load_image(source, name: str | None = None) -> Image.Image:
    """The RGB PIL image of `load_scan` (for DICOM: the default, middle frame)."""
    return load_scan(source, name)[0]


# --------------------------------------------------------------------------- geometry


def foreground_box(img) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the head region: the bounding box of non-background pixels.

    Background = greyscale <= max(12, 0.08 * 99th percentile). Rows/columns with only a stray
    pixel or two (< 0.2% of their length) are ignored; a margin of 2% of the box (at least
    1 px) is added. When nothing is
    foreground the whole image is returned.
    """
    img = _as_pil(img)
    width, height = img.size
    mask = foreground_mask(img)
    rows = mask.sum(axis=1)
    cols = mask.sum(axis=0)
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
    grey = np.asarray(_as_pil(img).convert("L"))
    return grey > max(12.0, 0.08 * float(np.percentile(grey, 99)))


def _as_pil(img) -> Image.Image:
    if isinstance(img, Image.Image):
        return img if img.mode == "RGB" else _to_rgb(img, "<image>")
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
    pil = _as_pil(img)
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
