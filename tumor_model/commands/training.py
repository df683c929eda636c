"""train, cv, report-protocol: commands that train the recipe (a model, CV folds, the report's
random split)."""

from __future__ import annotations

import argparse
import contextlib
import sys

from tumor_model.commands.args import (
    artifacts_arg,
    cache_dir_arg,
    model_folder,
    print_json,
    round4,
    settings_args,
    settings_from_args,
)

HEADLINE = ("accuracy", "balanced_accuracy", "roc_auc", "sensitivity", "specificity")


def cmd_train(args) -> int:
    from tumor_model.release import pipeline

    pipeline.train_and_write(
        settings_from_args(args),
        cv_folds=args.cv,
        shortcut=args.shortcut,
        report_protocol=args.report_protocol,
    )
    return 0


def cmd_cv(args) -> int:
    from tumor_model.artifacts import CV_GROUPS, SOURCE_BLOCKS
    from tumor_model.evaluation import crossval
    from tumor_model.metrics import cv_rows

    with contextlib.redirect_stdout(sys.stderr):  # progress on stderr, the result on stdout
        result = crossval.cv_artifacts(
            model_folder(args),
            args.data_dir,
            args.folds,
            args.save,
            full=args.fine_tune,
            by=tuple(args.by or CV_GROUPS),
            cache_dir=args.cache_dir,
            hold_out=tuple(args.hold_out or ()),
            twin=args.twin,
        )
    summary = {}  # one headline per CV block; "rows" has every block and held-out source
    for name, block in result.items():
        pooled = block["pooled"] if name in SOURCE_BLOCKS else block
        summary[name] = {
            **{k: block[k] for k in ("groups", "recipe", "folds") if k in block},
            **{
                k: round4(pooled["metrics"][k]["value"]) for k in HEADLINE if k in pooled["metrics"]
            },
        }
    print_json({**summary, "rows": cv_rows(result), "saved": args.save})
    return 0


def cmd_report_protocol(args) -> int:
    from tumor_model.evaluation import protocols

    with contextlib.redirect_stdout(sys.stderr):  # progress on stderr, the result on stdout
        result = protocols.protocol_artifacts(model_folder(args), args.save, args.cache_dir)
    summary = {k: round4(result["metrics"][k]["value"]) for k in ("accuracy", "roc_auc")}
    summary["test_files_with_copy_in_train"] = result["test_files_with_copy_in_train"]
    print_json({**result["protocol"], **summary, "saved": args.save})
    return 0


def add_parsers(sub, parent) -> None:
    p = sub.add_parser("train", parents=[parent], help="train, evaluate and write artifacts")
    settings_args(p)
    p.add_argument(
        "--cv",
        type=int,
        default=0,
        metavar="K",
        help="also run grouped K-fold CV of the frozen-feature recipe (0 = off)",
    )
    p.add_argument(
        "--shortcut",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="re-encode test images as padded PNGs and report the accuracy change",
    )
    p.add_argument(
        "--report-protocol",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also train and test the same recipe on the report's random split",
    )
    p.set_defaults(func=cmd_train)
    cv_parser(sub, parent)
    p = sub.add_parser(
        "report-protocol",
        parents=[parent],
        help="retrain a trained model's recipe on the report's random split and test it",
    )
    artifacts_arg(p, "; reads its settings.json")
    cache_dir_arg(p)
    p.add_argument(
        "--save", action="store_true", help="store the result in <artifacts>/metrics.json"
    )
    p.set_defaults(func=cmd_report_protocol)


def cv_parser(sub, parent) -> None:
    p = sub.add_parser(
        "cv",
        parents=[parent],
        help="grouped and cross-source K-fold CV of a trained model's recipe (frozen stage, "
        "or the whole recipe with --fine-tune)",
    )
    artifacts_arg(p, "; reads its settings.json")
    p.add_argument("--data-dir", action="append", metavar="DIR", help="default: the model's data")
    p.add_argument("--folds", type=int, default=10)
    p.add_argument(
        "--by",
        action="append",
        choices=("duplicate", "source", "loso", "institution"),
        help="fold grouping, repeatable (default: duplicate and source). 'source': the "
        "cross-source CV (image sizes kept whole) and, with several sources (--data-dir "
        "repeated), leave-one-source-out of the frozen stage; 'loso': leave-one-source-out "
        "alone (of the whole recipe with --fine-tune: a training run per source); "
        "'institution': leave-one-institution-out (institutions a source's files.csv names, "
        "e.g. tcga-lgg's; the other institutions and sources in training)",
    )
    p.add_argument(
        "--fine-tune",
        action="store_true",
        help="CV of the whole recipe, fine-tuning included: a training run per fold (about "
        "20 min per fold on 2 CPU cores for the shipped recipe); stored as cv_fine_tuned / "
        "cv_source_fine_tuned / loso_fine_tuned / lioo_fine_tuned",
    )
    p.add_argument(
        "--hold-out",
        action="append",
        metavar="SOURCE",
        help="with --by loso: hold out only this source (a root's folder name), repeatable",
    )
    p.add_argument(
        "--twin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --by loso: also test each held-out one-class source with a recipe trained "
        "on the two-class sources alone ('twin absent': one more training run)",
    )
    cache_dir_arg(p)
    p.add_argument(
        "--save", action="store_true", help="store the results in <artifacts>/metrics.json"
    )
    p.set_defaults(func=cmd_cv)
