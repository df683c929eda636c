"""Whole volumes: NIfTI (.nii, .nii.gz), multi-frame DICOM and DICOM series (several files or a
zip of them), read into uint8 slices along the acquisition axis, predicted slice by slice through
`Predictor`, and summed up by a stated volume rule.

Reading (everything in memory: uploads are patient data and are never written to disk):
- `is_volume(data)` / `plan(sources, names)` tell volumes from single scans by CONTENT: the NIfTI
  magic (also inside gzip), a ZIP archive, a multi-frame DICOM that carries slice geometry, and
  single-frame DICOM files of one series (SeriesInstanceUID) given together, at least
  MIN_VOLUME_SLICES of them. A multi-frame DICOM without plane geometry stays a single scan
  (its frames may be cine or time points, not slices; `imageio.load_scan` picks a frame).
- `load_volume(sources, names)` -> `Volume`: (slices, H, W) uint8 plus NON-identifying geometry
  (`Volume.info`: format, shape, spacing, axis and the rule that chose it, slice order). DICOM
  patient tags never reach it (DICOM pixels and tags come through `tumor_model.dicom`).
- The acquisition axis (AXIS_RULE): NIfTI: the header's slice dimension (dim_info) when set,
  else the axis whose voxel spacing is largest by more than 10%, else (isotropic voxels) the
  axial axis, the view the model was trained on. DICOM: the slice normal, row x column of
  ImageOrientationPatient. Slice 1 is the most inferior (axial), right (sagittal) or posterior
  (coronal) one; each NIfTI slice is shown in radiological convention (anterior or superior up,
  patient's right on the left); DICOM slices are shown as stored.
- Refused, with an `ImageLoadError` naming the file and the problem: 4-D data, fewer than
  MIN_VOLUME_SLICES slices, mixed series in one zip, more than MAX_VOLUME_VOXELS voxels or
  MAX_VOLUME_SLICES slices, missing or odd orientation (no qform/sform, no
  ImageOrientationPatient, a degenerate or sheared affine), repeated slice positions, zip bombs.

Predicting: `predict_volume(predictor, volume)` runs every slice through `Predictor` (batched)
and keeps its per-slice result dicts as they are; `verdict(slices, threshold)` applies RULE.
"""

from __future__ import annotations

import gzip
import io
import zlib
from dataclasses import dataclass, field

import numpy as np
import pydicom
from PIL import Image

from . import archive
from .config import CLASS_NAMES
from .dicom import is_dicom, read_dicom
from .errors import (
    DECODE_ERRORS,
    MAX_FILE_BYTES,
    MAX_VOLUME_SLICES,
    MAX_VOLUME_VOXELS,
    MIN_VOLUME_SLICES,
    ImageLoadError,
)
from .imageio import _read_source, check_sides

__all__ = [
    "AXIS_RULE",
    "RULE",
    "RULE_CHECK",
    "RUN",
    "TOP",
    "Planned",
    "counted",
    "Volume",
    "is_volume",
    "load_volume",
    "plan",
    "predict_volume",
    "verdict",
]

AXIS_RULE = (
    "NIfTI: the header's slice dimension (dim_info) when set, else the axis with the largest "
    "voxel spacing (by more than 10%), else (isotropic voxels) axial; DICOM: the slice normal "
    "(row x column of ImageOrientationPatient)"
)

# ----------------------------------------------------------------------------- the volume rule

