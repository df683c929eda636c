"""DICOM volumes: a series of single-frame files (given together, or in a zip) and multi-frame
DICOM with plane geometry, read in memory.

`header(data)` reads a DICOM header (no pixels) or gives None; `frame_count` and
`has_plane_geometry` are what `volume.plan` sorts inputs by. `read_series(members, label, fmt)` and
`read_multiframe(data, label)` give (slices, info): uint8 slices (n, H, W) ordered along the
slice normal (row x column of ImageOrientationPatient) by ImagePositionPatient, else
InstanceNumber, and non-identifying geometry plus the allowlisted tags of
`io.dicom.INFO_TAGS` (pixels and tags come through `io.dicom`, so patient tags
never reach a volume). Refused with an `ImageLoadError` naming the volume, then the file: mixed
series, slices of different sizes or orientations, a missing or odd orientation, repeated slice
positions (4-D series), a multi-frame file inside a series, a zip without DICOM files.
"""

from __future__ import annotations

import io

import numpy as np
import pydicom

from tumor_model.errors import DECODE_ERRORS, ImageLoadError
from tumor_model.io import archive
from tumor_model.io.dicom import is_dicom, read_dicom
from tumor_model.io.imageio import check_volume_size

DICOMDIR = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage: an index, not an image


def header(data: bytes):
    try:
        return pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=True)
    except (*DECODE_ERRORS, AttributeError, NotImplementedError, RuntimeError):
        return None


def has_plane_geometry(ds) -> bool:
    if "ImageOrientationPatient" in ds:
        return True
    for name in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        try:
            groups = ds.get(name) or []
            if groups and (
                "PlanePositionSequence" in groups[0] or "PlaneOrientationSequence" in groups[0]
            ):
                return True
        except (*DECODE_ERRORS, AttributeError):
            continue
    return False


def frame_count(ds) -> int:
    try:
        return int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        return 1


def unzip(data: bytes, label: str) -> list[tuple[str, bytes]]:
    """The DICOM members of a zip, read in memory with zip-bomb limits (`archive.members`)."""
    every = archive.members(data, label)
    dicoms = [(name, blob) for name, blob in every if is_dicom(blob)]
    if not dicoms:
        raise ImageLoadError(
            label, f"the ZIP archive holds no DICOM files ({len(every)} other file(s))"
        )
    return dicoms


def _floats(value, n: int) -> np.ndarray | None:
    try:
        out = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return out if out.shape == (n,) and np.isfinite(out).all() else None


def _normal(iop: np.ndarray | None, label: str, where: str = "") -> np.ndarray:
    """The slice normal of ImageOrientationPatient; refuses a missing or odd one (`where`: which
    file of a series, for the message)."""
    if iop is None:
        raise ImageLoadError(
            label,
            f"{where}missing orientation: no valid ImageOrientationPatient, so the slice "
            "direction is unknown",
        )
    row, col = iop[:3], iop[3:]
    if (
        abs(np.linalg.norm(row) - 1) > 1e-2
        or abs(np.linalg.norm(col) - 1) > 1e-2
        or abs(row @ col) > 1e-2
    ):
        raise ImageLoadError(
            label,
            f"{where}odd orientation: ImageOrientationPatient {np.round(iop, 4).tolist()} is "
            "not two perpendicular unit vectors",
        )
    normal = np.cross(row, col)
    return normal / np.linalg.norm(normal)


def _axis_name(normal: np.ndarray) -> str:
    k = int(np.argmax(np.abs(normal)))
    name = ("sagittal", "coronal", "axial")[k]
    return name if abs(normal[k]) >= np.cos(np.radians(30)) else f"oblique (closest: {name})"


