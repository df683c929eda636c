"""`neuroscan pack`: a dataset made small enough to travel to a training machine.

The lent GPU machine takes uploads of 64 MiB a call; the Kaggle set alone is larger. A pack holds
each readable image as the model sees it (`geometry.prepare` at the input size, JPEG), in class
folders, plus what scanning the original files found (sha256, format, mode, width, height and the
duplicate thumbnail). Any command that takes `--data-dir` reads a pack as it reads the original
root: the same duplicate groups, splits, folds (image sizes are the originals') and data
fingerprint. Training takes the packed pixels as they are (`features.load_pixels`; preparing
them again would crop a cropped image a second time), so they differ from the originals' by the
codec's error only, and a recipe of another input size or geometry is refused. With `--weights`
the backbone's weights file travels inside the pack too.

Grey images (three equal channels, nearly every MRI) are stored as JPEG with one channel; reading
them back gives three equal channels again (WebP has no grey mode: its decoded channels differ by
at most a grey level). `--codec webp` stores about a third less than JPEG at
the same grey-level error (measured in docs/distributed.md), for data that must fit one upload.
"""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from tumor_model import artifacts
from tumor_model.config import CLASS_NAMES, GEOMETRIES
from tumor_model.io.geometry import prepare
from tumor_model.io.imageio import load_image
from tumor_model.progress import log
from tumor_model.training import data

UPLOAD_LIMIT_MIB = 64  # the lent GPU machine's limit per call
CODECS = {"jpeg": ("JPEG", ".jpg"), "webp": ("WEBP", ".webp")}  # --codec: (PIL format, suffix)


def encode(pixels: np.ndarray, quality: int, codec: str = "jpeg") -> bytes:
    """`pixels` (h, w, 3 uint8) compressed; one channel when the three are equal (grey)."""
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {tuple(CODECS)}, got {codec!r}")
    grey = bool((pixels[..., :1] == pixels).all())
    image = Image.fromarray(pixels[..., 0] if grey else pixels)
    options = {"subsampling": 0} if codec == "jpeg" else {"method": 6}
    buf = io.BytesIO()
    image.save(buf, format=CODECS[codec][0], quality=quality, **options)
    return buf.getvalue()


def pack(
    data_dirs,
    out,
    size: int = 224,
    geometry: str = "crop-pad",
    quality: int = 80,
    dup_thumb: int = 32,
    weights: str | None = None,
    codec: str = "jpeg",
) -> dict:
    """Write the pack of `data_dirs` to the new folder `out` (atomically); returns pack.json."""
    out = Path(out)
    if out.exists():
        raise ValueError(f"{str(out)!r} exists: give a new folder for the pack")
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry must be one of {GEOMETRIES}, got {geometry!r}")
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {tuple(CODECS)}, got {codec!r}")
    if not 1 <= quality <= 95:
        raise ValueError(f"{CODECS[codec][0]} quality must be in 1-95, got {quality!r}")
    if weights is not None and not Path(weights).is_file():
        raise ValueError(f"weights file {weights!r} does not exist")
    scanned = data.scan(data.find_all(data_dirs), dup_thumb)
    tmp = artifacts.temp_dir(out)
    try:
        rows = _write_images(scanned.images, tmp, size, geometry, quality, codec)
        pd.DataFrame(rows).to_csv(tmp / data.PACK_TABLE, index=False)
        thumbs = np.round(scanned.thumbs * 255).astype(np.uint8)
        np.savez_compressed(tmp / data.PACK_THUMBS, thumbs=thumbs)
        if weights is not None:
            shutil.copyfile(weights, tmp / Path(weights).name)
        info = {
            "sources": [str(d) for d in data_dirs],
            "images": len(rows),
            "unreadable": scanned.unreadable,
            "size": size,
            "geometry": geometry,
            "codec": codec,
            "quality": quality,
            "dup_thumb": dup_thumb,
            "weights": Path(weights).name if weights else None,
            "mib": round(sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file()) / 2**20, 1),
        }
        artifacts.write_json(info, tmp / data.PACK_INFO)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    artifacts.replace_dir(tmp, out)
    log(f"packed {info['images']} images into {out}: {info['mib']} MiB")
    if info["mib"] > UPLOAD_LIMIT_MIB:
        log(f"over the {UPLOAD_LIMIT_MIB} MiB upload limit: pack again with a lower --quality")
    return info


def _write_images(images: pd.DataFrame, folder: Path, size, geometry, quality, codec):
    for name in CLASS_NAMES:
        (folder / name).mkdir()
    rows = []
    for i, row in enumerate(images.itertuples(index=False)):
        pixels = prepare(load_image(Path(row.root) / row.path), size, geometry)
        path = f"{CLASS_NAMES[row.label]}/{i:05d}{CODECS[codec][1]}"
        blob = encode(pixels, quality, codec)
        (folder / path).write_bytes(blob)
        rows.append(
            {
                "path": path,
                "label": row.label,
                "sha256": row.sha256,  # the original's: groups and fingerprint stay its own
                "bytes": row.bytes,
                "format": row.format,
                "mode": row.mode,
                "width": row.width,
                "height": row.height,
                "source": row.source,
                "original": f"{row.root}/{row.path}",
                "packed_sha256": hashlib.sha256(blob).hexdigest(),
            }
        )
    return rows