RUN = 2  # consecutive slices at or above the model's threshold that make a volume "tumour"
TOP = 3  # most suspicious slices listed and shown
NO_VERDICT = "no verdict"
RULE = (
    f"tumour when at least {RUN} consecutive slices have P(tumour) at or above the model's "
    "threshold; slices the guards flag (unusual image, no verdict) are skipped; no verdict "
    "when every slice is flagged"
)
# How RULE was chosen and checked (experiments/volume_rule.py prints it; README, "Volumes").
RULE_CHECK = {
    "model_sha256": "d4a5ee1671dcf602649328050b1d0fb0263ed743844482494a06df1f78217dda",
    "text": (
        "synthetic volumes of 24 real Kaggle slices each, from the shipped model's split "
        "(artifacts/split.csv): per split 2,000 healthy ones and 2,000 with a run of 3-10 "
        f"tumour slices. RUN = {RUN} was chosen on validation (sensitivity 0.993, specificity "
        "0.999); on test it gives sensitivity 0.994, specificity 0.942 (one slice would give "
        "specificity 0.217). Stacked slices come from different patients, unlike a real "
        "volume's neighbours: this checks the rule's logic, it is no clinical validation "
        "(experiments/volume_rule.py, 2-core CPU, 2026-12-02)."
    ),
}


def counted(result: dict) -> bool:
    """Whether a slice's Predictor result takes part in the volume verdict: not flagged by the
    out-of-distribution guard, and a class label (a result without one, or marked as not an MRI
    by a guard of Predictor, gives no verdict and is skipped)."""
    return (
        not result.get("out_of_distribution", False)
        and result.get("is_mri", True) is not False
        and result.get("label") in CLASS_NAMES
    )


def verdict(slices: list[dict], threshold: float, run: int = RUN) -> dict:
    """The volume's verdict by RULE (`run` consecutive slices) from its per-slice Predictor
    results (in slice order).

    Returns {"label": "tumor" | "healthy" | "no verdict", "longest_run": n, "run": [first,
    last] (1-based slice numbers of the longest run, or None), "slices_counted": n}."""
    kept = [(i, r) for i, r in enumerate(slices) if counted(r)]
    best, best_span, current, start = 0, None, 0, None
    for i, result in kept:
        if result["probability"] >= threshold:
            current, start = current + 1, i if current == 0 else start
            if current > best:
                best, best_span = current, [start + 1, i + 1]
        else:
            current = 0
    if not kept:
        label = NO_VERDICT
    else:
        label = CLASS_NAMES[1] if best >= run else CLASS_NAMES[0]
    return {
        "label": label,
        "longest_run": best,
        "run": best_span,
        "slices_counted": len(kept),
    }


def most_suspicious(slices: list[dict], top: int = TOP) -> list[int]:
    """1-based numbers of the `top` slices with the highest P(tumour) (counted slices first)."""
    order = sorted(
        range(len(slices)), key=lambda i: (not counted(slices[i]), -slices[i]["probability"], i)
    )
    return [i + 1 for i in order[:top]]


def predict_volume(predictor, volume: Volume) -> dict:
    """One JSON-friendly dict: the volume's geometry, its per-slice Predictor results (slice
    k is "slices"[k-1]), "probabilities" (the same P(tumour) as a list), the verdict by RULE and
    the most suspicious slices."""
    pairs = predictor.predict_images([volume.image(i) for i in range(volume.n_slices)])
    slices = [
        {"slice": i + 1, **predictor.result(f"{volume.name} [slice {i + 1}]", p, s).to_dict()}
        for i, (p, s) in enumerate(pairs)
    ]
    return {
        "file": volume.name,
        "volume": volume.info,
        "threshold": predictor.threshold,
        **verdict(slices, predictor.threshold),
        "rule": RULE,
        "most_suspicious": most_suspicious(slices),
        "probabilities": [s["probability"] for s in slices],
        "slices": slices,
    }


# ----------------------------------------------------------------------------- the volume


@dataclass(frozen=True, eq=False)
class Volume:
    """A volume read for prediction.

    name: the file (or series) it came from, as used in messages.
    slices: uint8 array (n, H, W) along the acquisition axis (slice 1 first).
    info: NON-identifying facts only: format, shape, spacing_mm (slice, row, column), axis,
      axis_rule, order (how slices were ordered), notes; for DICOM the allowlisted tags of
      `tumor_model.dicom.INFO_TAGS` of its first slice.
    """

    name: str
    slices: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def n_slices(self) -> int:
        return int(self.slices.shape[0])

    def image(self, index: int) -> Image.Image:
        """Slice `index` (0-based) as an RGB PIL image."""
        return Image.fromarray(self.slices[index], "L").convert("RGB")