def _order(positions, numbers, label: str) -> tuple[np.ndarray, float | None, str]:
    """(slice order, spacing in mm or None, how) from positions along the normal, else from
    InstanceNumber; refuses repeated positions (4-D or duplicate slices)."""
    if all(p is not None for p in positions):
        along = np.array(positions, dtype=np.float64)
        order = np.argsort(along, kind="stable")
        steps = np.diff(along[order])
        if (steps < 1e-3).any():
            raise ImageLoadError(
                label,
                f"{int((steps < 1e-3).sum()) + 1} slices at the same position "
                f"({along[order][1:][steps < 1e-3][0]:.2f} mm along the slice normal): a 4-D "
                "(time or multi-echo) series or repeated slices",
            )
        return order, float(np.median(steps)), "ImagePositionPatient along the slice normal"
    if all(n is not None for n in numbers):
        nums = np.array(numbers)
        if len(set(numbers)) < len(numbers):
            raise ImageLoadError(
                label, "repeated InstanceNumber and no ImagePositionPatient: cannot order slices"
            )
        return np.argsort(nums, kind="stable"), None, "InstanceNumber (no ImagePositionPatient)"
    raise ImageLoadError(
        label, "cannot order the slices: no ImagePositionPatient and no InstanceNumber"
    )


def _spacing(ds) -> list[float]:
    pixel = _floats(ds.get("PixelSpacing") or [], 2)
    return [round(float(v), 4) for v in pixel] if pixel is not None else [None, None]


def _grey(frame: np.ndarray) -> np.ndarray:
    return frame if frame.ndim == 2 else frame.mean(axis=2).round().astype(np.uint8)


def read_series(members: list[tuple[str, bytes]], label: str, fmt: str) -> tuple[np.ndarray, dict]:
    """Single-frame DICOM files of ONE series ((name, bytes) each) -> a volume ordered along the
    slice normal. Errors name the volume (`label`), then the file."""
    heads = _one_series(members, label)
    n = len(heads)
    try:
        rows = {(int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)) for _, _, ds in heads}
    except (TypeError, ValueError) as err:
        raise ImageLoadError(label, "damaged DICOM file: invalid image size tags") from err
    if len(rows) > 1:
        sizes = ", ".join(f"{c} x {r}" for r, c in sorted(rows))
        raise ImageLoadError(label, f"slices of different sizes in one series ({sizes} pixels)")
    height, width = rows.pop() if rows else (0, 0)
    check_volume_size(label, n, height, width)
    multi = [where for where, _, ds in heads if frame_count(ds) > 1]
    if multi:
        raise ImageLoadError(
            label, f"{multi[0]}a multi-frame DICOM inside a series: give it on its own"
        )
    iops = [_floats(ds.get("ImageOrientationPatient") or [], 6) for _, _, ds in heads]
    for (where, _, _), iop in zip(heads, iops, strict=True):
        normal = _normal(iop, label, where)
    if np.abs(np.array(iops) - iops[0]).max() > 1e-2:
        raise ImageLoadError(label, "slices with different orientations in one series")
    positions, numbers = [], []
    for _, _, ds in heads:
        ipp = _floats(ds.get("ImagePositionPatient") or [], 3)
        positions.append(None if ipp is None else float(ipp @ normal))
        try:
            numbers.append(int(ds.get("InstanceNumber")))
        except (TypeError, ValueError):
            numbers.append(None)
    order, step, how = _order(positions, numbers, label)
    frames = []
    for i in order:
        try:
            frames.append(read_dicom(heads[i][1], heads[i][0]))
        except ImageLoadError as err:
            raise ImageLoadError(label, f"{heads[i][0]}{err.reason}") from err
    slices = np.stack([_grey(scan.frames[0]) for scan in frames])
    first = heads[order[0]][2]
    if step is None:
        step = _floats(
            [first.get("SpacingBetweenSlices") or first.get("SliceThickness") or "nan"], 1
        )
        step = None if step is None else float(step[0])
    info = {
        "format": fmt,
        "shape": [n, height, width],
        "spacing_mm": [None if step is None else round(step, 4), *_spacing(first)],
        "axis": _axis_name(normal),
        "axis_rule": "the slice normal (row x column of ImageOrientationPatient)",
        "order": how,
        "dicom": frames[0].info,
    }
    return np.ascontiguousarray(slices), info


