"""Frozen-base features, computed once and cached on disk.

The cache key covers everything that changes a feature: backbone, weights file hash, input size,
geometry and pooling. Rows are keyed by image sha256, so renamed or copied files cost nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from tumor_model.config import Settings
from tumor_model.io.geometry import prepare
from tumor_model.io.imageio import load_image
from tumor_model.model import build_model, input_size, weights_origin
from tumor_model.training import data


def cache_key(settings: Settings) -> str:
    origin, sha = weights_origin(settings.weights)
    parts = {
        "backbone": settings.backbone,
        "weights": sha or origin,
        "size": input_size(settings),
        "geometry": settings.geometry,
        "pool": settings.head,
        "stretch": settings.stretch,
        "version": 2,
    }
    if any(data.is_pack(root) for root in settings.data_dirs):
        parts["packed"] = True  # a pack keeps the originals' sha256, not their exact pixels
    blob = json.dumps(parts, sort_keys=True).encode()
    return f"{settings.backbone}-{input_size(settings)}-{hashlib.sha256(blob).hexdigest()[:16]}"


def load_pixels(images: pd.DataFrame, size: int, geometry: str, workers: int = 4) -> np.ndarray:
    """uint8 (n, size, size, 3) for rows with root and path columns (files known to be readable).
    A packed root holds these pixels already (`neuroscan pack`): they are taken as they are."""
    packs = {r: data.pack_info(r) for r in images.root.unique() if data.is_pack(r)}
    for root, info in packs.items():
        if (info["size"], info["geometry"]) != (size, geometry):
            raise ValueError(
                f"packed data root {root!r} holds {info['geometry']} pixels at {info['size']} "
                f"px; this recipe needs {geometry} at {size} px: pack it again with --size "
                f"{size} --geometry {geometry}"
            )

    def one(row):
        image = load_image(Path(row.root) / row.path)
        return np.asarray(image) if row.root in packs else prepare(image, size, geometry)

    with ThreadPoolExecutor(workers) as pool:
        return np.stack(list(pool.map(one, images.itertuples(index=False))))


def extract(
    features_model, images: pd.DataFrame, settings: Settings, batch: int = 64, verbose: bool = True
) -> np.ndarray:
    """Features for every row of `images` (columns root, path, sha256), cached by sha256."""
    path = Path(settings.cache_dir) / f"{cache_key(settings)}.npz"
    cached = _read(path)
    wanted = list(dict.fromkeys(images.sha256))
    missing = images.drop_duplicates("sha256")
    missing = missing[~missing.sha256.isin(cached)]
    size = input_size(settings)
    for start in range(0, len(missing), batch * 4):
        chunk = missing.iloc[start : start + batch * 4]
        pixels = load_pixels(chunk, size, settings.geometry)
        feats = features_model.predict(pixels.astype("float32"), batch_size=batch, verbose=0)
        cached.update(zip(chunk.sha256, feats.astype(np.float32), strict=True))
        if verbose:
            print(
                f"features: {min(start + len(chunk), len(missing))}/{len(missing)} new", flush=True
            )
    if len(missing):
        _write(path, cached)
    table = {sha: cached[sha] for sha in wanted}
    return np.stack([table[sha] for sha in images.sha256])


def _read(path: Path) -> dict:
    if not path.is_file():
        return {}
    with np.load(path) as z:
        return dict(zip(z["sha256"].tolist(), z["features"], strict=True))


def _write(path: Path, table: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(tmp, sha256=np.array(list(table)), features=np.stack(list(table.values())))
    os.replace(tmp, path)


def extract_for(settings: Settings, table: pd.DataFrame) -> np.ndarray:
    """Frozen-base features of `table`'s rows with the backbone `settings` name (cached)."""
    _, feat_model, _ = build_model(settings)
    return extract(feat_model, table, settings)