@dataclass(frozen=True)
class Planned:
    """What `plan` makes of its inputs: a single scan or a volume (its input indices)."""

    kind: str  # "scan" or "volume"
    indices: tuple[int, ...]


# ----------------------------------------------------------------------------- sniffing

_GZIP = b"\x1f\x8b"
DICOMDIR = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage: an index, not an image
_ZIP = (b"PK\x03\x04", b"PK\x05\x06")
_NIFTI_ERRORS = (*DECODE_ERRORS, AttributeError, RuntimeError, zlib.error, gzip.BadGzipFile)


def _nifti_kind(head: bytes) -> str | None:
    """ "NIfTI-1" / "NIfTI-2" for a single-file NIfTI header, "pair" for a .hdr/.img header."""
    if len(head) >= 348 and head[344:348] == b"n+1\x00":
        return "NIfTI-1"
    if len(head) >= 12 and head[4:12] == b"n+2\x00\r\n\x1a\n":
        return "NIfTI-2"
    if len(head) >= 348 and head[344:348] == b"ni1\x00" or head[4:8] == b"ni2\x00":
        return "pair"
    return None


def _gzip_head(data: bytes, size: int = 544) -> bytes:
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[:65536], size)
    except zlib.error:
        return b""


def _dicom_header(data: bytes):
    try:
        return pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=True)
    except (*DECODE_ERRORS, AttributeError, NotImplementedError, RuntimeError):
        return None


def _has_plane_geometry(ds) -> bool:
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


def _frames(ds) -> int:
    try:
        return int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        return 1


def _classify(data: bytes) -> tuple[str, str | None]:
    """("volume" | "slice" | "scan", series UID for a "slice") of one input's bytes."""
    head = bytes(data[:1024])
    if _nifti_kind(head) or head[:4] in _ZIP:
        return "volume", None
    if head.startswith(_GZIP):
        return ("volume" if _nifti_kind(_gzip_head(data)) else "scan"), None
    if not is_dicom(data):
        return "scan", None
    ds = _dicom_header(data)
    if ds is None:
        return "scan", None
    if _frames(ds) > 1:
        return ("volume" if _has_plane_geometry(ds) else "scan"), None
    uid = str(ds.get("SeriesInstanceUID") or "").strip()
    return ("slice", uid) if uid else ("scan", None)


def is_volume(data: bytes) -> bool:
    """True for a single input that is a volume by itself: NIfTI (or gzipped NIfTI), a ZIP
    archive, or a multi-frame DICOM with plane geometry. Never raises."""
    return _classify(data)[0] == "volume"


def plan(items: list[bytes]) -> list[Planned]:
    """Sort inputs (their bytes, in order) into single scans and volumes.

    A volume is one input (see `is_volume`), or single-frame DICOM inputs of one series (same
    SeriesInstanceUID) when there are at least MIN_VOLUME_SLICES of them; fewer stay scans. Each
    entry sits where its first input was; inputs that cannot be read are scans (predicting them
    gives their error)."""
    entries: list[Planned] = []
    series: dict[str, list[int]] = {}
    for i, data in enumerate(items):
        kind, uid = _classify(data) if data else ("scan", None)
        if kind == "slice":
            series.setdefault(uid, []).append(i)
        else:
            entries.append(Planned(kind, (i,)))
    for members in series.values():
        if len(members) >= MIN_VOLUME_SLICES:
            entries.append(Planned("volume", tuple(members)))
        else:
            entries.extend(Planned("scan", (i,)) for i in members)
    return sorted(entries, key=lambda e: e.indices[0])


