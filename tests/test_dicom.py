"""tumor_model.io.dicom: frames, windowing, non-identifying info only, clear errors."""

from __future__ import annotations

import dataclasses
import io
import logging
import subprocess
import sys

import numpy as np
import pydicom
import pytest
from pydicom.filebase import DicomBytesIO

from tumor_model import errors
from tumor_model.io import imageio
from tumor_model.io.dicom import INFO_TAGS, DicomScan, frame_to_image, is_dicom, read_dicom
from tumor_model.io.imageio import ImageLoadError, load_image

from badfiles import _dicom_dataset, bad_files, odd_files, pydicom_test_file

PHI_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate")
FAKE_PHI = ("Doe", "Jane", "PID-0001", "19700101", "Test Hospital")


def _save(ds) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _phi_values(data: bytes) -> list[str]:
    """The identifying values actually present in a file (read with pydicom, for the check)."""
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    return [str(ds.get(k)) for k in PHI_KEYWORDS if ds.get(k) not in (None, "")]


@pytest.mark.parametrize(
    ("name", "modality", "shape"),
    [("CT_small.dcm", "CT", (1, 128, 128)), ("MR_small.dcm", "MR", (1, 64, 64))],
)
def test_pydicom_samples_load(name, modality, shape):
    data = pydicom_test_file(name)
    scan = read_dicom(data, name)
    assert isinstance(scan, DicomScan)
    assert scan.frames.dtype == np.uint8 and scan.frames.shape == shape
    assert scan.frames.max() > scan.frames.min()
    assert scan.default_frame == 0
    assert scan.info["Modality"] == modality
    assert scan.info["Rows"] == shape[1] and scan.info["Columns"] == shape[2]
    img = load_image(data, name=name)
    assert img.mode == "RGB" and img.size == (shape[2], shape[1])


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "generated"])
def test_info_holds_no_identifying_tags(name):
    data = odd_files()["mr.dcm"] if name == "generated" else pydicom_test_file(name)
    phi = _phi_values(data)
    assert phi, "the sample should carry patient tags for this test to mean anything"
    info = read_dicom(data, name).info
    assert set(info) <= set(INFO_TAGS) | {"TransferSyntax"}
    for keyword in (*PHI_KEYWORDS, "InstitutionName", "StudyDate", "AccessionNumber"):
        assert keyword not in info
    text = str(info) + repr(info)
    for value in phi:
        assert value not in text
    if name == "generated":
        for value in FAKE_PHI:
            assert value not in text
        assert info["SeriesDescription"] == "T1 axial"
        assert info["PixelSpacing"] == [0.5, 0.5]


def test_info_values_are_plain_python():
    info = read_dicom(pydicom_test_file("MR_small.dcm"), "MR_small.dcm").info
    for value in info.values():
        assert isinstance(value, (str, int, float, list))
        if isinstance(value, list):
            assert all(isinstance(v, (str, int, float)) for v in value)


def test_nothing_is_printed_or_logged(capsys, caplog):
    caplog.set_level(logging.DEBUG)
    data = odd_files()["mr.dcm"]
    read_dicom(data, "mr.dcm")
    load_image(data, name="mr.dcm")
    with pytest.raises(ImageLoadError) as info:
        load_image(bad_files()["no_pixels.dcm"], name="x.dcm")
    out = capsys.readouterr()
    text = out.out + out.err + caplog.text + str(info.value)
    for value in FAKE_PHI:
        assert value not in text


def test_window_centre_width_is_applied():
    ds = _dicom_dataset((64, 48))
    ramp = np.linspace(0, 2000, 64 * 48).reshape(48, 64).astype(np.uint16)
    ds.PixelData = ramp.tobytes()
    ds.WindowCenter, ds.WindowWidth = 500, 1000  # shows 0..1000, saturates above
    frame = read_dicom(_save(ds), "ramp.dcm").frames[0].astype(float)
    inside = ramp <= 980
    expected = np.clip((ramp - 499.5) / 999 + 0.5, 0, 1) * 255
    assert np.abs(frame[inside] - expected[inside]).max() <= 1.0
    assert (frame[ramp >= 1000] == 255).all()  # above the window: white


def test_rescale_slope_intercept_before_window():
    ds = _dicom_dataset((64, 48))
    ds.PixelData = np.full((48, 64), 1000, np.uint16).tobytes()
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024  # stored 1000 -> -24 HU
    ds.WindowCenter, ds.WindowWidth = -24, 100
    frame = read_dicom(_save(ds), "ct.dcm").frames[0]
    assert abs(int(frame[0, 0]) - 128) <= 2  # the window centre maps to mid grey


def test_without_window_min_max_is_used():
    ds = _dicom_dataset((64, 48))
    del ds.WindowCenter
    del ds.WindowWidth
    ds.PixelData = np.linspace(100, 300, 64 * 48).astype(np.uint16).tobytes()
    frame = read_dicom(_save(ds), "nowin.dcm").frames[0]
    assert frame.min() == 0 and frame.max() == 255


