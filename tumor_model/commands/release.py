"""export, volume-rule, report: commands that write a model's files and facts (the ONNX export
and the volume rule's check into its artifacts folder; the README's results block,
docs/MODEL_CARD.md and docs/results.md from it)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from tumor_model.commands.args import artifacts_arg, model_folder, print_json
from tumor_model.evaluation import volume_rule_plan as plan


def cmd_volume_rule(args) -> int:
    from tumor_model.evaluation import volume_rule
    from tumor_model.serving.volume_check import describe

    folder = model_folder(args)
    with contextlib.redirect_stdout(sys.stderr):  # progress on stderr, the result on stdout
        check = volume_rule.measure(folder, args.data_dir, args.volumes, args.end_to_end, args.seed)
    written = str(volume_rule.write(check, folder).resolve()) if args.save else None
    print_json({**check, "written": written})
    print(f"How the rule was checked: {describe(check)}", file=sys.stderr)
    return 0


def cmd_export(args) -> int:
    from tumor_model.serving.export import export

    folder = model_folder(args)
    entry = export(folder)
    print_json({"artifacts": str(folder.resolve()), **entry}, indent=None)
    return 0


def cmd_report(args) -> int:
    from tumor_model.release import report

    folder = model_folder(args)
    root = Path(args.root) if args.root else report.repository_root()
    if args.check:
        stale = report.stale(folder, root)
        for name in stale:
            print(f"stale: {name} (run `neuroscan report` to render it again)", file=sys.stderr)
        print_json({"artifacts": str(folder), "stale": stale}, indent=None)
        return 1 if stale else 0
    written = report.write(folder, root)
    print_json({"artifacts": str(folder), "written": written}, indent=None)
    return 0


def add_parsers(sub, parent) -> None:
    p = sub.add_parser(
        "export",
        parents=[parent],
        help="write the model for ONNX Runtime (model.onnx, checked against Keras, its sha256 "
        "on the model card): `predict` then runs without TensorFlow",
    )
    artifacts_arg(p, "; an adapted folder too")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "volume-rule",
        parents=[parent],
        help="choose and check the volume rule on synthetic volumes of the model's validation and "
        "test slices; --save writes <artifacts>/volume_rule.json (the Predict page reads it)",
    )
    artifacts_arg(p)
    p.add_argument(
        "--data-dir",
        action="append",
        metavar="DIR",
        help="dataset root(s) on this machine, each replacing the root split.csv recorded for "
        "its source (default: the roots recorded)",
    )
    for flag, default, what in (
        ("--volumes", plan.VOLUMES, "synthetic volumes per class and split"),
        ("--end-to-end", plan.END_TO_END, "test volumes also read as NIfTI, predicted as volumes"),
        ("--seed", plan.SEED, "the draws' seed"),
    ):
        p.add_argument(flag, type=int, default=default, help=f"{what} (default %(default)s)")
    p.add_argument(
        "--save", action="store_true", help="write the check to <artifacts>/volume_rule.json"
    )
    p.set_defaults(func=cmd_volume_rule)

    p = sub.add_parser(
        "report",
        parents=[parent],
        help="render the README's results block, docs/MODEL_CARD.md and docs/results.md from the "
        "artifacts folder's JSON files; --check only says which are stale (exit 1)",
    )
    artifacts_arg(p)
    p.add_argument(
        "--check",
        action="store_true",
        help="render in memory and exit 1 naming every file that differs from it (0: current)",
    )
    p.add_argument(
        "--root",
        default=None,
        metavar="DIR",
        help="the repository the files are in (default: the one neuroscan runs from)",
    )
    p.set_defaults(func=cmd_report)
