"""Which volume rule? `tumor_model.volume.verdict` (tumour when at least RUN consecutive slices
reach the model's threshold, unusual slices skipped), chosen on validation, checked on test.

    PYTHONPATH=. python experiments/volume_rule.py artifacts

No labelled MRI volumes are at hand (and nothing may be downloaded), so volumes are SYNTHETIC:
stacks of real Kaggle slices of one split of the shipped model (artifacts/split.csv), predicted
one by one by `Predictor` (the path every volume slice takes).
- healthy volume: SLICES healthy slices drawn without replacement;
- tumour volume: the same with a run of m consecutive tumour slices (m uniform in MIN_RUN..MAX_RUN,
  a 1.5-5 cm lesion at 5 mm slices) at a random place.
For RUN = 1..5 the volume sensitivity and specificity of `verdict`; RUN is chosen on the
validation split (largest sensitivity + specificity, ties to the larger RUN: fewer false alarms)
and only shown on test. Caveat printed with the result: slices of a real volume are not
independent draws (neighbours look alike, so a model's errors cluster along a volume), which
these stacks cannot show; the top and bottom of a real head, absent from Kaggle, are not in them.

Then an end-to-end check on `--end-to-end` volumes of test slices: each stack is written as a
NIfTI in memory, read by `volume.load_volume` and predicted by `volume.predict_volume`, and its
per-slice decisions are compared with those of the same slices read as files.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from tumor_model import volume  # noqa: E402
from tumor_model.imageio import load_image  # noqa: E402
from tumor_model.predict import Predictor  # noqa: E402

SLICES, MIN_RUN, MAX_RUN = 24, 3, 10


def per_slice(predictor: Predictor, rows: pd.DataFrame) -> list[dict]:
    paths = [str(Path(r) / p) for r, p in zip(rows["root"], rows["path"], strict=True)]
    return predictor.predict_files(paths, list(rows["path"]))


def simulate(results, labels, n: int, rng) -> tuple[list, list]:
    """n healthy and n tumour synthetic volumes, each a list of per-slice result dicts."""
    healthy = [r for r, y in zip(results, labels, strict=True) if y == 0]
    tumour = [r for r, y in zip(results, labels, strict=True) if y == 1]
    volumes, truth = [], []
    for _ in range(n):
        volumes.append([healthy[i] for i in rng.choice(len(healthy), SLICES, replace=False)])
        truth.append(0)
        m = int(rng.integers(MIN_RUN, MAX_RUN + 1))
        base = [healthy[i] for i in rng.choice(len(healthy), SLICES - m, replace=False)]
        at = int(rng.integers(0, SLICES - m + 1))
        run = [tumour[i] for i in rng.choice(len(tumour), m, replace=False)]
        volumes.append(base[:at] + run + base[at:])
        truth.append(1)
    return volumes, truth


def rates(volumes, truth, threshold: float, run: int) -> dict:
    said = [volume.verdict(v, threshold, run)["label"] for v in volumes]
    truth = np.array(truth)
    tumour = np.array([s == "tumor" for s in said])
    none = np.array([s == volume.NO_VERDICT for s in said])
    return {
        "sensitivity": float(tumour[truth == 1].mean()),
        "specificity": float((~tumour & ~none)[truth == 0].mean()),
        "no_verdict": int(none.sum()),
    }


def end_to_end(predictor, rows, results, n: int, rng) -> dict:
    """Stacks of test slices through NIfTI -> load_volume -> predict_volume."""
    import nibabel as nib

    agree = total = 0
    gaps = []
    for _ in range(n):
        pick = rng.choice(len(rows), SLICES, replace=False)
        planes = []
        for i in pick:
            img = load_image(Path(rows["root"].iloc[i]) / rows["path"].iloc[i]).convert("L")
            img.thumbnail((256, 256))
            canvas = np.zeros((256, 256), np.uint8)
            h, w = img.height, img.width
            canvas[(256 - h) // 2 : (256 - h) // 2 + h, (256 - w) // 2 : (256 - w) // 2 + w] = img
            planes.append(canvas.T[::-1, ::-1])  # so that nifti._display shows it as stored
        data = np.stack(planes, axis=2)
        raw = nib.Nifti1Image(data, np.diag([1.0, 1.0, 5.0, 1.0])).to_bytes()
        out = volume.predict_volume(predictor, volume.load_volume([raw], ["stack.nii"]))
        for i, got in zip(pick, out["slices"], strict=True):
            total += 1
            agree += got["label"] == results[i]["label"]
            gaps.append(abs(got["probability"] - results[i]["probability"]))
    return {
        "volumes": n,
        "slices": total,
        "same_decision": agree,
        "median_abs_gap": float(np.median(gaps)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", type=Path)
    parser.add_argument("--data-dir", type=Path, help="dataset root (default: as recorded)")
    parser.add_argument("--volumes", type=int, default=2000, help="per class and split")
    parser.add_argument("--end-to-end", type=int, default=10, help="test volumes via NIfTI")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    predictor = Predictor(args.artifacts)
    table = pd.read_csv(args.artifacts / "split.csv")
    if args.data_dir:
        table["root"] = str(args.data_dir)
    rng = np.random.default_rng(args.seed)
    report, sims = {}, {}
    for split in ("val", "test"):
        rows = table[table["split"] == split].reset_index(drop=True)
        results = per_slice(predictor, rows)
        failed = [r for r in results if "error" in r]
        if failed:
            raise SystemExit(f"{len(failed)} unreadable files, e.g. {failed[0]['error']}")
        flagged = sum(r["out_of_distribution"] for r in results)
        sims[split] = (rows, results, *simulate(results, rows["label"].tolist(), args.volumes, rng))
        report[split] = {
            "files": len(rows),
            "flagged_unusual": int(flagged),
            "rules": {
                run: rates(sims[split][2], sims[split][3], predictor.threshold, run)
                for run in range(1, 6)
            },
        }
    val = report["val"]["rules"]
    chosen = max(val, key=lambda k: (val[k]["sensitivity"] + val[k]["specificity"], k))
    rows, results = sims["test"][:2]
    report["chosen_run"] = chosen
    report["end_to_end"] = end_to_end(predictor, rows, results, args.end_to_end, rng)
    report["setup"] = {
        "slices_per_volume": SLICES,
        "tumour_run": [MIN_RUN, MAX_RUN],
        "volumes_per_class": args.volumes,
        "model_sha256": predictor.card["model_sha256"],
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(report, indent=2))
    print(
        f"chosen on validation: RUN = {chosen}; test volumes: sensitivity "
        f"{report['test']['rules'][chosen]['sensitivity']:.3f}, specificity "
        f"{report['test']['rules'][chosen]['specificity']:.3f}. Caveat: stacked Kaggle slices "
        "are independent draws; real neighbouring slices are not."
    )


if __name__ == "__main__":
    main()
