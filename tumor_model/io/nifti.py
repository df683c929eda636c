"""NIfTI volumes (.nii and .nii.gz; NIfTI-1 and NIfTI-2), read in memory.

`header_kind(head)` tells a NIfTI header by its magic, `gunzip(data, label)` inflates a .nii.gz
under the file-size limit, and `read(data, label)` gives (slices, info): uint8 slices (n, H, W)
along the acquisition axis chosen by `volume.AXIS_RULE` (the header's slice dimension, else the
largest voxel spacing, else axial), each shown in radiological convention, and the volume's
non-identifying geometry. Refused with an `ImageLoadError` naming the file and the problem: a
.hdr/.img pair, 4-D data, too few slices, a non-greyscale type, truncated data, no qform/sform, a
degenerate or sheared affine.
"""

from __future__ import annotations

import gzip
import io
import zlib

import numpy as np

from tumor_model.errors import (
    DECODE_ERRORS,
    MAX_FILE_BYTES,
    MAX_VOLUME_VOXELS,
    MIN_VOLUME_SLICES,
    ImageLoadError,
)
from tumor_model.io.imageio import check_volume_size

GZIP = b"\x1f\x8b"
_ERRORS = (*DECODE_ERRORS, AttributeError, RuntimeError, zlib.error, gzip.BadGzipFile)


def header_kind(head: bytes) -> str | None:
    """ "NIfTI-1" / "NIfTI-2" for a single-file NIfTI header, "pair" for a .hdr/.img header."""
    if len(head) >= 348 and head[344:348] == b"n+1\x00":
        return "NIfTI-1"
    if len(head) >= 12 and head[4:12] == b"n+2\x00\r\n\x1a\n":
        return "NIfTI-2"
    if len(head) >= 348 and head[344:348] == b"ni1\x00" or head[4:8] == b"ni2\x00":
        return "pair"
    return None


def gzip_head(data: bytes, size: int = 544) -> bytes:
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[:65536], size)
    except zlib.error:
        return b""


def _bounded_inflate(stream, limit: int, label: str, what: str) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise ImageLoadError(
            label,
            f"{what} inflates to more than {limit:,} bytes (the limit; possible zip bomb)",
        )
    return data


def gunzip(data: bytes, label: str) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            out = _bounded_inflate(stream, MAX_FILE_BYTES, label, "the gzip content")
    except (OSError, EOFError, zlib.error) as err:
        raise ImageLoadError(label, f"damaged gzip file ({type(err).__name__})") from err
    if not header_kind(out[:1024]):
        raise ImageLoadError(label, "a gzip archive that does not hold a NIfTI volume")
    return out


def read(data: bytes, label: str) -> tuple[np.ndarray, dict]:
    """(slices (n, H, W) uint8 along the acquisition axis, non-identifying info) of a NIfTI file."""
    import nibabel as nib

    kind = header_kind(data[:1024])
    if kind == "pair":
        raise ImageLoadError(
            label, "a NIfTI header without its image (.hdr/.img pair): use a single .nii file"
        )
    klass = nib.Nifti1Image if kind == "NIfTI-1" else nib.Nifti2Image
    try:
        img = klass.from_bytes(data)
        hdr = img.header
        shape = tuple(int(s) for s in hdr.get_data_shape())
        dtype = hdr.get_data_dtype()
        zooms = [float(z) for z in hdr.get_zooms()[:3]]
        codes = int(hdr["sform_code"]), int(hdr["qform_code"])
        slice_dim = hdr.get_dim_info()[2]
        offset = int(hdr["vox_offset"])
    except (
        *_ERRORS,
        nib.spatialimages.HeaderDataError,
        nib.filebasedimages.ImageFileError,
    ) as err:
        raise ImageLoadError(label, f"damaged {kind} header ({type(err).__name__})") from err
    shape = _checked_shape(label, kind, shape, dtype, codes, offset, len(data))
    ornt = _orientation(np.asarray(img.affine, dtype=np.float64), label)
    axis, rule = _nifti_axis(slice_dim, zooms, ornt)
    try:
        values = np.asarray(img.get_fdata(dtype=np.float32)).reshape(shape)
    except (*_ERRORS, nib.spatialimages.HeaderDataError) as err:
        raise ImageLoadError(label, f"cannot read the {kind} data ({type(err).__name__})") from err
    values = nib.orientations.apply_orientation(values, ornt)  # voxel axes -> R, A, S
    spacing = [zooms[int(np.flatnonzero(ornt[:, 0] == k)[0])] for k in range(3)]
    grey = _to_uint8(values)
    slices = np.stack([_display(np.take(grey, k, axis=axis)) for k in range(grey.shape[axis])])
    n, height, width = slices.shape
    check_volume_size(label, n, height, width)
    in_plane = [spacing[k] for k in range(3) if k != axis]
    info = {
        "format": kind,
        "shape": [n, height, width],
        "spacing_mm": [round(spacing[axis], 4), *[round(s, 4) for s in in_plane[::-1]]],
        "axis": ("sagittal", "coronal", "axial")[axis],
        "axis_rule": rule,
        "order": ("right to left", "posterior to anterior", "inferior to superior")[axis],
        "orientation": "".join(nib.orientations.ornt2axcodes(ornt)),
        "intensity": "0.5-99.5th percentile of the volume onto 0-255",
    }
    return np.ascontiguousarray(slices), info