def predict_inputs(predictor, sources: list, names: list[str]) -> list[dict]:
    """What `neuroscan predict` prints: one dict per scan (`Predictor.predict_files`) or per
    volume (`predict_volume`, or {"file", "error"}), in input order; a series of files is one
    entry (named by `series_name`, its files under "files")."""
    if len(names) != len(sources):
        raise ValueError(f"{len(sources)} sources but {len(names)} names")
    entries = plan(_peek(s, n) for s, n in zip(sources, names, strict=True))
    scans = [e.indices[0] for e in entries if e.kind == "scan"]
    done = dict(
        zip(
            scans,
            predictor.predict_files([sources[i] for i in scans], [names[i] for i in scans]),
            strict=True,
        )
    )
    out = []
    for entry in entries:
        if entry.kind == "scan":
            out.append(done[entry.indices[0]])
            continue
        members = [names[i] for i in entry.indices]
        try:
            vol = load_volume([sources[i] for i in entry.indices], members)
            result = predict_volume(predictor, vol)
        except ImageLoadError as err:
            result = {"file": series_name(members), "error": str(err)}
        out.append(result if len(members) == 1 else {**result, "files": members})
    return out


def _peek(source, name) -> bytes | None:
    """An input's bytes for `plan`, or None when it cannot be read (its scan error says why)."""
    try:
        return _read_source(source, name)[0]
    except ImageLoadError:
        return None


def series_name(names: list[str]) -> str:
    """How a series given as several files is named in messages and results."""
    return names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1} files of its series)"


# ----------------------------------------------------------------------------- loading


def load_volume(sources: list, names: list[str] | None = None) -> Volume:
    """Read one volume: a NIfTI file, a zip of one DICOM series, a multi-frame DICOM with plane
    geometry, or several single-frame DICOM files of one series. `sources` are paths, bytes or
    binary file objects; `names` are used in messages. Raises ImageLoadError."""
    if not sources:
        raise ValueError("load_volume() needs at least one source")
    names = list(names) if names is not None else [None] * len(sources)
    blobs = []
    for source, name in zip(sources, names, strict=True):
        data, label = _read_source(source, name)
        if not data:
            raise ImageLoadError(label, "empty file (0 bytes)")
        if len(data) > MAX_FILE_BYTES:
            raise ImageLoadError(
                label, f"file too large ({len(data):,} bytes, the limit is {MAX_FILE_BYTES:,})"
            )
        blobs.append((label, data))
    if len(blobs) > 1:
        return _read_series(blobs, series_name([label for label, _ in blobs]), "DICOM series")
    label, data = blobs[0]
    head = data[:1024]
    if head.startswith(_GZIP):
        return _read_nifti(_gunzip(data, label), label)
    if _nifti_kind(head):
        return _read_nifti(data, label)
    if head[:4] in _ZIP:
        return _read_series(_unzip(data, label), label, "DICOM series (zip)")
    if is_dicom(data):
        return _read_multiframe(data, label)
    raise ImageLoadError(
        label, "not a volume (NIfTI, multi-frame DICOM or a zip of a DICOM series)"
    )


def _check_size(label: str, n: int, height: int, width: int) -> None:
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


def _bounded_inflate(stream, limit: int, label: str, what: str) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise ImageLoadError(
            label,
            f"{what} inflates to more than {limit:,} bytes (the limit; possible zip bomb)",
        )
    return data


def _gunzip(data: bytes, label: str) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            out = _bounded_inflate(stream, MAX_FILE_BYTES, label, "the gzip content")
    except (OSError, EOFError, zlib.error) as err:
        raise ImageLoadError(label, f"damaged gzip file ({type(err).__name__})") from err
    if not _nifti_kind(out[:1024]):
        raise ImageLoadError(label, "a gzip archive that does not hold a NIfTI volume")
    return out


# ----------------------------------------------------------------------------- NIfTI