def _frame_geometry(ds, n: int, label: str) -> tuple[np.ndarray, list]:
    """(slice normal, per-frame positions along it or None each) of a multi-frame DICOM."""
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    iop = _floats(ds.get("ImageOrientationPatient") or [], 6)
    if iop is None and shared is not None and "PlaneOrientationSequence" in shared:
        iop = _floats(shared.PlaneOrientationSequence[0].get("ImageOrientationPatient") or [], 6)
    if iop is None and per_frame and "PlaneOrientationSequence" in per_frame[0]:
        iop = _floats(
            per_frame[0].PlaneOrientationSequence[0].get("ImageOrientationPatient") or [], 6
        )
    normal = _normal(iop, label)
    positions: list = [None] * n
    if len(per_frame) == n:
        for k, group in enumerate(per_frame):
            if "PlanePositionSequence" in group:
                ipp = _floats(group.PlanePositionSequence[0].get("ImagePositionPatient") or [], 3)
                positions[k] = None if ipp is None else float(ipp @ normal)
    return normal, positions


def read_multiframe(data: bytes, label: str) -> tuple[np.ndarray, dict]:
    """(slices ordered along the slice normal, non-identifying info) of a multi-frame DICOM."""
    ds = header(data)
    if ds is None:
        raise ImageLoadError(label, "damaged DICOM file: cannot read its header")
    n = frame_count(ds)
    try:
        height, width = int(ds.Rows), int(ds.Columns)
    except (*DECODE_ERRORS, AttributeError) as err:
        raise ImageLoadError(label, "damaged DICOM file: missing image size tags") from err
    check_volume_size(label, n, height, width)
    try:
        normal, positions = _frame_geometry(ds, n, label)
    except ImageLoadError:
        raise
    except (*DECODE_ERRORS, AttributeError) as err:
        raise ImageLoadError(label, f"damaged DICOM plane geometry ({type(err).__name__})") from err
    scan = read_dicom(data, label)
    if all(p is None for p in positions):
        order, how = np.arange(n), "as stored (no per-frame ImagePositionPatient)"
        step = _floats([ds.get("SpacingBetweenSlices") or ds.get("SliceThickness") or "nan"], 1)
        step = None if step is None else float(step[0])
    else:
        order, step, how = _order(positions, list(range(n)), label)
    slices = np.stack([_grey(scan.frames[i]) for i in order])
    info = {
        "format": "DICOM multi-frame",
        "shape": [n, height, width],
        "spacing_mm": [None if step is None else round(step, 4), *_spacing(ds)],
        "axis": _axis_name(normal),
        "axis_rule": "the slice normal (row x column of ImageOrientationPatient)",
        "order": how,
        "dicom": scan.info,
    }
    return np.ascontiguousarray(slices), info


def _one_series(members: list[tuple[str, bytes]], label: str) -> list[tuple]:
    """(where, bytes, header) of each image file (a DICOMDIR index skipped); ImageLoadError when a
    header is damaged or the files hold more than one series."""
    heads = []
    for member, blob in members:
        where = f"{member!r}: "
        ds = header(blob)
        if ds is None:
            raise ImageLoadError(label, f"{where}damaged DICOM file: cannot read its header")
        if str(ds.get("SOPClassUID", "")) == DICOMDIR or "DirectoryRecordSequence" in ds:
            continue  # a DICOMDIR index, not an image
        heads.append((where, blob, ds))
    groups: dict[str, list] = {}
    for where, _, ds in heads:
        groups.setdefault(str(ds.get("SeriesInstanceUID") or "").strip(), []).append((where, ds))
    if len(groups) > 1:
        parts = []
        for entries in groups.values():
            desc = str(entries[0][1].get("SeriesDescription") or "no description").strip()[:40]
            parts.append(f"{desc!r}: {len(entries)} file(s)")
        raise ImageLoadError(
            label,
            f"mixed series: {len(groups)} series in one upload ({'; '.join(parts)}); give one "
            "series per volume",
        )
    return heads
