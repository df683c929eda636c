"""The one documented error of the image-loading layer (shared by `imageio` and `dicom`).

Kept in its own tiny module so that `dicom` can raise it without a circular import;
`tumor_model.imageio.ImageLoadError` is the same class.
"""

from __future__ import annotations


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
