"""Generated volumes for the tests (no downloads): a head phantom as NIfTI, multi-frame DICOM,
a DICOM series (files or a zip), and the bad volumes `tumor_model.serving.volume` must refuse.

Every DICOM here carries fake patient tags (FAKE_PHI) that must never come out of the package.
"""

from __future__ import annotations

import gzip
import io
import zipfile

import numpy as np

FAKE_PHI = ("Doe^Jane", "PID-0001", "19700101", "Test Hospital")


def phantom(shape=(48, 56, 12), tumour_slices=(5, 6, 7), seed: int = 0) -> np.ndarray:
    """(X, Y, Z) int16, R/A/S voxel order: an ellipsoid 'head' with texture; a bright sphere in
    axial slices `tumour_slices`; an unmistakable marker in the anterior-right corner region
    (high y, high x) of each slice, so that display orientation can be checked."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = shape
    x, y, z = np.meshgrid(
        np.linspace(-1, 1, nx), np.linspace(-1, 1, ny), np.linspace(-1, 1, nz), indexing="ij"
    )
    head = (x / 0.8) ** 2 + (y / 0.9) ** 2 + (z / 1.3) ** 2 <= 1
    vol = np.where(head, 400 + 200 * np.sin(6 * x) * np.cos(5 * y), 0.0)
    vol += rng.normal(0, 15, shape) * head
    for k in tumour_slices:
        blob = (x[:, :, k] - 0.25) ** 2 + (y[:, :, k] + 0.2) ** 2 <= 0.2**2
        vol[:, :, k][blob] = 1400
    vol[-4:, -4:, :] = 2000  # marker: patient's right (high x in RAS+), anterior (high y)
    return vol.astype(np.int16)


def nifti_bytes(
    data: np.ndarray,
    zooms=(1.0, 1.0, 5.0),
    affine: np.ndarray | None = None,
    gz: bool = False,
    version: int = 1,
    slice_dim: int | None = None,
    codes: tuple[int, int] | None = None,
) -> bytes:
    """A single-file NIfTI of `data`: sform = `affine` (default: RAS+ with `zooms`), code 2
    (aligned), no qform; `codes` = (sform_code, qform_code) overrides the codes."""
    import nibabel as nib

    if affine is None:
        affine = np.diag([*zooms[:3], 1.0])
    klass = nib.Nifti1Image if version == 1 else nib.Nifti2Image
    img = klass(data, None)  # the header alone says the geometry (even a degenerate one)
    img.header.set_zooms((tuple(zooms) + (1.0,) * data.ndim)[: data.ndim])
    sform, qform = (2, 0) if codes is None else codes
    if sform:
        img.header.set_sform(affine, code=int(sform))
    img.header["sform_code"], img.header["qform_code"] = sform, qform
    if slice_dim is not None:
        img.header.set_dim_info(slice=slice_dim)
    raw = img.to_bytes()
    return gzip.compress(raw, mtime=0) if gz else raw


def _dataset(pixels: np.ndarray, series_uid: str, **tags):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = tags.pop("sop_class", MRImageStorage)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.InstitutionName = FAKE_PHI
    ds.Modality = "MR"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesDescription = "T1 axial"
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelSpacing = [0.9, 0.8]
    ds.SliceThickness = 5.0
    for key, value in tags.items():
        if value is None:
            if key in ds:
                delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.PixelData = np.ascontiguousarray(pixels.astype(np.uint16)).tobytes()
    return ds


def _save(ds) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]  # rows along +x, columns along +y: normal +z


def series_files(
    n: int = 8,
    size=(40, 48),
    uid: str = "1.2.826.0.1.3680043.8.498.1",
    shuffle: bool = True,
    prefix: str = "",
    **tags,
) -> list[tuple[str, bytes]]:
    """n single-frame DICOM slices of one series (file names in a shuffled order); slice k
    (0-based along +z) has brightness 100 * (k + 1) in its centre and position z = 5 k mm.
    `tags` override tags of every slice (None removes one; a callable gets k)."""
    height, width = size
    files = []
    for k in range(n):
        pixels = np.zeros((height, width), np.uint16)
        pixels[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 100 * (k + 1)
        values = {
            "ImageOrientationPatient": AXIAL,
            "ImagePositionPatient": [0.0, 0.0, 5.0 * k],
            "InstanceNumber": k + 1,
            "WindowCenter": 100 * n / 2,
            "WindowWidth": 100 * n,
        }
        values.update({key: (v(k) if callable(v) else v) for key, v in tags.items()})
        files.append((f"{prefix}IM_{k:04d}.dcm", _save(_dataset(pixels, uid, **values))))
    if shuffle:
        order = np.random.default_rng(1).permutation(n)
        files = [files[i] for i in order]
    return files


def zip_bytes(files: list[tuple[str, bytes]], method=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as archive:
        for name, data in files:
            archive.writestr(name, data)
    return buf.getvalue()


def multiframe_bytes(
    n: int = 6, size=(40, 48), positions: list[float] | None = None, orientation=AXIAL
) -> bytes:
    """An enhanced-style multi-frame MR: shared PlaneOrientationSequence, per-frame
    PlanePositionSequence (default z = 5 k mm, stored in REVERSE order); frame stored i has
    brightness 100 * (its z rank + 1)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    height, width = size
    if positions is None:
        positions = [5.0 * k for k in range(n)][::-1]
    ranks = np.argsort(np.argsort(positions, kind="stable"), kind="stable")
    pixels = np.zeros((n, height, width), np.uint16)
    for i, rank in enumerate(ranks):
        pixels[i, height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 100 * (rank + 1)
    ds = _dataset(pixels, "1.2.826.0.1.3680043.8.498.2", NumberOfFrames=n)
    ds.WindowCenter, ds.WindowWidth = 100 * n / 2, 100 * n
    shared = Dataset()
    if orientation is not None:
        plane = Dataset()
        plane.ImageOrientationPatient = orientation
        shared.PlaneOrientationSequence = Sequence([plane])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for z in positions:
        group, pos = Dataset(), Dataset()
        pos.ImagePositionPatient = [0.0, 0.0, float(z)]
        group.PlanePositionSequence = Sequence([pos])
        frames.append(group)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    return _save(ds)


def sample_volume(art, tumour: int = 4, healthy: int = 10) -> bytes:
    """A .nii.gz stacked from the artifacts' shipped sample slices (held-out Kaggle thumbnails,
    different patients): `healthy` healthy slices with `tumour` tumour slices in the middle,
    each padded onto 128 x 128, stored so that `serving.volume` shows them as they are."""
    import pandas as pd
    from PIL import Image, ImageOps

    table = pd.read_csv(art / "samples" / "samples.csv")
    files = {c: list(table.file[table.class_name == c]) for c in ("healthy", "tumor")}
    names = files["healthy"][: healthy // 2] + files["tumor"][:tumour]
    names += files["healthy"][healthy // 2 : healthy]
    planes = []
    for name in names:
        img = Image.open(art / "samples" / name).convert("L")
        img = np.asarray(ImageOps.pad(img, (128, 128), color=0))
        planes.append(img.T[::-1, ::-1])  # the inverse of the radiological display
    return nifti_bytes(np.stack(planes, axis=2), zooms=(0.9, 0.9, 5.0), gz=True)
