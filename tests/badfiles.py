"""Generated test inputs for the image-loading layer, reused by the CLI, app and reliability tests.

Everything is made by code, in memory, in well under a second:

- `bad_files()`: name -> bytes that `tumor_model.io.imageio.load_image` must refuse with an
  `ImageLoadError` naming the file. Keys are file names; their extensions lie on purpose where
  the entry is about a lying extension.
- `odd_files()`: name -> bytes of VALID but unusual inputs that must load as RGB; `ODD_SIZES`
  gives the (width, height) each must load with (after EXIF orientation).
- `valid_image_bytes(fmt, mode, size)`: a small head-like test image (bright ellipse on black)
  encoded as `fmt` ("PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP" or "DICOM").
- `pydicom_test_file(name)`: the bytes of one of pydicom's bundled (offline) test files.

Keep the names stable: other test modules refer to them. Import with `from badfiles import ...`
(pytest's default "prepend" import mode puts tests/ on sys.path; tests/ has no __init__.py).
"""

from __future__ import annotations

import gzip
import io
import os
import random
import struct
import zipfile
import zlib
from functools import cache

import numpy as np
from PIL import Image

__all__ = ["bad_files", "odd_files", "ODD_SIZES", "valid_image_bytes", "pydicom_test_file"]


# --------------------------------------------------------------------------- helpers


