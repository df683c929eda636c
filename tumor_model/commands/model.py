"""evaluate, localise, lesion-head, adapt, anchor: commands that measure or change a model."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

from tumor_model.commands.args import artifacts_arg, model_folder, print_json, rounded
from tumor_model.config import LOCAL_SHARE
from tumor_model.evaluation import localise_plan as plan

ADAPT_KEYS = ("balanced_accuracy", "sensitivity", "specificity", "roc_auc", "ece")


def cmd_evaluate(args) -> int:
    from tumor_model.evaluation import evaluate_folder

    folder = model_folder(args)
    if args.shortcut:
        data_dir = (args.data_dir or [None])[0]
        print_json(evaluate_folder.shortcut(folder, data_dir, args.shortcut), indent=None)
        return 0
    result = evaluate_folder.run(
        folder,
        args.data_dir,
        args.all,
        args.bootstrap,
        args.threshold,
        args.save,
        args.test_of,
        args.part,
    )
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
        print_json({"written": str(Path(args.out).resolve()), **result["summary"]}, indent=None)
    else:
        print_json(result)
    return 0


def cmd_localise(args) -> int:
    from tumor_model.evaluation import localise, localise_report

    folder = model_folder(args)
    result = localise.benchmark(
        folder,
        args.boxes or plan.DEFAULT_BOXES,
        args.per_half,
        args.scorecam_per_half,
        args.smoothgrad_per_half,
        args.latency_n,
        args.seed,
    )
    written = localise_report.write(result, args.out, folder if args.save else None)
    print_json({"default": result["default"], "written": written})
    return 0


def cmd_lesion_head(args) -> int:
    from tumor_model.evaluation import lesion_head

    folder = model_folder(args)
    record = lesion_head.train_and_measure(
        folder, args.boxes or plan.DEFAULT_BOXES, args.epochs, not args.no_compare, args.save
    )
    test = record["test"]
    brief = {
        "threshold": record["threshold"],
        "dice": {g: v["mean"] for g, v in test["dice"].items()},
        "healthy_false_alarm": {g: v["mean"] for g, v in test["healthy_false_alarm"].items()},
        "pointing_8px": {g: v["pointing_8px"] for g, v in test["head"].items()},
        "latency_ms": record["latency_ms"],
        "written": str(folder) if args.save else None,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2))
        brief["out"] = str(Path(args.out).resolve())
    print_json(brief)
    return 0


def cmd_adapt(args) -> int:
    from tumor_model.site import adapt

    out = str(Path(args.out).resolve()) if args.out else None
    with contextlib.redirect_stdout(sys.stderr):
        record = adapt.adapt(model_folder(args), args.data_dirs, out, args.local_share)
    figures = {
        step: {
            "how": record[step]["how"],
            **{k: rounded(record[step]["metrics"][k]) for k in ADAPT_KEYS},
        }
        for step in ("before", "recalibrated", "retrained")
    }
    head = {k: record[k] for k in ("local_scans", "local_classes", "local_fingerprint")}
    print_json({**head, **figures, "out": out})
    return 0


def cmd_anchor(args) -> int:
    from tumor_model.site import adapt

    folder = model_folder(args)
    with contextlib.redirect_stdout(sys.stderr):
        entry = adapt.write_anchor(folder)
    print_json({"artifacts": str(folder), **entry}, indent=None)
    return 0


def add_parsers(sub, parent) -> None:
    evaluate_parser(sub, parent)
    localise_parser(sub, parent)
    lesion_head_parser(sub, parent)
    p = sub.add_parser(
        "adapt",
        parents=[parent],
        help="check the model on a folder of labelled local scans, refit temperature and "
        "threshold, retrain the head, and write the adapted artifacts folder",
    )
    artifacts_arg(p, "; the model to adapt")
    p.add_argument(
        "--data-dir",
        action="append",
        dest="data_dirs",
        metavar="DIR",
        required=True,
        help="labelled local scans in class folders (the layouts `train` reads); repeatable",
    )
    p.add_argument(
        "--out", default=None, help="a new folder for the adapted model (omit: check only)"
    )
    p.add_argument(
        "--local-share",
        type=float,
        default=LOCAL_SHARE,
        help=f"share of the head's loss the local scans weigh (default {LOCAL_SHARE})",
    )
    p.set_defaults(func=cmd_adapt)

    p = sub.add_parser(
        "anchor",
        parents=[parent],
        help="write anchor.npz (what adapt retrains on) for a model trained without it",
    )
    artifacts_arg(p)
    p.set_defaults(func=cmd_anchor)


def evaluate_parser(sub, parent) -> None:
    p = sub.add_parser(
        "evaluate",
        parents=[parent],
        help="metrics of a trained model on its test split or a folder",
    )
    artifacts_arg(p)
    p.add_argument(
        "--data-dir",
        action="append",
        metavar="DIR",
        help="labelled folder(s); default: the model's own test split",
    )
    p.add_argument("--all", action="store_true", help="evaluate every image under --data-dir")
    p.add_argument(
        "--test-of",
        metavar="DIR",
        default=None,
        help="instead: the test split of another model folder (its split.csv), per source, "
        "sequence and institution: compare two models on identical files",
    )
    p.add_argument(
        "--part",
        default="test",
        help="the split.csv rows read (own split or --test-of): test, or val to judge a "
        "lever off the test split; default: test",
    )
    p.add_argument("--threshold", type=float, default=None, help="default: the model card's")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--out", default=None, help="write the full JSON here")
    p.add_argument(
        "--save",
        action="store_true",
        help="with --all: record the figures (per source) in the model's metrics.json as how "
        "it does on sources it never saw (refused if any file is in its split.csv); without: "
        "record its own test split per source, sequence and institution (test_sources)",
    )
    p.add_argument(
        "--shortcut",
        type=int,
        default=0,
        metavar="SIDE",
        help="instead: test accuracy after padding to SIDE x SIDE and re-encoding as PNG",
    )
    p.set_defaults(func=cmd_evaluate)


def localise_parser(sub, parent) -> None:
    p = sub.add_parser(
        "localise",
        parents=[parent],
        help="localisation benchmark: pointing game, energy ratio and top-10%% share of every "
        "explanation method and target layer on the tumour boxes of one or more sources, "
        "halves by patient; --save ships the chosen default",
    )
    artifacts_arg(p)
    p.add_argument(
        "--boxes",
        action="append",
        metavar="CSV",
        help="a box source (its folder names it): file, x_center, y_center, width, height; "
        "with a label column only its tumour rows with a box; sequence, patient_id used when "
        f"present; repeatable (default: {' and '.join(plan.DEFAULT_BOXES)})",
    )
    for flag, default, what in (
        ("--per-half", plan.PER_HALF, "slices per box source and half"),
        ("--scorecam-per-half", plan.SCORECAM_PER_HALF, "Score-CAM slices per source and half"),
        (
            "--smoothgrad-per-half",
            plan.SMOOTHGRAD_PER_HALF,
            "SmoothGrad slices per source and half",
        ),
        ("--latency-n", plan.LATENCY_N, "explain calls timed per gradient CAM"),
        ("--seed", plan.SEED, "the halves' shuffle"),
    ):
        p.add_argument(flag, type=int, default=default, help=f"{what} (default %(default)s)")
    p.add_argument("--out", default="docs/localisation.json", help="JSON; the .md table beside it")
    p.add_argument(
        "--save",
        action="store_true",
        help="write the chosen default to <artifacts>/localisation.json (the CLI and app read it)",
    )
    p.set_defaults(func=cmd_localise)


def lesion_head_parser(sub, parent) -> None:
    p = sub.add_parser(
        "lesion-head",
        parents=[parent],
        help="train a lesion-map head on the model's frozen backbone from lesion masks and "
        "boxes, choose its pixel threshold on validation slices, measure it on held-out "
        "slices beside the default map; --save writes it into the model folder",
    )
    artifacts_arg(p)
    p.add_argument(
        "--boxes",
        action="append",
        metavar="CSV",
        help="a box source as `localise` reads it; a `mask` column names mask images (the "
        "target; else the filled box) and a labelled CSV's healthy rows train empty maps; "
        f"repeatable (default: {' and '.join(plan.DEFAULT_BOXES)})",
    )
    p.add_argument("--epochs", type=int, default=15, help="training epochs (default %(default)s)")
    p.add_argument(
        "--no-compare",
        action="store_true",
        help="skip the default post-hoc map on the same held-out slices (faster)",
    )
    p.add_argument("--out", default=None, help="also write the full record (JSON) here")
    p.add_argument(
        "--save",
        action="store_true",
        help="write the head and its record into the model folder (the Predict page shows the "
        "head's map beside the post-hoc one)",
    )
    p.set_defaults(func=cmd_lesion_head)
