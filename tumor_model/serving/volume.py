"""Whole volumes: NIfTI (.nii, .nii.gz), multi-frame DICOM and DICOM series (several files or a
zip of them), read into uint8 slices along the acquisition axis, predicted slice by slice through
`Predictor`, and summed up by a stated volume rule.

Reading (everything in memory: uploads are patient data and are never written to disk). This
module sorts the inputs and picks the reader; the readers are `nifti` (NIfTI files) and
`dicom_series` (DICOM series, zips of them and multi-frame DICOM):
- `is_volume(data)` / `plan(sources, names)` tell volumes from single scans by CONTENT: the NIfTI
  magic (also inside gzip), a ZIP archive, a multi-frame DICOM that carries slice geometry, and
  single-frame DICOM files of one series (SeriesInstanceUID) given together, at least
  MIN_VOLUME_SLICES of them. A multi-frame DICOM without plane geometry stays a single scan
  (its frames may be cine or time points, not slices; `imageio.load_scan` picks a frame).
- `load_volume(sources, names)` -> `Volume`: (slices, H, W) uint8 plus NON-identifying geometry
  (`Volume.info`: format, shape, spacing, axis and the rule that chose it, slice order). DICOM
  patient tags never reach it (DICOM pixels and tags come through `tumor_model.io.dicom`).
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

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from tumor_model.config import CLASS_NAMES
from tumor_model.errors import MIN_VOLUME_SLICES, ImageLoadError
from tumor_model.io import nifti
from tumor_model.io.imageio import is_dicom, read_checked, read_source

__all__ = [
    "AXIS_RULE",
    "RULE",
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
# How RULE was chosen and checked on a model: its artifacts folder's volume_rule.json, written by
# `neuroscan volume-rule --save` (evaluation.volume_rule), read by serving.volume_check.


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
      `tumor_model.io.dicom.INFO_TAGS` of its first slice.
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


_ZIP = (b"PK\x03\x04", b"PK\x05\x06")


def _classify(data: bytes) -> tuple[str, str | None]:
    """("volume" | "slice" | "scan", series UID for a "slice") of one input's bytes."""
    head = bytes(data[:1024])
    if nifti.header_kind(head) or head[:4] in _ZIP:
        return "volume", None
    if head.startswith(nifti.GZIP):
        return ("volume" if nifti.header_kind(nifti.gzip_head(data)) else "scan"), None
    if not is_dicom(data):
        return "scan", None
    from tumor_model.io import dicom_series  # pydicom: imported on the first DICOM input

    ds = dicom_series.header(data)
    if ds is None:
        return "scan", None
    if dicom_series.frame_count(ds) > 1:
        return ("volume" if dicom_series.has_plane_geometry(ds) else "scan"), None
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


def predict_inputs(predictor, sources: list, names: list[str]):
    """What `neuroscan predict` prints, yielded in input order as it is computed: one dict per
    scan (`Predictor.predict_stream`: read in parallel, constant memory) or per volume
    (`predict_volume`, or {"file", "error"}); a series of files is one entry (named by
    `series_name`, its files under "files")."""
    if len(names) != len(sources):
        raise ValueError(f"{len(sources)} sources but {len(names)} names")
    entries = plan(_peek(s, n) for s, n in zip(sources, names, strict=True))
    run: list[int] = []  # consecutive scans, predicted as one stream
    for entry in [*entries, None]:
        if entry is not None and entry.kind == "scan":
            run.append(entry.indices[0])
            continue
        if run:
            yield from predictor.predict_stream([sources[i] for i in run], [names[i] for i in run])
            run = []
        if entry is not None:
            yield predict_planned(
                predictor, [sources[i] for i in entry.indices], [names[i] for i in entry.indices]
            )


def predict_planned(predictor, sources: list, members: list[str]) -> dict:
    """One volume's result (or its error line) from its input(s)."""
    try:
        result = predict_volume(predictor, load_volume(sources, members))
    except ImageLoadError as err:
        result = {"file": series_name(members), "error": str(err)}
    return result if len(members) == 1 else {**result, "files": members}


def _peek(source, name) -> bytes | None:
    """An input's bytes for `plan`, or None when it cannot be read (its scan error says why)."""
    try:
        return read_source(source, name)[0]
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
        data, label = read_checked(source, name)
        blobs.append((label, data))
    from tumor_model.io import dicom_series  # pydicom: imported when a volume is read

    if len(blobs) > 1:
        name = series_name([label for label, _ in blobs])
        return Volume(name, *dicom_series.read_series(blobs, name, "DICOM series"))
    label, data = blobs[0]
    head = data[:1024]
    if head.startswith(nifti.GZIP):
        return Volume(label, *nifti.read(nifti.gunzip(data, label), label))
    if nifti.header_kind(head):
        return Volume(label, *nifti.read(data, label))
    if head[:4] in _ZIP:
        members = dicom_series.unzip(data, label)
        return Volume(label, *dicom_series.read_series(members, label, "DICOM series (zip)"))
    if is_dicom(data):
        return Volume(label, *dicom_series.read_multiframe(data, label))
    raise ImageLoadError(
        label, "not a volume (NIfTI, multi-frame DICOM or a zip of a DICOM series)"
    )
