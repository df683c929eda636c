"""Fuzzing load_image: random bytes and mutated valid files (flips, truncations, insertions).

The contract: the ONLY exception load_image ever raises for bytes is ImageLoadError (naming the
input), and anything it returns is an RGB image with a positive size that `prepare` accepts.
About 2,300 cases in all; runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tumor_model.io.geometry import prepare
from tumor_model.io.imageio import ImageLoadError, load_image

from badfiles import odd_files, pydicom_test_file, valid_image_bytes

NAME = "fuzz-input.bin"
FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

IMAGE_SEEDS = {
    "png": valid_image_bytes("PNG", "RGB", (32, 24)),
    "png_grey": valid_image_bytes("PNG", "L", (24, 16)),
    "jpeg": valid_image_bytes("JPEG", "RGB", (32, 24)),
    "tiff": valid_image_bytes("TIFF", "RGB", (24, 16)),
    "gif": valid_image_bytes("GIF", "P", (24, 16)),
    "bmp": valid_image_bytes("BMP", "RGB", (24, 16)),
    "webp": valid_image_bytes("WEBP", "RGB", (24, 16)),
}
_ODD = odd_files()
ODD_SEEDS = {
    name: _ODD[name]
    for name in (
        "i16.tif",
        "float.tif",
        "i16.png",
        "palette_transparent.png",
        "animated.gif",
        "exif_rotated.jpg",
        "cmyk.jpg",
        "multipage.tif",
        "la.png",
    )
}
DICOM_SEEDS = {
    "generated": valid_image_bytes("DICOM", size=(24, 16)),
    "no_preamble": _ODD["mr_no_preamble"],
    "mr_small": pydicom_test_file("MR_small.dcm"),
    "mr_rle": pydicom_test_file("MR_small_RLE.dcm"),
    "rtdose": pydicom_test_file("rtdose_1frame.dcm"),
}
MAGICS = [
    b"\xff\xd8\xff\xe0",
    b"\x89PNG\r\n\x1a\n",
    b"II*\x00",
    b"MM\x00*",
    b"BM",
    b"GIF89a",
    b"RIFF\x00\x01\x00\x00WEBP",
    b"\x00" * 128 + b"DICM",
    b"\x08\x00\x05\x00CS",
    b"\x02\x00\x00\x00UL\x04\x00",
]

# A position: mostly inside the first 64 bytes (headers), sometimes anywhere.
_POSITION = st.one_of(st.integers(0, 64), st.integers(0, 1 << 20))
_MUTATION = st.one_of(
    st.tuples(st.just("flip"), _POSITION, st.integers(0, 7)),
    st.tuples(st.just("set"), _POSITION, st.sampled_from([0x00, 0xFF, 0x7F, 0x80, 0x01])),
    st.tuples(st.just("truncate"), _POSITION),
    st.tuples(st.just("insert"), _POSITION, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), _POSITION, st.integers(1, 32)),
)


def _mutate(data: bytes, mutations) -> bytes:
    buf = bytearray(data)
    for op, pos, *args in mutations:
        if not buf:
            break
        pos %= len(buf) + (1 if op in ("truncate", "insert") else 0)
        if op == "flip":
            buf[pos] ^= 1 << args[0]
        elif op == "set":
            buf[pos] = args[0]
        elif op == "truncate":
            del buf[pos:]
        elif op == "insert":
            buf[pos:pos] = args[0]
        else:
            del buf[pos : pos + args[0]]
    return bytes(buf)


def _check(data: bytes) -> None:
    try:
        img = load_image(data, name=NAME)
    except ImageLoadError as err:
        assert NAME in str(err)
        assert err.reason
        return
    assert img.mode == "RGB"
    assert img.width > 0 and img.height > 0
    out = prepare(img, 16)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8


def test_seeds_are_valid():
    """The unmutated seeds load, so the mutations start from real files."""
    for data in (*IMAGE_SEEDS.values(), *ODD_SEEDS.values(), *DICOM_SEEDS.values()):
        assert load_image(data).mode == "RGB"


@settings(FUZZ, max_examples=300)
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    _check(data)


@settings(FUZZ, max_examples=400)
@given(st.sampled_from(MAGICS), st.binary(max_size=2048))
def test_magic_then_random_bytes(magic, tail):
    _check(magic + tail)


@settings(FUZZ, max_examples=800)
@given(st.sampled_from(sorted(IMAGE_SEEDS)), st.lists(_MUTATION, min_size=1, max_size=4))
def test_mutated_images(seed, mutations):
    _check(_mutate(IMAGE_SEEDS[seed], mutations))


@settings(FUZZ, max_examples=300)
@given(st.sampled_from(sorted(ODD_SEEDS)), st.lists(_MUTATION, min_size=1, max_size=4))
def test_mutated_odd_images(seed, mutations):
    _check(_mutate(ODD_SEEDS[seed], mutations))


@settings(FUZZ, max_examples=500)
@given(st.sampled_from(sorted(DICOM_SEEDS)), st.lists(_MUTATION, min_size=1, max_size=4))
def test_mutated_dicom(seed, mutations):
    _check(_mutate(DICOM_SEEDS[seed], mutations))
