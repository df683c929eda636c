"""Measure one lever at a time with grouped K-fold CV of the frozen-feature recipe.

    PYTHONPATH=. python experiments/levers.py \
        --weights ../shared/weights/mobilenet_v2_1.0_224_tfslim_imagenet_no_top.h5

Every variant reuses the feature cache, so each costs one feature extraction (~50 s on 2 cores)
the first time and seconds after. Nothing here looks at a test split: CV only.

`--groups source` keeps every image size whole as well as every duplicate group (folds of
sources rather than of slices): a proxy for scans from a source the model never saw.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json

from tumor_model.artifacts import CV_GROUPS
from tumor_model.config import Settings
from tumor_model.evaluation import crossval
from tumor_model.model import build_model
from tumor_model.training import features, split

VARIANTS = {
    "squash": {"geometry": "squash", "stretch": False},
    "squash+stretch": {"geometry": "squash", "stretch": True},
    "pad": {"geometry": "pad", "stretch": False},
    "pad+stretch": {"geometry": "pad", "stretch": True},
    "crop-pad": {"geometry": "crop-pad", "stretch": False},
    "crop-pad+stretch": {"geometry": "crop-pad", "stretch": True},
    "crop-pad+stretch+class_weights": {
        "geometry": "crop-pad",
        "stretch": True,
        "class_weights": True,
    },
    "crop-pad+stretch+dropout0.5": {"geometry": "crop-pad", "stretch": True, "dropout": 0.5},
    "crop-pad+stretch+dense64": {"geometry": "crop-pad", "stretch": True, "dense_units": 64},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--data-dir", action="append")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=list(VARIANTS))
    parser.add_argument("--groups", choices=tuple(CV_GROUPS), default="duplicate")
    args = parser.parse_args()
    base = Settings(
        weights=args.weights,
        bootstrap=200,
        **({"data_dirs": tuple(args.data_dir)} if args.data_dir else {}),
    )
    table, _ = split.prepare_table(base)
    print(f"{args.groups} groups: {len(set(split.fold_groups(table, args.groups)))}", flush=True)
    rows = []
    for name in args.only:
        settings = dataclasses.replace(base, **VARIANTS[name])
        _, feat_model, _ = build_model(settings)
        with contextlib.redirect_stdout(io.StringIO()):
            x = features.extract(feat_model, table, settings)
        cv = crossval.cross_validate(x, table, settings, args.folds, args.groups)
        m = cv["metrics"]
        rows.append(
            {
                "variant": name,
                **{
                    k: f"{m[k]['value']:.4f} [{m[k]['ci_low']:.3f}, {m[k]['ci_high']:.3f}]"
                    for k in ("accuracy", "roc_auc", "sensitivity", "specificity")
                },
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print("\n| variant | CV accuracy | CV ROC AUC | CV sensitivity | CV specificity |")
    print("|---|---|---|---|---|")
    for r in rows:
        cells = (r["accuracy"], r["roc_auc"], r["sensitivity"], r["specificity"])
        print(f"| {r['variant']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
