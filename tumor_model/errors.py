"""What the image-loading layer refuses, and the one error it raises.

Shared by `imageio` (every format) and `dicom` (DICOM only), which both import it; `dicom`
imports nothing of `imageio`, and `imageio` imports `dicom`. `tumor_model.imageio.ImageLoadError`
and `tumor_model.imageio.MAX_PIXELS` etc. are these same objects.
"""

from __future__ import annotations

import struct

from PIL import Image

MAX_PIXELS = 64_000_000  # width * height above this is refused (decompression-bomb guard)
MAX_FILE_BYTES = 512 * 2**20  # larger inputs are refused before they are read
MIN_SIDE = 8  # images with a side shorter than this (pixels) are refused
MAX_ASPECT = 20.0  # images longer than 20:1 (either way) are refused

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