def _orientation(affine: np.ndarray, label: str) -> np.ndarray:
    """nibabel orientation (voxel axis -> R/A/S axis and flip) of a sane affine; refuses a
    degenerate or sheared one."""
    import nibabel as nib

    axes = affine[:3, :3]
    norms = np.linalg.norm(axes, axis=0) if np.isfinite(axes).all() else np.zeros(3)
    if not (norms > 1e-6).all() or abs(np.linalg.det(axes)) < 1e-9 * max(norms.prod(), 1e-300):
        raise ImageLoadError(
            label,
            "odd orientation: the affine is degenerate (a zero, repeated or non-finite axis: "
            f"{np.round(axes, 4).tolist()})",
        )
    unit = axes / norms
    cosines = unit.T @ unit - np.eye(3)
    if np.abs(cosines).max() > 1e-3:
        raise ImageLoadError(
            label,
            "odd orientation: the affine's axes are not perpendicular (sheared by up to "
            f"{np.degrees(np.arcsin(min(1.0, np.abs(cosines).max()))):.1f} degrees)",
        )
    return nib.orientations.io_orientation(affine)


def _nifti_axis(slice_dim, zooms: list[float], ornt: np.ndarray) -> tuple[int, str]:
    """(R/A/S axis of the slices, the rule that chose it)."""
    if slice_dim is not None:
        voxel_axis, rule = int(slice_dim), "slice dimension in the header (dim_info)"
    else:
        order = np.argsort(zooms)[::-1]
        if zooms[order[0]] > 1.1 * zooms[order[1]]:
            voxel_axis = int(order[0])
            rule = (
                f"largest voxel spacing ({zooms[voxel_axis]:g} mm against "
                + ", ".join(f"{zooms[k]:g}" for k in sorted(set(range(3)) - {voxel_axis}))
                + " mm)"
            )
        else:
            return 2, "isotropic voxels: axial, the view the model was trained on"
    return int(ornt[voxel_axis, 0]), rule


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """The finite 0.5-99.5th percentile range of the volume onto 0..255 (NaN/inf -> 0)."""
    finite = np.isfinite(values)
    out = np.zeros(values.shape, dtype=np.uint8)
    if not finite.any():
        return out
    inside = values[finite]
    lo, hi = (float(v) for v in np.percentile(inside, [0.5, 99.5]))
    if hi <= lo:
        lo, hi = float(inside.min()), float(inside.max())
    if hi > lo:
        scaled = np.clip((np.where(finite, values, lo) - lo) * (255.0 / (hi - lo)), 0, 255)
        out = (scaled + 0.5).astype(np.uint8)
    return out


def _display(plane: np.ndarray) -> np.ndarray:
    """A canonical (R/A/S-ordered) plane in radiological display: its second axis (A or S)
    upwards, its first (R or A) reversed so that the patient's right is on the left."""
    return np.ascontiguousarray(plane[::-1, ::-1].T)


def _checked_shape(label, kind, shape, dtype, codes, offset, size) -> tuple[int, int, int]:
    """The 3-D shape of a NIfTI file of `size` bytes after the header's checks; ImageLoadError
    naming the problem (4-D, too few slices, data type, too large, truncated, no orientation)."""
    if len(shape) > 3 and any(s > 1 for s in shape[3:]):
        raise ImageLoadError(
            label,
            f"4-D {kind} data (shape {' x '.join(map(str, shape))}): one 3-D volume per file "
            "(split the time points or channels first)",
        )
    shape = (shape + (1, 1, 1))[:3]
    if min(shape) < MIN_VOLUME_SLICES:
        n = min(shape)
        what = "one slice" if n == 1 else f"{n} slices"
        raise ImageLoadError(
            label,
            f"only {what} (shape {' x '.join(map(str, shape))}): a volume needs at least "
            f"{MIN_VOLUME_SLICES} along every axis (predict single slices as images)",
        )
    if dtype.fields is not None or dtype.kind not in "biuf":
        raise ImageLoadError(label, f"unsupported {kind} data type {dtype} (greyscale only)")
    voxels = int(np.prod(shape))
    if voxels > MAX_VOLUME_VOXELS:
        raise ImageLoadError(
            label,
            f"volume too large: {' x '.join(map(str, shape))} = {voxels:,} voxels (the limit is "
            f"{MAX_VOLUME_VOXELS:,})",
        )
    if size < offset + voxels * dtype.itemsize:
        raise ImageLoadError(
            label,
            f"truncated {kind} file: {size:,} bytes, its header needs "
            f"{offset + voxels * dtype.itemsize:,}",
        )
    if codes == (0, 0):
        raise ImageLoadError(
            label,
            f"missing orientation: the {kind} header has neither a qform nor an sform "
            "(qform_code = sform_code = 0), so the slice direction is unknown",
        )
    return shape
