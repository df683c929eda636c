"""Zip archives read in memory (uploads are patient data: nothing is written), with the
zip-bomb limits of `tumor_model.errors`. `members` is the one reader; callers filter."""

from __future__ import annotations

import io
import zipfile
import zlib

from tumor_model.errors import (
    DECODE_ERRORS,
    MAX_FILE_BYTES,
    MAX_ZIP_MEMBERS,
    MAX_ZIP_RATIO,
    ImageLoadError,
)


def members(data: bytes, label: str) -> list[tuple[str, bytes]]:
    """(member path, bytes) of every regular file in the zip `data` (macOS forks and hidden
    files skipped); ImageLoadError naming `label` and the problem for a damaged, encrypted,
    oversized or bomb-like archive."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, *DECODE_ERRORS) as err:
        raise ImageLoadError(label, f"damaged ZIP archive ({type(err).__name__})") from err
    if len(infos) > MAX_ZIP_MEMBERS:
        raise ImageLoadError(
            label, f"ZIP archive with {len(infos):,} files (the limit is {MAX_ZIP_MEMBERS:,})"
        )
    declared = sum(i.file_size for i in infos)
    if declared > MAX_FILE_BYTES:
        raise ImageLoadError(
            label,
            f"ZIP archive inflates to {declared:,} bytes (the limit is {MAX_FILE_BYTES:,}; "
            "possible zip bomb)",
        )
    out, budget = [], MAX_FILE_BYTES
    for info in infos:
        base = info.filename.rsplit("/", 1)[-1]
        if info.filename.startswith("__MACOSX/") or base.startswith("."):
            continue
        where = f"member {info.filename!r}"
        if info.flag_bits & 0x1:
            raise ImageLoadError(label, f"{where}: encrypted ZIP member (not supported)")
        if info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1):
            raise ImageLoadError(
                label,
                f"{where} inflates {info.file_size:,} bytes from {info.compress_size:,} (over "
                f"{MAX_ZIP_RATIO}x: possible zip bomb)",
            )
        try:
            with archive.open(info) as stream:
                blob = stream.read(min(info.file_size, budget) + 1)
        except (zipfile.BadZipFile, NotImplementedError, *DECODE_ERRORS, zlib.error) as err:
            raise ImageLoadError(label, f"{where}: damaged ({type(err).__name__})") from err
        if len(blob) > min(info.file_size, budget):
            raise ImageLoadError(label, f"{where} inflates beyond what its header says")
        budget -= len(blob)
        out.append((info.filename, blob))
    return out