def test_monochrome1_is_inverted():
    ds = _dicom_dataset((64, 48))
    ds.PhotometricInterpretation = "MONOCHROME1"
    mono1 = read_dicom(_save(ds), "m1.dcm").frames[0].astype(int)
    ds.PhotometricInterpretation = "MONOCHROME2"
    mono2 = read_dicom(_save(ds), "m2.dcm").frames[0].astype(int)
    assert np.abs(mono1 + mono2 - 255).max() <= 1


def test_multiframe_defaults_to_the_middle():
    data = odd_files()["mr_multiframe.dcm"]  # frame k holds the head x (1000 + 500 k)
    scan = read_dicom(data, "multi.dcm")
    assert scan.frames.shape == (5, 48, 64) and scan.default_frame == 2
    assert scan.info["NumberOfFrames"] == 5
    middle = np.asarray(frame_to_image(scan))
    assert np.array_equal(middle, np.asarray(frame_to_image(scan, 2)))
    assert np.array_equal(np.asarray(load_image(data)), middle)
    assert not np.array_equal(scan.frames[0], scan.frames[4])  # frames differ (window 500/1000)


def test_pydicom_multiframe_sample():
    scan = read_dicom(pydicom_test_file("rtdose.dcm"), "rtdose.dcm")
    assert scan.frames.shape == (15, 10, 10)
    assert scan.default_frame == 7


def test_frame_to_image_is_rgb_and_checks_range():
    scan = read_dicom(pydicom_test_file("MR_small.dcm"), "MR_small.dcm")
    img = frame_to_image(scan, 0)
    assert img.mode == "RGB" and img.size == (64, 64)
    arr = np.asarray(img)
    assert np.array_equal(arr[:, :, 0], scan.frames[0])
    with pytest.raises(IndexError, match="1 frame"):
        frame_to_image(scan, 1)


def test_colour_dicom_keeps_colour():
    scan = read_dicom(pydicom_test_file("SC_rgb_rle.dcm"), "rgb.dcm")
    assert scan.frames.shape == (1, 100, 100, 3)
    img = frame_to_image(scan)
    arr = np.asarray(img).astype(int)
    assert np.abs(arr[:, :, 0] - arr[:, :, 2]).max() > 100  # not greyscale


def test_scan_is_frozen():
    scan = read_dicom(pydicom_test_file("MR_small.dcm"), "MR_small.dcm")
    with pytest.raises(dataclasses.FrozenInstanceError):
        scan.default_frame = 1


def test_no_pixel_data_is_image_load_error():
    with pytest.raises(ImageLoadError, match="no pixel data") as info:
        read_dicom(bad_files()["no_pixels.dcm"], "plan.dcm")
    assert info.value.source == "plan.dcm"


def test_unsupported_transfer_syntax_is_image_load_error():
    with pytest.raises(ImageLoadError, match=r"unsupported transfer syntax .*1\.2\.840\.10008"):
        read_dicom(bad_files()["jpeg_ls.dcm"], "ls.dcm")


def test_huge_header_claim_is_refused_before_decoding():
    with pytest.raises(ImageLoadError, match="too large"):
        read_dicom(bad_files()["huge_claim.dcm"], "huge.dcm")


def test_truncated_dicom_is_image_load_error():
    with pytest.raises(ImageLoadError, match="'cut.dcm'"):
        read_dicom(bad_files()["dicom_cut_half.dcm"], "cut.dcm")


def test_dicom_without_preamble_or_extension_loads(tmp_path):
    odd = odd_files()
    data = odd["mr_no_preamble"]
    assert data[128:132] != b"DICM"
    assert is_dicom(data)
    img = load_image(data)
    assert img.mode == "RGB" and img.size == (64, 48)
    path = tmp_path / "IM0001"  # no extension, as PACS exports often are
    path.write_bytes(odd["mr.dcm"])
    assert np.array_equal(np.asarray(load_image(path)), np.asarray(img))


def test_dicom_without_meta_or_preamble_loads():
    """Only the data set (implicit VR, no group 0002): the transfer syntax is inferred."""
    ds = pydicom.dcmread(io.BytesIO(pydicom_test_file("MR_small_implicit.dcm")))
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, True
    pydicom.filewriter.write_dataset(buf, ds)
    data = buf.getvalue()
    assert data[:2] == b"\x08\x00"
    assert is_dicom(data)
    img = load_image(data, name="IM0002")
    assert img.size == (64, 64)


def test_is_dicom():
    assert is_dicom(pydicom_test_file("CT_small.dcm"))
    for data in (b"", b"\x08\x00", bad_files()["random.jpg"], odd_files()["plain.bmp"]):
        assert not is_dicom(data)
    assert not is_dicom(b"\x08\x00\x05\x00" + b"\xff" * 200)  # right group, garbage after


def test_dicom_depends_on_errors_only_not_on_imageio():
    """One-way: imageio imports dicom; dicom imports only tumor_model.errors (the shared limits
    and ImageLoadError), so the two can never import each other."""
    code = (
        "import sys, tumor_model.io.dicom; print(*sorted(m for m in sys.modules if 'tumor_' in m))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = done.stdout.split()
    assert "tumor_model.errors" in loaded and "tumor_model.io.imageio" not in loaded, loaded
    assert imageio.ImageLoadError is errors.ImageLoadError
