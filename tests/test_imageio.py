"""tumor_model.io.imageio: loading by content, every odd mode, clear errors, and geometry."""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pytest
from PIL import Image, ImageFile

from tumor_model import errors
from tumor_model.io import imageio
from tumor_model.io.geometry import foreground_box, percentile_99, prepare
from tumor_model.io.imageio import ImageLoadError, load_image, load_scan, sniff_format

from badfiles import ODD_SIZES, bad_files, odd_files, valid_image_bytes

BAD = bad_files()
ODD = odd_files()


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_file_raises_image_load_error_naming_the_file(name):
    with pytest.raises(ImageLoadError) as info:
        load_image(BAD[name], name=name)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.source == name
    assert name in str(err)
    assert err.reason and err.reason in str(err)
    assert "Traceback" not in err.reason


# (file, words the reason must contain): the message says what is wrong in plain words
REASONS = [
    ("empty.png", "empty"),
    ("text.png", "not an image"),
    ("page.jpg", "HTML"),
    ("drawing.png", "SVG"),
    ("report.jpg", "PDF"),
    ("archive.png", "ZIP"),
    ("random.jpg", "not an image"),
    ("jpeg_cut_half.jpg", "truncated"),
    ("jpeg_cut_end.jpg", "truncated"),
    ("png_cut_half.png", "truncated"),
    ("tiff_cut_half.tif", "truncated"),
    ("png_bad_crc.png", "damaged"),
    ("one_pixel.png", "1 x 1"),
    ("wide_100000x1.png", "aspect ratio"),
    ("strip_300x10.png", "aspect ratio"),
    ("bomb_30000.png", "decompression bomb"),
    ("bomb_70mp.png", "70,000,000 pixels"),
    ("bomb.gif", "too large"),
    ("bomb.tif", "too large"),
    ("no_pixels.dcm", "no pixel data"),
    ("report.dcm", "no pixel data"),
    ("jpeg_ls.dcm", "unsupported transfer syntax JPEG-LS"),
    ("jpeg_lossless.dcm", "unsupported transfer syntax"),
    ("huge_claim.dcm", "too large"),
    ("dicom_cut_half.dcm", "DICOM"),
]


@pytest.mark.parametrize(("name", "words"), REASONS)
def test_bad_file_reason_in_plain_words(name, words):
    with pytest.raises(ImageLoadError, match=words):
        load_image(BAD[name], name=name)


def test_bad_files_cover_enough_kinds():
    assert len(BAD) >= 25
    assert all(isinstance(v, bytes) for v in BAD.values())


def test_pil_globals_left_alone():
    before = Image.MAX_IMAGE_PIXELS
    for name in ("bomb_30000.png", "bomb_70mp.png", "jpeg_cut_half.jpg"):
        with pytest.raises(ImageLoadError):
            load_image(BAD[name], name=name)
    assert Image.MAX_IMAGE_PIXELS == before
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_image_is_refused_not_padded():
    """A cut file must not come back with grey filler (no LOAD_TRUNCATED_IMAGES)."""
    with pytest.raises(ImageLoadError, match="truncated"):
        load_image(BAD["png_cut_end.png"], name="cut.png")


def test_error_chains_the_original_exception():
    with pytest.raises(ImageLoadError) as info:
        load_image(BAD["jpeg_cut_half.jpg"], name="x.jpg")
    assert info.value.__cause__ is not None
    assert not isinstance(info.value.__cause__, ImageLoadError)


def test_error_pickles_with_its_attributes():
    err = ImageLoadError("scan.png", "not an image")
    back = pickle.loads(pickle.dumps(err))
    assert (back.source, back.reason, str(back)) == ("scan.png", "not an image", str(err))
    assert str(err) == "'scan.png': not an image"


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "nowhere" / "scan.png"
    with pytest.raises(ImageLoadError, match="not found") as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_folder_is_refused(tmp_path):
    with pytest.raises(ImageLoadError, match="folder"):
        load_image(tmp_path)


def test_bad_file_on_disk_names_the_path(tmp_path):
    path = tmp_path / "page.jpg"
    path.write_bytes(BAD["page.jpg"])
    with pytest.raises(ImageLoadError) as info:
        load_image(str(path))
    assert info.value.source == str(path)
    assert "HTML" in str(info.value)