def _read_nifti(data: bytes, label: str) -> Volume:
    import nibabel as nib

    kind = _nifti_kind(data[:1024])
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
        *_NIFTI_ERRORS,
        nib.spatialimages.HeaderDataError,
        nib.filebasedimages.ImageFileError,
    ) as err:
        raise ImageLoadError(label, f"damaged {kind} header ({type(err).__name__})") from err
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
    if len(data) < offset + voxels * dtype.itemsize:
        raise ImageLoadError(
            label,
            f"truncated {kind} file: {len(data):,} bytes, its header needs "
            f"{offset + voxels * dtype.itemsize:,}",
        )
    if codes == (0, 0):
        raise ImageLoadError(
            label,
            f"missing orientation: the {kind} header has neither a qform nor an sform "
            "(qform_code = sform_code = 0), so the slice direction is unknown",
        )
    ornt = _orientation(np.asarray(img.affine, dtype=np.float64), label)
    axis, rule = _nifti_axis(slice_dim, zooms, ornt)
    try:
        values = np.asarray(img.get_fdata(dtype=np.float32)).reshape(shape)
    except (*_NIFTI_ERRORS, nib.spatialimages.HeaderDataError) as err:
        raise ImageLoadError(label, f"cannot read the {kind} data ({type(err).__name__})") from err
    values = nib.orientations.apply_orientation(values, ornt)  # voxel axes -> R, A, S
    spacing = [zooms[int(np.flatnonzero(ornt[:, 0] == k)[0])] for k in range(3)]
    grey = _to_uint8(values)
    slices = np.stack([_display(np.take(grey, k, axis=axis)) for k in range(grey.shape[axis])])
    n, height, width = slices.shape
    _check_size(label, n, height, width)
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
    return Volume(label, np.ascontiguousarray(slices), info)


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


# ----------------------------------------------------------------------------- zip


def _unzip(data: bytes, label: str) -> list[tuple[str, bytes]]:
    """The DICOM members of a zip, read in memory with zip-bomb limits (`archive.members`)."""
    every = archive.members(data, label)
    dicoms = [(name, blob) for name, blob in every if is_dicom(blob)]
    if not dicoms:
        raise ImageLoadError(
            label, f"the ZIP archive holds no DICOM files ({len(every)} other file(s))"
        )
    return dicoms


# ----------------------------------------------------------------------------- DICOM


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


def _read_series(members: list[tuple[str, bytes]], label: str, fmt: str) -> Volume:
    """Single-frame DICOM files of ONE series ((name, bytes) each) -> a volume ordered along the
    slice normal. Errors name the volume (`label`), then the file."""
    heads = []
    for member, blob in members:
        where = f"{member!r}: "
        ds = _dicom_header(blob)
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
    n = len(heads)
    try:
        rows = {(int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)) for _, _, ds in heads}
    except (TypeError, ValueError) as err:
        raise ImageLoadError(label, "damaged DICOM file: invalid image size tags") from err
    if len(rows) > 1:
        sizes = ", ".join(f"{c} x {r}" for r, c in sorted(rows))
        raise ImageLoadError(label, f"slices of different sizes in one series ({sizes} pixels)")
    height, width = rows.pop() if rows else (0, 0)
    _check_size(label, n, height, width)
    multi = [where for where, _, ds in heads if _frames(ds) > 1]
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
    return Volume(label, np.ascontiguousarray(slices), info)


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


def _read_multiframe(data: bytes, label: str) -> Volume:
    ds = _dicom_header(data)
    if ds is None:
        raise ImageLoadError(label, "damaged DICOM file: cannot read its header")
    n = _frames(ds)
    try:
        height, width = int(ds.Rows), int(ds.Columns)
    except (*DECODE_ERRORS, AttributeError) as err:
        raise ImageLoadError(label, "damaged DICOM file: missing image size tags") from err
    _check_size(label, n, height, width)
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
    return Volume(label, np.ascontiguousarray(slices), info)
