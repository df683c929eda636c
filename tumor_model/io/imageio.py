"""Image loading: the single entry point for every image the project reads.

`load_image(source, name=None)` reads a path, raw bytes or a binary file object (e.g. a Streamlit
upload), detects the format by CONTENT (never by extension: the dataset holds PNGs named .jpg
and TIFFs), handles every PIL mode we meet (1, L, LA, P+transparency, RGBA, 16-bit/float, CMYK,
YCbCr, animated), applies EXIF orientation, reads DICOM through `tumor_model.io.dicom`, and returns
an RGB `PIL.Image`. `load_scan` does the same and also returns the decoded DICOM scan (frames,
non-identifying tags), and picks its frame. Anything unreadable raises `ImageLoadError` (a
ValueError) naming the file and the problem in plain words; the limits (size, shape) are those
of `tumor_model.errors`.

Geometry (`prepare`: crop, pad, resize) is in `io.geometry`.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tumor_model.errors import (
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

if TYPE_CHECKING:
    from tumor_model.io.dicom import DicomScan

# The first element of a DICOM file without its 128-byte preamble: group 0002 or 0008, little or
# big endian. Only such files are handed to pydicom (slow to import) to decide.
DICOM_GROUPS = (b"\x02\x00", b"\x08\x00", b"\x00\x08")


def may_be_dicom(data: bytes) -> bool:
    """Cheap: "DICM" at byte 128, or a first element in a DICOM group (`dicom.is_dicom` decides)."""
    head = bytes(data[:132])
    return (len(head) >= 132 and head[128:132] == b"DICM") or (
        len(head) >= 8 and head[:2] in DICOM_GROUPS
    )


def is_dicom(data: bytes) -> bool:
    """True when `data` is DICOM (`io.dicom.is_dicom`; pydicom imported only when it may be)."""
    if not may_be_dicom(data):
        return False
    from tumor_model.io import dicom

    return dicom.is_dicom(data)


__all__ = [
    "ImageLoadError",
    "MAX_PIXELS",
    "MAX_FILE_BYTES",
    "MIN_SIDE",
    "MAX_ASPECT",
    "load_image",
    "load_scan",
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


def read_source(source, name: str | None) -> tuple[bytes, str]:
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


def to_rgb(img: Image.Image, label: str) -> Image.Image:
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


def decode_problem(fmt: str, err: Exception) -> str:
    """What a failed decode means in plain words (no library detail for a cut-off file)."""
    if "truncated" in str(err).lower():
        return f"truncated {fmt} image: the file ends before the image data does (cut off?)"
    return f"damaged {fmt} image: its pixel data cannot be decoded"


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
        raise ImageLoadError(label, decode_problem(fmt, err)) from err
    _check_shape(*img.size, label)
    img = _exif_transpose(img)
    try:
        return to_rgb(img, label)
    except ImageLoadError:
        raise
    except DECODE_ERRORS as err:
        raise ImageLoadError(label, f"damaged {fmt} image ({err})") from err


def read_checked(source, name: str | None = None) -> tuple[bytes, str]:
    """`read_source` plus the size checks every input gets: not empty, not over MAX_FILE_BYTES."""
    data, label = read_source(source, name)
    if not data:
        raise ImageLoadError(label, "empty file (0 bytes)")
    if len(data) > MAX_FILE_BYTES:
        raise ImageLoadError(
            label, f"file too large ({len(data):,} bytes, the limit is {MAX_FILE_BYTES:,})"
        )
    return data, label


def load_scan(
    source, name: str | None = None, frame: int | None = None
) -> tuple[Image.Image, DicomScan | None]:
    """(RGB PIL image, DicomScan or None) of an image (path, bytes or binary file object).

    The format is detected from the content. A DICOM file is decoded by `tumor_model.io.dicom`;
    its scan (frames, non-identifying `info`) is returned with frame `frame` as the image (None:
    the default, middle frame; out-of-range values are clipped). `name` is used in error
    messages (default: the path, the file object's name, or "<bytes>"). Raises ImageLoadError
    for any unreadable input and TypeError for a source of the wrong type.
    """
    data, label = read_checked(source, name)
    fmt = sniff_format(data)
    if fmt == "DICOM":
        from tumor_model.io.dicom import read_dicom

        scan = read_dicom(data, label)
        index = scan.default_frame if frame is None else min(max(int(frame), 0), scan.n_frames - 1)
        from tumor_model.io.dicom import frame_to_image

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