def test_name_argument_overrides_the_path(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(b"")
    with pytest.raises(ImageLoadError, match="'upload.png': empty"):
        load_image(path, name="upload.png")


def test_bytes_without_name_say_bytes():
    with pytest.raises(ImageLoadError) as info:
        load_image(b"nonsense")
    assert info.value.source == "<bytes>"


def test_file_object_name_is_used():
    stream = io.BytesIO(b"<html></html>")
    stream.name = "upload.jpg"
    with pytest.raises(ImageLoadError, match="'upload.jpg'"):
        load_image(stream)


@pytest.mark.parametrize("source", [42, 3.5, None, ["a.png"], io.StringIO("text")])
def test_wrong_source_type_is_type_error(source):
    with pytest.raises(TypeError) as info:
        load_image(source)
    assert not isinstance(info.value, ImageLoadError)
    if isinstance(source, int):
        assert "42" in str(info.value)


# --------------------------------------------------------------------------- valid inputs


@pytest.mark.parametrize("name", sorted(ODD))
def test_odd_file_loads_as_rgb_of_expected_size(name):
    img = load_image(ODD[name], name=name)
    assert img.mode == "RGB"
    assert img.size == ODD_SIZES[name]
    arr = np.asarray(img)
    assert arr.dtype == np.uint8 and arr.shape == (img.height, img.width, 3)
    assert arr.max() > arr.min()  # something was decoded, not a blank canvas


def test_odd_sizes_cover_every_odd_file():
    assert set(ODD_SIZES) == set(ODD)


@pytest.mark.parametrize(
    "kind", [lambda b: b, bytearray, memoryview, io.BytesIO, "path", "str", "read-only"]
)
def test_every_source_kind(kind, tmp_path):
    data = valid_image_bytes("PNG", "RGB", (40, 30))
    if kind == "path" or kind == "str":
        path = tmp_path / "scan.jpg"  # lying extension on purpose
        path.write_bytes(data)
        source = path if kind == "path" else str(path)
    elif kind == "read-only":

        class Reader:  # a file object with read() only (no getvalue)
            def __init__(self):
                self._buf = io.BytesIO(data)

            def read(self, n=-1):
                return self._buf.read(n)

        source = Reader()
    else:
        source = kind(data)
    img = load_image(source)
    assert img.mode == "RGB" and img.size == (40, 30)


def test_stream_already_read_to_the_end_still_loads():
    stream = io.BytesIO(valid_image_bytes("JPEG"))
    stream.read()
    assert load_image(stream).size == (64, 48)


def test_lying_extensions_load_by_content(tmp_path):
    for name in ("png_named.jpg", "tiff_named.jpg"):
        path = tmp_path / name
        path.write_bytes(ODD[name])
        assert load_image(path).size == (64, 48)


def test_sixteen_bit_is_rescaled_to_full_range():
    for name in ("i16.png", "i16.tif", "i16_big_endian.tif", "int32.tif", "float.tif"):
        arr = np.asarray(load_image(ODD[name], name=name))
        assert arr.min() == 0 and arr.max() == 255, name
        # the bright 'head' in the centre, black background in the corner
        assert arr[14:34, 20:44, 0].mean() > 80 and arr[0, 0, 0] == 0, name


def test_sixteen_bit_scaling_matches_min_max():
    values = np.linspace(1000, 5000, 64 * 48, dtype=np.float64).reshape(48, 64)
    buf = io.BytesIO()
    Image.fromarray(values.astype(np.uint16)).save(buf, "TIFF")
    arr = np.asarray(load_image(buf.getvalue()))[:, :, 0].astype(float)
    expected = (values - 1000) / 4000 * 255
    assert np.abs(arr - expected).max() <= 1.0


def test_float_with_nan_and_inf_loads():
    arr = np.asarray(load_image(ODD["float_nan.tif"]))
    assert arr[0, 0, 0] == 0 and arr[1, 0, 0] == 0  # NaN and inf become black
    assert arr.max() == 255


def test_alpha_is_composited_on_black():
    for name in ("rgba.png", "la.png", "palette_transparent.png"):
        arr = np.asarray(load_image(ODD[name], name=name))
        assert tuple(arr[0, 0]) == (0, 0, 0), name  # transparent corner -> black
        assert arr[14:34, 20:44].mean() > 50, name


def test_rgba_with_white_transparent_pixels_becomes_black():
    img = Image.new("RGBA", (20, 20), (255, 255, 255, 0))
    img.paste((200, 100, 50, 255), (5, 5, 15, 15))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    arr = np.asarray(load_image(buf.getvalue()))
    assert tuple(arr[0, 0]) == (0, 0, 0)
    assert tuple(arr[10, 10]) == (200, 100, 50)


def test_animated_gif_gives_first_frame():
    arr = np.asarray(load_image(ODD["animated.gif"]))
    assert tuple(arr[10, 10]) == (255, 0, 0)  # frame 1 is red, frames 2-3 green and blue


def test_multipage_tiff_gives_first_page():
    arr = np.asarray(load_image(ODD["multipage.tif"]))
    assert arr.shape == (48, 64, 3) and arr[0, 0, 0] == 0  # page 2 is 16 x 16 white


def test_cmyk_becomes_sensible_rgb():
    img = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # pure red in CMYK
    for fmt in ("JPEG", "TIFF"):
        buf = io.BytesIO()
        img.save(buf, fmt, quality=95) if fmt == "JPEG" else img.save(buf, fmt)
        r, g, b = np.asarray(load_image(buf.getvalue()))[16, 16].astype(int)
        assert r > 200 and g < 60 and b < 60, (fmt, r, g, b)


def test_exif_orientation_rotates():
    src = Image.new("RGB", (64, 48), (0, 0, 255))
    src.paste((255, 0, 0), (0, 0, 32, 48))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    buf = io.BytesIO()
    src.save(buf, "JPEG", exif=exif, quality=95)
    img = load_image(buf.getvalue())
    assert img.size == (48, 64)
    arr = np.asarray(img).astype(int)
    top, bottom = arr[8, 24], arr[56, 24]
    assert top[0] > 200 and top[2] < 60  # the left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 60


def test_without_orientation_no_rotation():
    img = load_image(valid_image_bytes("JPEG", "RGB", (64, 48)))
    assert img.size == (64, 48)


def test_corrupt_exif_falls_back_to_the_stored_image():
    img = load_image(ODD["corrupt_exif.jpg"])
    assert img.size == (64, 48)


def test_max_pixels_is_enforced_from_the_header():
    assert imageio.MAX_PIXELS == errors.MAX_PIXELS == 64_000_000
    with pytest.raises(ImageLoadError, match="64,000,000"):
        load_image(BAD["bomb_70mp.png"], name="b.png")


def test_aspect_limit_boundary():
    load_image(valid_image_bytes("PNG", "L", (160, 8)))  # 20:1 is accepted
    with pytest.raises(ImageLoadError, match="aspect"):
        load_image(valid_image_bytes("PNG", "L", (168, 8)))  # 21:1 is not


# --------------------------------------------------------------------------- load_scan


def test_load_scan_keeps_dicom_frames_and_only_safe_tags():
    data = odd_files()["mr_multiframe.dcm"]  # 5 frames of rising brightness, fake PHI inside
    middle, scan = load_scan(data, "mr.dcm")
    assert scan is not None and scan.n_frames == 5 and scan.default_frame == 2
    first, _ = load_scan(data, "mr.dcm", frame=0)
    again, _ = load_scan(data, "mr.dcm", frame=2)
    assert np.array_equal(np.asarray(middle), np.asarray(again))
    assert not np.array_equal(np.asarray(first), np.asarray(middle))
    last, _ = load_scan(data, "mr.dcm", frame=99)  # clipped to the last frame
    assert np.array_equal(np.asarray(last), np.asarray(load_scan(data, "mr.dcm", 4)[0]))
    text = json.dumps(scan.info)
    for secret in ("Doe", "Jane", "PID-0001", "19700101", "Test Hospital"):
        assert secret not in text
    with pytest.raises(ImageLoadError, match="'report.jpg'"):
        load_scan(bad_files()["report.jpg"], "report.jpg")


def test_load_scan_of_a_non_dicom_is_load_image_without_a_scan():
    data = valid_image_bytes("PNG", "L", (40, 30))
    image, scan = load_scan(data, "x.png", frame=3)  # frame is ignored outside DICOM
    assert scan is None
    assert np.array_equal(np.asarray(image), np.asarray(load_image(data, "x.png")))


# --------------------------------------------------------------------------- sniffing


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "BMP", "GIF", "WEBP", "DICOM"])
def test_sniff_format(fmt):
    mode = "P" if fmt == "GIF" else "RGB"
    assert sniff_format(valid_image_bytes(fmt, mode)) == fmt