def _head_array(size: tuple[int, int]) -> np.ndarray:
    """(H, W) float 0..1: a bright textured ellipse (a 'head') on a black background."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    cy, cx = (height - 1) / 2, (width - 1) / 2
    r = ((yy - cy) / (0.42 * height)) ** 2 + ((xx - cx) / (0.42 * width)) ** 2
    texture = 0.6 + 0.4 * np.sin(xx / 3.0) * np.cos(yy / 4.0)
    return np.where(r <= 1.0, texture, 0.0)


def _pattern(mode: str, size: tuple[int, int]) -> Image.Image:
    """The head pattern in any PIL mode (16-bit, int and float modes get wide value ranges)."""
    head = _head_array(size)
    if mode in ("I;16", "I;16L", "I;16B"):
        img = Image.fromarray((head * 4000).astype(np.uint16))  # 12-bit MRI-like range
        return img if mode != "I;16B" else img.convert("I;16B")
    if mode == "I":
        return Image.fromarray((head * 100_000 - 20_000).astype(np.int32))
    if mode == "F":
        return Image.fromarray((head * 4000 - 1000).astype(np.float32))
    grey = Image.fromarray((head * 255).astype(np.uint8))
    rgb = Image.merge("RGB", (grey, grey.point(lambda v: v * 0.8), grey.point(lambda v: v * 0.6)))
    if mode == "RGB":
        return rgb
    if mode == "P":
        return rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    if mode in ("RGBA", "LA"):
        base = rgb if mode == "RGBA" else grey
        out = base.convert(mode)
        out.putalpha(Image.fromarray(np.where(head > 0, 255, 0).astype(np.uint8)))
        return out
    return rgb.convert(mode)


def valid_image_bytes(fmt: str, mode: str = "RGB", size: tuple[int, int] = (64, 48)) -> bytes:
    """A valid small image: the head pattern in `mode`, encoded as `fmt`.

    fmt "DICOM" builds an MR slice (16-bit MONOCHROME2, values 0..1000, window 500/1000)
    carrying FAKE patient tags (name "Doe^Jane", ID "PID-0001", birth date 19700101) so that
    tests can check they never leave `tumor_model.io.dicom`.
    """
    fmt = fmt.upper()
    if fmt == "DICOM":
        return _dicom_bytes(size)
    img = _pattern(mode, size)
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def _dicom_dataset(size: tuple[int, int], frames: int = 1):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    width, height = size
    pixels = np.stack(
        [(_head_array(size) * (1000 + 500 * k)).astype(np.uint16) for k in range(frames)]
    )
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Doe^Jane"  # fake PHI: must never appear in DicomScan.info
    ds.PatientID = "PID-0001"
    ds.PatientBirthDate = "19700101"
    ds.InstitutionName = "Test Hospital"
    ds.Modality = "MR"
    ds.SeriesDescription = "T1 axial"
    ds.Rows, ds.Columns = height, width
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 5.0
    ds.WindowCenter, ds.WindowWidth = 500, 1000
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = pixels.tobytes() if frames > 1 else pixels[0].tobytes()
    return ds


def _dicom_bytes(size=(64, 48), frames: int = 1, preamble: bool = True, **changes) -> bytes:
    ds = _dicom_dataset(size, frames)
    for key, value in changes.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data = buf.getvalue()
    return data if preamble else data[132:]  # without preamble and "DICM" (meta group kept)


@cache
def pydicom_test_file(name: str) -> bytes:
    """Bytes of a test file bundled with pydicom (read from its package folder: no download)."""
    import pydicom.data

    folder = os.path.join(os.path.dirname(pydicom.data.__file__), "test_files")
    with open(os.path.join(folder, name), "rb") as fh:
        return fh.read()


def _encode(img: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def _noisy(size=(64, 48), seed: int = 0) -> Image.Image:
    """An RGB image of noise (compresses badly, so truncations land inside the pixel data)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_with_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height (1-bit grey) but whose IDAT holds almost nothing:
    the classic decompression-bomb header, checked before any decoding."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _tiff_with_header(width: int, height: int) -> bytes:
    """A little-endian 1-bit TIFF whose IFD claims width x height with 16 bytes of pixel data."""
    entries = [
        (256, 4, 1, width),  # ImageWidth (LONG)
        (257, 4, 1, height),  # ImageLength
        (258, 3, 1, 1),  # BitsPerSample
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # Photometric: black is zero
        (273, 4, 1, 8 + 2 + 12 * 8 + 4),  # StripOffsets: right after the IFD
        (278, 4, 1, height),  # RowsPerStrip
        (279, 4, 1, 16),  # StripByteCounts
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        packed = struct.pack("<I", value) if kind == 4 else struct.pack("<HH", value, 0)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00" * 16


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("scan.png", valid_image_bytes("PNG"))
    return buf.getvalue()


def _dicom_without_pixels() -> bytes:
    ds = _dicom_dataset((64, 48))
    del ds.PixelData
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


# --------------------------------------------------------------------------- the dictionaries


def bad_files() -> dict[str, bytes]:
    """File name -> bytes that load_image must refuse with ImageLoadError (naming the file)."""
    jpeg = _encode(_noisy((96, 64)), "JPEG", quality=95)
    png = _encode(_noisy((64, 48), seed=1), "PNG")
    tiff = _encode(_noisy((64, 48), seed=2), "TIFF")
    gif = _encode(_noisy((64, 48), seed=3).convert("P"), "GIF")
    bmp = _encode(_noisy((64, 48), seed=4), "BMP")
    webp = _encode(_noisy((64, 48), seed=5), "WEBP", quality=90)
    dicom = _dicom_bytes((64, 48))
    gif_bomb = bytearray(valid_image_bytes("GIF", "P", (16, 16)))
    gif_bomb[6:10] = struct.pack("<HH", 65535, 65535)  # logical screen 65535 x 65535
    png_bad_crc = bytearray(valid_image_bytes("PNG"))
    png_bad_crc[29] ^= 0xFF  # last byte of the IHDR CRC
    return {
        # --- nothing, or not an image at all (some with a lying image extension) ---
        "empty.png": b"",  # 0 bytes
        "text.png": b"This is a plain text file, not a scan.\n" * 3,  # text named .png
        "page.jpg": b"<!DOCTYPE html>\n<html><head><title>404</title></head><body></body></html>",
        "page2.png": b"<html><body><img src='scan.png'></body></html>",  # HTML, no doctype
        "drawing.png": (  # SVG renamed .png (vector images are not supported)
            b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="64" '
            b'height="64"><circle cx="32" cy="32" r="20"/></svg>'
        ),
        "report.jpg": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n",  # PDF
        "archive.png": _zip_bytes(),  # a ZIP holding a valid PNG
        "archive.jpg": gzip.compress(valid_image_bytes("PNG"), mtime=0),  # gzip of a PNG
        "json.png": b'{"image": "scan.png", "label": 1}',  # JSON
        "random.jpg": random.Random(0).randbytes(2048),  # 2 KiB of random bytes
        "zeros.png": b"\x00" * 4096,  # 4 KiB of zero bytes (no DICM at 128)
        # --- damaged or truncated images ---
        "jpeg_soi_only.jpg": b"\xff\xd8\xff",  # JPEG start marker and nothing else
        "jpeg_cut_header.jpg": jpeg[:120],  # cut inside the JPEG header segments
        "jpeg_cut_half.jpg": jpeg[: len(jpeg) // 2],  # cut in the middle of the scan data
        "jpeg_cut_end.jpg": jpeg[: len(jpeg) * 9 // 10],  # 90% of the file
        "png_cut_signature.png": png[:12],  # PNG signature + 4 bytes
        "png_cut_ihdr.png": png[:24],  # cut inside IHDR
        "png_cut_half.png": png[: len(png) // 2],  # cut in the middle of IDAT
        "png_cut_end.png": png[: len(png) - 40],  # IDAT incomplete, no IEND
        "png_bad_crc.png": bytes(png_bad_crc),  # IHDR checksum wrong
        "tiff_cut_half.tif": tiff[: len(tiff) // 2],  # strip data beyond end of file
        "tiff_bad_ifd.tif": b"II*\x00" + struct.pack("<I", 10_000_000) + b"\x00" * 64,  # IFD far
        "gif_cut_half.gif": gif[: len(gif) // 2],  # LZW data cut
        "bmp_cut_half.bmp": bmp[: len(bmp) // 2],  # pixel rows missing
        "webp_cut_half.webp": webp[: len(webp) // 2],  # VP8 data cut
        # --- sizes and shapes we refuse ---
        "one_pixel.png": _encode(Image.new("L", (1, 1), 128), "PNG"),  # 1 x 1
        "tiny_7px.png": _encode(Image.new("L", (7, 7), 128), "PNG"),  # 7 x 7 (< 8 px side)
        "wide_100000x1.png": _encode(Image.new("1", (100_000, 1), 1), "PNG"),  # absurd aspect
        "strip_300x10.png": _encode(Image.new("L", (300, 10), 200), "PNG"),  # aspect 30:1
        "bomb_30000.png": _png_with_header(30_000, 30_000),  # 900 Mpx claimed, ~100 bytes
        "bomb_70mp.png": _png_with_header(10_000, 7_000),  # 70 Mpx: over MAX_PIXELS only
        "bomb.gif": bytes(gif_bomb),  # GIF screen 65535 x 65535
        "bomb.tif": _tiff_with_header(40_000, 40_000),  # TIFF IFD claims 1.6 Gpx
        # --- DICOM ---
        "no_pixels.dcm": _dicom_without_pixels(),  # valid DICOM, no PixelData
        "report.dcm": pydicom_test_file("rtplan.dcm"),  # RT plan: no image at all
        "jpeg_ls.dcm": pydicom_test_file("MR_small_jpeg_ls_lossless.dcm"),  # JPEG-LS: no decoder
        "jpeg_lossless.dcm": pydicom_test_file("SC_rgb_jpeg_gdcm.dcm"),  # JPEG Lossless P14
        "huge_claim.dcm": _dicom_bytes((64, 48), Rows=60_000, Columns=60_000),  # 3.6 Gpx claim
        "dicom_cut_half.dcm": dicom[: len(dicom) // 2],  # pixel data cut
        "dicom_header_only.dcm": dicom[:140],  # preamble, DICM and 8 bytes
        "tiny.dcm": pydicom_test_file("SC_rgb_small_odd.dcm"),  # 3 x 3 pixels
    }


# (width, height) each odd file must load with.
ODD_SIZES: dict[str, tuple[int, int]] = {
    "cmyk.jpg": (64, 48),
    "grey.jpg": (64, 48),
    "palette_transparent.png": (64, 48),
    "palette.gif": (64, 48),
    "animated.gif": (64, 48),
    "corrupt_exif.jpg": (64, 48),
    "la.png": (64, 48),
    "rgba.png": (64, 48),
    "bilevel.png": (64, 48),
    "i16.png": (64, 48),
    "i16.tif": (64, 48),
    "i16_big_endian.tif": (64, 48),
    "int32.tif": (64, 48),
    "float.tif": (64, 48),
    "float_nan.tif": (64, 48),
    "ycbcr.tif": (64, 48),
    "cmyk.tif": (64, 48),
    "multipage.tif": (64, 48),
    "exif_rotated.jpg": (48, 64),  # stored 64 x 48, EXIF orientation 6: shown 48 x 64
    "png_named.jpg": (64, 48),
    "tiff_named.jpg": (64, 48),
    "plain.bmp": (64, 48),
    "plain.webp": (64, 48),
    "smallest_8x8.png": (8, 8),
    "aspect_20.png": (200, 10),
    "mr.dcm": (64, 48),
    "mr_no_preamble": (64, 48),
    "mr_multiframe.dcm": (64, 48),
    "ct_small.dcm": (128, 128),
    "mr_rle.dcm": (64, 64),
    "mr_jpeg2000.dcm": (64, 64),
}


def odd_files() -> dict[str, bytes]:
    """File name -> bytes of valid but unusual inputs; each loads as RGB of ODD_SIZES[name]."""
    size = (64, 48)
    rotated_src = _pattern("RGB", size)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    palette = _pattern("P", size)
    frames = [Image.new("P", size, i + 1) for i in range(3)]  # red, green, blue frames
    for frame in frames:
        frame.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 3 * 252)
    nan_float = np.array(_pattern("F", size))
    nan_float[0, :4] = np.nan
    nan_float[1, :4] = np.inf
    corrupt_exif = (  # an EXIF block whose IFD points beyond its end
        b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 5) + b"\xff" * 20
    )
    multipage = io.BytesIO()
    _pattern("L", size).save(
        multipage, "TIFF", save_all=True, append_images=[Image.new("L", (16, 16), 255)]
    )
    return {
        "cmyk.jpg": valid_image_bytes("JPEG", "CMYK", size),  # CMYK JPEG (4 channels)
        "grey.jpg": valid_image_bytes("JPEG", "L", size),  # 8-bit greyscale JPEG
        "palette_transparent.png": _encode(palette, "PNG", transparency=0),  # P + tRNS
        "palette.gif": valid_image_bytes("GIF", "P", size),  # single-frame GIF
        "animated.gif": _encode(  # red, green, blue frames: the first (red) is used
            frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0
        ),
        "corrupt_exif.jpg": _encode(_pattern("RGB", size), "JPEG", exif=corrupt_exif),
        "la.png": valid_image_bytes("PNG", "LA", size),  # grey + alpha
        "rgba.png": valid_image_bytes("PNG", "RGBA", size),  # alpha composited on black
        "bilevel.png": valid_image_bytes("PNG", "1", size),  # mode "1"
        "i16.png": valid_image_bytes("PNG", "I;16", size),  # 16-bit greyscale PNG
        "i16.tif": valid_image_bytes("TIFF", "I;16", size),  # 16-bit TIFF (0..4000)
        "i16_big_endian.tif": valid_image_bytes("TIFF", "I;16B", size),  # big-endian 16-bit
        "int32.tif": valid_image_bytes("TIFF", "I", size),  # signed 32-bit, negative values
        "float.tif": valid_image_bytes("TIFF", "F", size),  # 32-bit float -1000..3000
        "float_nan.tif": _encode(Image.fromarray(nan_float), "TIFF"),  # float with NaN and inf
        "ycbcr.tif": valid_image_bytes("TIFF", "YCbCr", size),  # YCbCr TIFF
        "cmyk.tif": valid_image_bytes("TIFF", "CMYK", size),  # CMYK TIFF
        "multipage.tif": multipage.getvalue(),  # 2 pages of different size: page 1 used
        "exif_rotated.jpg": _encode(rotated_src, "JPEG", exif=exif, quality=95),
        "png_named.jpg": valid_image_bytes("PNG", "RGB", size),  # lying extension (dataset has 16)
        "tiff_named.jpg": valid_image_bytes("TIFF", "RGB", size),  # lying extension
        "plain.bmp": valid_image_bytes("BMP", "RGB", size),
        "plain.webp": valid_image_bytes("WEBP", "RGB", size),
        "smallest_8x8.png": valid_image_bytes("PNG", "L", (8, 8)),  # smallest accepted side
        "aspect_20.png": valid_image_bytes("PNG", "L", (200, 10)),  # largest accepted aspect
        "mr.dcm": _dicom_bytes(size),  # 16-bit MR with window and fake PHI
        "mr_no_preamble": _dicom_bytes(size, preamble=False),  # no preamble, no extension
        "mr_multiframe.dcm": _dicom_bytes(size, frames=5),  # 5 frames: the middle one used
        "ct_small.dcm": pydicom_test_file("CT_small.dcm"),  # pydicom's CT (no window)
        "mr_rle.dcm": pydicom_test_file("MR_small_RLE.dcm"),  # RLE Lossless
        "mr_jpeg2000.dcm": pydicom_test_file("MR_small_jp2klossless.dcm"),  # JPEG 2000 lossless
    }
