"""Which volume rule? `serving.volume.verdict` (tumour when at least RUN consecutive slices reach
the model's threshold, unusual slices skipped), chosen on validation, checked on test:
`neuroscan volume-rule [--save]` (`--save` writes `<artifacts>/volume_rule.json`, read by the
Predict page and `neuroscan report` through `serving.volume_check`).

No labelled MRI volumes are at hand (and nothing may be downloaded), so volumes are SYNTHETIC:
stacks of real slices of one split of the model (its split.csv), predicted one by one by
`Predictor` (the path every volume slice takes).
- healthy volume: `slices` healthy slices drawn without replacement;
- tumour volume: the same with a run of m consecutive tumour slices (m uniform in the
  `tumour_run` bounds, by default 3-10: a 1.5-5 cm lesion at 5 mm slices) at a random place.
For RUN = 1..5 the volume sensitivity and specificity of `verdict`; RUN is chosen on the
validation split (largest sensitivity + specificity, ties to the larger RUN: fewer false alarms)
and only shown on test. Caveat recorded with the result: slices of a real volume are not
independent draws (neighbours look alike, so a model's errors cluster along a volume), which
these stacks cannot show; the top and bottom of a real head are not in them.

Then an end-to-end check on `end_to_end` volumes of test slices: each stack is written as a
NIfTI in memory, read by `volume.load_volume` and predicted by `volume.predict_volume`, and its
per-slice decisions are compared with those of the same slices read as files.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from tumor_model import artifacts
from tumor_model.config import CLASS_NAMES
from tumor_model.evaluation.volume_rule_plan import (
    CAVEAT,
    END_TO_END,
    RUNS,
    SEED,
    SLICES,
    TUMOUR_RUN,
    VOLUMES,
)
from tumor_model.io.imageio import load_image
from tumor_model.serving import volume


def per_slice(predictor, rows: pd.DataFrame) -> list[dict]:
    """`Predictor.predict_files` of every row (root / path)."""
    paths = [str(Path(r) / p) for r, p in zip(rows["root"], rows["path"], strict=True)]
    return predictor.predict_files(paths, list(rows["path"]))


def simulate(results, labels, n: int, rng, slices=SLICES, tumour_run=TUMOUR_RUN):
    """n healthy and n tumour synthetic volumes (lists of per-slice result dicts) and their
    truth (0/1), alternating."""
    healthy = [r for r, y in zip(results, labels, strict=True) if y == 0]
    tumour = [r for r, y in zip(results, labels, strict=True) if y == 1]
    low, high = tumour_run
    if len(healthy) < slices or len(tumour) < high:
        raise ValueError(
            f"too few slices for {slices}-slice volumes with tumour runs up to {high}: "
            f"{len(healthy)} healthy and {len(tumour)} tumour slices in the split"
        )
    volumes, truth = [], []
    for _ in range(n):
        volumes.append([healthy[i] for i in rng.choice(len(healthy), slices, replace=False)])
        truth.append(0)
        m = int(rng.integers(low, high + 1))
        base = [healthy[i] for i in rng.choice(len(healthy), slices - m, replace=False)]
        at = int(rng.integers(0, slices - m + 1))
        run = [tumour[i] for i in rng.choice(len(tumour), m, replace=False)]
        volumes.append(base[:at] + run + base[at:])
        truth.append(1)
    return volumes, truth


def rates(volumes, truth, threshold: float, run: int) -> dict:
    """Volume sensitivity, specificity and no-verdict count of `verdict` with `run`."""
    said = [volume.verdict(v, threshold, run)["label"] for v in volumes]
    truth = np.array(truth)
    tumour = np.array([s == CLASS_NAMES[1] for s in said])
    none = np.array([s == volume.NO_VERDICT for s in said])
    return {
        "sensitivity": float(tumour[truth == 1].mean()),
        "specificity": float((~tumour & ~none)[truth == 0].mean()),
        "no_verdict": int(none.sum()),
    }


def stack(rows: pd.DataFrame, pick) -> bytes:
    """The picked rows' images as one NIfTI (grey, 256 px canvases, 5 mm slices), in memory."""
    import nibabel as nib

    planes = []
    for i in pick:
        img = load_image(Path(rows["root"].iloc[i]) / rows["path"].iloc[i]).convert("L")
        img.thumbnail((256, 256))
        canvas = np.zeros((256, 256), np.uint8)
        h, w = img.height, img.width
        canvas[(256 - h) // 2 : (256 - h) // 2 + h, (256 - w) // 2 : (256 - w) // 2 + w] = img
        planes.append(canvas.T[::-1, ::-1])  # so that the NIfTI reader shows it as stored
    data = np.stack(planes, axis=2)
    return nib.Nifti1Image(data, np.diag([1.0, 1.0, 5.0, 1.0])).to_bytes()


def end_to_end(predictor, rows, results, n: int, rng, slices=SLICES) -> dict:
    """Stacks of test slices through NIfTI -> load_volume -> predict_volume, against the same
    slices predicted as files."""
    agree = total = 0
    gaps = []
    for _ in range(n):
        pick = rng.choice(len(rows), slices, replace=False)
        raw = stack(rows, pick)
        out = volume.predict_volume(predictor, volume.load_volume([raw], ["stack.nii"]))
        for i, got in zip(pick, out["slices"], strict=True):
            total += 1
            agree += got["label"] == results[i]["label"]
            gaps.append(abs(got["probability"] - results[i]["probability"]))
    return {
        "volumes": n,
        "slices": total,
        "same_decision": agree,
        "median_abs_gap": float(np.median(gaps)) if gaps else None,
    }


def choose(rules: dict) -> int:
    """The RUN chosen on validation: largest sensitivity + specificity, ties to the larger RUN."""
    return max((int(k) for k in rules), key=lambda k: (sum(_pair(rules[str(k)])), k))


def _pair(rates_: dict) -> tuple[float, float]:
    return rates_["sensitivity"], rates_["specificity"]


def split_rows(folder: str | Path, data_dirs=None) -> pd.DataFrame:
    """The model's split.csv; `data_dirs` (the dataset roots on this machine) replace the roots
    recorded: each by the source it holds, or a single one for every row of a one-source split."""
    from tumor_model.training.data import source_of, sources

    table = artifacts.read_csv(folder, artifacts.SPLIT)
    table["source"] = sources(table)
    dirs = [str(d) for d in (data_dirs or ())]
    if len(dirs) == 1 and table["source"].nunique() == 1:
        return table.assign(root=dirs[0])
    for root in dirs:
        table.loc[table["source"] == source_of(root), "root"] = root
    return table


def measure(
    folder: str | Path,
    data_dirs=None,
    n_volumes: int = VOLUMES,
    n_end_to_end: int = END_TO_END,
    seed: int = SEED,
    slices: int = SLICES,
    tumour_run: tuple[int, int] = TUMOUR_RUN,
) -> dict:
    """The check of `folder`'s model, as volume_rule.json holds it."""
    from tumor_model.evaluation.localise import where
    from tumor_model.serving.predict import Predictor

    start = time.perf_counter()
    predictor = Predictor(folder)
    table = split_rows(folder, data_dirs)
    rng = np.random.default_rng(seed)
    check, kept = {}, {}
    for name in ("val", "test"):
        rows = table[table["split"] == name].reset_index(drop=True)
        results = per_slice(predictor, rows)
        failed = [r for r in results if "error" in r]
        if failed:
            raise ValueError(f"{len(failed)} unreadable files, e.g. {failed[0]['error']}")
        vols, truth = simulate(results, rows["label"].tolist(), n_volumes, rng, slices, tumour_run)
        kept[name] = rows, results
        check[name] = {
            "files": len(rows),
            "flagged_unusual": int(sum(r["out_of_distribution"] for r in results)),
            "rules": {str(k): rates(vols, truth, predictor.threshold, k) for k in RUNS},
        }
    rows, results = kept["test"]
    e2e = end_to_end(predictor, rows, results, n_end_to_end, rng, slices)
    return {
        "rule": volume.RULE,
        "rule_run": volume.RUN,
        "chosen_run": choose(check["val"]["rules"]),
        "chosen_on": "val",
        **check,
        "end_to_end": e2e,
        "setup": {
            "volumes": "synthetic: stacks of real slices of the model's split (split.csv)",
            "sources": sorted(table.loc[table["split"].isin(["val", "test"]), "source"].unique()),
            "slices_per_volume": slices,
            "tumour_run": list(tumour_run),
            "volumes_per_class": n_volumes,
            "seed": seed,
        },
        "caveat": CAVEAT,
        "model_sha256": predictor.card["model_sha256"],
        "command": "neuroscan volume-rule",
        "ran": {**where(), "seconds": round(time.perf_counter() - start, 1)},
    }


def write(check: dict, folder: str | Path) -> Path:
    """Write the check as `<folder>/volume_rule.json` (atomically); returns the path."""
    path = Path(folder) / artifacts.VOLUME_RULE
    artifacts.write_json(check, path)
    return path
