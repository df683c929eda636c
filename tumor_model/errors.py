"""What the image-loading layer refuses, and the one error it raises.

Shared by `imageio` (every format) and `dicom` (DICOM only), which both import it; `dicom`
imports nothing of `imageio`, and `imageio` imports `dicom`. `tumor_model.io.imageio.ImageLoadError`
and `tumor_model.io.imageio.MAX_PIXELS` etc. are these same objects.
"""

from __future__ import annotations

import struct

from PIL import Image

MAX_PIXELS = 64_000_000  # width * height above this is refused (decompression-bomb guard)
MAX_FILE_BYTES = 512 * 2**20  # larger inputs are refused before they are read
MIN_SIDE = 8  # images with a side shorter than this (pixels) are refused
MAX_ASPECT = 20.0  # images longer than 20:1 (either way) are refused
# Volumes (`tumor_model.serving.volume`: NIfTI, multi-frame DICOM, DICOM series / zip of one):
MAX_VOLUME_VOXELS = 64_000_000  # slices * H * W above this is refused (256 MB as float32)
MAX_VOLUME_SLICES = 1024  # more slices than this are refused (each is one model input)
MIN_VOLUME_SLICES = 3  # fewer slices than this are not a volume (predict them as scans)
MAX_ZIP_MEMBERS = 4096  # zip archives with more files than this are refused
MAX_ZIP_RATIO = 1000  # a zip member that inflates more than 1000x is refused (zip bomb)
# a zip's or .nii.gz's content inflated beyond MAX_FILE_BYTES in all is refused as well

# What PIL, pydicom and their decoders raise on damaged data (the ones we have seen, nothing
# broader); `imageio` and `dicom` add the few of their own.
DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    EOFError,
    struct.error,
    ZeroDivisionError,
    OverflowError,
    MemoryError,
    Image.DecompressionBombError,
)


class ImageLoadError(ValueError):
    """An input that cannot be read as an image.

    `source` names the input (file name/path, or "<bytes>"); `reason` says what is wrong in
    plain words. `str(err)` is e.g. `'scan.png': not an image (starts with b'<html')`.
    """

    def __init__(self, source: str, reason: str):
        self.source = str(source)
        self.reason = str(reason)
        super().__init__(f"{self.source!r}: {self.reason}")

    def __reduce__(self):  # keep pickling (process pools) working with the two-argument init
        return (type(self), (self.source, self.reason))
