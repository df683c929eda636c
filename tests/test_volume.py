"""serving.volume: NIfTI (.nii, .nii.gz, NIfTI-2), multi-frame DICOM and DICOM series (files
or a zip) read along the acquisition axis; every bad volume refused with a clear error; the
volume rule; prediction through Predictor and the CLI's JSON lines. Generated fixtures only
(tests/volumes.py)."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from tumor_model import errors
from tumor_model.config import CLASS_NAMES
from tumor_model.io import imageio, nifti
from tumor_model.io.dicom import INFO_TAGS
from tumor_model.io.imageio import ImageLoadError
from tumor_model.serving import volume as vol

from badfiles import valid_image_bytes
from conftest import cli
from streamlit_server import shipped_artifacts
from volumes import (
    FAKE_PHI,
    multiframe_bytes,
    nifti_bytes,
    phantom,
    series_files,
    zip_bytes,
)


def _load(data: bytes, name: str = "v.nii") -> vol.Volume:
    return vol.load_volume([data], [name])


def _refused(data, name: str, *needles: str) -> str:
    sources = data if isinstance(data, list) else [data]
    names = name if isinstance(name, list) else [name]
    with pytest.raises(ImageLoadError) as err:
        vol.load_volume(sources, names)
    message = str(err.value)
    for needle in needles:
        assert needle in message, message
    for secret in FAKE_PHI:
        assert secret not in message
    return message


def _centre(volume: vol.Volume) -> list[int]:
    h, w = volume.slices.shape[1:]
    return [int(s[h // 2, w // 2]) for s in volume.slices]


# ----------------------------------------------------------------------------- NIfTI


def test_nifti_slices_along_the_thick_axis_in_radiological_display():
    data = phantom()  # (X, Y, Z) = (48, 56, 12), tumour in axial slices 5-7 (0-based)
    volume = _load(nifti_bytes(data, zooms=(1.0, 1.0, 5.0)))
    assert volume.slices.dtype == np.uint8 and volume.slices.shape == (12, 56, 48)
    info = volume.info
    assert info["format"] == "NIfTI-1" and info["axis"] == "axial"
    assert info["axis_rule"].startswith("largest voxel spacing (5 mm")
    assert info["spacing_mm"] == [5.0, 1.0, 1.0] and info["orientation"] == "RAS"
    # the marker (patient's right, anterior) is top-left: anterior up, right on the left
    for plane in volume.slices:
        assert plane[:4, :4].min() == 255 and plane[-4:, -4:].max() < 255
    # the tumour's bright sphere (1400 of 2000, head tissue <= ~650) is in slices 6-8 only
    bright = [int((s[4:] > 120).sum()) for s in volume.slices]
    assert min(bright[5:8]) > 30 and bright[:5] + bright[8:] == [0] * 9


def test_nii_gz_and_nifti2_give_the_same_slices():
    data = phantom()
    plain = _load(nifti_bytes(data)).slices
    assert np.array_equal(_load(nifti_bytes(data, gz=True), "v.nii.gz").slices, plain)
    two = _load(nifti_bytes(data, version=2), "v2.nii")
    assert two.info["format"] == "NIfTI-2" and np.array_equal(two.slices, plain)


def test_a_flipped_affine_is_reoriented_to_the_same_view():
    """The same head stored left-right and front-back flipped (LPS voxel order): same slices."""
    data = phantom()
    affine = np.diag([-1.0, -1.0, 5.0, 1.0])
    affine[:3, 3] = [47.0, 55.0, 0.0]
    flipped = _load(nifti_bytes(data[::-1, ::-1, :].copy(), affine=affine))
    assert flipped.info["orientation"] == "LPS"
    assert np.array_equal(flipped.slices, _load(nifti_bytes(data)).slices)


@pytest.mark.parametrize(
    ("zooms", "slice_dim", "axis", "rule", "n"),
    [
        ((5.0, 1.0, 1.0), None, "sagittal", "largest voxel spacing", 48),
        ((1.0, 4.0, 1.0), None, "coronal", "largest voxel spacing", 56),
        ((1.0, 1.0, 1.0), None, "axial", "isotropic voxels", 12),
        ((1.0, 1.0, 1.0), 1, "coronal", "dim_info", 56),  # the header says so: it wins
        ((1.0, 1.0, 5.0), 0, "sagittal", "dim_info", 48),
    ],
)
def test_the_acquisition_axis_rule(zooms, slice_dim, axis, rule, n):
    volume = _load(nifti_bytes(phantom(), zooms=zooms, slice_dim=slice_dim))
    assert volume.info["axis"] == axis and rule in volume.info["axis_rule"]
    assert volume.n_slices == n


def test_a_trailing_unit_dimension_is_not_4d():
    volume = _load(nifti_bytes(phantom()[..., None]))
    assert volume.n_slices == 12


# ----------------------------------------------------------------------------- DICOM


def test_multiframe_dicom_ordered_by_frame_positions():
    volume = _load(multiframe_bytes(n=6), "enhanced.dcm")  # frames stored top to bottom
    assert volume.slices.shape == (6, 40, 48)
    centre = _centre(volume)
    assert centre == sorted(centre) and len(set(centre)) == 6  # now inferior to superior
    info = volume.info
    assert info["format"] == "DICOM multi-frame" and info["axis"] == "axial"
    assert info["order"] == "ImagePositionPatient along the slice normal"
    assert info["spacing_mm"] == [5.0, 0.9, 0.8]
    assert info["dicom"]["Modality"] == "MR"


@pytest.mark.parametrize("as_zip", [False, True], ids=["files", "zip"])
def test_dicom_series_sorted_along_the_normal(as_zip):
    files = series_files(n=8)  # given shuffled
    if as_zip:
        volume = _load(zip_bytes(files), "series.zip")
        assert volume.name == "series.zip" and volume.info["format"] == "DICOM series (zip)"
    else:
        volume = vol.load_volume([d for _, d in files], [n for n, _ in files])
        assert volume.name == f"{files[0][0]} (+7 files of its series)"
    centre = _centre(volume)
    assert centre == sorted(centre) and len(set(centre)) == 8
    assert volume.info["spacing_mm"] == [5.0, 0.9, 0.8]
    assert volume.info["order"] == "ImagePositionPatient along the slice normal"


def test_series_without_positions_falls_back_to_instance_number():
    files = series_files(n=5, ImagePositionPatient=None)
    volume = vol.load_volume([d for _, d in files], [n for n, _ in files])
    assert volume.info["order"] == "InstanceNumber (no ImagePositionPatient)"
    assert _centre(volume) == sorted(_centre(volume))


def test_zip_skips_non_dicom_members():
    files = [*series_files(n=4), ("README.txt", b"scanner export"), ("__MACOSX/._x", b"\0")]
    assert _load(zip_bytes(files), "s.zip").n_slices == 4


def test_volume_info_and_errors_hold_no_patient_tags():
    for volume in (
        _load(multiframe_bytes(), "m.dcm"),
        _load(zip_bytes(series_files(n=4)), "s.zip"),
    ):
        text = repr(volume.info)
        assert set(volume.info["dicom"]) <= {*INFO_TAGS, "TransferSyntax"}
        for secret in FAKE_PHI:
            assert secret not in text


# ----------------------------------------------------------------------------- bad volumes


def _shape_claim(shape) -> bytes:
    """A valid small NIfTI whose header claims `shape` (no data for it)."""
    import nibabel as nib

    raw = bytearray(nifti_bytes(np.zeros((4, 4, 4), np.int16)))
    hdr = nib.Nifti1Header.from_fileobj(io.BytesIO(bytes(raw)))
    hdr.set_data_shape(shape)
    raw[:348] = hdr.binaryblock
    return bytes(raw)


def _bomb_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_BZIP2) as archive:
        archive.writestr("IM_0001.dcm", bytes(64 * 2**20))
    assert len(buf.getvalue()) < 2**16  # bzip2 packs 64 MiB of zeros into a few hundred bytes
    return buf.getvalue()


SHEAR = np.array([[1.0, 0.3, 0, 0], [0, 1.0, 0, 0], [0, 0, 5.0, 0], [0, 0, 0, 1]])
FLAT = np.array([[1.0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 5.0, 0], [0, 0, 0, 1]])

BAD = {
    "4-D": (lambda: nifti_bytes(np.zeros((16, 16, 8, 3), np.int16)), "4d.nii", ["4-D NIfTI-1"]),
    "two slices": (
        lambda: nifti_bytes(np.zeros((16, 16, 2), np.int16)),
        "thin.nii",
        ["only 2 slices", "at least 3"],
    ),
    "one slice": (lambda: nifti_bytes(np.zeros((16, 16), np.int16)), "flat.nii", ["one slice"]),
    "huge": (lambda: _shape_claim((1024, 1024, 200)), "huge.nii", ["volume too large", "64,000"]),
    "truncated": (lambda: nifti_bytes(phantom())[:2000], "cut.nii", ["truncated NIfTI-1"]),
    "no orientation": (
        lambda: nifti_bytes(phantom(), codes=(0, 0)),
        "bare.nii",
        ["missing orientation", "qform_code = sform_code = 0"],
    ),
    "sheared": (lambda: nifti_bytes(phantom(), affine=SHEAR), "shear.nii", ["not perpendicular"]),
    "degenerate": (lambda: nifti_bytes(phantom(), affine=FLAT), "flat.nii", ["degenerate"]),
    "gzip of no NIfTI": (
        lambda: __import__("gzip").compress(b"hello" * 100),
        "x.nii.gz",
        ["does not hold a NIfTI"],
    ),
    "mixed series": (
        lambda: zip_bytes(
            [
                *series_files(n=3),
                *series_files(n=3, uid="1.2.3.4", prefix="t2/", SeriesDescription="T2 ax"),
            ]
        ),
        "mixed.zip",
        ["mixed series: 2 series", "'T1 axial': 3 file(s)", "'T2 ax': 3 file(s)"],
    ),
    "zip of two slices": (
        lambda: zip_bytes(series_files(n=2)),
        "two.zip",
        ["only 2 slices"],
    ),
    "zip without DICOM": (
        lambda: zip_bytes([("a.png", valid_image_bytes("PNG"))]),
        "pngs.zip",
        ["holds no DICOM files (1 other file(s))"],
    ),
    "zip bomb": (_bomb_zip, "bomb.zip", ["IM_0001.dcm", "possible zip bomb"]),
    "damaged zip": (lambda: zip_bytes(series_files(n=3))[:300], "cut.zip", ["damaged ZIP"]),
    "series without orientation": (
        lambda: zip_bytes(series_files(n=4, ImageOrientationPatient=None)),
        "noiop.zip",
        ["missing orientation", "ImageOrientationPatient"],
    ),
    "odd orientation": (
        lambda: zip_bytes(series_files(n=4, ImageOrientationPatient=[1, 0, 0, 0.5, 1, 0])),
        "odd.zip",
        ["odd orientation", "not two perpendicular unit vectors"],
    ),
    "repeated positions (4-D series)": (
        lambda: zip_bytes(series_files(n=4, ImagePositionPatient=lambda k: [0, 0, 5.0 * (k // 2)])),
        "echoes.zip",
        ["slices at the same position", "4-D"],
    ),
    "slices of two sizes": (
        lambda: zip_bytes([*series_files(n=3), *series_files(n=1, size=(32, 32), prefix="small/")]),
        "sizes.zip",
        ["different sizes"],
    ),
    "multi-frame without orientation": (
        lambda: multiframe_bytes(orientation=None),
        "mf.dcm",
        ["missing orientation"],
    ),
    "multi-frame 4-D": (
        lambda: multiframe_bytes(n=6, positions=[0, 0, 5, 5, 10, 10]),
        "mf4d.dcm",
        ["slices at the same position", "4-D"],
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_volumes_are_refused_naming_the_file(case):
    make, name, needles = BAD[case]
    message = _refused(make(), name, *needles)
    assert message.startswith(repr(name)), message
    assert "Traceback" not in message


def test_series_too_large_for_the_voxel_limit(monkeypatch):
    monkeypatch.setattr(imageio, "MAX_VOLUME_VOXELS", 5 * 40 * 48)  # check_volume_size's
    files = series_files(n=6)
    message = _refused(
        [d for _, d in files], [n for n, _ in files], "volume too large", "11,520", "9,600"
    )
    assert message.startswith(repr(f"{files[0][0]} (+5 files of its series)"))


def test_the_limits_live_in_errors():
    assert imageio.MAX_VOLUME_VOXELS is nifti.MAX_VOLUME_VOXELS is errors.MAX_VOLUME_VOXELS
    assert vol.MIN_VOLUME_SLICES == imageio.MIN_VOLUME_SLICES == errors.MIN_VOLUME_SLICES == 3


# ----------------------------------------------------------------------------- planning


def test_plan_tells_volumes_from_scans_by_content():
    series = [d for _, d in series_files(n=4)]
    items = [
        valid_image_bytes("PNG"),
        *series[:2],
        nifti_bytes(phantom(), gz=True),
        *series[2:],
        zip_bytes(series_files(n=3)),
        multiframe_bytes(),
        b"",
        *[d for _, d in series_files(n=2, uid="9.9.9")],  # two slices of a series: scans
    ]
    planned = vol.plan(items)
    assert [(p.kind, p.indices) for p in planned] == [
        ("scan", (0,)),
        ("volume", (1, 2, 4, 5)),
        ("volume", (3,)),
        ("volume", (6,)),
        ("volume", (7,)),
        ("scan", (8,)),
        ("scan", (9,)),
        ("scan", (10,)),
    ]
    assert not vol.is_volume(valid_image_bytes("PNG")) and vol.is_volume(nifti_bytes(phantom()))


def test_multiframe_without_geometry_stays_a_scan():
    from badfiles import odd_files

    assert not vol.is_volume(odd_files()["mr_multiframe.dcm"])


# ----------------------------------------------------------------------------- the rule


def _slice(p: float, unusual: bool = False) -> dict:
    return {"probability": p, "out_of_distribution": unusual, "label": CLASS_NAMES[p >= 0.5]}


@pytest.mark.parametrize(
    ("probs", "unusual", "label", "longest", "run"),
    [
        ([0.1, 0.9, 0.2, 0.8, 0.1], [], "healthy", 1, [2, 2]),  # isolated slices
        ([0.1, 0.9, 0.8, 0.2], [], "tumor", 2, [2, 3]),
        ([0.1, 0.9, 0.1, 0.8, 0.1], [2], "tumor", 2, [2, 4]),  # the unusual slice is skipped
        ([0.9, 0.9, 0.9], [0, 1, 2], "no verdict", 0, None),
        ([0.1, 0.2, 0.3], [], "healthy", 0, None),
    ],
)
def test_verdict_rule(probs, unusual, label, longest, run):
    slices = [_slice(p, i in unusual) for i, p in enumerate(probs)]
    got = vol.verdict(slices, 0.5, run=2)
    assert (got["label"], got["longest_run"], got["run"]) == (label, longest, run)
    assert got["slices_counted"] == len(probs) - len(unusual)


def test_most_suspicious_prefers_counted_slices():
    slices = [_slice(0.3), _slice(0.99, unusual=True), _slice(0.7), _slice(0.6)]
    assert vol.most_suspicious(slices, 3) == [3, 4, 1]


# ----------------------------------------------------------------------------- predicting


@pytest.fixture(scope="module")
def art(request):
    return shipped_artifacts() or request.getfixturevalue("tiny_artifacts")


@pytest.fixture(scope="module")
def predictor(art):
    from tumor_model.serving.predict import Predictor

    return Predictor(art)


def test_predict_volume_reuses_the_predictor_per_slice(predictor):
    volume = _load(nifti_bytes(phantom()), "head.nii")
    result = vol.predict_volume(predictor, volume)
    assert len(result["slices"]) == len(result["probabilities"]) == 12
    # slice k is exactly what Predictor says of that slice as an image
    for k in (0, 6, 11):
        alone = predictor.predict_one(volume.image(k), "x")
        assert result["slices"][k]["probability"] == pytest.approx(alone["probability"], abs=1e-5)
        assert set(alone) - {"file"} <= set(result["slices"][k])
    assert result["label"] in (*CLASS_NAMES, vol.NO_VERDICT) and result["rule"] == vol.RULE
    assert result == {**result, **vol.verdict(result["slices"], predictor.threshold)}
    assert len(result["most_suspicious"]) == vol.TOP
    assert max(result["probabilities"]) == result["probabilities"][result["most_suspicious"][0] - 1]
    json.dumps(result)  # JSON-friendly throughout


def test_cli_one_line_per_volume_and_the_batch_goes_on(art, tmp_path):
    nii = tmp_path / "head.nii.gz"
    nii.write_bytes(nifti_bytes(phantom(), gz=True))
    series = tmp_path / "series.zip"
    series.write_bytes(zip_bytes(series_files(n=5)))
    bad = tmp_path / "4d.nii"
    bad.write_bytes(nifti_bytes(np.zeros((16, 16, 8, 3), np.int16)))
    png = tmp_path / "scan.png"
    png.write_bytes(valid_image_bytes("PNG"))
    loose = []
    for name, data in series_files(n=4, uid="1.2.826.0.1.3680043.8.498.7"):
        (tmp_path / name).write_bytes(data)
        loose.append(str(tmp_path / name))
    files = [str(nii), str(bad), str(series), str(png), *loose]
    done = cli("predict", *files, "--artifacts", str(art))
    assert done.returncode == 1, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["file"] for line in lines] == [
        str(nii),
        str(bad),
        str(series),
        str(png),
        f"{loose[0]} (+3 files of its series)",
    ]
    assert set(lines[1]) == {"file", "error"} and lines[1]["error"].startswith(repr(str(bad)))
    assert "4-D" in lines[1]["error"]
    for line, n in ((lines[0], 12), (lines[2], 5), (lines[4], 4)):
        assert len(line["probabilities"]) == n and line["rule"] == vol.RULE
        assert all(0.0 <= p <= 1.0 for p in line["probabilities"])
        assert line["volume"]["shape"][0] == n
    assert lines[4]["files"] == loose
    plain = lines[3]  # a scan: a probability, or none where the guard withheld the verdict
    assert "slices" not in plain
    assert plain["probability"] is None if not plain["is_mri"] else 0 <= plain["probability"] <= 1
    for secret in FAKE_PHI:
        assert secret not in done.stdout + done.stderr
