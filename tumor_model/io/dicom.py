"""DICOM reading for the image-loading layer: frames as uint8 after Modality LUT and VOI LUT /
window centre-width, plus NON-identifying tags only.

Privacy: `DicomScan.info` is built from an ALLOWLIST (`INFO_TAGS`); patient name, IDs, dates and
any other tag never leave this module. Nothing here logs or prints tags or pixel data, and error
messages never quote tag values (only exception class names and technical facts).

Errors are `ImageLoadError` (from `tumor_model.errors`, the same class as
`tumor_model.io.imageio.ImageLoadError`). This module imports nothing of `imageio`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import pydicom
from PIL import Image
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, get_decoder
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from tumor_model.errors import DECODE_ERRORS, MAX_PIXELS, ImageLoadError

__all__ = ["DicomScan", "INFO_TAGS", "read_dicom", "frame_to_image", "is_dicom"]

# The only tags copied into DicomScan.info (acquisition facts, nothing about the patient).
INFO_TAGS = (
    "Modality",
    "SeriesDescription",
    "BodyPartExamined",
    "Manufacturer",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "SamplesPerPixel",
    "BitsStored",
    "PhotometricInterpretation",
    "PixelSpacing",
    "SliceThickness",
    "WindowCenter",
    "WindowWidth",
)
MAX_VOXEL_FACTOR = 2  # all frames together may hold at most 2 * MAX_PIXELS pixels

# What pydicom raises on damaged files, beyond the decoders' errors (structural problems; no
# tag values are used in the messages).
_DICOM_ERRORS = (
    *DECODE_ERRORS,
    InvalidDicomError,
    BytesLengthException,
    AttributeError,
    NotImplementedError,
    RuntimeError,
)


@dataclass(frozen=True, eq=False)
class DicomScan:
    """A decoded DICOM image.

    frames: uint8 array (n_frames, H, W) for greyscale or (n_frames, H, W, 3) for colour.
    info: non-identifying tags only (see INFO_TAGS) plus "TransferSyntax" (its name).
    default_frame: the frame to show/predict by default (the middle one).
    """

    frames: np.ndarray
    info: dict = field(default_factory=dict)
    default_frame: int = 0

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])


def is_dicom(data: bytes) -> bool:
    """True when `data` is a DICOM file: "DICM" at byte 128, or a readable DICOM data set without
    the preamble (starting with a group 0002 or 0008 element). Never raises."""
    head = bytes(data[:132])
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    # no preamble: the first element must be in group 0002 (file meta) or 0008 (identification),
    # little endian (02 00 / 08 00) or big endian (00 08); only then do we ask pydicom
    if len(head) < 8 or head[:2] not in (b"\x02\x00", b"\x08\x00", b"\x00\x08"):
        return False
    try:
        ds = pydicom.dcmread(io.BytesIO(bytes(data)), force=True, stop_before_pixels=True)
        file_meta = getattr(ds, "file_meta", None) or {}
        return bool(
            "SOPClassUID" in ds
            or "Rows" in ds
            or "Modality" in ds
            or "TransferSyntaxUID" in file_meta
        )
    except _DICOM_ERRORS:
        return False


def _fail(name: str, reason: str, err: BaseException | None = None) -> ImageLoadError:
    if err is not None:
        reason = f"{reason} ({type(err).__name__})"
    return ImageLoadError(name, reason)


def _transfer_syntax(ds) -> UID:
    """The data set's transfer syntax, inferred from how it was read when the meta is missing."""
    tsyntax = ds.file_meta.get("TransferSyntaxUID") if ds.file_meta is not None else None
    if tsyntax:
        return UID(str(tsyntax))
    implicit, little = ds.original_encoding
    if implicit is None:
        implicit, little = True, True
    if implicit:
        tsyntax = ImplicitVRLittleEndian
    elif little:
        tsyntax = ExplicitVRLittleEndian
    else:
        tsyntax = ExplicitVRBigEndian
    if ds.file_meta is None:
        ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = tsyntax
    return tsyntax


def _first_float(value) -> float:
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        value = value[0]
    return float(value)


def _window(values: np.ndarray, centre: float, width: float, function: str) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 windowing onto 0..1."""
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(np.clip(-4.0 * (values - centre) / width, -50, 50)))
    if function == "LINEAR_EXACT":
        return np.clip((values - centre) / width + 0.5, 0.0, 1.0)
    if width <= 1.0:
        return (values > centre - 0.5).astype(np.float64)
    return np.clip((values - (centre - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)


def _minmax(values: np.ndarray) -> np.ndarray:
    """Finite min..max onto 0..1 (NaN/inf -> 0; a constant frame -> 0)."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    out = np.zeros(values.shape, dtype=np.float64)
    if finite.any():
        lo, hi = values[finite].min(), values[finite].max()
        if hi > lo:
            np.divide(values - lo, hi - lo, out=out, where=finite)
    return out


def _grey_frame(frame: np.ndarray, ds) -> np.ndarray:
    """One monochrome frame -> uint8 after Modality LUT and VOI LUT / window (else min-max)."""
    values = np.asarray(apply_modality_lut(frame, ds), dtype=np.float64)
    unit = None
    if "VOILUTSequence" in ds:
        unit = _minmax(apply_voi_lut(values, ds, index=0, prefer_lut=True))
    elif ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        try:
            centre = _first_float(ds.WindowCenter)
            width = _first_float(ds.WindowWidth)
            function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
        except (ValueError, TypeError, IndexError):
            centre = width = float("nan")
            function = "LINEAR"
        if np.isfinite(centre) and np.isfinite(width) and width > 0:
            unit = _window(values, centre, width, function)
    if unit is None:
        unit = _minmax(values)
    if str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        unit = 1.0 - unit  # MONOCHROME1: low values are white
    return (np.nan_to_num(unit) * 255.0 + 0.5).astype(np.uint8)


