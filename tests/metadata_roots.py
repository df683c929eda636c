"""Generated roots with a files.csv (per-file metadata, like tcga-lgg's), for test_metadata and
test_evaluate_folder."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
from PIL import Image

from tumor_model.training import metadata

from conftest import fake_scan

SEQUENCES = ("t1", "t1ce", "flair")
HEADER = ["file", "label", "sequence", "patient_id", "case_id", "institution"]


def make_patients(root, patients=8, per=3, seed=3) -> list[dict]:
    """A two-class root like tcga-lgg: `per` tumour and `per` healthy 48 px slices of each
    patient in tumor/ and healthy/ (one sequence each, two institutions); patient 1's first
    tumour slice is an exact copy of patient 0's. Returns files.csv's rows (not written)."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(patients):
        for i in range(per):
            for folder in ("tumor", "healthy"):
                path = root / folder / f"p{p}_s{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(fake_scan(rng, folder == "tumor", (48, 48))).save(path)
                rows.append(
                    {
                        "file": f"{folder}/{path.name}",
                        "label": folder,
                        "sequence": SEQUENCES[i % 3],
                        "patient_id": f"P{p}",
                        "case_id": f"P{p}_1",
                        "institution": "AB"[p % 2],
                    }
                )
    shutil.copyfile(root / "tumor" / "p0_s0.png", root / "tumor" / "p1_s0.png")
    return rows


def write_csv(root, rows, columns=HEADER) -> None:
    pd.DataFrame(rows)[list(columns)].to_csv(root / metadata.METADATA_FILE, index=False)