def test_sniff_format_odd_and_not_images():
    assert sniff_format(ODD["mr_no_preamble"]) == "DICOM"
    assert sniff_format(ODD["png_named.jpg"]) == "PNG"
    assert sniff_format(ODD["i16_big_endian.tif"]) == "TIFF"
    for name in ("empty.png", "page.jpg", "drawing.png", "report.jpg", "archive.png", "zeros.png"):
        assert sniff_format(BAD[name]) is None, name


# --------------------------------------------------------------------------- geometry


def _canvas(width, height, box, value=220):
    arr = np.zeros((height, width, 3), np.uint8)
    left, top, right, bottom = box
    arr[top:bottom, left:right] = value
    return Image.fromarray(arr)


def test_crop_pad_zooms_on_an_off_centre_square():
    img = _canvas(400, 300, (290, 200, 350, 260))  # 60 x 60 bright square, bottom right
    out = prepare(img, 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    bright = (out[:, :, 0] > 110).mean()
    assert bright > 0.75  # mostly the square (margins are black)
    naive = prepare(img, 64, "pad")
    assert (naive[:, :, 0] > 110).mean() < 0.1  # without the crop it is a small speck


def test_foreground_box_finds_the_square_with_a_small_margin():
    left, top, right, bottom = foreground_box(_canvas(400, 300, (290, 200, 350, 260)))
    assert 280 <= left <= 290 and 190 <= top <= 200
    assert 350 <= right <= 360 and 260 <= bottom <= 270


def test_foreground_box_ignores_dim_noise_and_handles_blank():
    arr = np.asarray(_canvas(200, 200, (50, 60, 150, 140))).copy()
    arr[0:10, 0:10] = 8  # dim background noise below the threshold
    assert foreground_box(Image.fromarray(arr))[0] >= 40
    assert foreground_box(Image.new("RGB", (30, 20))) == (0, 0, 30, 20)


def test_crop_pad_on_blank_image_is_black():
    out = prepare(Image.new("RGB", (50, 40)), 32)
    assert out.shape == (32, 32, 3) and out.max() == 0


def test_pad_keeps_the_aspect_ratio():
    img = Image.new("RGB", (128, 64), (255, 255, 255))  # 2:1, all content
    out = prepare(img, 64, "pad")
    rows = (out[:, :, 0] > 127).any(axis=1)
    cols = (out[:, :, 0] > 127).any(axis=0)
    assert rows.sum() == 32 and cols.sum() == 64  # content in half the rows, all columns
    assert rows[16:48].all() and not rows[:16].any() and not rows[48:].any()  # centred


def test_squash_fills_the_square():
    img = Image.new("RGB", (128, 64), (255, 255, 255))
    out = prepare(img, 64, "squash")
    assert (out[:, :, 0] > 127).all()


def test_crop_pad_keeps_aspect_of_the_head():
    img = _canvas(300, 300, (50, 100, 250, 200))  # 2:1 bright block
    out = prepare(img, 64)
    rows = (out[:, :, 0] > 110).any(axis=1).sum()
    cols = (out[:, :, 0] > 110).any(axis=0).sum()
    assert cols >= 58 and 26 <= rows <= 36


def test_prepare_accepts_arrays_and_other_modes():
    arr = np.asarray(_canvas(80, 60, (10, 10, 70, 50)))
    a = prepare(arr, 32)
    b = prepare(Image.fromarray(arr), 32)
    c = prepare(Image.fromarray(arr).convert("L"), 32)
    assert np.array_equal(a, b)
    assert c.shape == (32, 32, 3)
    assert np.abs(a.astype(int) - c.astype(int)).max() <= 2


def test_prepare_upscales_small_images():
    out = prepare(load_image(ODD["smallest_8x8.png"]), 96, "squash")
    assert out.shape == (96, 96, 3)


@pytest.mark.parametrize("geometry", ["crop", "PAD", "", None])
def test_bad_geometry_is_value_error_quoting_it(geometry):
    with pytest.raises(ValueError, match=repr(geometry).replace("'", "'")) as info:
        prepare(Image.new("RGB", (10, 10)), 16, geometry)
    assert repr(geometry) in str(info.value)


@pytest.mark.parametrize("size", [0, -3, 2.5, True, "224"])
def test_bad_size_is_value_error_quoting_it(size):
    with pytest.raises(ValueError) as info:
        prepare(Image.new("RGB", (10, 10)), size)
    assert repr(size) in str(info.value)


def test_all_geometries_from_config_work():
    from tumor_model.config import GEOMETRIES

    img = load_image(valid_image_bytes("PNG"))
    for geometry in GEOMETRIES:
        out = prepare(img, 40, geometry)
        assert out.shape == (40, 40, 3) and out.dtype == np.uint8 and out.max() > 0


def test_the_histogram_percentile_is_numpys_exactly():
    """`percentile_99` (foreground_box's background level, read off the histogram) equals
    np.percentile to the last bit on images of every size and spread, ties and sparse levels."""
    rng = np.random.default_rng(0)
    for _ in range(500):
        shape = tuple(rng.integers(1, 60, size=2))
        grey = rng.integers(0, rng.integers(1, 257), size=shape).astype(np.uint8)
        if rng.random() < 0.3:  # mostly background with a few bright pixels
            grey = np.where(rng.random(shape) < 0.97, 0, grey).astype(np.uint8)
        assert percentile_99(grey) == float(np.percentile(grey, 99)), grey