def _colour_to_uint8(rgb: np.ndarray, bits: int) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return rgb
    top = float(2 ** max(1, min(bits, 32)) - 1)
    if rgb.size and float(rgb.max()) > top:  # bits stored lies: fall back to min-max
        return (_minmax(rgb) * 255.0 + 0.5).astype(np.uint8)
    return (np.clip(rgb.astype(np.float64) / top, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _clean(value):
    """A tag value as plain JSON-friendly Python (str, int, float or a list of them)."""
    if isinstance(value, (pydicom.multival.MultiValue, list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (pydicom.valuerep.IS, int)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (pydicom.valuerep.DSfloat, pydicom.valuerep.DSdecimal, float)):
        return float(value)
    return str(value).strip()[:64]


def _info(ds, tsyntax: UID) -> dict:
    info = {}
    for keyword in INFO_TAGS:
        try:
            value = ds.get(keyword)
            if value is None or value == "":
                continue
            info[keyword] = _clean(value)
        except _DICOM_ERRORS:
            continue  # an unreadable optional tag is simply left out
    info["TransferSyntax"] = str(tsyntax.name)
    return info


def read_dicom(data: bytes, name: str) -> DicomScan:
    """Decode DICOM bytes into uint8 frames and non-identifying info. Raises ImageLoadError."""
    try:
        ds = pydicom.dcmread(io.BytesIO(bytes(data)), force=True)
        has_pixels = "PixelData" in ds
    except _DICOM_ERRORS as err:
        raise _fail(name, "damaged DICOM file: cannot read its header", err) from err
    if not has_pixels:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise _fail(name, "DICOM float pixel data is not supported")
        raise _fail(name, "DICOM file has no pixel data (not an image, e.g. a report or plan)")
    tsyntax, rows, cols, samples = _layout(ds, name)
    try:
        frames = _frames(ds, rows, cols, samples)
    except _DICOM_ERRORS as err:
        raise _fail(name, f"cannot decode the DICOM pixel data ({tsyntax.name})", err) from err
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    return DicomScan(frames=frames, info=_info(ds, tsyntax), default_frame=frames.shape[0] // 2)


def _layout(ds, name: str) -> tuple[UID, int, int, int]:
    """(transfer syntax, rows, columns, samples per pixel), checked against the size limits and
    for an installed decoder, before any pixel is decoded."""
    try:
        tsyntax = _transfer_syntax(ds)
        rows, cols = int(ds.Rows), int(ds.Columns)
        n_frames = int(ds.get("NumberOfFrames") or 1)
        samples = int(ds.get("SamplesPerPixel") or 1)
    except _DICOM_ERRORS as err:
        raise _fail(name, "damaged DICOM file: missing or invalid image size tags", err) from err
    if rows <= 0 or cols <= 0 or n_frames <= 0 or samples not in (1, 3):
        raise _fail(
            name,
            f"DICOM image has an invalid size ({cols} x {rows} pixels, {n_frames} frames, "
            f"{samples} samples per pixel)",
        )
    if rows * cols > MAX_PIXELS or rows * cols * n_frames > MAX_VOXEL_FACTOR * MAX_PIXELS:
        raise _fail(
            name,
            f"DICOM image too large: {cols} x {rows} pixels x {n_frames} frames, over the limit "
            f"of {MAX_PIXELS:,} pixels per frame (possible decompression bomb)",
        )
    try:
        available = get_decoder(tsyntax).is_available
    except NotImplementedError:
        available = False
    if not available:
        raise _fail(
            name,
            f"unsupported transfer syntax {tsyntax.name} ({tsyntax}): no decoder for it is "
            "installed (convert the file to uncompressed DICOM, PNG or JPEG)",
        )
    return tsyntax, rows, cols, samples


def _frames(ds, rows: int, cols: int, samples: int) -> np.ndarray:
    """All frames as uint8 (n, H, W) or (n, H, W, 3); raises one of _DICOM_ERRORS."""
    arr = ds.pixel_array
    if arr.ndim == (2 if samples == 1 else 3):  # a single frame
        arr = arr[None]
    if arr.ndim != (3 if samples == 1 else 4) or arr.shape[1:3] != (rows, cols):
        raise ValueError("decoded pixel array has an unexpected shape")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if samples == 1 and photometric == "PALETTE COLOR":
        return np.stack([_colour_to_uint8(apply_color_lut(f, ds), 16) for f in arr])
    if samples == 1:
        return np.stack([_grey_frame(f, ds) for f in arr])
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8)
    return np.stack([_colour_to_uint8(f, bits) for f in arr])  # pydicom already made YBR RGB


def frame_to_image(scan: DicomScan, index: int | None = None) -> Image.Image:
    """One frame of a DicomScan as an RGB PIL image (default: the middle frame)."""
    if index is None:
        index = scan.default_frame
    n = scan.frames.shape[0]
    if not -n <= index < n:
        raise IndexError(f"frame {index!r} out of range: the scan has {n} frame(s)")
    frame = scan.frames[index]
    if frame.ndim == 2:
        return Image.fromarray(frame, "L").convert("RGB")
    return Image.fromarray(np.ascontiguousarray(frame), "RGB")
