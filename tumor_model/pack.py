"""`neuroscan pack`: a dataset made small enough to travel to a training machine.

The lent GPU machine takes uploads of 64 MiB a call; the Kaggle set alone is larger. A pack holds
each readable image as the model sees it (`imageio.prepare` at the input size, JPEG), in class
folders, plus what scanning the original files found (sha256, format, mode, width, height and the
duplicate thumbnail). Any command that takes `--data-dir` reads a pack as it reads the original
root: the same duplicate groups, splits, folds (image sizes are the originals') and data
fingerprint. Training takes the packed pixels as they are (`features.load_pixels`; preparing
them again would crop a cropped image a second time), so they differ from the originals' by the
JPEG's error only, and a recipe of another input size or geometry is refused. With `--weights`
the backbone's weights file travels inside the pack too.
"""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from . import artifacts, data
from .config import CLASS_NAMES, GEOMETRIES
from .imageio import load_image, prepare
from .progress import log

UPLOAD_LIMIT_MIB = 64  # the lent GPU machine's limit per call


def encode(pixels: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality, subsampling=0)
    return buf.getvalue()


def pack(
    data_dirs,
    out,
    size: int = 224,
    geometry: str = "crop-pad",
    quality: int = 80,
    dup_thumb: int = 32,
    weights: str | None = None,
) -> dict:
    """Write the pack of `data_dirs` to the new folder `out` (atomically); returns pack.json."""
    out = Path(out)
    if out.exists():
        raise ValueError(f"{str(out)!r} exists: give a new folder for the pack")
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry must be one of {GEOMETRIES}, got {geometry!r}")
    if not 1 <= quality <= 95:
        raise ValueError(f"JPEG quality must be in 1-95, got {quality!r}")
    if weights is not None and not Path(weights).is_file():
        raise ValueError(f"weights file {weights!r} does not exist")
    scanned = data.scan(data.find_all(data_dirs), dup_thumb)
    tmp = artifacts.temp_dir(out)
    try:
        rows = _write_images(scanned.images, tmp, size, geometry, quality)
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


def _write_images(images: pd.DataFrame, folder: Path, size, geometry, quality) -> list[dict]:
    for name in CLASS_NAMES:
        (folder / name).mkdir()
    rows = []
    for i, row in enumerate(images.itertuples(index=False)):
        pixels = prepare(load_image(Path(row.root) / row.path), size, geometry)
        path = f"{CLASS_NAMES[row.label]}/{i:05d}.jpg"
        blob = encode(pixels, quality)
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
